//! The filter's counters, visible in Envoy's `/stats` as `wasmcustom.mcp_trace_filter.*`.

use super::host;
use crate::mcp::NotMcp;
use crate::plan::Outcome;
use std::cell::Cell;

thread_local! {
    /// This VM's linear memory as last added to the `wasm_memory_bytes` gauge. One per VM (not per
    /// root context), so that several plugin configurations sharing a VM add its growth once.
    static MEMORY_RECORDED: Cell<u64> = const { Cell::new(0) };
}

/// Counter ids; `None` where the host refused to define one.
#[derive(Debug, Default)]
pub struct Metrics {
    lifted: Option<u32>,
    header_kept: Option<u32>,
    no_context: Option<u32>,
    invalid_context: Option<u32>,
    invalid_values: Option<u32>,
    not_mcp: Option<u32>,
    oversize: Option<u32>,
    body_synced: Option<u32>,
    meta_dropped: Option<u32>,
    header_mismatch: Option<u32>,
    /// The summed linear memory of every VM running the filter (each adds its own growth).
    wasm_memory_bytes: Option<u32>,
}

impl Metrics {
    pub fn define() -> Metrics {
        let counter = |name: &str| host::define_counter(&format!("mcp_trace_filter.{name}"));
        Metrics {
            lifted: counter("lifted"),
            header_kept: counter("header_kept"),
            no_context: counter("no_context"),
            invalid_context: counter("invalid_context"),
            invalid_values: counter("invalid_values"),
            not_mcp: counter("not_mcp"),
            oversize: counter("oversize"),
            body_synced: counter("body_synced"),
            meta_dropped: counter("meta_dropped"),
            header_mismatch: counter("header_mismatch"),
            wasm_memory_bytes: host::define_gauge("mcp_trace_filter.wasm_memory_bytes"),
        }
    }

    pub fn count_outcome(&self, outcome: Outcome, invalid_values: u32) {
        let counter = match outcome {
            Outcome::Lifted => self.lifted,
            Outcome::HeaderKept => self.header_kept,
            Outcome::Dropped => self.meta_dropped,
            Outcome::NoContext => self.no_context,
            Outcome::InvalidContext => self.invalid_context,
        };
        host::increment(counter, 1);
        host::increment(self.invalid_values, i64::from(invalid_values));
    }

    pub fn count_not_mcp(&self, _reason: NotMcp) {
        host::increment(self.not_mcp, 1);
    }

    pub fn count_oversize(&self) {
        host::increment(self.oversize, 1);
    }

    pub fn count_header_mismatch(&self) {
        host::increment(self.header_mismatch, 1);
    }

    pub fn count_body_synced(&self) {
        host::increment(self.body_synced, 1);
    }

    /// Adds this VM's memory growth since the last call to the gauge, so a leak shows as a gauge
    /// that keeps rising under steady load.
    pub fn record_memory(&self) {
        let now = host::wasm_memory_bytes();
        let before = MEMORY_RECORDED.with(|recorded| recorded.replace(now));
        let growth = i64::try_from(now.saturating_sub(before)).unwrap_or(i64::MAX);
        host::increment(self.wasm_memory_bytes, growth);
    }
}
