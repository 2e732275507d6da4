//! Cost per call of the W3C parsers the filter runs on every `_meta` context: `traceparent`,
//! `tracestate` (a typical 4 members and the 32-member maximum), `baggage` parse and the
//! `merge` mode's union.
//!
//! Run with `cargo bench --bench w3c`; criterion reports the time per call.
// A bench is a test program: an input that does not parse must stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_trace_filter::trace_context::{Baggage, TraceParent, TraceState};

/// `count` distinct members, alternating the two key forms (`key` and `tenant@system`).
fn tracestate(count: usize) -> String {
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                format!("vendor{i}=opaque{i:04}value")
            } else {
                format!("t{i}@sys{i}=b7ad6b7169203331")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `count` members with percent-encoded values, every third with a property; keys start with
/// `prefix` so two baggages can overlap or not.
fn baggage(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            let property = if i % 3 == 0 { ";ttl=30" } else { "" };
            format!("{prefix}{i}=value%20{i}{property}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn traceparent(c: &mut Criterion) {
    let mut group = c.benchmark_group("traceparent");
    let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    assert!(TraceParent::parse(valid).is_some());
    group.bench_function("parse", |b| b.iter(|| TraceParent::parse(black_box(valid))));
    // A rejected value: the all-zero trace id is only known after decoding the whole id.
    let zero = "00-00000000000000000000000000000000-b7ad6b7169203331-01";
    assert!(TraceParent::parse(zero).is_none());
    group.bench_function("parse_invalid", |b| {
        b.iter(|| TraceParent::parse(black_box(zero)))
    });
    let parsed = TraceParent::parse(valid).unwrap();
    group.bench_function("to_header_value", |b| {
        b.iter(|| black_box(&parsed).to_header_value())
    });
    group.finish();
}

fn tracestate_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracestate");
    for count in [4, 32] {
        let value = tracestate(count);
        assert_eq!(TraceState::parse(&value).map(|t| t.len()), Some(count));
        group.bench_function(format!("parse_{count}_members"), |b| {
            b.iter(|| TraceState::parse(black_box(&value)))
        });
    }
    group.finish();
}

fn baggage_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("baggage");
    for count in [3, 64] {
        let value = baggage("key", count);
        assert_eq!(Baggage::parse(&value).map(|b| b.len()), Some(count));
        group.bench_function(format!("parse_{count}_members"), |b| {
            b.iter(|| Baggage::parse(black_box(&value)))
        });
    }
    // `merge` mode: `_meta` members first, then the header's that `_meta` lacks (half overlap).
    let meta = Baggage::parse(&baggage("key", 8)).unwrap();
    let header = Baggage::parse(&format!("{},{}", baggage("key", 4), baggage("hdr", 4))).unwrap();
    assert_eq!(Baggage::merge(&meta, &header).len(), 12);
    group.bench_function("merge_8_with_8", |b| {
        b.iter(|| Baggage::merge(black_box(&meta), black_box(&header)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = traceparent, tracestate_parse, baggage_ops
}
criterion_main!(benches);
