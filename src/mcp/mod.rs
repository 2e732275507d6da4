//! What the filter needs to know about an MCP JSON-RPC request body, found in one pass.
//!
//! [`scan`] validates that the body is exactly one JSON value and, on the way, records the few
//! fields the filter uses: `jsonrpc`, `method`, `id`, `params.name`, `params.uri`, the trace
//! values and protocol version in `params._meta`, where a member could be inserted into
//! `params._meta`, and on responses `error.code` and `result.isError`. Nothing else is decoded
//! or stored, so large `arguments` cost only a validating skim and no allocation.

mod block;
pub(crate) mod json;
mod scanner;
pub mod utf8;

use std::ops::Range;

pub use scanner::{scan, scan_each};

/// Why a body is not treated as MCP. Such a body passes through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMcp {
    /// The body is not exactly one JSON value (malformed, truncated, trailing bytes, empty, or
    /// not UTF-8, which JSON requires).
    InvalidJson,
    /// Valid JSON, but neither an object nor an array (a batch).
    NotAMessage,
}

/// A scanned body: one message, or the messages of a legacy batch (JSON array).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScannedBody {
    pub batch: bool,
    pub messages: Vec<Message>,
}

/// A JSON-RPC `id`. Absent means the message is a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    /// The number exactly as written in the body (keeps precision and form).
    Number(String),
    String(String),
    Null,
}

/// The facts of one JSON-RPC message. Like common JSON parsers (Python, JavaScript), the last
/// occurrence of a duplicated key wins, so the filter sees what the MCP server will see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `jsonrpc`, when it is a string.
    pub jsonrpc: Option<String>,
    /// `method`, when it is a string (absent on responses).
    pub method: Option<String>,
    /// `id`; `None` when absent or not a string, number or null.
    pub id: Option<RequestId>,
    /// `params.name`, when it is a string (tool or prompt name).
    pub name: Option<String>,
    /// `params.uri`, when it is a string (resource URI).
    pub uri: Option<String>,
    /// `params._meta`.
    pub meta: Meta,
    /// Where trace fields could be inserted into `params._meta` (see [`crate::meta_inject`]).
    pub meta_site: MetaSite,
    /// `error`, on a response.
    pub error: Option<ResponseError>,
    /// `result`, on a response.
    pub result: Option<ResponseResult>,
}

/// Where a member can be inserted on the path `message → params → _meta`: the deepest of those
/// objects that exists. Found by the scan so that injecting `_meta` needs no second parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetaSite {
    /// No safe place: `params` or `_meta` is duplicated (parsers disagree on which copy counts)
    /// or is present but not an object (e.g. positional `params`, `"_meta": null`). Also the
    /// default, so a `Message` not produced by the scan never allows an insertion.
    #[default]
    Unsafe,
    /// The deepest existing object on the path.
    Object {
        /// Which object it is.
        level: MetaLevel,
        /// Byte offset just after its opening `{`.
        at: usize,
        /// It has no members (then an insertion needs no comma).
        empty: bool,
    },
}

/// An object on the path `message → params → _meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaLevel {
    /// The message itself: it has no `params`.
    Message,
    /// `params`: it has no `_meta`.
    Params,
    /// `params._meta`.
    Meta,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseError {
    /// `code` exactly as written, when it is a number.
    pub code: Option<String>,
    /// `message`, when it is a string (the span status description).
    pub message: Option<String>,
}

/// A JSON-RPC result object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseResult {
    /// `isError: true` (an MCP `CallToolResult` that reports a tool failure).
    pub is_error: bool,
}

/// The trace values of `params._meta`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `_meta` is present but is not an object.
    pub not_an_object: bool,
    pub traceparent: Option<MetaValue>,
    pub tracestate: Option<MetaValue>,
    pub baggage: Option<MetaValue>,
    /// `io.modelcontextprotocol/protocolVersion`, when a string: MCP 2026-07-28 sends the
    /// protocol version per request here instead of negotiating it once per session.
    pub protocol_version: Option<String>,
}

impl Meta {
    /// True when `_meta` carried anything trace related, usable or not.
    pub fn has_trace_fields(&self) -> bool {
        self.not_an_object
            || self.traceparent.is_some()
            || self.tracestate.is_some()
            || self.baggage.is_some()
    }
}

/// A `_meta` trace value as found in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaValue {
    /// A JSON string, decoded.
    Text(MetaText),
    /// Present but unusable: not a string, or a string with an unpaired surrogate escape.
    Unusable,
}

impl MetaValue {
    /// The decoded text, if the value is a usable string.
    pub fn text(&self) -> Option<&str> {
        match self {
            MetaValue::Text(text) => Some(&text.value),
            MetaValue::Unusable => None,
        }
    }
}

/// A decoded `_meta` string and where its raw characters sit in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaText {
    /// The value with JSON escapes decoded.
    pub value: String,
    /// Byte range of the string's contents in the body, between (excluding) the quotes.
    pub raw: Range<usize>,
    /// Whether the raw contents contain escapes (then `raw.len()` may differ from `value.len()`).
    pub escaped: bool,
}
