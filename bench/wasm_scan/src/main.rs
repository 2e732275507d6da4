//! Times `mcp::scan` and a `serde_json::Value` parse on the criterion benchmark's bodies, built
//! for wasm32-wasip1 and run in V8 (the runtime Envoy uses), so the native figures in
//! `bench/micro.md` can be compared with what the filter actually gets inside a proxy.
// A measuring program: a body that does not scan must stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../micro/bodies/mod.rs"]
mod bodies;

use bodies::{tools_call, SCAN_CASES};
use mcp_trace_filter::mcp::scan;
use std::hint::black_box;
use std::time::Instant;

/// Bytes to push through each measurement: long enough for V8's optimising tier to take over.
const VOLUME: usize = 512 * 1024 * 1024;

/// Median MB/s (decimal) of five timed runs of `work` over `body`.
fn throughput(body: &[u8], work: impl Fn(&[u8]) -> bool) -> f64 {
    let iterations = (VOLUME / body.len()).max(8) / 5;
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                assert!(black_box(work(black_box(body))));
            }
            (body.len() * iterations) as f64 / started.elapsed().as_secs_f64() / 1e6
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[2]
}

fn main() {
    println!("| body | bytes | mcp_scan MB/s | µs per body | serde_json::Value MB/s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (shape, size, size_label) in SCAN_CASES {
        let label = format!("{} {size_label}", shape.name());
        let body = tools_call(shape, size);
        let scanned = throughput(&body, |b| scan(b).is_ok());
        let value = throughput(&body, |b| {
            serde_json::from_slice::<serde_json::Value>(b).is_ok()
        });
        let micros = body.len() as f64 / scanned;
        println!(
            "| {label} | {} | {scanned:.0} | {micros:.1} | {value:.0} |",
            body.len()
        );
    }
}
