//! Decides which trace headers the upstream request gets, from the configuration, the trace
//! headers that arrived and the scanned body. Pure: the filter only applies the result.
//!
//! Rules: a context travels whole (a `tracestate` only ever goes with its own `traceparent`),
//! and an invalid `_meta` value never removes a valid header value.

use crate::config::{BaggageMode, Config, Precedence};
use crate::mcp::{Message, MetaValue, ScannedBody};
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
struct MetaContext<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<TraceState>,
    baggage: Option<Baggage>,
    present: bool,
    invalid_values: u32,
}

/// Plans the header changes for one request.
pub fn plan(config: &Config, arrived: &ArrivedHeaders<'_>, body: &ScannedBody) -> Plan {
    let meta = body
        .messages
        .iter()
        .find(|message| has_valid_traceparent(message))
        .or_else(|| {
            body.messages
                .iter()
                .find(|message| message.meta.has_trace_fields())
        })
        .map(validate_meta)
        .unwrap_or_default();

    let mut changes = Vec::new();
    let header_parent_valid = arrived.traceparent.and_then(TraceParent::parse).is_some();
    let mut header_kept = false;
    if let Some(traceparent) = meta.traceparent {
        if config.precedence == Precedence::Meta || !header_parent_valid {
            lift_context(traceparent, meta.tracestate.as_ref(), arrived, &mut changes);
        } else {
            header_kept = true;
        }
    }
    if let Some(baggage) = &meta.baggage {
        match baggage_change(config.baggage, baggage, arrived.baggage) {
            Some(change) => changes.push(change),
            None => header_kept = true,
        }
    }

    let outcome = if !changes.is_empty() {
        Outcome::Lifted
    } else if header_kept {
        Outcome::HeaderKept
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

fn has_valid_traceparent(message: &Message) -> bool {
    message
        .meta
        .traceparent
        .as_ref()
        .and_then(MetaValue::text)
        .and_then(TraceParent::parse)
        .is_some()
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

/// Validates each `_meta` trace value of `message`, counting the ones that are dropped.
fn validate_meta(message: &Message) -> MetaContext<'_> {
    let meta = &message.meta;
    let traceparent = Checked::new(&meta.traceparent, |text| {
        TraceParent::parse(text).map(|_| text)
    });
    let tracestate = Checked::new(&meta.tracestate, TraceState::parse);
    let baggage = Checked::new(&meta.baggage, Baggage::parse);
    let invalid_values = [
        meta.not_an_object,
        traceparent.is_invalid(),
        tracestate.is_invalid(),
        baggage.is_invalid(),
    ]
    .into_iter()
    .map(u32::from)
    .sum();
    MetaContext {
        traceparent: traceparent.valid(),
        tracestate: tracestate.valid(),
        baggage: baggage.valid().filter(|baggage| !baggage.is_empty()),
        present: meta.has_trace_fields(),
        invalid_values,
    }
}

/// Lifts a `_meta` context: its `traceparent` verbatim and its own `tracestate` or none.
fn lift_context(
    traceparent: &str,
    tracestate: Option<&TraceState>,
    arrived: &ArrivedHeaders<'_>,
    changes: &mut Vec<HeaderChange>,
) {
    changes.push(HeaderChange::Set(TRACEPARENT, traceparent.to_owned()));
    match tracestate.filter(|state| !state.is_empty()) {
        Some(state) => changes.push(HeaderChange::Set(TRACESTATE, state.to_header_value())),
        None if arrived.tracestate.is_some() => changes.push(HeaderChange::Remove(TRACESTATE)),
        None => {}
    }
}

/// The baggage header change for a valid `_meta` baggage, or `None` when the header's stays.
fn baggage_change(
    mode: BaggageMode,
    meta: &Baggage,
    arrived: Option<&str>,
) -> Option<HeaderChange> {
    let arrived_valid = arrived.and_then(Baggage::parse);
    let value = match mode {
        BaggageMode::Drop => return None,
        BaggageMode::Meta => meta.to_header_value(),
        BaggageMode::Header if arrived.is_some() => return None,
        BaggageMode::Header => meta.to_header_value(),
        BaggageMode::Merge => match &arrived_valid {
            Some(header) => Baggage::merge(meta, header).to_header_value(),
            None => meta.to_header_value(),
        },
    };
    Some(HeaderChange::Set(BAGGAGE, value))
}
