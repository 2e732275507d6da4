//! Scanner throughput: `mcp::scan` against a `serde_json::Value` parse of the same bytes, and the
//! whole per-request core path (scan, plan, span metadata), on MCP `tools/call` bodies of about
//! 1 KiB, 64 KiB and 1 MiB.
//!
//! Run with `cargo bench --bench scan`; criterion reports each body's throughput in decimal
//! MB/s or GB/s (10^6 / 10^9 bytes per second), the units of the performance target.
// A bench is a test program: a body that does not scan must stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bodies;

use std::hint::black_box;

use bodies::{tools_call, SCAN_CASES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mcp_trace_filter::config::Config;
use mcp_trace_filter::digest::digest;
use mcp_trace_filter::mcp::scan;
use mcp_trace_filter::plan::{plan, ArrivedHeaders};
use mcp_trace_filter::routing_headers::RoutingHeaders;
use mcp_trace_filter::semconv::{request_span, TransportHeaders};

const KIB: usize = 1024;

fn scanner(c: &mut Criterion) {
    let config = Config::default();
    let arrived = ArrivedHeaders::default();
    let transport = TransportHeaders::default();
    for (shape, size, label) in SCAN_CASES {
        let body = tools_call(shape, size);
        let mut group = c.benchmark_group(format!("scan/{}", shape.name()));
        group.throughput(Throughput::BytesDecimal(body.len() as u64));
        if size >= 1024 * KIB {
            group.sample_size(30);
        }
        group.bench_with_input(BenchmarkId::new("mcp_scan", label), &body, |b, body| {
            b.iter(|| scan(black_box(body)))
        });
        group.bench_with_input(
            BenchmarkId::new("serde_json_value", label),
            &body,
            |b, body| b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body))),
        );
        // What the filter does per request once the body is buffered.
        group.bench_with_input(BenchmarkId::new("core_path", label), &body, |b, body| {
            b.iter(|| {
                let digest = digest(black_box(body), &RoutingHeaders::default()).ok()?;
                let planned = plan(&config, &arrived, &digest);
                let span = digest
                    .request
                    .as_ref()
                    .and_then(|request| request_span(request, &transport));
                Some((planned, span))
            })
        });
        // The floor of any pass over the bytes.
        group.bench_with_input(BenchmarkId::new("utf8_check", label), &body, |b, body| {
            b.iter(|| std::str::from_utf8(black_box(body)).is_ok())
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = scanner
}
criterion_main!(benches);
