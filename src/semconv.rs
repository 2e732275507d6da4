//! OpenTelemetry MCP semantic conventions: the span name and attributes of an MCP request,
//! derived from the scanned message and the MCP transport headers.

use crate::mcp::{Message, RequestId, ScannedBody};

pub const METHOD_NAME: &str = "mcp.method.name";
pub const TOOL_NAME: &str = "gen_ai.tool.name";
pub const PROMPT_NAME: &str = "gen_ai.prompt.name";
pub const RESOURCE_URI: &str = "mcp.resource.uri";
pub const REQUEST_ID: &str = "jsonrpc.request.id";
pub const SESSION_ID: &str = "mcp.session.id";
pub const PROTOCOL_VERSION: &str = "mcp.protocol.version";
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
pub const JSONRPC_VERSION: &str = "jsonrpc.protocol.version";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const ERROR_TYPE: &str = "error.type";
pub const RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";

/// Every request attribute key, in the order they are published.
pub const REQUEST_ATTRIBUTES: [&str; 10] = [
    METHOD_NAME,
    TOOL_NAME,
    PROMPT_NAME,
    RESOURCE_URI,
    REQUEST_ID,
    SESSION_ID,
    PROTOCOL_VERSION,
    OPERATION_NAME,
    JSONRPC_VERSION,
    NETWORK_TRANSPORT,
];

/// Filter state key of the span name (the attributes use their own names as keys).
pub const SPAN_NAME: &str = "mcp.span.name";
/// Filter state key set to `true` when `error.type` is set: Envoy's tracers turn an `error`
/// tag of `true` into an error span status.
pub const ERROR_FLAG: &str = "error";

/// Request header carrying the span name to a second listener.
pub const SPAN_NAME_HEADER: &str = "x-mcp-span-name";
/// Envoy renames the span of the listener that receives this request header.
pub const DECORATOR_HEADER: &str = "x-envoy-decorator-operation";

/// Request headers carrying attributes to a second listener. The session id and protocol
/// version already travel in their own MCP headers and the transport is constant.
pub const ATTRIBUTE_HEADERS: [(&str, &str); 7] = [
    (METHOD_NAME, "x-mcp-method-name"),
    (TOOL_NAME, "x-mcp-tool-name"),
    (PROMPT_NAME, "x-mcp-prompt-name"),
    (RESOURCE_URI, "x-mcp-resource-uri"),
    (REQUEST_ID, "x-mcp-request-id"),
    (OPERATION_NAME, "x-mcp-operation-name"),
    (JSONRPC_VERSION, "x-mcp-jsonrpc-version"),
];

/// Every request header the filter owns. Client-sent copies are always removed, so a client
/// cannot forge a span name or attribute.
pub const OWNED_HEADERS: [&str; 9] = [
    SPAN_NAME_HEADER,
    DECORATOR_HEADER,
    "x-mcp-method-name",
    "x-mcp-tool-name",
    "x-mcp-prompt-name",
    "x-mcp-resource-uri",
    "x-mcp-request-id",
    "x-mcp-operation-name",
    "x-mcp-jsonrpc-version",
];

/// Longest attribute value kept; longer values are cut at a character boundary so a hostile
/// tool name cannot blow up span storage.
pub const MAX_VALUE_BYTES: usize = 256;

/// The MCP transport headers that carry span attributes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransportHeaders<'a> {
    /// `Mcp-Session-Id`.
    pub session_id: Option<&'a str>,
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
}

/// The span name and attributes of one MCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpan {
    /// `{mcp.method.name} {target}`, or just the method when there is no target.
    pub name: String,
    pub attributes: Vec<(&'static str, String)>,
    /// The JSON-RPC id, to find the matching response.
    pub id: Option<RequestId>,
}

impl RequestSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The span of the first message with a method (the request a batch is traced as); `None`
/// when no message is a request or notification.
pub fn request_span(body: &ScannedBody, transport: &TransportHeaders<'_>) -> Option<RequestSpan> {
    let message = body.messages.iter().find(|m| m.method.is_some())?;
    let method = bounded(message.method.as_deref()?);
    let target = target(message, &method);
    let name = match &target {
        Some(target) => format!("{method} {target}"),
        None => method.clone(),
    };
    let mut attributes = Vec::with_capacity(8);
    let mut add = |key: &'static str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            attributes.push((key, value));
        }
    };
    add(METHOD_NAME, Some(method.clone()));
    match method.as_str() {
        "tools/call" => add(TOOL_NAME, target),
        "prompts/get" => add(PROMPT_NAME, target),
        _ => {}
    }
    if method.starts_with("resources/") {
        add(RESOURCE_URI, message.uri.as_deref().map(bounded));
    }
    add(REQUEST_ID, message.id.as_ref().and_then(id_text));
    add(SESSION_ID, transport.session_id.map(bounded));
    add(PROTOCOL_VERSION, transport.protocol_version.map(bounded));
    if method == "tools/call" {
        add(OPERATION_NAME, Some("execute_tool".to_owned()));
    }
    add(
        JSONRPC_VERSION,
        message
            .jsonrpc
            .as_deref()
            .filter(|v| *v != "2.0")
            .map(bounded),
    );
    add(NETWORK_TRANSPORT, Some("tcp".to_owned()));
    Some(RequestSpan {
        name,
        attributes,
        id: message.id.clone(),
    })
}

/// The tool or prompt name a span is named after.
fn target(message: &Message, method: &str) -> Option<String> {
    match method {
        "tools/call" | "prompts/get" => message.name.as_deref().map(bounded),
        _ => None,
    }
}

/// The id as an attribute value; a null id is treated as absent.
fn id_text(id: &RequestId) -> Option<String> {
    match id {
        RequestId::Number(text) | RequestId::String(text) => Some(bounded(text)),
        RequestId::Null => None,
    }
}

/// Cuts `value` to at most [`MAX_VALUE_BYTES`] at a character boundary.
pub fn bounded(value: &str) -> String {
    if value.len() <= MAX_VALUE_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_owned()
}

/// The request headers that carry `span` to a second listener: the span name (twice, as
/// [`SPAN_NAME_HEADER`] and [`DECORATOR_HEADER`]) and each present attribute of
/// [`ATTRIBUTE_HEADERS`], in that order. A value that is not [`is_header_safe`] is left out, so
/// every returned value can be set as a header as is.
pub fn span_headers(span: &RequestSpan) -> Vec<(&'static str, &str)> {
    let mut headers = vec![
        (SPAN_NAME_HEADER, span.name.as_str()),
        (DECORATOR_HEADER, span.name.as_str()),
    ];
    for (key, header) in ATTRIBUTE_HEADERS {
        if let Some(value) = span.attribute(key) {
            headers.push((header, value));
        }
    }
    headers.retain(|(_, value)| is_header_safe(value));
    headers
}

/// True when `value` can be sent as an HTTP header value as is: visible ASCII and inner spaces.
pub fn is_header_safe(value: &str) -> bool {
    !value.starts_with(' ')
        && !value.ends_with(' ')
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::scan;

    fn span(body: &str, transport: TransportHeaders<'_>) -> Option<RequestSpan> {
        scan(body.as_bytes())
            .ok()
            .and_then(|b| request_span(&b, &transport))
    }

    /// A `tools/call` of `get_weather` with id 7, session and protocol headers.
    fn get_weather_call() -> RequestSpan {
        let transport = TransportHeaders {
            session_id: Some("sess-1"),
            protocol_version: Some("2025-06-18"),
        };
        let s = span(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather"}}"#,
            transport,
        );
        let Some(s) = s else {
            panic!("no span");
        };
        s
    }

    #[test]
    fn tools_call_gets_every_attribute() {
        let s = get_weather_call();
        assert_eq!(s.name, "tools/call get_weather");
        assert_eq!(
            s.attributes,
            vec![
                (METHOD_NAME, "tools/call".to_string()),
                (TOOL_NAME, "get_weather".to_string()),
                (REQUEST_ID, "7".to_string()),
                (SESSION_ID, "sess-1".to_string()),
                (PROTOCOL_VERSION, "2025-06-18".to_string()),
                (OPERATION_NAME, "execute_tool".to_string()),
                (NETWORK_TRANSPORT, "tcp".to_string()),
            ]
        );
    }

    #[test]
    fn prompts_resources_and_plain_methods() {
        let none = TransportHeaders::default();
        let p = span(
            r#"{"jsonrpc":"2.0","id":"a","method":"prompts/get","params":{"name":"greet"}}"#,
            none,
        );
        assert_eq!(
            p.as_ref().map(|s| s.name.as_str()),
            Some("prompts/get greet")
        );
        assert_eq!(
            p.as_ref().and_then(|s| s.attribute(PROMPT_NAME)),
            Some("greet")
        );
        assert_eq!(p.as_ref().and_then(|s| s.attribute(REQUEST_ID)), Some("a"));
        let r = span(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x","name":"n"}}"#,
            none,
        );
        assert_eq!(r.as_ref().map(|s| s.name.as_str()), Some("resources/read"));
        assert_eq!(
            r.as_ref().and_then(|s| s.attribute(RESOURCE_URI)),
            Some("file:///x")
        );
        assert_eq!(r.as_ref().and_then(|s| s.attribute(TOOL_NAME)), None);
        let n = span(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            none,
        );
        assert_eq!(n.as_ref().and_then(|s| s.attribute(REQUEST_ID)), None);
        assert_eq!(
            n.map(|s| s.name),
            Some("notifications/initialized".to_string())
        );
    }

    #[test]
    fn jsonrpc_version_only_when_not_2_0() {
        let none = TransportHeaders::default();
        let old = span(r#"{"jsonrpc":"1.0","id":null,"method":"ping"}"#, none);
        assert_eq!(
            old.as_ref().and_then(|s| s.attribute(JSONRPC_VERSION)),
            Some("1.0")
        );
        assert_eq!(old.as_ref().and_then(|s| s.attribute(REQUEST_ID)), None);
        let new = span(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, none);
        assert_eq!(
            new.and_then(|s| s.attribute(JSONRPC_VERSION).map(str::to_owned)),
            None
        );
    }

    #[test]
    fn responses_and_empty_batches_have_no_span() {
        let none = TransportHeaders::default();
        assert_eq!(span(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, none), None);
        assert_eq!(span("[]", none), None);
        let batch = span(
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
            none,
        );
        assert_eq!(batch.map(|s| s.name), Some("tools/list".to_string()));
    }

    #[test]
    fn long_values_are_bounded_at_a_char_boundary() {
        let name = "é".repeat(300);
        let body = format!(r#"{{"id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#);
        let s = span(&body, TransportHeaders::default());
        let tool = s
            .as_ref()
            .and_then(|s| s.attribute(TOOL_NAME))
            .unwrap_or("");
        assert!(tool.len() <= MAX_VALUE_BYTES && tool.len() >= MAX_VALUE_BYTES - 1);
        assert!(tool.chars().all(|c| c == 'é'));
    }

    #[test]
    fn owned_headers_cover_every_published_header() {
        for (_, header) in ATTRIBUTE_HEADERS {
            assert!(OWNED_HEADERS.contains(&header), "{header}");
        }
        assert!(OWNED_HEADERS.contains(&SPAN_NAME_HEADER));
        assert!(OWNED_HEADERS.contains(&DECORATOR_HEADER));
    }

    #[test]
    fn span_headers_carry_name_and_safe_attributes_only() {
        let s = get_weather_call();
        assert_eq!(
            span_headers(&s),
            vec![
                (SPAN_NAME_HEADER, "tools/call get_weather"),
                (DECORATOR_HEADER, "tools/call get_weather"),
                ("x-mcp-method-name", "tools/call"),
                ("x-mcp-tool-name", "get_weather"),
                ("x-mcp-request-id", "7"),
                ("x-mcp-operation-name", "execute_tool"),
            ]
        );

        // A tool name with a line break or non-ASCII text is never published as a header,
        // neither alone nor inside the span name; the safe attributes still are.
        for name in [r"a\r\nx-evil: 1", r"caf\u00e9", "padded "] {
            let body = format!(
                r#"{{"jsonrpc":"1.0","id":"r","method":"tools/call","params":{{"name":"{name}"}}}}"#
            );
            let Some(s) = span(&body, TransportHeaders::default()) else {
                panic!("no span for {body}");
            };
            let headers = span_headers(&s);
            assert_eq!(
                headers,
                vec![
                    ("x-mcp-method-name", "tools/call"),
                    ("x-mcp-request-id", "r"),
                    ("x-mcp-operation-name", "execute_tool"),
                    ("x-mcp-jsonrpc-version", "1.0"),
                ],
                "{body}"
            );
        }
    }

    #[test]
    fn header_safety() {
        assert!(is_header_safe("tools/call get_weather"));
        assert!(!is_header_safe("a\r\nb"));
        assert!(!is_header_safe("é"));
        assert!(!is_header_safe(" x"));
        assert!(!is_header_safe("x\t"));
    }
}
