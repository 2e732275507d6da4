//! Per-request state machine: gate on headers, buffer the body (bounded), then scan, plan and
//! apply before letting the request continue; on the way back, watch the response for the
//! request's outcome without holding it.

use super::host;
use super::metrics::Metrics;
use crate::body_sync;
use crate::config::{Config, HeaderMismatch, Role};
use crate::digest::{self, Digest};
use crate::gate;
use crate::mcp::RequestId;
use crate::plan::{self, ArrivedHeaders, HeaderChange};
use crate::request_headers::RequestHeaders;
use crate::response::{ResponseOutcome, ResponseWatcher};
use crate::routing_headers::{self, Mismatch, RoutingHeaders};
use crate::semconv::{self, RequestSpan, TransportHeaders};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not (or no longer) the filter's business: every callback continues at once.
    PassThrough,
    /// Headers are paused while the body is buffered.
    Buffering,
}

pub struct McpRequest {
    config: Rc<Config>,
    metrics: Rc<Metrics>,
    state: State,
    /// Most body bytes to hold for this request (see `gate::hold_limit`).
    hold_limit: usize,
    /// The request headers, read once when they arrive (kept while the body is buffered).
    headers: RequestHeaders,
    /// The id of the scanned request, until the response starts.
    request_id: Option<RequestId>,
    watcher: Option<ResponseWatcher>,
}

impl McpRequest {
    pub fn new(config: Rc<Config>, metrics: Rc<Metrics>) -> McpRequest {
        McpRequest {
            config,
            metrics,
            state: State::PassThrough,
            hold_limit: 0,
            headers: RequestHeaders::default(),
            request_id: None,
            watcher: None,
        }
    }

    /// Reads and scans the complete body, then does the role's work; `Pause` only when the
    /// filter answered the request itself.
    fn process(&mut self, body_size: usize) -> Action {
        self.state = State::PassThrough;
        let Some(mut body) = host::request_body(body_size) else {
            return Action::Continue;
        };
        let routing = RoutingHeaders {
            method: self.headers.mcp_method.as_deref(),
            name: self.headers.mcp_name.as_deref(),
        };
        let digest = match digest::digest(&body, &routing) {
            Ok(digest) => digest,
            Err(reason) => {
                // The upstream role sees the same body the gateway role already counted.
                if self.config.role == Role::Gateway {
                    self.metrics.count_not_mcp(reason);
                }
                return Action::Continue;
            }
        };
        match self.config.role {
            Role::Gateway => self.gateway(&digest),
            Role::Upstream => {
                self.sync_body(&mut body, &digest);
                Action::Continue
            }
        }
    }

    /// Gateway role: enforce SEP-2243, lift the `_meta` context into headers, publish span
    /// metadata where configured.
    fn gateway(&mut self, digest: &Digest) -> Action {
        if let Some(mismatch) = digest.header_mismatch {
            self.metrics.count_header_mismatch();
            if self.config.header_mismatch == HeaderMismatch::Reject {
                let id = digest.request.as_ref().and_then(|m| m.id.as_ref());
                reject_mismatch(mismatch, id);
                return Action::Pause;
            }
        }
        let headers = &self.headers;
        let arrived = ArrivedHeaders {
            traceparent: headers.traceparent.as_deref(),
            tracestate: headers.tracestate.as_deref(),
            baggage: headers.baggage.as_deref(),
        };
        let plan = plan::plan(&self.config, &arrived, digest);
        for change in &plan.changes {
            apply(change);
        }
        self.metrics
            .count_outcome(plan.outcome, plan.invalid_values);

        if !self.config.span_metadata && !self.config.span_headers {
            return Action::Continue;
        }
        let transport = TransportHeaders {
            session_id: headers.session_id.as_deref(),
            protocol_version: headers.protocol_version.as_deref(),
        };
        let span = digest
            .request
            .as_ref()
            .and_then(|request| semconv::request_span(request, &transport));
        if let Some(span) = span {
            self.publish_span(&span);
            if self.config.span_metadata {
                self.request_id = span.id;
            }
        }
        Action::Continue
    }

    /// Publishes the span name and attributes as filter state and/or headers, as configured.
    fn publish_span(&self, span: &RequestSpan) {
        if self.config.span_metadata {
            publish(semconv::SPAN_NAME, &span.name);
            for (key, value) in &span.attributes {
                publish(key, value);
            }
        }
        if self.config.span_headers {
            for (header, value) in semconv::span_headers(span) {
                apply(&HeaderChange::Set(header, value.to_owned()));
            }
        }
    }

    /// Upstream role: make the body's `_meta.traceparent` match the upstream `traceparent`.
    /// The body read from the host is rewritten in place and written back whole (Envoy accepts
    /// only whole-body writes).
    fn sync_body(&self, body: &mut Vec<u8>, digest: &Digest) {
        let Some(upstream) = &self.headers.traceparent else {
            return;
        };
        let held = body.len();
        if !body_sync::sync_traceparent(body, digest, upstream) {
            return;
        }
        // The headers are still paused: a body whose length changed gets the right length.
        if held != body.len() && self.headers.content_length.is_some() {
            apply(&HeaderChange::Set("content-length", body.len().to_string()));
        }
        match host::replace_request_body(held, body) {
            Ok(()) => self.metrics.count_body_synced(),
            Err(error) => log::warn!(
                "mcp-trace-filter: could not rewrite the request body: host status {}",
                error.0
            ),
        }
    }
}

/// Answers a request whose SEP-2243 headers contradict its body: HTTP 400 with a JSON-RPC
/// `HeaderMismatch` error carrying the request's id.
fn reject_mismatch(mismatch: Mismatch, id: Option<&RequestId>) {
    let body = routing_headers::mismatch_response(mismatch, id);
    let headers = [("content-type", "application/json")];
    if let Err(error) =
        host::send_local_response(400, "mcp_header_mismatch", &headers, body.as_bytes())
    {
        log::warn!(
            "mcp-trace-filter: could not answer a header mismatch: host status {}",
            error.0
        );
    }
}

fn publish(key: &str, value: &str) {
    if let Err(error) = host::set_property(key, value) {
        log::debug!(
            "mcp-trace-filter: could not set {key}: host status {}",
            error.0
        );
    }
}

fn publish_outcome(outcome: &ResponseOutcome) {
    if let Some(error_type) = &outcome.error_type {
        publish(semconv::ERROR_TYPE, error_type);
        publish(semconv::ERROR_FLAG, "true");
    }
    if let Some(code) = &outcome.status_code {
        publish(semconv::RESPONSE_STATUS_CODE, code);
    }
}

fn apply(change: &HeaderChange) {
    let (name, result) = match change {
        HeaderChange::Set(name, value) => (name, host::set_request_header(name, value)),
        HeaderChange::Remove(name) => (name, host::remove_request_header(name)),
    };
    if let Err(error) = result {
        log::warn!(
            "mcp-trace-filter: could not change header {name}: host status {}",
            error.0
        );
    }
}

/// Removes client-sent copies of the headers the filter owns: those the snapshot found, or
/// every one of them when there is no snapshot.
fn strip_owned_headers(headers: Option<&RequestHeaders>) {
    let present = headers.map(|headers| headers.owned_present.as_slice());
    for header in present.unwrap_or(&semconv::OWNED_HEADERS) {
        apply(&HeaderChange::Remove(header));
    }
}

impl Context for McpRequest {}

impl HttpContext for McpRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = host::request_headers();
        if self.config.role == Role::Gateway {
            strip_owned_headers(headers.as_ref());
        }
        let Some(headers) = headers else {
            return Action::Continue;
        };
        if end_of_stream {
            return Action::Continue;
        }
        if !gate::is_json_post(headers.method.as_deref(), headers.content_type.as_deref()) {
            return Action::Continue;
        }
        // The upstream role only rewrites the body to match a `traceparent` header: without
        // one there is nothing to do, so the body is not held.
        if self.config.role == Role::Upstream && headers.traceparent.is_none() {
            return Action::Continue;
        }
        let content_length = headers.content_length.as_deref();
        if gate::declared_oversize(content_length, self.config.max_body_bytes) {
            self.metrics.count_oversize();
            return Action::Continue;
        }
        self.hold_limit = gate::hold_limit(self.config.max_body_bytes, content_length.is_some());
        self.headers = headers;
        self.state = State::Buffering;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.state != State::Buffering {
            return Action::Continue;
        }
        if body_size > self.hold_limit {
            self.state = State::PassThrough;
            self.metrics.count_oversize();
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.process(body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.state == State::Buffering {
            return self.process(self.hold_limit);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(request_id) = self.request_id.take() else {
            return Action::Continue;
        };
        if end_of_stream {
            return Action::Continue;
        }
        let content_type = host::response_header("content-type");
        self.watcher = ResponseWatcher::new(
            content_type.as_deref(),
            Some(request_id),
            self.config.max_body_bytes,
        );
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(watcher) = self.watcher.as_mut() else {
            return Action::Continue;
        };
        let chunk = host::response_body(body_size).unwrap_or_default();
        if let Some(outcome) = watcher.feed(&chunk, end_of_stream) {
            publish_outcome(&outcome);
            self.watcher = None;
        } else if end_of_stream {
            self.watcher = None;
        }
        Action::Continue
    }
}
