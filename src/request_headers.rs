//! The request headers the filter reads, taken from one snapshot of the whole header map.
//!
//! One host call that returns every header is much cheaper in a wasm VM than a call per header
//! name (each crossing costs far more than the lookup), and the filter needs about a dozen names
//! per request: its own headers to strip, the gate's, the trace context and the MCP transport.

use crate::header_policy::{self, Field, Use};

/// The headers of one request the filter uses: first value of each, as a per-name lookup gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    pub method: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub baggage: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    /// `Mcp-Method` (SEP-2243).
    pub mcp_method: Option<String>,
    /// `Mcp-Name` (SEP-2243).
    pub mcp_name: Option<String>,
    /// `:authority`.
    pub authority: Option<String>,
    /// The filter-owned headers the client sent (each once), to be removed.
    pub owned_present: Vec<&'static str>,
}

impl RequestHeaders {
    /// Picks the filter's headers out of `(name, value)` pairs in arrival order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> RequestHeaders {
        let mut headers = RequestHeaders::default();
        for (name, value) in pairs {
            let Some((known, use_)) = header_policy::lookup(name) else {
                continue;
            };
            let field = match use_ {
                Use::Owned(_) => {
                    if !headers.owned_present.contains(&known) {
                        headers.owned_present.push(known);
                    }
                    continue;
                }
                Use::Read(field) => field,
            };
            let slot = match field {
                Field::Method => &mut headers.method,
                Field::ContentType => &mut headers.content_type,
                Field::ContentLength => &mut headers.content_length,
                Field::TraceParent => &mut headers.traceparent,
                Field::TraceState => &mut headers.tracestate,
                Field::Baggage => &mut headers.baggage,
                Field::SessionId => &mut headers.session_id,
                Field::ProtocolVersion => &mut headers.protocol_version,
                Field::McpMethod => &mut headers.mcp_method,
                Field::McpName => &mut headers.mcp_name,
                Field::Authority => &mut headers.authority,
            };
            if slot.is_none() {
                *slot = Some(value.to_owned());
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_value_and_lists_owned_headers_once() {
        let headers = RequestHeaders::from_pairs([
            (":method", "POST"),
            ("content-type", "application/json"),
            ("traceparent", "first"),
            ("traceparent", "second"),
            ("x-mcp-tool-name", "forged"),
            ("X-MCP-Tool-Name", "forged again"),
            ("x-envoy-decorator-operation", "forged"),
            ("Mcp-Session-Id", "s1"),
            ("mcp-protocol-version", "2025-06-18"),
            ("Mcp-Method", "tools/call"),
            ("mcp-name", "get_weather"),
            ("baggage", "k=v"),
            ("tracestate", "a=b"),
            ("content-length", "12"),
            ("x-other", "ignored"),
        ]);
        assert_eq!(headers.method.as_deref(), Some("POST"));
        assert_eq!(headers.content_type.as_deref(), Some("application/json"));
        assert_eq!(headers.content_length.as_deref(), Some("12"));
        assert_eq!(headers.traceparent.as_deref(), Some("first"));
        assert_eq!(headers.tracestate.as_deref(), Some("a=b"));
        assert_eq!(headers.baggage.as_deref(), Some("k=v"));
        assert_eq!(headers.session_id.as_deref(), Some("s1"));
        assert_eq!(headers.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(headers.mcp_method.as_deref(), Some("tools/call"));
        assert_eq!(headers.mcp_name.as_deref(), Some("get_weather"));
        assert_eq!(
            headers.owned_present,
            vec!["x-mcp-tool-name", "x-envoy-decorator-operation"]
        );
    }
}
