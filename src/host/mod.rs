//! The host seam: everything the request state machine needs from the proxy, as one trait.
//!
//! The state machine (`crate::filter`) is generic over [`Host`], so whole callback sequences run
//! natively under a test host that models each proxy's recorded semantics (`tests/hosts/`),
//! and one implementation over the raw proxy-wasm hostcalls (`hostcalls`, wasm only) serves
//! every proxy. What differs between proxies is described by [`HostKind`], chosen once at
//! configuration time.

pub mod abi;
#[cfg(target_arch = "wasm32")]
pub mod hostcalls;
#[cfg(target_arch = "wasm32")]
pub mod logger;

use crate::operation_metrics::{OperationAttributes, Side};
use crate::request_headers::RequestHeaders;
use crate::span::FinishedSpan;

/// What a callback tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Stop iteration: in request headers, wait for the body; in the body, keep buffering.
    Pause,
}

/// A hostcall that did not return `Ok`; the number is the host's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

/// The filter's counters, shown by Envoy as `wasmcustom.mcp_trace_filter.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Lifted,
    HeaderKept,
    NoContext,
    InvalidContext,
    InvalidValues,
    NotMcp,
    Oversize,
    BodySynced,
    MetaDropped,
    HeaderMismatch,
    /// Bodies the host would not hand over (ngx_wasm_module spills large ones to a file).
    Unreadable,
    /// Requests passed through untouched because the configuration was refused on a host
    /// where refusing it would kill the worker.
    Unconfigured,
    /// Own-span mode: spans the collector accepted.
    SpansExported,
    /// Own-span mode: spans dropped because the export queue was full.
    SpansDropped,
    /// Own-span mode: spans the collector refused, or that never reached it.
    SpansFailed,
    /// Own-span mode: requests whose `params._meta` got the upstream context inserted.
    MetaInjected,
    /// Responses whose server spans (SEP-2448) were removed before the client saw them.
    ServerSpansStripped,
}

impl Counter {
    pub const ALL: [Counter; 17] = [
        Counter::Lifted,
        Counter::HeaderKept,
        Counter::NoContext,
        Counter::InvalidContext,
        Counter::InvalidValues,
        Counter::NotMcp,
        Counter::Oversize,
        Counter::BodySynced,
        Counter::MetaDropped,
        Counter::HeaderMismatch,
        Counter::Unreadable,
        Counter::Unconfigured,
        Counter::SpansExported,
        Counter::SpansDropped,
        Counter::SpansFailed,
        Counter::MetaInjected,
        Counter::ServerSpansStripped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Lifted => "lifted",
            Counter::HeaderKept => "header_kept",
            Counter::NoContext => "no_context",
            Counter::InvalidContext => "invalid_context",
            Counter::InvalidValues => "invalid_values",
            Counter::NotMcp => "not_mcp",
            Counter::Oversize => "oversize",
            Counter::BodySynced => "body_synced",
            Counter::MetaDropped => "meta_dropped",
            Counter::HeaderMismatch => "header_mismatch",
            Counter::Unreadable => "unreadable",
            Counter::Unconfigured => "unconfigured",
            Counter::SpansExported => "spans_exported",
            Counter::SpansDropped => "spans_dropped",
            Counter::SpansFailed => "spans_failed",
            Counter::MetaInjected => "meta_injected",
            Counter::ServerSpansStripped => "server_spans_stripped",
        }
    }

    /// Position in [`Counter::ALL`], for tables of metric ids.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The hostcalls the request state machine makes. Every call reports failure as a value;
/// nothing here may panic.
pub trait Host {
    /// The request headers the filter reads, from one snapshot of the map.
    fn request_headers(&mut self) -> Option<RequestHeaders>;
    /// Sets (replaces) a request header.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes every value of a request header.
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// The buffered request body, up to `size` bytes.
    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError>;
    /// Replaces the whole buffered request body (`current_size` bytes) with `body`.
    fn replace_request_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError>;
    /// The first value of a response header.
    fn response_header(&mut self, name: &str) -> Option<String>;
    /// The current response body chunk, up to `size` bytes.
    fn response_body(&mut self, size: usize) -> Option<Vec<u8>>;
    /// Sets a stream property (`key` as one path segment).
    fn set_property(&mut self, key: &str, value: &str) -> Result<(), HostError>;
    /// Answers the request from the filter.
    fn send_local_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;
    /// Adds `by` to a counter; failing to count never affects the request.
    fn count(&mut self, counter: Counter, by: u64);
    /// One line in the host's log.
    fn log(&mut self, level: log::Level, message: &str);
    /// The host clock, nanoseconds since the Unix epoch.
    fn now_unix_nanos(&mut self) -> u64;
    /// Fills `bytes` from the host's random source (span and trace ids).
    fn fill_random(&mut self, bytes: &mut [u8]);
    /// A stream property such as `source.address`, as text.
    fn property(&mut self, path: &[&str]) -> Option<String>;
    /// Removes a response header (before the response headers go on).
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Replaces the whole buffered response body (`current_size` bytes) with `body`.
    fn replace_response_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError>;
    /// Hands finished spans to this worker's exporter; spans its full queue cannot take are
    /// counted as dropped.
    fn export_spans(&mut self, spans: Vec<FinishedSpan>);
    /// Queues a server's OTLP JSON body (SEP-2448) for the collector.
    fn forward_server_spans(&mut self, body: Vec<u8>);
    /// Records one MCP operation's duration (`mcp.server.operation.duration` /
    /// `mcp.client.operation.duration`) for export and, where the host has them, histograms.
    fn record_operation(&mut self, side: Side, attributes: &OperationAttributes<'_>, seconds: f64);
}

/// The proxies the filter knows, each with its own semantics (DESIGN.md, "Host facts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKind {
    /// Envoy, Istio, Envoy Gateway.
    #[default]
    Envoy,
    /// nginx with ngx_wasm_module, as embedded by Kong 3.4 to 3.10.
    NgxWasm,
    /// Higress (Envoy with its own proxy-wasm host).
    Higress,
}

impl HostKind {
    /// Whether a `Pause` from request headers is resumed by the body callbacks. On
    /// ngx_wasm_module it never is (the request hangs); there the body arrives whole in one
    /// callback and headers set from it still reach the upstream.
    pub fn resumes_header_pause(self) -> bool {
        !matches!(self, HostKind::NgxWasm)
    }

    /// Whether a refused configuration may be reported by failing `on_configure`. On
    /// ngx_wasm_module that kills the worker for good, so the filter logs and passes through.
    pub fn may_refuse_configuration(self) -> bool {
        !matches!(self, HostKind::NgxWasm)
    }

    /// Whether the filter defines its own host histograms. ngx_wasm_module traps on a metric
    /// name over its length limit, and tool names make the names long, so there the durations
    /// are only exported over OTLP.
    pub fn defines_histograms(self) -> bool {
        !matches!(self, HostKind::NgxWasm)
    }

    /// Whether a `Pause` from a response-body callback buffers the response until the next
    /// callback (Envoy, Higress), which stripping server spans needs. Not modelled for
    /// ngx_wasm_module, so there responses are only watched, never held.
    pub fn buffers_response_body(self) -> bool {
        !matches!(self, HostKind::NgxWasm)
    }

    /// Whether gauges may be incremented. ngx_wasm_module traps on an increment of a gauge (a
    /// trap in `on_configure` kills the worker), so gauges are only recorded there.
    pub fn increments_gauges(self) -> bool {
        !matches!(self, HostKind::NgxWasm)
    }

    /// The property key under which a span attribute or the span name is published, if the host
    /// has a reader for it: Envoy turns a one-segment key into filter state `wasm.<key>` for its
    /// tracer; Higress adds a span tag for keys under `trace_span_tag.`; ngx_wasm_module accepts
    /// only keys under `wasmx.`.
    pub fn span_property(self, key: &str) -> String {
        match self {
            HostKind::Envoy => key.to_owned(),
            HostKind::Higress => format!("trace_span_tag.{key}"),
            HostKind::NgxWasm => format!("wasmx.{key}"),
        }
    }
}
