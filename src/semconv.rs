//! OpenTelemetry MCP semantic conventions: the span name and attributes of an MCP request,
//! derived from the scanned message and the MCP transport headers.

use crate::header_policy::{self, Carries};
use crate::mcp::{Message, RequestId};

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

/// Longest attribute value kept; longer values are cut at a character boundary so a hostile
/// tool name cannot blow up span storage.
pub const MAX_VALUE_BYTES: usize = 256;

/// What `mcp.method.name` and the span name become for a method outside the MCP method set, so
/// a client cannot mint span names (unbounded cardinality) or smuggle text into them.
pub const OTHER_METHOD: &str = "_OTHER";

/// The methods of the MCP specification (2024-11-05 to 2026-07-28), requests and notifications.
pub const MCP_METHODS: [&str; 31] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

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

/// The span of `message`, the request a body is traced as (a batch: its first message with a
/// method); `None` when it has no method. Every value is [`sanitized`].
pub fn request_span(message: &Message, transport: &TransportHeaders<'_>) -> Option<RequestSpan> {
    let method = known_method(message.method.as_deref()?);
    let target = target(message, method);
    let name = match &target {
        Some(target) => format!("{method} {target}"),
        None => method.to_owned(),
    };
    let mut attributes = Vec::with_capacity(8);
    let mut add = |key: &'static str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            attributes.push((key, value));
        }
    };
    add(METHOD_NAME, Some(method.to_owned()));
    match method {
        "tools/call" => add(TOOL_NAME, target),
        "prompts/get" => add(PROMPT_NAME, target),
        _ => {}
    }
    if method.starts_with("resources/") {
        add(RESOURCE_URI, message.uri.as_deref().map(sanitized));
    }
    add(REQUEST_ID, message.id.as_ref().and_then(id_text));
    add(SESSION_ID, transport.session_id.map(sanitized));
    // MCP 2026-07-28 carries the version in every request's `_meta` and drops the header.
    let protocol_version = transport
        .protocol_version
        .filter(|v| !v.is_empty())
        .or(message.meta.protocol_version.as_deref());
    add(PROTOCOL_VERSION, protocol_version.map(sanitized));
    if method == "tools/call" {
        add(OPERATION_NAME, Some("execute_tool".to_owned()));
    }
    add(
        JSONRPC_VERSION,
        message
            .jsonrpc
            .as_deref()
            .filter(|v| *v != "2.0")
            .map(sanitized),
    );
    add(NETWORK_TRANSPORT, Some("tcp".to_owned()));
    Some(RequestSpan {
        name,
        attributes,
        id: message.id.clone(),
    })
}

/// The method itself when it is an MCP method, else [`OTHER_METHOD`].
pub fn known_method(method: &str) -> &'static str {
    MCP_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or(OTHER_METHOD)
}

/// The tool or prompt name a span is named after; an empty name is no target (the span is
/// then named after the method alone, without a trailing space).
fn target(message: &Message, method: &str) -> Option<String> {
    match method {
        "tools/call" | "prompts/get" => message
            .name
            .as_deref()
            .filter(|name| !name.is_empty())
            .map(sanitized),
        _ => None,
    }
}

/// The id as an attribute value; a null id is treated as absent.
fn id_text(id: &RequestId) -> Option<String> {
    match id {
        RequestId::Number(text) | RequestId::String(text) => Some(sanitized(text)),
        RequestId::Null => None,
    }
}

/// `value` made safe to publish where readers may not escape (filter state read by access
/// logs, span names): every control character (C0, DEL, C1) becomes U+FFFD, and the result is
/// cut to at most [`MAX_VALUE_BYTES`] at a character boundary.
pub fn sanitized(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_BYTES));
    for c in value.chars() {
        let c = if c.is_control() { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > MAX_VALUE_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// The request headers that carry `span` to a second listener: each owned header of
/// [`header_policy::REQUEST_HEADERS`] whose value the span has, in that order. A value that is
/// not [`is_header_safe`] is left out, so every returned value can be set as a header as is.
pub fn span_headers(span: &RequestSpan) -> Vec<(&'static str, &str)> {
    header_policy::owned()
        .filter_map(|(header, carries)| {
            let value = match carries {
                Carries::SpanName => Some(span.name.as_str()),
                Carries::Attribute(key) => span.attribute(key),
            };
            value.filter(|v| is_header_safe(v)).map(|v| (header, v))
        })
        .collect()
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
        let scanned = scan(body.as_bytes()).ok()?;
        let message = scanned.messages.iter().find(|m| m.method.is_some())?;
        request_span(message, &transport)
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
        assert_eq!(request_span(&Message::default(), &none), None);
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
    fn an_empty_target_names_the_span_after_the_method_alone() {
        for method in ["tools/call", "prompts/get"] {
            let body = format!(r#"{{"id":1,"method":"{method}","params":{{"name":""}}}}"#);
            let s = span(&body, TransportHeaders::default());
            assert_eq!(s.as_ref().map(|s| s.name.as_str()), Some(method), "{body}");
            assert_eq!(s.as_ref().and_then(|s| s.attribute(TOOL_NAME)), None);
            assert_eq!(s.as_ref().and_then(|s| s.attribute(PROMPT_NAME)), None);
        }
    }

    #[test]
    fn methods_outside_mcp_become_other() {
        let none = TransportHeaders::default();
        for method in [
            r"tools/call\r\nX: y",
            "tools/call ",
            "my/custom",
            "",
            "TOOLS/CALL",
        ] {
            let body = format!(r#"{{"id":1,"method":"{method}","params":{{"name":"t"}}}}"#);
            let s = span(&body, none);
            assert_eq!(
                s.as_ref().map(|s| s.name.as_str()),
                Some(OTHER_METHOD),
                "{body}"
            );
            assert_eq!(s.as_ref().and_then(|s| s.attribute(TOOL_NAME)), None);
            assert_eq!(
                s.as_ref().and_then(|s| s.attribute(METHOD_NAME)),
                Some(OTHER_METHOD)
            );
        }
        for method in MCP_METHODS {
            assert_eq!(known_method(method), method);
        }
    }

    #[test]
    fn published_values_have_no_control_characters() {
        let body = r#"{"jsonrpc":"2.0\u001b[31m","id":"a\nb","method":"tools/call","params":{"name":"x\r\nSet-Cookie: y\u0000\u007f\u0085"}}"#;
        let transport = TransportHeaders {
            session_id: Some("s\u{1b}1"),
            protocol_version: Some("2025-06-18\t"),
        };
        let Some(s) = span(body, transport) else {
            panic!("no span");
        };
        assert_eq!(
            s.name,
            "tools/call x\u{FFFD}\u{FFFD}Set-Cookie: y\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        for (key, value) in
            std::iter::once(("name", &s.name)).chain(s.attributes.iter().map(|(k, v)| (*k, v)))
        {
            assert!(!value.chars().any(char::is_control), "{key}: {value:?}");
        }
        assert_eq!(s.attribute(REQUEST_ID), Some("a\u{FFFD}b"));
        assert_eq!(s.attribute(SESSION_ID), Some("s\u{FFFD}1"));
    }

    #[test]
    fn protocol_version_from_meta_when_the_header_is_absent() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let from_meta = span(body, TransportHeaders::default());
        assert_eq!(
            from_meta
                .as_ref()
                .and_then(|s| s.attribute(PROTOCOL_VERSION)),
            Some("2026-07-28")
        );
        let header = TransportHeaders {
            session_id: None,
            protocol_version: Some("2025-06-18"),
        };
        let empty_header = TransportHeaders {
            session_id: None,
            protocol_version: Some(""),
        };
        assert_eq!(
            span(body, empty_header)
                .as_ref()
                .and_then(|s| s.attribute(PROTOCOL_VERSION)),
            Some("2026-07-28")
        );
        let from_header = span(body, header);
        assert_eq!(
            from_header
                .as_ref()
                .and_then(|s| s.attribute(PROTOCOL_VERSION)),
            Some("2025-06-18")
        );
    }

    #[test]
    fn span_headers_carry_name_and_safe_attributes_only() {
        let s = get_weather_call();
        assert_eq!(
            span_headers(&s),
            vec![
                ("x-mcp-span-name", "tools/call get_weather"),
                ("x-envoy-decorator-operation", "tools/call get_weather"),
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
