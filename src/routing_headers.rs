//! MCP 2026-07-28, SEP-2243: clients mirror the JSON-RPC `method` into an `Mcp-Method` request
//! header and the call's target into `Mcp-Name`, so intermediaries can route, rate-limit and
//! authorise without reading the body. An intermediary that does read the body must reject a
//! request whose headers contradict it: otherwise a policy applied to the header is bypassed by
//! a body that asks for something else.
//!
//! A header that is absent is not a contradiction (older clients send none; the server decides
//! whether it requires them).

use crate::mcp::{Message, RequestId};
use std::borrow::Cow;

/// The SEP-2243 headers of one request, as they arrived (first value of each).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoutingHeaders<'a> {
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`.
    pub name: Option<&'a str>,
}

impl RoutingHeaders<'_> {
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.name.is_none()
    }
}

/// How the headers contradict the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// `Mcp-Method` differs from the body's `method` (or the body has no request).
    Method,
    /// `Mcp-Name` differs from the body's target, or the method has no target.
    Name,
    /// A header value uses the `=?base64?…?=` form but does not decode to UTF-8 text.
    Undecodable,
}

impl Mismatch {
    /// The message of the JSON-RPC error a rejected request gets.
    pub fn message(self) -> &'static str {
        match self {
            Mismatch::Method => "Mcp-Method header does not match the request body",
            Mismatch::Name => "Mcp-Name header does not match the request body",
            Mismatch::Undecodable => "Mcp-Method or Mcp-Name header is not decodable",
        }
    }
}

/// JSON-RPC error code for a header/body mismatch (MCP 2026-07-28 `HeaderMismatch`).
pub const HEADER_MISMATCH_CODE: i32 = -32020;

/// The JSON-RPC error response for a rejected request, with the request's id (`null` when it
/// has none). Written by hand: a JSON serialiser would add tens of KiB to the module.
pub fn mismatch_response(mismatch: Mismatch, id: Option<&RequestId>) -> String {
    let id = match id {
        // The scanner accepted it as a JSON number: it is valid JSON as written.
        Some(RequestId::Number(number)) => number.clone(),
        Some(RequestId::String(text)) => json_string(text),
        Some(RequestId::Null) | None => "null".to_owned(),
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{HEADER_MISMATCH_CODE},"message":{}}}}}"#,
        json_string(mismatch.message())
    )
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The body value `Mcp-Name` mirrors: `params.name` for `tools/call` and `prompts/get`,
/// `params.uri` for `resources/read`, `resources/subscribe` and `resources/unsubscribe`.
pub fn routing_name(message: &Message) -> Option<&str> {
    match message.method.as_deref()? {
        "tools/call" | "prompts/get" => message.name.as_deref(),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            message.uri.as_deref()
        }
        _ => None,
    }
}

/// Checks one request or notification against the headers.
pub fn check(headers: &RoutingHeaders<'_>, message: &Message) -> Result<(), Mismatch> {
    if let Some(raw) = headers.method {
        let method = decode_header_value(raw).ok_or(Mismatch::Undecodable)?;
        if message.method.as_deref() != Some(method.as_ref()) {
            return Err(Mismatch::Method);
        }
    }
    if let Some(raw) = headers.name {
        let name = decode_header_value(raw).ok_or(Mismatch::Undecodable)?;
        if routing_name(message) != Some(name.as_ref()) {
            return Err(Mismatch::Name);
        }
    }
    Ok(())
}

/// A header value as text: plain, or the SEP-2243 form `=?base64?<base64 of UTF-8>?=` used for
/// values that cannot travel as plain header text. `None` when the encoded form is invalid.
pub fn decode_header_value(raw: &str) -> Option<Cow<'_, str>> {
    let Some(encoded) = raw
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(raw));
    };
    let bytes = decode_base64(encoded.as_bytes())?;
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// Standard base64 (RFC 4648 §4), padding optional; any other byte is an error.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let unpadded = match text {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => text,
    };
    if unpadded.len() % 4 == 1 || (unpadded.len() != text.len() && text.len() % 4 != 0) {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() / 4 * 3 + 2);
    for group in unpadded.chunks(4) {
        let mut word: u32 = 0;
        for &byte in group {
            word = (word << 6) | u32::from(sextet(byte)?);
        }
        let bits = group.len() * 6;
        word <<= 24 - bits;
        let [_, a, b, c] = word.to_be_bytes();
        let kept = bits / 8;
        // Leftover bits below the last whole byte must be zero (canonical encoding).
        let leftover = word & ((1 << (24 - kept * 8)) - 1);
        if kept < 3 && leftover != 0 {
            return None;
        }
        out.extend_from_slice(&[a, b, c][..kept]);
    }
    Some(out)
}

fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::scan;

    fn message(body: &str) -> Message {
        scan(body.as_bytes())
            .ok()
            .and_then(|b| b.messages.into_iter().next())
            .unwrap_or_default()
    }

    fn headers<'a>(method: Option<&'a str>, name: Option<&'a str>) -> RoutingHeaders<'a> {
        RoutingHeaders { method, name }
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#;

    #[test]
    fn agreeing_and_absent_headers_pass() {
        let call = message(CALL);
        assert_eq!(check(&headers(None, None), &call), Ok(()));
        assert_eq!(check(&headers(Some("tools/call"), None), &call), Ok(()));
        assert_eq!(
            check(&headers(Some("tools/call"), Some("get_weather")), &call),
            Ok(())
        );
        let read = message(r#"{"id":2,"method":"resources/read","params":{"uri":"file:///a b"}}"#);
        assert_eq!(
            check(&headers(Some("resources/read"), Some("file:///a b")), &read),
            Ok(())
        );
        let list = message(r#"{"id":3,"method":"tools/list"}"#);
        assert_eq!(check(&headers(Some("tools/list"), None), &list), Ok(()));
    }

    #[test]
    fn contradictions_are_mismatches() {
        let call = message(CALL);
        assert_eq!(
            check(&headers(Some("tools/list"), None), &call),
            Err(Mismatch::Method)
        );
        assert_eq!(
            check(&headers(Some("Tools/Call"), None), &call),
            Err(Mismatch::Method)
        );
        assert_eq!(
            check(&headers(Some("tools/call"), Some("delete_all")), &call),
            Err(Mismatch::Name)
        );
        assert_eq!(
            check(&headers(None, Some("get_weather ")), &call),
            Err(Mismatch::Name)
        );
        // A name for a method that has no target, and a method header on a response.
        let list = message(r#"{"id":3,"method":"tools/list"}"#);
        assert_eq!(check(&headers(None, Some("x")), &list), Err(Mismatch::Name));
        let response = message(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert_eq!(
            check(&headers(Some("tools/list"), None), &response),
            Err(Mismatch::Method)
        );
    }

    #[test]
    fn base64_values_are_decoded() {
        let unicode = message(r#"{"id":1,"method":"tools/call","params":{"name":"météo"}}"#);
        // "météo" in UTF-8, base64.
        assert_eq!(
            check(&headers(None, Some("=?base64?bcOpdMOpbw==?=")), &unicode),
            Ok(())
        );
        assert_eq!(
            check(&headers(None, Some("=?base64?bcOpdMOpbw?=")), &unicode),
            Ok(())
        );
        assert_eq!(
            check(
                &headers(Some("=?base64?dG9vbHMvY2FsbA==?="), None),
                &unicode
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &headers(None, Some("=?base64?Z2V0X3dlYXRoZXI=?=")),
                &unicode
            ),
            Err(Mismatch::Name)
        );
        for bad in [
            "=?base64?!!!!?=",
            "=?base64?/w==?=",
            "=?base64?bcOpdMOpbx==?=",
            "=?base64?a?=",
        ] {
            assert_eq!(
                check(&headers(None, Some(bad)), &unicode),
                Err(Mismatch::Undecodable),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_error_response_is_json_rpc_with_the_request_id() {
        let cases = [
            (Some(RequestId::Number("7".into())), serde_json::json!(7)),
            (
                Some(RequestId::Number("-1.5e3".into())),
                serde_json::json!(-1.5e3),
            ),
            (
                Some(RequestId::String("a\"b\\c\n\u{1}é".into())),
                serde_json::json!("a\"b\\c\n\u{1}é"),
            ),
            (Some(RequestId::Null), serde_json::Value::Null),
            (None, serde_json::Value::Null),
        ];
        for (id, expected) in cases {
            let text = mismatch_response(Mismatch::Name, id.as_ref());
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(
                parsed,
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": expected,
                    "error": {"code": -32020, "message": Mismatch::Name.message()},
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn base64_decoder_matches_known_vectors() {
        // RFC 4648 §10.
        for (encoded, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg", "foob"),
        ] {
            assert_eq!(
                decode_base64(encoded.as_bytes()).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
        for bad in ["Z", "Zg=", "Zm9=v", "Zh==", "Zm9w=", "Zm9v====", "Zm 9v"] {
            assert_eq!(decode_base64(bad.as_bytes()), None, "{bad}");
        }
    }
}
