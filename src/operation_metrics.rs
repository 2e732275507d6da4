//! The OpenTelemetry MCP duration histograms, `mcp.server.operation.duration` (the gateway
//! receiving an MCP request) and `mcp.client.operation.duration` (the gateway's call to the
//! backend), aggregated per worker and exported as OTLP/HTTP JSON with delta temporality; and
//! the names and values of the matching host (Envoy) histograms.
//!
//! Pure: no hostcalls, no clock. The caller measures the durations, keeps the export times and
//! sends the bodies.
//!
//! # Attributes
//!
//! Each data point carries `mcp.method.name`; `gen_ai.tool.name` (`tools/call`) or
//! `gen_ai.prompt.name` (`prompts/get`) when a target is given; `gen_ai.operation.name` =
//! `execute_tool` for `tools/call`; `error.type` when set; `rpc.response.status_code` when
//! `error.type` is a JSON-RPC error code (an integer); `network.protocol.name` = `http` and
//! `network.transport` = `tcp`. The derived and constant attributes add no series.
//! `mcp.protocol.version`, `jsonrpc.protocol.version`, `server.address`/`server.port` and the
//! opt-in `mcp.resource.uri` are not recorded: each would multiply the series for little use.
//! A target given with any other method is ignored (a resource URI is not a low-cardinality
//! target).
//!
//! # Bounds
//!
//! Everything that reaches a series key comes from the request or the backend's response, so
//! every dimension is bounded, per side and for the life of the aggregator (the host histograms
//! named after the series live as long, so the two stay in step):
//! - at most `max_targets` distinct tool/prompt names; later ones are recorded as `_OTHER`;
//! - at most `max_series` distinct (method, target, error type) series; a measurement for a
//!   further series is dropped and counted ([`OperationMetrics::dropped`]);
//! - a method, target or error type longer than [`MAX_LABEL_BYTES`] becomes `_OTHER`.
//!
//! Memory is therefore at most `max_series` series of fixed size plus their label strings;
//! [`OperationMetrics::take_otlp_json`] resets the aggregates but keeps the series keys.

use crate::otlp::push_json_string;
use crate::semconv;

/// Metric name of the gateway's SERVER side.
pub const SERVER_METRIC: &str = "mcp.server.operation.duration";
/// Metric name of the gateway's call to the backend (CLIENT side).
pub const CLIENT_METRIC: &str = "mcp.client.operation.duration";
/// UCUM unit of both histograms.
pub const UNIT: &str = "s";

/// Explicit bucket boundaries of the semantic conventions, in seconds. A value equal to a
/// boundary belongs to the bucket that boundary closes (buckets are upper-inclusive).
pub const BOUNDS_SECONDS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// The same boundaries in milliseconds, for the host histograms'
/// `stats_config.histogram_bucket_settings`.
pub const BOUNDS_MS: [u64; 14] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
];
const BUCKETS: usize = BOUNDS_SECONDS.len() + 1;

/// The value standing for a target (or an over-long label) beyond the bounds.
pub const OTHER: &str = "_OTHER";
/// Default bound on distinct (method, target, error type) series per side.
pub const DEFAULT_MAX_SERIES: usize = 64;
/// Default bound on distinct target (tool or prompt) names per side.
pub const DEFAULT_MAX_TARGETS: usize = 32;
/// Longest method, target or error type kept as is; a longer one becomes [`OTHER`].
pub const MAX_LABEL_BYTES: usize = semconv::MAX_VALUE_BYTES;
/// Longest duration accepted, in seconds (about 31 years); anything larger is rejected, which
/// also keeps every sum finite.
pub const MAX_SECONDS: f64 = 1e9;

/// OTLP `AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA`.
const TEMPORALITY_DELTA: u8 = 1;
const TOOLS_CALL: &str = "tools/call";
const PROMPTS_GET: &str = "prompts/get";

/// Which side of the gateway an operation was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The gateway receiving the request from the MCP client (`mcp.server.operation.duration`).
    Server,
    /// The gateway's call to the MCP backend (`mcp.client.operation.duration`).
    Client,
}

impl Side {
    /// The OpenTelemetry metric name of this side.
    pub fn metric_name(self) -> &'static str {
        match self {
            Side::Server => SERVER_METRIC,
            Side::Client => CLIENT_METRIC,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Side::Server => {
                "Time from the gateway receiving an MCP request or notification until its \
                 response or acknowledgement was sent."
            }
            Side::Client => {
                "Time from the gateway sending an MCP request or notification to the backend \
                 until its response or acknowledgement arrived."
            }
        }
    }

    fn host_base(self) -> &'static str {
        match self {
            Side::Server => "mcp_trace_filter.mcp_server_operation_duration_ms",
            Side::Client => "mcp_trace_filter.mcp_client_operation_duration_ms",
        }
    }
}

/// What identifies a series: the MCP method (already sanitized to the MCP method set or
/// `_OTHER`, but still escaped as untrusted), the tool or prompt name, and `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationAttributes<'a> {
    pub method: &'a str,
    /// The tool name (`tools/call`) or prompt name (`prompts/get`); ignored for other methods.
    pub target: Option<&'a str>,
    pub error_type: Option<&'a str>,
}

/// What [`OperationMetrics::record`] did with a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome<'a> {
    /// Aggregated in the series of these attributes: the given ones after the bounds (a target
    /// beyond the target bound or an over-long label replaced by `_OTHER`, a target of another
    /// method removed). Name the host histogram after these, not the originals.
    Recorded(OperationAttributes<'a>),
    /// The series bound was reached and this is a new series: not recorded, counted in
    /// [`OperationMetrics::dropped`].
    Dropped,
    /// The duration was NaN, infinite or above [`MAX_SECONDS`]: not recorded, counted in
    /// [`OperationMetrics::rejected`].
    Rejected,
}

#[derive(Debug, Clone)]
struct Histogram {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: [u64; BUCKETS],
}

impl Histogram {
    const EMPTY: Histogram = Histogram {
        count: 0,
        sum: 0.0,
        min: 0.0,
        max: 0.0,
        buckets: [0; BUCKETS],
    };

    fn add(&mut self, seconds: f64) {
        if self.count == 0 {
            self.min = seconds;
            self.max = seconds;
        } else {
            self.min = self.min.min(seconds);
            self.max = self.max.max(seconds);
        }
        self.count = self.count.saturating_add(1);
        self.sum += seconds;
        let bucket = bucket_index(seconds);
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot = slot.saturating_add(1);
        }
    }
}

/// Index of the bucket `seconds` falls in: the first boundary not below it, else the overflow
/// bucket.
fn bucket_index(seconds: f64) -> usize {
    BOUNDS_SECONDS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(BOUNDS_SECONDS.len())
}

#[derive(Debug, Clone)]
struct Series {
    method: String,
    target: Option<String>,
    error_type: Option<String>,
    histogram: Histogram,
}

impl Series {
    fn is(&self, attrs: &OperationAttributes<'_>) -> bool {
        self.method == attrs.method
            && self.target.as_deref() == attrs.target
            && self.error_type.as_deref() == attrs.error_type
    }
}

#[derive(Debug, Clone, Default)]
struct SideState {
    series: Vec<Series>,
    /// Distinct target names admitted so far (at most the target bound).
    targets: Vec<String>,
}

impl SideState {
    fn has_data(&self) -> bool {
        self.series.iter().any(|s| s.histogram.count > 0)
    }
}

/// Per-worker aggregator of the two MCP duration histograms.
#[derive(Debug, Clone)]
pub struct OperationMetrics {
    max_series: usize,
    max_targets: usize,
    server: SideState,
    client: SideState,
    dropped: u64,
    rejected: u64,
}

impl Default for OperationMetrics {
    fn default() -> Self {
        OperationMetrics::new(DEFAULT_MAX_SERIES, DEFAULT_MAX_TARGETS)
    }
}

impl OperationMetrics {
    /// An aggregator holding at most `max_series` series and `max_targets` distinct target
    /// names per side.
    pub fn new(max_series: usize, max_targets: usize) -> Self {
        OperationMetrics {
            max_series,
            max_targets,
            server: SideState::default(),
            client: SideState::default(),
            dropped: 0,
            rejected: 0,
        }
    }

    /// Records one operation of `seconds` on `side`. A negative duration (a clock step) counts
    /// as 0.
    pub fn record<'a>(
        &mut self,
        side: Side,
        attrs: &OperationAttributes<'a>,
        seconds: f64,
    ) -> RecordOutcome<'a> {
        if !seconds.is_finite() || seconds > MAX_SECONDS {
            self.rejected = self.rejected.saturating_add(1);
            return RecordOutcome::Rejected;
        }
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        let method = bounded(attrs.method);
        let error_type = attrs.error_type.map(bounded);
        let target = if method == TOOLS_CALL || method == PROMPTS_GET {
            attrs.target.map(bounded)
        } else {
            None
        };
        let state = match side {
            Side::Server => &mut self.server,
            Side::Client => &mut self.client,
        };
        // A target not seen before takes a slot only if its series is admitted.
        let (target, new_target) = match target {
            Some(name) if name != OTHER && !state.targets.iter().any(|t| t == name) => {
                if state.targets.len() < self.max_targets {
                    (Some(name), true)
                } else {
                    (Some(OTHER), false)
                }
            }
            other => (other, false),
        };
        let effective = OperationAttributes {
            method,
            target,
            error_type,
        };
        if let Some(series) = state.series.iter_mut().find(|s| s.is(&effective)) {
            series.histogram.add(seconds);
            return RecordOutcome::Recorded(effective);
        }
        if state.series.len() >= self.max_series {
            self.dropped = self.dropped.saturating_add(1);
            return RecordOutcome::Dropped;
        }
        if new_target {
            if let Some(name) = target {
                state.targets.push(name.to_owned());
            }
        }
        let mut histogram = Histogram::EMPTY;
        histogram.add(seconds);
        state.series.push(Series {
            method: method.to_owned(),
            target: target.map(str::to_owned),
            error_type: error_type.map(str::to_owned),
            histogram,
        });
        RecordOutcome::Recorded(effective)
    }

    fn side(&self, side: Side) -> &SideState {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }

    /// Measurements dropped because their series was beyond the series bound, since creation
    /// (not reset by [`take_otlp_json`](Self::take_otlp_json)).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Measurements rejected for their duration (NaN, infinite, above [`MAX_SECONDS`]), since
    /// creation.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Distinct series held on `side` (never more than the series bound).
    pub fn series_count(&self, side: Side) -> usize {
        self.side(side).series.len()
    }

    /// The OTLP/HTTP JSON `ExportMetricsServiceRequest` body of everything recorded since the
    /// last take, with delta temporality over (`start_unix_nanos`, `now_unix_nanos`], and
    /// resets the aggregates; `None` when nothing was recorded since. `resource_json` is
    /// inserted verbatim as the `resource` object; `scope_name` is escaped.
    pub fn take_otlp_json(
        &mut self,
        resource_json: &str,
        scope_name: &str,
        start_unix_nanos: u64,
        now_unix_nanos: u64,
    ) -> Option<String> {
        if !self.server.has_data() && !self.client.has_data() {
            return None;
        }
        let start = start_unix_nanos.to_string();
        let now = now_unix_nanos.to_string();
        let mut out = String::with_capacity(1024);
        out.push_str("{\"resourceMetrics\":[{\"resource\":");
        out.push_str(resource_json);
        out.push_str(",\"scopeMetrics\":[{\"scope\":{\"name\":");
        push_json_string(&mut out, scope_name);
        out.push_str("},\"metrics\":[");
        let mut first_metric = true;
        for side in [Side::Server, Side::Client] {
            let state = match side {
                Side::Server => &mut self.server,
                Side::Client => &mut self.client,
            };
            if !state.has_data() {
                continue;
            }
            if !first_metric {
                out.push(',');
            }
            first_metric = false;
            out.push_str("{\"name\":");
            push_json_string(&mut out, side.metric_name());
            out.push_str(",\"description\":");
            push_json_string(&mut out, side.description());
            out.push_str(",\"unit\":");
            push_json_string(&mut out, UNIT);
            out.push_str(",\"histogram\":{\"aggregationTemporality\":");
            out.push_str(&TEMPORALITY_DELTA.to_string());
            out.push_str(",\"dataPoints\":[");
            let mut first_point = true;
            for series in state.series.iter_mut() {
                if series.histogram.count == 0 {
                    continue;
                }
                if !first_point {
                    out.push(',');
                }
                first_point = false;
                push_data_point(&mut out, series, &start, &now);
                series.histogram = Histogram::EMPTY;
            }
            out.push_str("]}}");
        }
        out.push_str("]}]}]}");
        Some(out)
    }
}

/// `value`, or [`OTHER`] when it is longer than [`MAX_LABEL_BYTES`].
fn bounded(value: &str) -> &str {
    if value.len() > MAX_LABEL_BYTES {
        OTHER
    } else {
        value
    }
}

/// A JSON-RPC error code: an optional minus sign and decimal digits.
fn is_jsonrpc_code(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn push_data_point(out: &mut String, series: &Series, start: &str, now: &str) {
    let h = &series.histogram;
    out.push_str("{\"attributes\":[");
    push_attribute(out, semconv::METHOD_NAME, &series.method, true);
    if series.method == TOOLS_CALL {
        push_attribute(out, semconv::OPERATION_NAME, "execute_tool", false);
    }
    if let Some(target) = &series.target {
        let key = if series.method == TOOLS_CALL {
            semconv::TOOL_NAME
        } else {
            semconv::PROMPT_NAME
        };
        push_attribute(out, key, target, false);
    }
    if let Some(error_type) = &series.error_type {
        push_attribute(out, semconv::ERROR_TYPE, error_type, false);
        if is_jsonrpc_code(error_type) {
            push_attribute(out, semconv::RESPONSE_STATUS_CODE, error_type, false);
        }
    }
    push_attribute(out, "network.protocol.name", "http", false);
    push_attribute(out, semconv::NETWORK_TRANSPORT, "tcp", false);
    out.push_str("],\"startTimeUnixNano\":\"");
    out.push_str(start);
    out.push_str("\",\"timeUnixNano\":\"");
    out.push_str(now);
    out.push_str("\",\"count\":\"");
    out.push_str(&h.count.to_string());
    out.push_str("\",\"sum\":");
    push_seconds(out, h.sum);
    out.push_str(",\"min\":");
    push_seconds(out, h.min);
    out.push_str(",\"max\":");
    push_seconds(out, h.max);
    out.push_str(",\"bucketCounts\":[");
    for (i, count) in h.buckets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&count.to_string());
        out.push('"');
    }
    out.push_str("],\"explicitBounds\":");
    out.push_str(BOUNDS_JSON);
    out.push('}');
}

/// [`BOUNDS_SECONDS`] as JSON, written out so the module needs no float printer.
const BOUNDS_JSON: &str = "[0.01,0.02,0.05,0.1,0.2,0.5,1,2,5,10,30,60,120,300]";

/// A non-negative duration in seconds as a JSON number with nanosecond precision, printed
/// from integers (a float printer would add tens of KiB to the `.wasm`).
fn push_seconds(out: &mut String, seconds: f64) {
    let nanos = (seconds.max(0.0) * 1e9).round() as u64;
    let (whole, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    out.push_str(&whole.to_string());
    if fraction > 0 {
        let digits = format!("{fraction:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn push_attribute(out: &mut String, key: &str, value: &str, first: bool) {
    if !first {
        out.push(',');
    }
    out.push_str("{\"key\":");
    push_json_string(out, key);
    out.push_str(",\"value\":{\"stringValue\":");
    push_json_string(out, value);
    out.push_str("}}");
}

/// Name of the host (Envoy) histogram of a series, as given to `proxy_define_metric`
/// (type histogram). Pass the attributes of [`RecordOutcome::Recorded`], so the host
/// histograms stay within the same bounds.
///
/// `mcp_trace_filter.mcp_{server|client}_operation_duration_ms.method.<method>`, then
/// `.tool.<name>` (`tools/call`) or `.prompt.<name>` (`prompts/get`) when a target is given,
/// then `.error_type.<type>` when set. Each value is one stats-name segment: every character
/// but ASCII letters, digits, `_` and `-` becomes `_` (so `tools/call` is `tools_call`; no `.`
/// can split a segment, no `:` or NUL reaches a stats sink), and an empty value is `_EMPTY`.
/// Envoy prefixes the name with `wasmcustom.`; its `stats_tags` can turn the segments back into
/// labels (see [`HOST_STATS_TAGS`]).
pub fn host_metric_name(side: Side, attrs: &OperationAttributes<'_>) -> String {
    let mut name = String::with_capacity(96);
    name.push_str(side.host_base());
    name.push_str(".method.");
    push_segment(&mut name, attrs.method);
    if let Some(target) = attrs.target {
        if attrs.method == TOOLS_CALL {
            name.push_str(".tool.");
            push_segment(&mut name, target);
        } else if attrs.method == PROMPTS_GET {
            name.push_str(".prompt.");
            push_segment(&mut name, target);
        }
    }
    if let Some(error_type) = attrs.error_type {
        name.push_str(".error_type.");
        push_segment(&mut name, error_type);
    }
    name
}

fn push_segment(name: &mut String, value: &str) {
    if value.is_empty() {
        name.push_str("_EMPTY");
        return;
    }
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            name.push(c);
        } else {
            name.push('_');
        }
    }
}

/// `(tag_name, regex)` pairs for Envoy's `stats_config.stats_tags` that turn the segments of
/// [`host_metric_name`] into labels. The first capture group (removed from the name) spans the
/// key and value, the second is the value, as Envoy's tag extraction expects; each is anchored
/// at the full structure, so a value equal to a key (a tool called `tool`) cannot be misread.
pub const HOST_STATS_TAGS: [(&str, &str); 4] = [
    (
        "mcp_method_name",
        r"^wasmcustom\.mcp_trace_filter\.mcp_(?:server|client)_operation_duration_ms(\.method\.([^.]+))",
    ),
    (
        "gen_ai_tool_name",
        r"^wasmcustom\.mcp_trace_filter\.mcp_(?:server|client)_operation_duration_ms\.method\.[^.]+(\.tool\.([^.]+))",
    ),
    (
        "gen_ai_prompt_name",
        r"^wasmcustom\.mcp_trace_filter\.mcp_(?:server|client)_operation_duration_ms\.method\.[^.]+(\.prompt\.([^.]+))",
    ),
    (
        "error_type",
        r"^wasmcustom\.mcp_trace_filter\.mcp_(?:server|client)_operation_duration_ms\.method\.[^.]+(?:\.(?:tool|prompt)\.[^.]+)?(\.error_type\.([^.]+))",
    ),
];

/// Smallest host value of each OTLP bucket after the first, in milliseconds: the end of the
/// Envoy histogram bin (two significant digits, so a tenth of the leading power of ten wide)
/// that starts at the bucket's lower boundary.
const HOST_BUCKET_FLOOR_MS: [u64; 14] = [
    11, 21, 51, 110, 210, 510, 1_100, 2_100, 5_100, 11_000, 31_000, 61_000, 130_000, 310_000,
];

/// The value to record in the host histogram (`proxy_record_metric`) for `seconds`, in whole
/// milliseconds, chosen so that Envoy counts it in the bucket the OTLP export counts `seconds`
/// in (with the buckets of [`BOUNDS_MS`]), boundaries included.
///
/// Envoy keeps a histogram of bins with two significant digits (`[100, 110)`, `[110, 120)`, ...)
/// and counts a bin in its `le=B` bucket by one of its edges: Envoy 1.40 counts the bin when its
/// lower edge is at most `B` (so 109 lands in `le=100`), older releases when its upper edge is
/// (so 100 lands in `le=200`). The value is therefore kept clear of both edges around each
/// boundary: it is one less than the smallest whole `k` with `k / 1000 >= seconds` (so it stays
/// below the bucket's upper boundary: 9 for exactly 10 ms, 0 up to 1 ms), and at least the end
/// of the bin starting at the bucket's lower boundary (so it leaves the bucket below: 110 for
/// 100.2 ms). The cost is at most one Envoy bin width of shift in Envoy's sums and quantiles
/// (1 ms below 100 ms, a tenth of the leading power of ten above), which is Envoy's own
/// resolution there. NaN and durations up to 0 give 0.
pub fn host_histogram_value_ms(seconds: f64) -> u64 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    if seconds.is_infinite() {
        return u64::MAX;
    }
    // `seconds * 1000` is within one rounding of the exact product: one step each way at most
    // makes `k` the smallest whole number whose `k / 1000` is not below `seconds`.
    let mut k = (seconds * 1000.0).ceil();
    if k / 1000.0 < seconds {
        k += 1.0;
    }
    if k >= 1.0 && (k - 1.0) / 1000.0 >= seconds {
        k -= 1.0;
    }
    // `as` saturates for durations beyond u64 milliseconds.
    let below = (k as u64).saturating_sub(1);
    let floor = bucket_index(seconds)
        .checked_sub(1)
        .and_then(|lower| HOST_BUCKET_FLOOR_MS.get(lower))
        .copied()
        .unwrap_or(0);
    below.max(floor)
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn seconds_print_without_a_float_printer() {
        for (seconds, text) in [
            (0.0, "0"),
            (1.5, "1.5"),
            (0.000_000_001, "0.000000001"),
            (300.0, "300"),
        ] {
            let mut out = String::new();
            push_seconds(&mut out, seconds);
            assert_eq!(out, text);
        }
        let bounds: Vec<f64> = serde_json::from_str(BOUNDS_JSON).unwrap_or_default();
        assert_eq!(bounds, BOUNDS_SECONDS.to_vec());
    }
}
