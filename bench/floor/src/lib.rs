//! The benchmark's `floor` variant: the least work any proxy-wasm filter that reads the whole
//! request body has to do, so `bench/bench.py` can show how much of the filter's cost is the
//! platform's (V8, the proxy-wasm round trips, the body copy) and how much is its own.
//!
//! With the plugin configuration `lift` it is the `floor_lift` variant instead: the same, plus the
//! host work a lift cannot avoid, and nothing of a lift's own work: the whole header map in one
//! call (`proxy_get_header_map_pairs`) instead of one header, three header writes (`traceparent`,
//! `tracestate`, `baggage`) and one counter increment. The gap between the two is the price
//! of those host calls; the gap between `floor_lift` and the filter is the filter's own work.
//!
//! With `export` it is the `floor_export` variant: `floor_lift` plus the host work the own-span
//! mode cannot avoid, and none of its own work (no parsing, no span logic, no encoding): the
//! clock at the start, upstream call and end, 32 random bytes for ids, the `source.address`,
//! `request.protocol` and `upstream.address` properties, the body written back whole (Envoy
//! takes no write into the middle of a body, and the backend's `_meta.traceparent` changes),
//! a second counter, the response's `:status` and `content-type`, each response chunk read,
//! two histogram records, and on a 100 ms tick an OTLP/HTTP POST of every queued span, each a
//! span-sized constant, to the `collector` cluster (plus one metrics POST a second). The gap
//! between `floor_export` and `floor` is what any filter that is its own tracer pays the host.
//!
//! Per request: one header read (`:method`) when headers arrive with a body to follow, `Pause`
//! until the body is complete, one copy of the whole body into the VM (`proxy_get_buffer_bytes`),
//! one header write (`traceparent`, a constant the benchmark's upstream echo check expects), then
//! `Continue`. Like the filter under test it pauses in `on_http_request_headers`, so Envoy must be
//! configured with `allow_on_headers_stop_iteration: true`.
//!
//! The hostcalls are declared here rather than taken from the SDK's getters and setters because
//! those panic on an unexpected host status; every status is handled (and ignored where nothing
//! can be done) so no request can make this filter trap. The one SDK call, `dispatch_http_call`,
//! returns the status instead.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// What the upstream must receive in `traceparent` from this filter (`FLOOR_TRACEPARENT` in
/// bench/bench.py): different from both the client's header and the body's `_meta` value, so the
/// echo proves the header write happened.
const TRACEPARENT: &[u8] = b"00-0f100f100f100f100f100f100f100f10-0f100f100f100f10-01";

// proxy-wasm ABI 0.2.1 numbering (the SDK's `MapType`, `BufferType` and `Status`).
const REQUEST_HEADERS: u32 = 0;
const REQUEST_BODY: u32 = 0;
const STATUS_OK: u32 = 0;
const PLUGIN_CONFIGURATION: u32 = 7;
const COUNTER: u32 = 0;
const HISTOGRAM: u32 = 2;
const RESPONSE_HEADERS: u32 = 2;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const RESPONSE_BODY: u32 = 1;

/// The values the `lift` mode writes: those of the benchmark body's `_meta` (bench/rig.py).
const TRACESTATE: &[u8] = b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
const BAGGAGE: &[u8] = b"userId=alice,serverNode=DF%2028,isProduction=false";

/// One span of the size the filter exports (a SERVER span with its MCP attributes), as OTLP
/// JSON; the `export` mode sends one per span it counts.
const SPAN_JSON: &str = concat!(
    r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","#,
    r#""parentSpanId":"00f067aa0ba902b7","traceState":"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE","#,
    r#""name":"tools/call summarise_document","kind":2,"startTimeUnixNano":"1764680000123456789","#,
    r#""endTimeUnixNano":"1764680000133456789","attributes":["#,
    r#"{"key":"mcp.method.name","value":{"stringValue":"tools/call"}},"#,
    r#"{"key":"gen_ai.tool.name","value":{"stringValue":"summarise_document"}},"#,
    r#"{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},"#,
    r#"{"key":"jsonrpc.request.id","value":{"stringValue":"7"}},"#,
    r#"{"key":"network.transport","value":{"stringValue":"tcp"}},"#,
    r#"{"key":"client.address","value":{"stringValue":"127.0.0.1"}},"#,
    r#"{"key":"client.port","value":{"intValue":"53422"}},"#,
    r#"{"key":"server.address","value":{"stringValue":"127.0.0.1"}},"#,
    r#"{"key":"network.protocol.version","value":{"stringValue":"1.1"}}]}"#
);

/// A histogram series export of the size of the filter's (two series of fifteen buckets).
const METRICS_JSON: &str = concat!(
    r#"{"resourceMetrics":[{"resource":{"attributes":[]},"scopeMetrics":[{"scope":{"name":"floor"},"#,
    r#""metrics":[{"name":"mcp.server.operation.duration","unit":"s","histogram":{"#,
    r#""aggregationTemporality":1,"dataPoints":[{"startTimeUnixNano":"1","timeUnixNano":"2","#,
    r#""count":"1","sum":0.001,"bucketCounts":["1","0","0","0","0","0","0","0","0","0","0","0","0","0","0"],"#,
    r#""explicitBounds":[0.01,0.02,0.05,0.1,0.2,0.5,1,2,5,10,30,60,120,300]}]}}]}]}]}"#
);

/// Most spans per POST, as the filter's default `export.batch_size`.
const BATCH_SIZE: usize = 512;

/// Spans waiting for the next export, shared by the root and its requests.
type Queue = Rc<Cell<usize>>;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, buf_len: usize) -> u16;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
}

/// Bytes the host wrote into this VM's memory through the SDK's `proxy_on_memory_allocate`
/// (which hands out a boxed slice of exactly the requested length); freed on drop.
struct HostBytes {
    data: *mut u8,
    size: usize,
}

impl HostBytes {
    /// Wraps what a getter hostcall returned: `None` unless it succeeded with a buffer.
    fn from_call(status: u32, data: *mut u8, size: usize) -> Option<Self> {
        if data.is_null() {
            return None;
        }
        let bytes = HostBytes { data, size };
        // Any buffer the host did hand over is freed, whatever the status said.
        (status == STATUS_OK).then_some(bytes)
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `data` came from the host, which allocated `size` bytes with
        // `proxy_on_memory_allocate` and filled them before returning.
        unsafe { std::slice::from_raw_parts(self.data, self.size) }
    }
}

impl Drop for HostBytes {
    fn drop(&mut self) {
        // SAFETY: the inverse of `proxy_on_memory_allocate`: a `Box<[u8]>` of length `size`,
        // owned by us alone since the hostcall returned it.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.data, self.size)) });
    }
}

fn request_header(name: &str) -> Option<HostBytes> {
    header(REQUEST_HEADERS, name)
}

fn header(map_type: u32, name: &str) -> Option<HostBytes> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: plain ABI call; the key is borrowed for the call, the out-pointers are ours.
    let status = unsafe {
        proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    HostBytes::from_call(status, data, size)
}

fn buffer(buffer_type: u32, size: usize) -> Option<HostBytes> {
    let mut data = std::ptr::null_mut();
    let mut returned = 0;
    // SAFETY: as above.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, 0, size, &mut data, &mut returned) };
    HostBytes::from_call(status, data, returned)
}

fn request_header_map() -> Option<HostBytes> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: as above.
    let status = unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    HostBytes::from_call(status, data, size)
}

fn set_request_header(name: &str, value: &[u8]) {
    // SAFETY: as above; both slices are only read by the host during the call. A failure leaves
    // the request as it was, which the benchmark's upstream echo check would catch.
    let _status = unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
}

/// The `lift` mode's counter, when that mode is configured.
#[derive(Clone, Copy)]
struct LiftWork {
    counter: u32,
}

/// What the `export` mode needs per request: its second counter, the two histograms, the queue.
#[derive(Clone)]
struct ExportWork {
    synced: u32,
    histograms: [u32; 2],
    queue: Queue,
}

/// The clock, as the filter reads it (the value is not used).
fn now() {
    let mut nanos = 0;
    // SAFETY: plain ABI call; the out-pointer is ours.
    let _status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
}

/// A property read (the value is dropped); `path` is NUL-separated, as the ABI takes it.
fn property(path: &[u8]) {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: plain ABI call; the path is borrowed for the call, the out-pointers are ours.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    drop(HostBytes::from_call(status, data, size));
}

fn increment(counter: u32) {
    // SAFETY: plain integers.
    let _status = unsafe { proxy_increment_metric(counter, 1) };
}

/// One request: whether its body is being held, and how much of it Envoy has buffered so far.
struct Floor {
    lift: Option<LiftWork>,
    export: Option<ExportWork>,
    holding: bool,
    buffered: usize,
}

impl Floor {
    /// The body is complete: read all of it once, write the header, let the request go.
    fn finish(&mut self) -> Action {
        self.holding = false;
        // The copy into the VM is what every body-reading filter pays; this one then drops it.
        let body = buffer(REQUEST_BODY, self.buffered);
        if let Some(export) = &self.export {
            let mut ids = [0u8; 32];
            // SAFETY: the buffer is ours and as long as the call is told.
            let _errno = unsafe { random_get(ids.as_mut_ptr(), ids.len()) };
            property(b"source\0address");
            property(b"request\0protocol");
            now();
            if let Some(body) = &body {
                let bytes = body.as_slice();
                // SAFETY: plain ABI call; the bytes are borrowed for the call. A refusal (no
                // body buffer) leaves the body as it was.
                let _status = unsafe {
                    proxy_set_buffer_bytes(
                        REQUEST_BODY,
                        0,
                        bytes.len(),
                        bytes.as_ptr(),
                        bytes.len(),
                    )
                };
            }
            increment(export.synced);
        }
        drop(body);
        set_request_header("traceparent", TRACEPARENT);
        if let Some(lift) = self.lift {
            set_request_header("tracestate", TRACESTATE);
            set_request_header("baggage", BAGGAGE);
            // SAFETY: plain ABI call on a metric this module defined.
            let _status = unsafe { proxy_increment_metric(lift.counter, 1) };
        }
        Action::Continue
    }
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.export.is_some() {
            now();
        }
        if end_of_stream {
            return Action::Continue;
        }
        let is_post = match self.lift {
            // The whole map, as a filter that reads a dozen headers takes it; the request's
            // method is the map's first pair, `:method` then `POST`.
            Some(_) => request_header_map()
                .is_some_and(|map| map.as_slice().windows(5).any(|w| w == b"POST\0")),
            None => request_header(":method").is_some_and(|m| m.as_slice() == b"POST"),
        };
        if !is_post {
            return Action::Continue;
        }
        self.holding = true;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.holding {
            return Action::Continue;
        }
        // Envoy reports the size of everything buffered so far, not of this chunk.
        self.buffered = body_size;
        if end_of_stream {
            self.finish()
        } else {
            Action::Pause
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.holding {
            self.finish()
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.export.is_some() {
            drop(header(RESPONSE_HEADERS, ":status"));
            drop(header(RESPONSE_HEADERS, "content-type"));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(export) = &self.export else {
            return Action::Continue;
        };
        if body_size > 0 {
            drop(buffer(RESPONSE_BODY, body_size));
        }
        if end_of_stream {
            now();
            property(b"upstream\0address");
            for histogram in export.histograms {
                // SAFETY: plain integers.
                let _status = unsafe { proxy_record_metric(histogram, 1) };
            }
            // A SERVER and a CLIENT span.
            export.queue.set(export.queue.get() + 2);
        }
        Action::Continue
    }
}

/// Reads the plugin configuration once: `lift` or `export` selects that mode.
struct Root {
    lift: Option<LiftWork>,
    export: Option<ExportWork>,
    ticks: u32,
}

impl Root {
    /// POSTs the queued spans (or, once a second, a metrics body) to the collector.
    fn flush(&mut self) {
        let Some(export) = &self.export else {
            return;
        };
        self.ticks += 1;
        let mut waiting = export.queue.replace(0);
        // In batches of the filter's default `batch_size`.
        while waiting > 0 {
            let spans = waiting.min(BATCH_SIZE);
            waiting -= spans;
            let mut body = String::with_capacity(128 + spans * (SPAN_JSON.len() + 1));
            body.push_str(r#"{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"floor"},"spans":["#);
            for index in 0..spans {
                if index > 0 {
                    body.push(',');
                }
                body.push_str(SPAN_JSON);
            }
            body.push_str("]}]}]}");
            post("/v1/traces", body.as_bytes());
        }
        if self.ticks % 10 == 0 {
            post("/v1/metrics", METRICS_JSON.as_bytes());
        }
    }
}

fn post(path: &str, body: &[u8]) {
    let headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "collector"),
        ("content-type", "application/json"),
    ];
    // Not sent: counted by the filter as failed; nothing to count here.
    let _ = hostcalls::dispatch_http_call(
        "collector",
        headers,
        Some(body),
        vec![],
        Duration::from_secs(2),
    );
}

/// The `export` mode's metrics and queue; `None` when the host refused a metric.
fn export_work() -> Option<ExportWork> {
    Some(ExportWork {
        synced: define(COUNTER, "floor_export_synced")?,
        histograms: [
            define(HISTOGRAM, "floor_export_server_ms")?,
            define(HISTOGRAM, "floor_export_client_ms")?,
        ],
        queue: Rc::new(Cell::new(0)),
    })
}

fn define(metric_type: u32, name: &str) -> Option<u32> {
    let mut id = 0;
    // SAFETY: plain ABI call; the name is borrowed for the call, the out-pointer is ours.
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        // The filter reads the answer's status to count the spans exported or failed.
        drop(header(HTTP_CALL_RESPONSE_HEADERS, ":status"));
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let mode = buffer(PLUGIN_CONFIGURATION, size);
        let mode = mode.as_ref().map(HostBytes::as_slice).unwrap_or_default();
        if mode == b"lift" || mode == b"export" {
            let name = "floor_lift_requests";
            let mut counter = 0;
            // SAFETY: plain ABI call; the name is borrowed for the call, the out-pointer is ours.
            let status =
                unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut counter) };
            self.lift = (status == STATUS_OK).then_some(LiftWork { counter });
        }
        if mode == b"export" {
            self.export = export_work();
            // SAFETY: a plain integer.
            let _status = unsafe { proxy_set_tick_period_milliseconds(100) };
        }
        true
    }

    fn on_tick(&mut self) {
        self.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor {
            lift: self.lift,
            export: self.export.clone(),
            holding: false,
            buffered: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { lift: None, export: None, ticks: 0 })
    });
}}
