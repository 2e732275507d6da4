//! The filter's counters, visible in Envoy's `/stats` as `wasmcustom.mcp_trace_filter.*`.

use super::host;
use crate::mcp::NotMcp;
use crate::plan::Outcome;

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
        }
    }

    pub fn count_outcome(&self, outcome: Outcome, invalid_values: u32) {
        let counter = match outcome {
            Outcome::Lifted => self.lifted,
            Outcome::HeaderKept => self.header_kept,
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

    pub fn count_body_synced(&self) {
        host::increment(self.body_synced, 1);
    }
}
