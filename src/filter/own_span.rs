//! The own-span mode of the gateway role: the filter is the gateway's tracer. It decides the
//! gateway's span ids once the body is read, hands the backend that span (header and
//! `params._meta`), watches the response for the outcome, and exports the finished spans when
//! the response stream ends. The decisions are in `crate::span`; this only sequences them.

use crate::body_sync;
use crate::config::{Config, OwnSpan};
use crate::digest::Digest;
use crate::host::Counter;
use crate::host::{Action, Host, HostKind};
use crate::mcp::RequestId;
use crate::meta_inject::{self, TraceFields};
use crate::operation_metrics::{OperationAttributes, Side};
use crate::plan::{ArrivedHeaders, HeaderChange, BAGGAGE, TRACEPARENT, TRACESTATE};
use crate::request_headers::RequestHeaders;
use crate::response::{ResponseOutcome, ResponseWatcher};
use crate::semconv::{self, TransportHeaders};
use crate::server_spans::{self, Action as PassbackAction, PassbackFilter, PassbackOptions};
use crate::span::{self, ArrivedContext, FreshIds, GatewaySpans, SpanFacts, Value};
use crate::trace_context::tracestate::MAX_FORWARDED_LEN;
use crate::trace_context::{push_hex, Baggage, TraceParent, TraceState};

/// One request's spans, from request headers to the end of the response.
#[derive(Debug, Default)]
pub struct SpanInProgress {
    start_unix_nanos: u64,
    /// Decided once the body showed an MCP request; `None` means no span for this request.
    spans: Option<GatewaySpans>,
    facts: SpanFacts,
    request_id: Option<RequestId>,
    watcher: Option<ResponseWatcher>,
    http_status: Option<u16>,
    outcome: Option<ResponseOutcome>,
    /// SEP-2448: forwards and/or strips server spans in the response.
    passback: Option<PassbackFilter>,
    finished: bool,
}

/// What the backend's request must become for it to continue the gateway's span.
pub struct UpstreamEdit {
    /// The body with `_meta.traceparent` rewritten, when it changed.
    pub body: Option<Vec<u8>>,
}

impl SpanInProgress {
    /// Starts the clock when the request headers arrive.
    pub fn begin(host: &mut impl Host) -> SpanInProgress {
        SpanInProgress {
            start_unix_nanos: host.now_unix_nanos(),
            ..SpanInProgress::default()
        }
    }

    /// Decides the gateway's spans for a scanned request and rewrites `changes` (the lift
    /// plan) so the upstream `traceparent` is the gateway's span; returns the body edit.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        host: &mut impl Host,
        own: &OwnSpan,
        headers: &RequestHeaders,
        arrived: &ArrivedHeaders<'_>,
        digest: &Digest,
        changes: &mut Vec<HeaderChange>,
        body: Vec<u8>,
    ) -> UpstreamEdit {
        let no_edit = UpstreamEdit { body: None };
        let transport = TransportHeaders {
            session_id: headers.session_id.as_deref(),
            protocol_version: headers.protocol_version.as_deref(),
        };
        let Some(request) = digest.request.as_ref() else {
            return no_edit;
        };
        let Some(described) = semconv::request_span(request, &transport) else {
            return no_edit;
        };
        let (parent, other) = contexts(arrived, digest, changes);
        let spans = GatewaySpans::start(
            parent.as_ref(),
            other.as_ref(),
            fresh_ids(host),
            own.client_span,
            own.root_sampling_millionths,
        );
        let upstream = point_upstream_at(&spans, arrived, changes);
        let body = edit_body(host, own, &spans, &upstream, arrived, changes, digest, body);

        self.facts.name = described.name;
        self.facts.attributes = described
            .attributes
            .into_iter()
            .map(|(key, value)| (key, Value::Text(value)))
            .collect();
        self.facts.server_side = server_side_attributes(host, headers);
        self.facts.start_unix_nanos = self.start_unix_nanos;
        self.facts.upstream_start_unix_nanos = host.now_unix_nanos();
        self.request_id = described.id;
        self.spans = Some(spans);
        UpstreamEdit { body }
    }

    /// The response started: its status, and a watcher for the JSON-RPC outcome.
    pub fn response_headers(
        &mut self,
        host: &mut impl Host,
        config: &Config,
        kind: HostKind,
        end_of_stream: bool,
    ) {
        if self.spans.is_none() {
            return;
        }
        self.http_status = host
            .response_header(":status")
            .and_then(|status| status.parse().ok());
        if end_of_stream {
            self.finish(host);
            return;
        }
        let content_type = host.response_header("content-type");
        self.watcher = ResponseWatcher::new(
            content_type.as_deref(),
            self.request_id.clone(),
            config.max_body_bytes,
        );
        let wanted = config.own_span.as_ref().map(|own| own.server_spans);
        if let Some(wanted) = wanted.filter(|w| w.forward || w.strip) {
            if kind.buffers_response_body() {
                let options = PassbackOptions {
                    forward: wanted.forward,
                    strip: wanted.strip,
                };
                // Half the body limit: the host's own response buffer (Envoy: the connection's
                // buffer limit, 1 MiB by default) must never be the one that overflows.
                let limit = config.max_body_bytes / 2;
                let passback = PassbackFilter::new(content_type.as_deref(), options, limit);
                let declared_over = host
                    .response_header("content-length")
                    .and_then(|length| length.trim().parse::<usize>().ok())
                    .is_some_and(|length| length > limit);
                if passback.is_active() && !declared_over {
                    // A stripped body is shorter than its declared length.
                    if options.strip {
                        let _ = host.remove_response_header("content-length");
                    }
                    self.passback = Some(passback);
                }
            }
        }
    }

    /// A response chunk passed: look for the outcome (and server spans, holding the body
    /// while an SEP-2448 decision needs more of it); the span ends with the stream.
    pub fn response_body(
        &mut self,
        host: &mut impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let mut action = Action::Continue;
        if self.watcher.is_some() || self.passback.is_some() {
            let chunk = host.response_body(body_size).unwrap_or_default();
            if let Some(passback) = self.passback.as_mut() {
                let step = passback.on_body(&chunk, end_of_stream);
                // Only spans of a sampled request's own trace; others are dropped, counted.
                let trace_id = self
                    .spans
                    .as_ref()
                    .filter(|spans| spans.sampled())
                    .map(|spans| hex(&spans.trace_id));
                for payload in step.payloads {
                    // Only spans of this request's trace; others are dropped, counted.
                    match &trace_id {
                        Some(id) if server_spans::spans_in_trace(&payload, id) => {
                            host.forward_server_spans(payload);
                        }
                        _ => host.count(Counter::SpansDropped, 1),
                    }
                }
                match step.action {
                    PassbackAction::Wait => action = Action::Pause,
                    PassbackAction::Pass => {}
                    PassbackAction::Replace(body) => {
                        match host.replace_response_body(chunk.len(), &body) {
                            Ok(()) => host.count(Counter::ServerSpansStripped, 1),
                            Err(error) => host.log(
                                log::Level::Warn,
                                &format!(
                                    "mcp-trace-filter: could not strip server spans: host status {}",
                                    error.0
                                ),
                            ),
                        }
                    }
                }
            }
            // Held bytes come again with the next callback: watch them once, when they go on.
            if action == Action::Continue {
                if let Some(watcher) = self.watcher.as_mut() {
                    if let Some(outcome) = watcher.feed(&chunk, end_of_stream) {
                        self.outcome = Some(outcome);
                        self.watcher = None;
                    }
                }
            }
        }
        if end_of_stream {
            self.finish(host);
        }
        action
    }

    /// Ends the spans (once): records the operation's duration, and hands the spans to the
    /// exporter when sampled. Metrics count every request, sampled or not.
    pub fn finish(&mut self, host: &mut impl Host) {
        let (sampled, client_span) = match &self.spans {
            Some(spans) => (spans.sampled(), spans.client_span_id.is_some()),
            None => return,
        };
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.watcher = None;
        self.facts.end_unix_nanos = host.now_unix_nanos();
        self.add_outcome();
        self.record_durations(host, client_span);
        if !sampled {
            return;
        }
        let upstream = client_span
            .then(|| host.property(&["upstream", "address"]))
            .flatten();
        if let Some(upstream) = upstream {
            let (address, port) = span::split_host_port(&upstream);
            self.facts
                .client_side
                .push(("server.address", Value::Text(semconv::sanitized(&address))));
            if let Some(port) = port {
                self.facts
                    .client_side
                    .push(("server.port", Value::Int(port)));
            }
        }
        if let Some(spans) = &self.spans {
            host.export_spans(spans.finish(&self.facts));
        }
    }

    fn record_durations(&self, host: &mut impl Host, client_span: bool) {
        let facts = &self.facts;
        let text = |key: &str| {
            facts.attributes.iter().find_map(|(k, v)| match v {
                Value::Text(text) if *k == key => Some(text.as_str()),
                _ => None,
            })
        };
        let Some(method) = text(semconv::METHOD_NAME) else {
            return;
        };
        let attributes = OperationAttributes {
            method,
            target: text(semconv::TOOL_NAME).or(text(semconv::PROMPT_NAME)),
            error_type: text(semconv::ERROR_TYPE),
        };
        let seconds = |from: u64| facts.end_unix_nanos.saturating_sub(from) as f64 / 1e9;
        host.record_operation(Side::Server, &attributes, seconds(facts.start_unix_nanos));
        if client_span {
            let from = facts.upstream_start_unix_nanos;
            host.record_operation(Side::Client, &attributes, seconds(from));
        }
    }

    /// `error.type`, `rpc.response.status_code` and the status from the outcome, or from an
    /// HTTP 5xx when the body said nothing.
    fn add_outcome(&mut self) {
        let attributes = &mut self.facts.attributes;
        match &self.outcome {
            Some(outcome) => {
                if let Some(code) = &outcome.status_code {
                    attributes.push((semconv::RESPONSE_STATUS_CODE, Value::Text(code.clone())));
                }
                if let Some(error_type) = &outcome.error_type {
                    attributes.push((semconv::ERROR_TYPE, Value::Text(error_type.clone())));
                    self.facts.error = Some(outcome.error_message.clone().unwrap_or_default());
                }
            }
            None => {
                if let Some(status) = self.http_status.filter(|status| *status >= 500) {
                    attributes.push((semconv::ERROR_TYPE, Value::Text(status.to_string())));
                    self.facts.error = Some(format!("HTTP {status}"));
                }
            }
        }
        if let Some(status) = self.http_status {
            attributes.push(("http.response.status_code", Value::Int(i64::from(status))));
        }
    }
}

/// Rewrites the lift plan so the upstream `traceparent` is the gateway's innermost span (and
/// `tracestate` the one of the context it continues); returns that `traceparent`.
fn point_upstream_at(
    spans: &GatewaySpans,
    arrived: &ArrivedHeaders<'_>,
    changes: &mut Vec<HeaderChange>,
) -> String {
    let upstream = spans.upstream_parent().to_header_value();
    changes.retain(|change| !touches_context(change));
    changes.push(HeaderChange::Set(TRACEPARENT, upstream.clone()));
    match &spans.trace_state {
        Some(state) if arrived.tracestate != Some(state.as_str()) => {
            changes.push(HeaderChange::Set(TRACESTATE, state.clone()));
        }
        Some(_) => {}
        None if arrived.tracestate.is_some() => changes.push(HeaderChange::Remove(TRACESTATE)),
        None => {}
    }
    upstream
}

/// The body the backend gets, when it changes: the lifted `_meta.traceparent` rewritten in
/// place to `upstream`, or (with `inject_meta`, when the context was not in `_meta`) the
/// upstream context inserted there.
#[allow(clippy::too_many_arguments)]
fn edit_body(
    host: &mut impl Host,
    own: &OwnSpan,
    spans: &GatewaySpans,
    upstream: &str,
    arrived: &ArrivedHeaders<'_>,
    changes: &[HeaderChange],
    digest: &Digest,
    mut body: Vec<u8>,
) -> Option<Vec<u8>> {
    if body_sync::sync_traceparent(&mut body, digest, upstream) {
        return Some(body);
    }
    let request = digest.request.as_ref()?;
    if !own.inject_meta || !digest.context_ranges.is_empty() {
        return None;
    }
    let meta = &request.meta;
    // A `tracestate` already there belongs to no `traceparent` the filter could insert next to
    // it: the context would not travel whole, so nothing is inserted.
    if meta.tracestate.is_some() {
        return None;
    }
    // Only a valid header baggage goes into the body (the plan's is valid already).
    let baggage = planned_baggage(changes).or(arrived
        .baggage
        .filter(|b| Baggage::parse(b).is_some_and(|parsed| !parsed.is_empty())));
    // Only keys `_meta` lacks: a present `traceparent` (unusable, since none was lifted)
    // refuses the insertion; a present `baggage` stays.
    let fields = TraceFields {
        traceparent: Some(upstream),
        tracestate: spans
            .trace_state
            .as_deref()
            .filter(|_| meta.tracestate.is_none()),
        baggage: baggage.filter(|b| !b.is_empty() && meta.baggage.is_none()),
    };
    let injected = meta_inject::inject(&body, request, &fields);
    if injected.is_some() {
        host.count(Counter::MetaInjected, 1);
    }
    injected
}

/// The context the gateway span continues (what the lift plan made the upstream context) and
/// the other one the request carried, which becomes a link when it differs.
fn contexts(
    arrived: &ArrivedHeaders<'_>,
    digest: &Digest,
    changes: &[HeaderChange],
) -> (Option<ArrivedContext>, Option<ArrivedContext>) {
    let planned = |name: &str| {
        changes.iter().find_map(|change| match change {
            HeaderChange::Set(header, value) if *header == name => Some(Some(value.as_str())),
            HeaderChange::Remove(header) if *header == name => Some(None),
            _ => None,
        })
    };
    let header = arrived
        .traceparent
        .and_then(TraceParent::parse)
        .map(|parent| ArrivedContext {
            parent,
            trace_state: arrived.tracestate.and_then(bounded_state),
        });
    let meta = digest.context_parent.map(|parent| ArrivedContext {
        parent,
        trace_state: digest
            .context
            .as_ref()
            .and_then(|message| message.meta.tracestate.as_ref())
            .and_then(|value| value.text())
            .and_then(bounded_state),
    });
    // The plan lifted `_meta` exactly when it set a `traceparent` that is the `_meta` one
    // (a kept header is only ever rewritten to its own version-00 form).
    let lifted = planned(TRACEPARENT)
        .flatten()
        .and_then(TraceParent::parse)
        .filter(|lifted| {
            meta.as_ref()
                .is_some_and(|meta| same_span(lifted, &meta.parent))
                && !header
                    .as_ref()
                    .is_some_and(|h| same_span(lifted, &h.parent))
        });
    match (lifted, meta) {
        (Some(parent), _) => {
            let trace_state = planned(TRACESTATE).flatten().map(str::to_owned);
            (
                Some(ArrivedContext {
                    parent,
                    trace_state,
                }),
                header,
            )
        }
        (None, meta) if header.is_some() => (header, meta),
        (None, meta) => (None, meta),
    }
}

fn same_span(a: &TraceParent, b: &TraceParent) -> bool {
    (a.trace_id, a.parent_id) == (b.trace_id, b.parent_id)
}

/// A valid `tracestate`, cut to what the filter forwards.
fn bounded_state(text: &str) -> Option<String> {
    TraceState::parse(text)?.to_bounded_header_value(MAX_FORWARDED_LEN)
}

/// The `baggage` the plan gives the upstream request, if it sets one.
fn planned_baggage(changes: &[HeaderChange]) -> Option<&str> {
    changes.iter().find_map(|change| match change {
        HeaderChange::Set(name, value) if *name == BAGGAGE => Some(value.as_str()),
        _ => None,
    })
}

fn touches_context(change: &HeaderChange) -> bool {
    let name = match change {
        HeaderChange::Set(name, _) | HeaderChange::Remove(name) => *name,
    };
    name == TRACEPARENT || name == TRACESTATE
}

fn fresh_ids(host: &mut impl Host) -> FreshIds {
    let mut bytes = [0u8; 32];
    host.fill_random(&mut bytes);
    let mut ids = FreshIds {
        trace_id: [0; 16],
        server_span_id: [0; 8],
        client_span_id: [0; 8],
    };
    ids.trace_id.copy_from_slice(&bytes[..16]);
    ids.server_span_id.copy_from_slice(&bytes[16..24]);
    ids.client_span_id.copy_from_slice(&bytes[24..]);
    ids
}

/// `client.*`, `server.*` and `network.protocol.version` of the SERVER span, where the host
/// exposes them.
fn server_side_attributes(
    host: &mut impl Host,
    headers: &RequestHeaders,
) -> Vec<(&'static str, Value)> {
    let mut attributes = Vec::with_capacity(6);
    if let Some(source) = host.property(&["source", "address"]) {
        let (address, port) = span::split_host_port(&source);
        attributes.push(("client.address", Value::Text(semconv::sanitized(&address))));
        if let Some(port) = port {
            attributes.push(("client.port", Value::Int(port)));
        }
    }
    if let Some(authority) = headers.authority.as_deref().filter(|a| !a.is_empty()) {
        let (address, port) = span::split_host_port(authority);
        attributes.push(("server.address", Value::Text(semconv::sanitized(&address))));
        if let Some(port) = port {
            attributes.push(("server.port", Value::Int(port)));
        }
    }
    if let Some(protocol) = host.property(&["request", "protocol"]) {
        // Envoy says `HTTP/1.1`, `HTTP/2`, `HTTP/3`.
        if let Some(version) = protocol.strip_prefix("HTTP/") {
            attributes.push((
                "network.protocol.version",
                Value::Text(semconv::sanitized(version)),
            ));
        }
    }
    attributes
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}
