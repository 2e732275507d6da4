//! Per-request state machine: gate on headers, buffer the body (bounded), then scan, plan and
//! apply header changes before letting the request continue. The body itself is never written.

use super::host;
use super::metrics::Metrics;
use crate::config::Config;
use crate::gate;
use crate::mcp;
use crate::plan::{self, ArrivedHeaders, HeaderChange};
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
}

impl McpRequest {
    pub fn new(config: Rc<Config>, metrics: Rc<Metrics>) -> McpRequest {
        McpRequest {
            config,
            metrics,
            state: State::PassThrough,
        }
    }

    /// Scans the complete body and applies the planned header changes.
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
        let traceparent = host::request_header(plan::TRACEPARENT);
        let tracestate = host::request_header(plan::TRACESTATE);
        let baggage = host::request_header(plan::BAGGAGE);
        let arrived = ArrivedHeaders {
            traceparent: traceparent.as_deref(),
            tracestate: tracestate.as_deref(),
            baggage: baggage.as_deref(),
        };
        let plan = plan::plan(&self.config, &arrived, &scanned);
        for change in &plan.changes {
            apply(change);
        }
        self.metrics
            .count_outcome(plan.outcome, plan.invalid_values);
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

impl Context for McpRequest {}

impl HttpContext for McpRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
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
        self.state = State::Buffering;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.state != State::Buffering {
            return Action::Continue;
        }
        if body_size > self.config.max_body_bytes {
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
            self.process(self.config.max_body_bytes);
        }
        Action::Continue
    }
}
