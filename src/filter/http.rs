//! Per-request state machine: gate on headers, buffer the body (bounded), then scan, plan and
//! apply before letting the request continue; on the way back, watch the response for the
//! request's outcome without holding it.

use super::host;
use super::metrics::Metrics;
use crate::body_sync;
use crate::config::{Config, Role};
use crate::gate;
use crate::mcp::{self, RequestId, ScannedBody};
use crate::plan::{self, ArrivedHeaders, HeaderChange};
use crate::request_headers::RequestHeaders;
use crate::response::{ResponseOutcome, ResponseWatcher};
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

    /// Reads and scans the complete body, then does the role's work.
    fn process(&mut self, body_size: usize) {
        self.state = State::PassThrough;
        let Some(body) = host::request_body(body_size) else {
            return;
        };
        let scanned = match mcp::scan(&body) {
            Ok(scanned) => scanned,
            Err(reason) => {
                // The upstream role sees the same body the gateway role already counted.
                if self.config.role == Role::Gateway {
                    self.metrics.count_not_mcp(reason);
                }
                return;
            }
        };
        match self.config.role {
            Role::Gateway => self.lift_and_publish(&scanned),
            Role::Upstream => self.sync_body(&body, &scanned),
        }
    }

    /// Gateway role: lift the `_meta` context into headers and publish span metadata.
    fn lift_and_publish(&mut self, scanned: &ScannedBody) {
        let headers = &self.headers;
        let arrived = ArrivedHeaders {
            traceparent: headers.traceparent.as_deref(),
            tracestate: headers.tracestate.as_deref(),
            baggage: headers.baggage.as_deref(),
        };
        let plan = plan::plan(&self.config, &arrived, scanned);
        for change in &plan.changes {
            apply(change);
        }
        self.metrics
            .count_outcome(plan.outcome, plan.invalid_values);

        let transport = TransportHeaders {
            session_id: headers.session_id.as_deref(),
            protocol_version: headers.protocol_version.as_deref(),
        };
        if let Some(span) = semconv::request_span(scanned, &transport) {
            self.publish_span(&span);
            self.request_id = span.id;
        }
    }

    /// Publishes the span name and attributes as filter state, and as headers when configured.
    fn publish_span(&self, span: &RequestSpan) {
        publish(semconv::SPAN_NAME, &span.name);
        for (key, value) in &span.attributes {
            publish(key, value);
        }
        if !self.config.span_headers {
            return;
        }
        for (header, value) in semconv::span_headers(span) {
            apply(&HeaderChange::Set(header, value.to_owned()));
        }
    }

    /// Upstream role: make the body's `_meta.traceparent` match the upstream `traceparent`.
    fn sync_body(&self, body: &[u8], scanned: &ScannedBody) {
        let Some(upstream) = &self.headers.traceparent else {
            return;
        };
        let Some(synced) = body_sync::sync_traceparent(body, scanned, upstream) else {
            return;
        };
        match host::replace_request_body(body.len(), &synced) {
            Ok(()) => self.metrics.count_body_synced(),
            Err(error) => log::warn!(
                "mcp-trace-filter: could not rewrite the request body: host status {}",
                error.0
            ),
        }
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
        self.process(body_size);
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.state == State::Buffering {
            self.process(self.hold_limit);
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
