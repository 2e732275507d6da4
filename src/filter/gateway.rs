//! The gateway role: a downstream HTTP filter. Strips client copies of the headers it owns,
//! holds JSON POST bodies, enforces SEP-2243, lifts the `_meta` context into headers, publishes
//! span metadata where configured, and watches the response for the request's outcome.

use super::hold::{self, Hold};
use super::own_span::SpanInProgress;
use super::RequestFilter;
use crate::config::{Config, HeaderMismatch};
use crate::digest::{self, Digest};
use crate::header_policy;
use crate::host::{Action, Counter, Host, HostKind};
use crate::mcp::RequestId;
use crate::plan::{self, ArrivedHeaders, HeaderChange, Outcome};
use crate::request_headers::RequestHeaders;
use crate::response::{ResponseOutcome, ResponseWatcher};
use crate::routing_headers::{self, RoutingHeaders};
use crate::semconv::{self, RequestSpan, TransportHeaders};
use std::rc::Rc;

pub struct GatewayRequest<H> {
    config: Rc<Config>,
    kind: HostKind,
    host: H,
    hold: Hold,
    /// The request headers, read once when they arrive (kept while the body is held).
    headers: RequestHeaders,
    /// The id of the scanned request, until the response starts (only when it is watched).
    request_id: Option<RequestId>,
    watcher: Option<ResponseWatcher>,
    /// Own-span mode: the gateway's spans of this request.
    own_span: Option<SpanInProgress>,
    /// Whether the request declared its length (which a body rewrite must keep true).
    length_declared: bool,
}

impl<H: Host> GatewayRequest<H> {
    pub fn new(config: Rc<Config>, kind: HostKind, host: H) -> GatewayRequest<H> {
        GatewayRequest {
            config,
            kind,
            host,
            hold: Hold::new(kind),
            headers: RequestHeaders::default(),
            request_id: None,
            watcher: None,
            own_span: None,
            length_declared: false,
        }
    }

    /// Reads and digests the complete body, then lifts; `Pause` only when the filter answered
    /// the request itself.
    fn process(&mut self, body_size: usize) -> Action {
        let Some(body) = hold::read_body(&mut self.host, body_size) else {
            return Action::Continue;
        };
        let routing = RoutingHeaders {
            method: self.headers.mcp_method.as_deref(),
            name: self.headers.mcp_name.as_deref(),
        };
        match digest::digest(&body, &routing) {
            Ok(digest) => self.lift(&digest, body),
            Err(_) => {
                self.host.count(Counter::NotMcp, 1);
                Action::Continue
            }
        }
    }

    fn lift(&mut self, digest: &Digest, body: Vec<u8>) -> Action {
        if let Some(mismatch) = digest.header_mismatch {
            self.host.count(Counter::HeaderMismatch, 1);
            if self.config.header_mismatch == HeaderMismatch::Reject {
                let id = digest.request.as_ref().and_then(|m| m.id.as_ref());
                let body = routing_headers::mismatch_response(mismatch, id);
                let headers = [("content-type", "application/json")];
                let sent = self.host.send_local_response(
                    400,
                    "mcp_header_mismatch",
                    &headers,
                    body.as_bytes(),
                );
                if let Err(error) = sent {
                    self.warn(&format!(
                        "could not answer a header mismatch: host status {}",
                        error.0
                    ));
                }
                return Action::Pause;
            }
        }
        let headers = &self.headers;
        let arrived = ArrivedHeaders {
            traceparent: headers.traceparent.as_deref(),
            tracestate: headers.tracestate.as_deref(),
            baggage: headers.baggage.as_deref(),
        };
        let mut plan = plan::plan(&self.config, &arrived, digest);
        let held = body.len();
        let mut edited_body = None;
        if let (Some(own), Some(spans)) = (&self.config.own_span, self.own_span.as_mut()) {
            let edit = spans.decide(
                &mut self.host,
                own,
                headers,
                &arrived,
                digest,
                &mut plan.changes,
                body,
            );
            edited_body = edit.body;
        }
        for change in &plan.changes {
            self.apply(change);
        }
        if let Some(edited) = edited_body {
            hold::replace_body(&mut self.host, held, &edited, self.length_declared);
        }
        self.host.count(outcome_counter(plan.outcome), 1);
        if plan.invalid_values > 0 {
            self.host
                .count(Counter::InvalidValues, u64::from(plan.invalid_values));
        }
        if self.config.span_metadata || self.config.span_headers {
            self.publish_span(digest);
        }
        Action::Continue
    }

    /// Publishes the span name and attributes as properties and/or headers, as configured.
    fn publish_span(&mut self, digest: &Digest) {
        let transport = TransportHeaders {
            session_id: self.headers.session_id.as_deref(),
            protocol_version: self.headers.protocol_version.as_deref(),
        };
        let Some(span) = digest
            .request
            .as_ref()
            .and_then(|request| semconv::request_span(request, &transport))
        else {
            return;
        };
        if self.config.span_metadata {
            self.publish(semconv::SPAN_NAME, &span.name);
            for (key, value) in &span.attributes {
                self.publish(key, value);
            }
        }
        if self.config.span_headers {
            publish_span_headers(self, &span);
        }
        if self.config.span_metadata {
            self.request_id = span.id;
        }
    }

    fn publish(&mut self, key: &str, value: &str) {
        let property = self.kind.span_property(key);
        if let Err(error) = self.host.set_property(&property, value) {
            self.host.log(
                log::Level::Debug,
                &format!(
                    "mcp-trace-filter: could not set {property}: host status {}",
                    error.0
                ),
            );
        }
    }

    fn apply(&mut self, change: &HeaderChange) {
        let (name, result) = match change {
            HeaderChange::Set(name, value) => (name, self.host.set_request_header(name, value)),
            HeaderChange::Remove(name) => (name, self.host.remove_request_header(name)),
        };
        if let Err(error) = result {
            self.warn(&format!(
                "could not change header {name}: host status {}",
                error.0
            ));
        }
    }

    /// Removes client-sent copies of the headers the filter owns: those the snapshot found, or
    /// every one of them when there is no snapshot.
    fn strip_owned_headers(&mut self, headers: Option<&mut RequestHeaders>) {
        let present = headers.map(|headers| std::mem::take(&mut headers.owned_present));
        let owned = || header_policy::owned().map(|(name, _)| name).collect();
        for header in present.unwrap_or_else(owned) {
            self.apply(&HeaderChange::Remove(header));
        }
    }

    fn warn(&mut self, message: &str) {
        self.host
            .log(log::Level::Warn, &format!("mcp-trace-filter: {message}"));
    }

    fn publish_outcome(&mut self, outcome: &ResponseOutcome) {
        if let Some(error_type) = &outcome.error_type {
            self.publish(semconv::ERROR_TYPE, error_type);
            self.publish(semconv::ERROR_FLAG, "true");
        }
        if let Some(code) = &outcome.status_code {
            self.publish(semconv::RESPONSE_STATUS_CODE, code);
        }
    }
}

fn publish_span_headers<H: Host>(request: &mut GatewayRequest<H>, span: &RequestSpan) {
    for (header, value) in semconv::span_headers(span) {
        request.apply(&HeaderChange::Set(header, value.to_owned()));
    }
}

fn outcome_counter(outcome: Outcome) -> Counter {
    match outcome {
        Outcome::Lifted => Counter::Lifted,
        Outcome::HeaderKept => Counter::HeaderKept,
        Outcome::Dropped => Counter::MetaDropped,
        Outcome::NoContext => Counter::NoContext,
        Outcome::InvalidContext => Counter::InvalidContext,
    }
}

impl<H: Host> RequestFilter for GatewayRequest<H> {
    fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        let mut headers = self.host.request_headers();
        self.strip_owned_headers(headers.as_mut());
        let Some(headers) = headers else {
            return Action::Continue;
        };
        if self.config.own_span.is_some() {
            self.own_span = Some(SpanInProgress::begin(&mut self.host));
        }
        let action = self
            .hold
            .start(&mut self.host, &self.config, &headers, end_of_stream);
        self.length_declared = headers.content_length.is_some();
        self.headers = headers;
        action
    }

    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.hold
            .body(&mut self.host, body_size, end_of_stream)
            .or_process(|size| self.process(size))
    }

    fn on_request_trailers(&mut self) -> Action {
        self.hold.trailers().or_process(|size| self.process(size))
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
        if let Some(spans) = self.own_span.as_mut() {
            spans.response_headers(&mut self.host, &self.config, self.kind, end_of_stream);
        }
        let Some(request_id) = self.request_id.take() else {
            return Action::Continue;
        };
        if end_of_stream {
            return Action::Continue;
        }
        let content_type = self.host.response_header("content-type");
        self.watcher = ResponseWatcher::new(
            content_type.as_deref(),
            Some(request_id),
            self.config.max_body_bytes,
        );
        Action::Continue
    }

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(spans) = self.own_span.as_mut() {
            return spans.response_body(&mut self.host, body_size, end_of_stream);
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return Action::Continue;
        };
        let chunk = self.host.response_body(body_size).unwrap_or_default();
        let outcome = watcher.feed(&chunk, end_of_stream);
        if outcome.is_some() || end_of_stream {
            self.watcher = None;
        }
        if let Some(outcome) = outcome {
            self.publish_outcome(&outcome);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(spans) = self.own_span.as_mut() {
            spans.finish(&mut self.host);
        }
    }
}
