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
                self.metrics.count_not_mcp(reason);
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
        let traceparent = host::request_header(plan::TRACEPARENT);
        let tracestate = host::request_header(plan::TRACESTATE);
        let baggage = host::request_header(plan::BAGGAGE);
        let arrived = ArrivedHeaders {
            traceparent: traceparent.as_deref(),
            tracestate: tracestate.as_deref(),
            baggage: baggage.as_deref(),
        };
        let plan = plan::plan(&self.config, &arrived, scanned);
        for change in &plan.changes {
            apply(change);
        }
        self.metrics
            .count_outcome(plan.outcome, plan.invalid_values);

        let session_id = host::request_header("mcp-session-id");
        let protocol_version = host::request_header("mcp-protocol-version");
        let transport = TransportHeaders {
            session_id: session_id.as_deref(),
            protocol_version: protocol_version.as_deref(),
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
        let mut headers = vec![
            (semconv::SPAN_NAME_HEADER, span.name.as_str()),
            (semconv::DECORATOR_HEADER, span.name.as_str()),
        ];
        for (key, header) in semconv::ATTRIBUTE_HEADERS {
            if let Some(value) = span.attribute(key) {
                headers.push((header, value));
            }
        }
        for (header, value) in headers {
            if semconv::is_header_safe(value) {
                apply(&HeaderChange::Set(header, value.to_owned()));
            }
        }
    }

    /// Upstream role: make the body's `_meta.traceparent` match the upstream `traceparent`.
    fn sync_body(&self, body: &[u8], scanned: &ScannedBody) {
        let Some(upstream) = host::request_header(plan::TRACEPARENT) else {
            return;
        };
        let Some(synced) = body_sync::sync_traceparent(body, scanned, &upstream) else {
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

/// Removes client-sent copies of the headers the filter owns.
fn strip_owned_headers() {
    for header in semconv::OWNED_HEADERS {
        if host::request_header(header).is_some() {
            apply(&HeaderChange::Remove(header));
        }
    }
}

impl Context for McpRequest {}

impl HttpContext for McpRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.config.role == Role::Gateway {
            strip_owned_headers();
        }
        if end_of_stream {
            return Action::Continue;
        }
        let method = host::request_header(":method");
        let content_type = host::request_header("content-type");
        if !gate::is_json_post(method.as_deref(), content_type.as_deref()) {
            return Action::Continue;
        }
        let content_length = host::request_header("content-length");
        if gate::declared_oversize(content_length.as_deref(), self.config.max_body_bytes) {
            self.metrics.count_oversize();
            return Action::Continue;
        }
        self.hold_limit = gate::hold_limit(self.config.max_body_bytes, content_length.is_some());
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
