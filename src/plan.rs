//! Decides which trace headers the upstream request gets, from the configuration, the trace
//! headers that arrived and the scanned body. Pure: the filter only applies the result.
//!
//! Rules: a context travels whole (a `tracestate` only ever goes with its own `traceparent`),
//! and an invalid `_meta` value never removes a valid header value.

use crate::config::{BaggageMode, Config, Precedence};
use crate::digest::Digest;
use crate::mcp::{Message, MetaValue};
use crate::trace_context::tracestate::MAX_FORWARDED_LEN;
use crate::trace_context::{Baggage, TraceParent, TraceState};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const BAGGAGE: &str = "baggage";

/// The trace headers of the arriving request (first value of each, as the host returns it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArrivedHeaders<'a> {
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
    pub baggage: Option<&'a str>,
}

/// One change to the upstream request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderChange {
    Set(&'static str, String),
    Remove(&'static str),
}

/// How a scanned MCP request was handled; each outcome has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one `_meta` value was lifted into the headers.
    Lifted,
    /// `_meta` carried a valid context but the configuration kept the header's.
    HeaderKept,
    /// `_meta` carried only valid baggage, which `baggage: drop` discards.
    Dropped,
    /// `_meta` carried trace values, none usable.
    InvalidContext,
    /// No `_meta` trace values at all.
    NoContext,
}

/// The header changes to apply and how to count the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<HeaderChange>,
    pub outcome: Outcome,
    /// How many `_meta` trace values were present but invalid (dropped, never forwarded).
    pub invalid_values: u32,
}

/// The `_meta` values of the message that provides the context, validated.
#[derive(Default)]
struct MetaContext {
    traceparent: Option<TraceParent>,
    tracestate: Option<TraceState>,
    baggage: Option<Baggage>,
    present: bool,
    invalid_values: u32,
}

/// Plans the header changes for one request.
pub fn plan(config: &Config, arrived: &ArrivedHeaders<'_>, body: &Digest) -> Plan {
    let meta = body
        .context
        .as_ref()
        .map(|message| validate_meta(message, body.context_parent))
        .unwrap_or_default();

    let mut changes = Vec::new();
    let mut header_kept = false;
    // The header's own `traceparent` rewritten to version 00: a change that lifts nothing.
    let mut header_rewritten = false;
    let mut dropped = false;
    if let Some(traceparent) = &meta.traceparent {
        // Parsed only when the header could win.
        let header_parent = match config.precedence {
            Precedence::Header => arrived.traceparent.and_then(TraceParent::parse),
            Precedence::Meta => None,
        };
        match (header_parent, arrived.traceparent) {
            (Some(parent), Some(text)) => {
                header_kept = true;
                // A later version's header stays the header's context, in the version-00 form
                // tracers read (Envoy's drops anything longer and starts a new trace).
                let version_00 = parent.to_header_value();
                if version_00 != text {
                    changes.push(HeaderChange::Set(TRACEPARENT, version_00));
                    header_rewritten = true;
                }
            }
            _ => lift_context(traceparent, meta.tracestate.as_ref(), arrived, &mut changes),
        }
    }
    if let Some(baggage) = &meta.baggage {
        match baggage_change(config.baggage, baggage, arrived.baggage) {
            BaggageDecision::Set(value) => changes.push(HeaderChange::Set(BAGGAGE, value)),
            BaggageDecision::HeaderKept => header_kept = true,
            BaggageDecision::Dropped => dropped = true,
        }
    }

    let lifted = changes.len() > usize::from(header_rewritten);
    let outcome = if lifted {
        Outcome::Lifted
    } else if header_kept {
        Outcome::HeaderKept
    } else if dropped {
        Outcome::Dropped
    } else if meta.present {
        Outcome::InvalidContext
    } else {
        Outcome::NoContext
    };
    Plan {
        changes,
        outcome,
        invalid_values: meta.invalid_values,
    }
}

/// A `_meta` value after validation.
enum Checked<T> {
    Absent,
    Valid(T),
    Invalid,
}

impl<T> Checked<T> {
    fn new<'a>(value: &'a Option<MetaValue>, parse: impl Fn(&'a str) -> Option<T>) -> Self {
        match value {
            None => Checked::Absent,
            Some(value) => match value.text().and_then(parse) {
                Some(parsed) => Checked::Valid(parsed),
                None => Checked::Invalid,
            },
        }
    }

    fn is_invalid(&self) -> bool {
        matches!(self, Checked::Invalid)
    }

    fn valid(self) -> Option<T> {
        match self {
            Checked::Valid(parsed) => Some(parsed),
            Checked::Absent | Checked::Invalid => None,
        }
    }
}

/// Validates each `_meta` trace value of `message`, counting the ones that are dropped. The
/// `traceparent` was already parsed by the digest (`parent`).
fn validate_meta(message: &Message, parent: Option<TraceParent>) -> MetaContext {
    let meta = &message.meta;
    let traceparent_invalid = meta.traceparent.is_some() && parent.is_none();
    let tracestate = Checked::new(&meta.tracestate, TraceState::parse);
    let baggage = Checked::new(&meta.baggage, Baggage::parse);
    let invalid_values = [
        meta.not_an_object,
        traceparent_invalid,
        tracestate.is_invalid(),
        baggage.is_invalid(),
    ]
    .into_iter()
    .map(u32::from)
    .sum();
    MetaContext {
        traceparent: parent,
        tracestate: tracestate.valid(),
        baggage: baggage.valid().filter(|baggage| !baggage.is_empty()),
        present: meta.has_trace_fields(),
        invalid_values,
    }
}

/// Lifts a `_meta` context: its `traceparent` in the version-00 form (which every tracer reads;
/// a later version's extra fields are dropped, as W3C tells a version-00 participant to do) and
/// its own `tracestate`, cut to [`MAX_FORWARDED_LEN`], or none.
fn lift_context(
    traceparent: &TraceParent,
    tracestate: Option<&TraceState>,
    arrived: &ArrivedHeaders<'_>,
    changes: &mut Vec<HeaderChange>,
) {
    changes.push(HeaderChange::Set(
        TRACEPARENT,
        traceparent.to_header_value(),
    ));
    match tracestate.and_then(|state| state.to_bounded_header_value(MAX_FORWARDED_LEN)) {
        Some(state) => changes.push(HeaderChange::Set(TRACESTATE, state)),
        None if arrived.tracestate.is_some() => changes.push(HeaderChange::Remove(TRACESTATE)),
        None => {}
    }
}

/// What becomes of a valid `_meta` baggage.
enum BaggageDecision {
    Set(String),
    /// A valid header baggage stays, by configuration.
    HeaderKept,
    /// `baggage: drop`.
    Dropped,
}

/// The baggage decision for a valid `_meta` baggage. A header value only counts when it is
/// valid, as for `traceparent`: `baggage: header` keeps a valid header and lets `_meta` replace
/// an invalid one.
fn baggage_change(mode: BaggageMode, meta: &Baggage, arrived: Option<&str>) -> BaggageDecision {
    let value = match mode {
        BaggageMode::Drop => return BaggageDecision::Dropped,
        BaggageMode::Meta => meta.to_header_value(),
        // An empty header has no member, which the W3C grammar requires: it does not count.
        BaggageMode::Header => match arrived.and_then(Baggage::parse).filter(|b| !b.is_empty()) {
            Some(_) => return BaggageDecision::HeaderKept,
            None => meta.to_header_value(),
        },
        BaggageMode::Merge => match arrived.and_then(Baggage::parse) {
            Some(header) => Baggage::merge(meta, &header).to_header_value(),
            None => meta.to_header_value(),
        },
    };
    BaggageDecision::Set(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;
    use crate::routing_headers::RoutingHeaders;

    const META_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    const HEADER_TP: &str = "00-11111111111111111111111111111111-2222222222222222-01";

    fn plan_for(precedence: Precedence, header: &str, meta_baggage: Option<&str>) -> Plan {
        let baggage = meta_baggage
            .map(|b| format!(r#","baggage":"{b}""#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"id":1,"method":"ping","params":{{"_meta":{{"traceparent":"{META_TP}"{baggage}}}}}}}"#
        );
        let digest = digest(body.as_bytes(), &RoutingHeaders::default()).unwrap_or_default();
        let config = Config {
            precedence,
            ..Config::default()
        };
        let arrived = ArrivedHeaders {
            traceparent: Some(header),
            ..ArrivedHeaders::default()
        };
        plan(&config, &arrived, &digest)
    }

    #[test]
    fn an_empty_header_baggage_does_not_count_as_the_header_value() {
        let body = r#"{"id":1,"method":"ping","params":{"_meta":{"baggage":"k=v"}}}"#;
        let digest = digest(body.as_bytes(), &RoutingHeaders::default()).unwrap_or_default();
        let config = Config {
            baggage: BaggageMode::Header,
            ..Config::default()
        };
        for (header, expected) in [("", Some("k=v")), (" , ", Some("k=v")), ("a=1", None)] {
            let arrived = ArrivedHeaders {
                baggage: Some(header),
                ..ArrivedHeaders::default()
            };
            let changes = plan(&config, &arrived, &digest).changes;
            let expected: Vec<HeaderChange> = expected
                .map(|v| HeaderChange::Set(BAGGAGE, v.to_owned()))
                .into_iter()
                .collect();
            assert_eq!(changes, expected, "{header:?}");
        }
    }

    #[test]
    fn a_kept_future_version_header_is_forwarded_as_version_00() {
        let future = format!("01{}-extra", &HEADER_TP[2..]);
        let kept = plan_for(Precedence::Header, &future, None);
        assert_eq!(
            kept.changes,
            vec![HeaderChange::Set(TRACEPARENT, HEADER_TP.to_owned())]
        );
        assert_eq!(kept.outcome, Outcome::HeaderKept);
        let with_baggage = plan_for(Precedence::Header, &future, Some("k=v"));
        assert_eq!(with_baggage.outcome, Outcome::Lifted);
        // A version-00 header is left exactly as it is.
        let plain = plan_for(Precedence::Header, HEADER_TP, None);
        assert_eq!(plain.changes, vec![]);
        assert_eq!(plain.outcome, Outcome::HeaderKept);
        // With `_meta` precedence the header plays no part.
        let meta = plan_for(Precedence::Meta, &future, None);
        assert_eq!(
            meta.changes,
            vec![HeaderChange::Set(TRACEPARENT, META_TP.to_owned())]
        );
    }
}
