//! Every request header the filter reads or owns, in one table, and what it does with each.
//!
//! Read headers are picked out of the header-map snapshot into `RequestHeaders`. Owned headers
//! carry the span to a second listener; the filter writes them, so client-sent copies are always
//! removed first and a client cannot forge a span name or attribute through them.

use crate::semconv;

/// What the filter does with a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read into this field of `RequestHeaders`.
    Read(Field),
    /// Written by the filter (with `span_headers`), carrying this.
    Owned(Carries),
}

/// The `RequestHeaders` fields filled from headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Method,
    ContentType,
    ContentLength,
    TraceParent,
    TraceState,
    Baggage,
    SessionId,
    ProtocolVersion,
    McpMethod,
    McpName,
    /// `:authority` (`Host`): the gateway's `server.address` in the own-span mode.
    Authority,
}

/// What an owned header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// The span name (Envoy renames the span of a listener that receives
    /// `x-envoy-decorator-operation`).
    SpanName,
    /// The value of this span attribute.
    Attribute(&'static str),
}

/// The table. Owned headers are published in this order. Session id and protocol version
/// already travel in their own MCP headers, and the transport is constant, so no owned header
/// carries them.
pub const REQUEST_HEADERS: [(&str, Use); 20] = [
    (":method", Use::Read(Field::Method)),
    (":authority", Use::Read(Field::Authority)),
    ("content-type", Use::Read(Field::ContentType)),
    ("content-length", Use::Read(Field::ContentLength)),
    ("traceparent", Use::Read(Field::TraceParent)),
    ("tracestate", Use::Read(Field::TraceState)),
    ("baggage", Use::Read(Field::Baggage)),
    ("mcp-session-id", Use::Read(Field::SessionId)),
    ("mcp-protocol-version", Use::Read(Field::ProtocolVersion)),
    ("mcp-method", Use::Read(Field::McpMethod)),
    ("mcp-name", Use::Read(Field::McpName)),
    ("x-mcp-span-name", Use::Owned(Carries::SpanName)),
    ("x-envoy-decorator-operation", Use::Owned(Carries::SpanName)),
    (
        "x-mcp-method-name",
        Use::Owned(Carries::Attribute(semconv::METHOD_NAME)),
    ),
    (
        "x-mcp-tool-name",
        Use::Owned(Carries::Attribute(semconv::TOOL_NAME)),
    ),
    (
        "x-mcp-prompt-name",
        Use::Owned(Carries::Attribute(semconv::PROMPT_NAME)),
    ),
    (
        "x-mcp-resource-uri",
        Use::Owned(Carries::Attribute(semconv::RESOURCE_URI)),
    ),
    (
        "x-mcp-request-id",
        Use::Owned(Carries::Attribute(semconv::REQUEST_ID)),
    ),
    (
        "x-mcp-operation-name",
        Use::Owned(Carries::Attribute(semconv::OPERATION_NAME)),
    ),
    (
        "x-mcp-jsonrpc-version",
        Use::Owned(Carries::Attribute(semconv::JSONRPC_VERSION)),
    ),
];

/// The table entry of a header name (names compare case-insensitively: some hosts keep HTTP/1
/// names as sent).
pub fn lookup(name: &str) -> Option<(&'static str, Use)> {
    REQUEST_HEADERS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .copied()
}

/// Every owned header, with what it carries, in publishing order.
pub fn owned() -> impl Iterator<Item = (&'static str, Carries)> {
    REQUEST_HEADERS
        .iter()
        .filter_map(|(name, use_)| match use_ {
            Use::Owned(carries) => Some((*name, *carries)),
            Use::Read(_) => None,
        })
}

/// Whether the filter owns `name` (lowercase).
pub fn is_owned(name: &str) -> bool {
    matches!(lookup(name), Some((_, Use::Owned(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_and_unique() {
        for (i, (name, _)) in REQUEST_HEADERS.iter().enumerate() {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(
                REQUEST_HEADERS[..i].iter().all(|(other, _)| other != name),
                "{name}"
            );
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(
            lookup("X-MCP-Tool-Name").map(|(n, _)| n),
            Some("x-mcp-tool-name")
        );
        assert_eq!(
            lookup("TraceParent"),
            Some(("traceparent", Use::Read(Field::TraceParent)))
        );
        assert_eq!(lookup("x-other"), None);
        assert!(is_owned("x-envoy-decorator-operation"));
        assert!(!is_owned("traceparent"));
        assert_eq!(owned().count(), 9);
    }
}
