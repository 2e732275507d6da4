//! Memory per request is bounded by a small constant times the body, whatever its shape.
//!
//! Wasm linear memory never shrinks, so one request that makes the filter allocate a lot keeps
//! that memory for the life of the VM (and an allocation that fails aborts it). Each case here
//! measures the peak of live heap bytes while the pure core digests a hostile request body, or
//! watches a hostile response, with a counting global allocator.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::config::Config;
use mcp_trace_filter::digest::digest;
use mcp_trace_filter::mcp::RequestId;
use mcp_trace_filter::plan::{plan, ArrivedHeaders};
use mcp_trace_filter::response::ResponseWatcher;
use mcp_trace_filter::routing_headers::RoutingHeaders;
use mcp_trace_filter::semconv::{request_span, TransportHeaders};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Heap bytes this thread holds, and their peak: per thread, so tests running in parallel
    /// do not see each other's allocations.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(by: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + by);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap bytes allocated by `work` (on this thread) above what was live when it started.
fn peak_of(work: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    work();
    usize::try_from(PEAK.with(Cell::get) - base).unwrap_or(0)
}

const MIB: usize = 1 << 20;

/// What the rule allows for a body of `len` bytes: the host's copy of the body is outside the
/// measurement, so the filter's own work may take at most three times the body, plus 64 KiB.
fn allowance(len: usize) -> usize {
    3 * len + 64 * 1024
}

/// Fills `len` bytes with `open`, `unit` repeated with `separator`, `close`.
fn repeated(open: &str, unit: &str, separator: &str, close: &str, len: usize) -> Vec<u8> {
    let mut body = open.as_bytes().to_vec();
    let mut first = true;
    while body.len() + unit.len() + separator.len() + close.len() <= len {
        if !first {
            body.extend_from_slice(separator.as_bytes());
        }
        body.extend_from_slice(unit.as_bytes());
        first = false;
    }
    body.extend_from_slice(close.as_bytes());
    body
}

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Request bodies shaped to make a JSON reader allocate.
fn hostile_requests(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut keys = String::from(
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\":{",
    );
    let mut i = 0;
    while keys.len() + 40 < len {
        if i > 0 {
            keys.push(',');
        }
        keys.push_str(&format!("\"k{i}\":{i}"));
        i += 1;
    }
    keys.push_str("}}}");
    let escapes = {
        let run = "\\\\".repeat((len - 120) / 2);
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{run}"}}}}"#)
    };
    let meta_call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"traceparent":"{TP}"}}}}}}"#
    );
    vec![
        ("batch of empty objects", repeated("[", "{}", ",", "]", len)),
        (
            "batch of minimal requests",
            repeated("[", r#"{"jsonrpc":"2.0","method":"ping"}"#, ",", "]", len),
        ),
        (
            "batch of requests with ids and names",
            repeated(
                "[",
                r#"{"id":"r","method":"tools/call","params":{"name":"n","uri":"u"}}"#,
                ",",
                "]",
                len,
            ),
        ),
        (
            "batch repeating one context",
            repeated("[", &meta_call, ",", "]", len),
        ),
        ("100 000 keys", keys.into_bytes()),
        ("deep nesting", repeated("", "[", "", "", len)),
        ("deep object nesting", repeated("", "{\"a\":", "", "", len)),
        ("long escape run in a recorded string", escapes.into_bytes()),
    ]
}

#[test]
fn digesting_a_hostile_request_stays_within_a_few_times_the_body() {
    let config = Config::default();
    for len in [MIB, 8 * MIB] {
        for (name, body) in hostile_requests(len) {
            let peak = peak_of(|| {
                if let Ok(digest) = digest(&body, &RoutingHeaders::default()) {
                    let _ = plan(&config, &ArrivedHeaders::default(), &digest);
                    if let Some(request) = &digest.request {
                        let _ = request_span(request, &TransportHeaders::default());
                    }
                }
            });
            assert!(
                peak <= allowance(body.len()),
                "{name} ({} bytes): peak {peak} bytes",
                body.len()
            );
        }
    }
}

/// Response bodies: a JSON batch and event streams whose one event is huge or split over many
/// `data:` lines.
fn hostile_responses(len: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let batch = repeated("[", "{}", ",", "]", len);
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&batch);
    event.extend_from_slice(b"\n\n");
    let lines = repeated("", "data: {}", ",\n", "\n\n", len);
    let mut many_lines = b"data: [".to_vec();
    many_lines.extend_from_slice(&lines[..lines.len() - 2]);
    many_lines.extend_from_slice(b"\ndata: ]\n\n");
    vec![
        ("JSON batch of empty objects", "application/json", batch),
        ("one SSE event", "text/event-stream", event),
        (
            "one SSE event over many data lines",
            "text/event-stream",
            many_lines,
        ),
    ]
}

#[test]
fn watching_a_hostile_response_stays_within_a_few_times_the_body() {
    for len in [MIB, 8 * MIB] {
        for (name, content_type, body) in hostile_responses(len) {
            for chunk_size in [body.len(), 16 * 1024] {
                let peak = peak_of(|| {
                    let id = Some(RequestId::Number("1".into()));
                    let Some(mut watcher) =
                        ResponseWatcher::new(Some(content_type), id, 8 * MIB + 64)
                    else {
                        panic!("no watcher for {content_type}");
                    };
                    let chunks: Vec<&[u8]> = body.chunks(chunk_size).collect();
                    for (i, chunk) in chunks.iter().enumerate() {
                        let _ = watcher.feed(chunk, i + 1 == chunks.len());
                    }
                });
                assert!(
                    peak <= allowance(body.len()),
                    "{name} ({} bytes, chunks of {chunk_size}): peak {peak} bytes",
                    body.len()
                );
            }
        }
    }
}

#[test]
fn the_measurement_sees_allocations() {
    // Guards the guard: a 1 MiB allocation must register, or every bound above passes vacuously.
    let peak = peak_of(|| {
        let held = vec![0u8; MIB];
        std::hint::black_box(&held);
    });
    assert!(peak >= MIB, "{peak}");
}
