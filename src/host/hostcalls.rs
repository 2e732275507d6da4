//! Raw proxy-wasm hostcalls with every status handled.
//!
//! The SDK's wrappers panic on a status they do not expect, and a panic kills the VM for every
//! request on the worker, so the few calls the filter makes go through these instead. Statuses
//! are read as plain integers: an unknown value from a host must not become an invalid enum.

use super::abi::{parse_header_pairs, serialize_header_pairs, serialize_path};
use super::{Counter, Host, HostError};
use crate::operation_metrics::{self, OperationAttributes, OperationMetrics, RecordOutcome, Side};
use crate::request_headers::RequestHeaders;
use crate::span::FinishedSpan;
use crate::span_export::SpanQueue;
use std::cell::RefCell;
use std::ptr::null_mut;
use std::rc::Rc;

const STATUS_OK: u32 = 0;
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;
const REQUEST_BODY: u32 = 0;
const RESPONSE_BODY: u32 = 1;
const PLUGIN_CONFIGURATION: u32 = 7;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;
const HISTOGRAM: u32 = 2;

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
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        additional_headers_map_data: *const u8,
        additional_headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's random source (every proxy-wasm host provides WASI).
    fn random_get(buf: *mut u8, buf_len: usize) -> u16;
}

/// Takes ownership of memory the host allocated through the SDK's `proxy_on_memory_allocate`.
fn owned_bytes(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the host filled `data` with `size` bytes allocated by this module's allocator
    // (the SDK's `proxy_on_memory_allocate`, a `Vec<u8>` with capacity `size`).
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// The request headers the filter uses, from one snapshot of the header map; `None` when the
/// host does not return the map.
pub fn request_headers() -> Option<RequestHeaders> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers are valid for the duration of the call; see `owned_bytes`.
    let status = unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    let bytes = owned_bytes(data, size);
    if status != STATUS_OK {
        return None;
    }
    let bytes = bytes.unwrap_or_default();
    parse_header_pairs(&bytes).map(RequestHeaders::from_pairs)
}

/// The first value of a response header, if present and UTF-8.
pub fn response_header(name: &str) -> Option<String> {
    header(RESPONSE_HEADERS, name)
}

fn header(map_type: u32, name: &str) -> Option<String> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers are valid for the duration of the call; see `owned_bytes`.
    let status = unsafe {
        proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    let bytes = owned_bytes(data, size);
    if status != STATUS_OK {
        return None;
    }
    bytes.and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Sets (replaces) a request header.
pub fn set_request_header(name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers are valid for the duration of the call.
    let status = unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    check(status)
}

/// Removes every value of a request header.
pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    // SAFETY: pointers are valid for the duration of the call.
    let status =
        unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) };
    check(status)
}

/// The buffered request body, up to `max_size` bytes; the error carries the host's status
/// (ngx_wasm_module cannot read a body it spilled to a file).
pub fn request_body(max_size: usize) -> Result<Vec<u8>, HostError> {
    buffer_or_status(REQUEST_BODY, max_size)
}

/// The current response body chunk (or what is buffered), up to `max_size` bytes.
pub fn response_body(max_size: usize) -> Option<Vec<u8>> {
    buffer(RESPONSE_BODY, max_size)
}

/// Replaces the whole buffered request body. Envoy accepts only prepend, append and
/// replace-all writes, so the write always covers the entire current body.
pub fn replace_request_body(current_size: usize, body: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointers are valid for the duration of the call.
    let status =
        unsafe { proxy_set_buffer_bytes(REQUEST_BODY, 0, current_size, body.as_ptr(), body.len()) };
    check(status)
}

/// Sets a property of the stream; in Envoy a single-segment `key` becomes the filter state
/// `wasm.<key>`, readable by the tracer as `%FILTER_STATE(wasm.<key>:PLAIN)%`.
pub fn set_property(key: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers are valid for the duration of the call.
    let status =
        unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
    check(status)
}

/// The plugin configuration bytes (empty when none was given).
pub fn plugin_configuration() -> Vec<u8> {
    buffer(PLUGIN_CONFIGURATION, usize::MAX).unwrap_or_default()
}

fn buffer(buffer_type: u32, max_size: usize) -> Option<Vec<u8>> {
    buffer_or_status(buffer_type, max_size).ok()
}

fn buffer_or_status(buffer_type: u32, max_size: usize) -> Result<Vec<u8>, HostError> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers are valid for the duration of the call; see `owned_bytes`.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, 0, max_size, &mut data, &mut size) };
    let bytes = owned_bytes(data, size);
    check(status)?;
    Ok(bytes.unwrap_or_default())
}

/// A property of the host or stream (`path` segments), when it has one.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let encoded = serialize_path(path);
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers are valid for the duration of the call; see `owned_bytes`.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    let bytes = owned_bytes(data, size);
    (status == STATUS_OK).then(|| bytes.unwrap_or_default())
}

/// Defines a counter; `None` when the host has no metrics (the filter then counts nothing).
pub fn define_counter(name: &str) -> Option<u32> {
    define_metric(COUNTER, name)
}

/// Defines a gauge; `None` when the host has no metrics.
pub fn define_gauge(name: &str) -> Option<u32> {
    define_metric(GAUGE, name)
}

fn define_metric(metric_type: u32, name: &str) -> Option<u32> {
    let mut id = 0;
    // SAFETY: pointers are valid for the duration of the call.
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Adds `by` to a counter or gauge. Failing to count never affects the request.
pub fn increment(counter: Option<u32>, by: i64) {
    if let (Some(id), true) = (counter, by != 0) {
        // SAFETY: plain integers.
        let _ = unsafe { proxy_increment_metric(id, by) };
    }
}

/// Sets a gauge to `value`.
pub fn record(gauge: Option<u32>, value: u64) {
    if let Some(id) = gauge {
        // SAFETY: plain integers.
        let _ = unsafe { proxy_record_metric(id, value) };
    }
}

/// The host clock in nanoseconds since the Unix epoch; 0 when the host has none.
pub fn now_unix_nanos() -> u64 {
    let mut now = 0;
    // SAFETY: the pointer is valid for the duration of the call.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut now) };
    if status == STATUS_OK {
        now
    } else {
        0
    }
}

/// Fills `bytes` from the host's random source; if the host refuses, the bytes are mixed from
/// the clock instead (ids stay unique enough, never all zero).
pub fn fill_random(bytes: &mut [u8]) {
    // SAFETY: the pointer and length describe `bytes`.
    let status = unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) };
    if status != 0 {
        let mut state = now_unix_nanos() | 1;
        for byte in bytes.iter_mut() {
            // xorshift64: no quality claims, only a fallback that never repeats quickly.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
    }
}

/// The first value of a header of the answer to an HTTP callout (`:status` among them).
pub fn http_call_response_header(name: &str) -> Option<String> {
    header(HTTP_CALL_RESPONSE_HEADERS, name)
}

/// Replaces the whole buffered response body.
pub fn replace_response_body(current_size: usize, body: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointers are valid for the duration of the call.
    let status = unsafe {
        proxy_set_buffer_bytes(RESPONSE_BODY, 0, current_size, body.as_ptr(), body.len())
    };
    check(status)
}

/// Asks for `on_tick` every `period_ms`; a host without timers simply never ticks.
pub fn set_tick_period(period_ms: u32) -> Result<(), HostError> {
    // SAFETY: a plain integer.
    check(unsafe { proxy_set_tick_period_milliseconds(period_ms) })
}

/// The size of this VM's linear memory: it only ever grows, so it is the VM's high-water mark.
pub fn wasm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65_536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// Writes one line to the host's log; a host that refuses it is ignored (the SDK's logger
/// panics instead, which would take the VM down).
pub fn log(level: log::Level, message: &str) {
    // proxy-wasm levels: trace 0, debug 1, info 2, warn 3, error 4.
    let level = match level {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn => 3,
        log::Level::Error => 4,
    };
    // SAFETY: pointers are valid for the duration of the call.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Answers the request from the filter with `status`, `headers` and `body`; the upstream never
/// sees it.
pub fn send_local_response(
    status: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), HostError> {
    let map = serialize_header_pairs(headers);
    // SAFETY: pointers are valid for the duration of the call.
    let status = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    };
    check(status)
}

fn check(status: u32) -> Result<(), HostError> {
    if status == STATUS_OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// The counter ids the host gave, by [`Counter::index`]; `None` where it refused one.
#[derive(Debug, Default)]
pub struct CounterIds([Option<u32>; Counter::ALL.len()]);

impl CounterIds {
    /// Defines every counter as `mcp_trace_filter.<name>`.
    pub fn define() -> CounterIds {
        CounterIds(Counter::ALL.map(|c| define_counter(&format!("mcp_trace_filter.{}", c.name()))))
    }

    pub fn id(&self, counter: Counter) -> Option<u32> {
        self.0.get(counter.index()).copied().flatten()
    }
}

/// What the own-span mode keeps per worker: the span queue, the duration aggregates, and the
/// host histograms defined for them.
pub struct Telemetry {
    pub queue: SpanQueue,
    pub metrics: OperationMetrics,
    /// Whether to mirror durations into host histograms.
    host_histograms: bool,
    /// Host histogram ids by name; `None` where the host refused the name. At most one per
    /// series the aggregator admits.
    histogram_ids: Vec<(String, Option<u32>)>,
}

impl Telemetry {
    pub fn new(queue: SpanQueue, host_histograms: bool) -> Telemetry {
        Telemetry {
            queue,
            metrics: OperationMetrics::default(),
            host_histograms,
            histogram_ids: Vec::new(),
        }
    }

    fn record(&mut self, side: Side, attributes: &OperationAttributes<'_>, seconds: f64) {
        let RecordOutcome::Recorded(effective) = self.metrics.record(side, attributes, seconds)
        else {
            return;
        };
        if !self.host_histograms {
            return;
        }
        let name = operation_metrics::host_metric_name(side, &effective);
        let id = match self.histogram_ids.iter().find(|(known, _)| *known == name) {
            Some((_, id)) => *id,
            None => {
                let id = define_metric(HISTOGRAM, &name);
                self.histogram_ids.push((name, id));
                id
            }
        };
        record(id, operation_metrics::host_histogram_value_ms(seconds));
    }
}

/// The [`Host`] of a request, over the raw hostcalls.
pub struct ProxyWasmHost {
    counters: Rc<CounterIds>,
    /// This worker's telemetry (own-span mode).
    telemetry: Option<Rc<RefCell<Telemetry>>>,
}

impl ProxyWasmHost {
    pub fn new(
        counters: Rc<CounterIds>,
        telemetry: Option<Rc<RefCell<Telemetry>>>,
    ) -> ProxyWasmHost {
        ProxyWasmHost {
            counters,
            telemetry,
        }
    }
}

impl Host for ProxyWasmHost {
    fn request_headers(&mut self) -> Option<RequestHeaders> {
        request_headers()
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        set_request_header(name, value)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        remove_request_header(name)
    }

    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        request_body(size)
    }

    fn replace_request_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError> {
        replace_request_body(current_size, body)
    }

    fn response_header(&mut self, name: &str) -> Option<String> {
        response_header(name)
    }

    fn response_body(&mut self, size: usize) -> Option<Vec<u8>> {
        response_body(size)
    }

    fn set_property(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        set_property(key, value)
    }

    fn send_local_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        send_local_response(status, details, headers, body)
    }

    fn count(&mut self, counter: Counter, by: u64) {
        increment(
            self.counters.id(counter),
            i64::try_from(by).unwrap_or(i64::MAX),
        );
    }

    fn log(&mut self, level: log::Level, message: &str) {
        log(level, message);
    }

    fn now_unix_nanos(&mut self) -> u64 {
        now_unix_nanos()
    }

    fn fill_random(&mut self, bytes: &mut [u8]) {
        fill_random(bytes);
    }

    fn property(&mut self, path: &[&str]) -> Option<String> {
        property(path).and_then(|bytes| String::from_utf8(bytes).ok())
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        // SAFETY: pointers are valid for the duration of the call.
        check(unsafe { proxy_remove_header_map_value(RESPONSE_HEADERS, name.as_ptr(), name.len()) })
    }

    fn replace_response_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError> {
        replace_response_body(current_size, body)
    }

    fn export_spans(&mut self, spans: Vec<FinishedSpan>) {
        let offered = spans.len() as u64;
        let dropped = match &self.telemetry {
            Some(telemetry) => telemetry
                .try_borrow_mut()
                .map_or(offered, |mut telemetry| telemetry.queue.push(spans)),
            None => offered,
        };
        self.count(Counter::SpansDropped, dropped);
    }

    fn forward_server_spans(&mut self, body: Vec<u8>) {
        let queued = self.telemetry.as_ref().is_some_and(|telemetry| {
            telemetry
                .try_borrow_mut()
                .is_ok_and(|mut telemetry| telemetry.queue.push_forwarded(body))
        });
        if !queued {
            self.count(Counter::SpansDropped, 1);
        }
    }

    fn record_operation(&mut self, side: Side, attributes: &OperationAttributes<'_>, seconds: f64) {
        if let Some(telemetry) = &self.telemetry {
            if let Ok(mut telemetry) = telemetry.try_borrow_mut() {
                telemetry.record(side, attributes, seconds);
            }
        }
    }
}
