//! OTLP/HTTP JSON encoding of the gateway's spans (`ExportTraceServiceRequest`), written by hand
//! so the `.wasm` needs no protobuf or serde derive. The JSON mapping's rules that matter here:
//! trace and span ids are lowercase hex strings, 64-bit integers are decimal strings, enums are
//! numbers, attribute values are `{"stringValue": …}` / `{"intValue": "…"}`.

use crate::config::Export;
use crate::span::{FinishedSpan, Value};
use crate::trace_context::push_hex;
use std::fmt::Write;

/// The instrumentation scope every span and metric is reported under.
pub const SCOPE_NAME: &str = "mcp-trace-filter";
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// OTLP `Status.code` for ERROR.
const STATUS_ERROR: u8 = 2;

/// The OTLP `resource` object for `export`: `service.name` first, then the configured
/// attributes (a configured `service.name` is ignored: the dedicated key wins).
pub fn resource_json(export: &Export) -> String {
    let mut out = String::from(r#"{"attributes":["#);
    push_string_attribute(&mut out, "service.name", &export.service_name);
    for (key, value) in &export.resource_attributes {
        if key != "service.name" {
            out.push(',');
            push_string_attribute(&mut out, key, value);
        }
    }
    out.push_str("]}");
    out
}

/// The body of one trace export request carrying `spans`.
pub fn traces_json(resource: &str, spans: &[FinishedSpan]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 640);
    out.push_str(r#"{"resourceSpans":[{"resource":"#);
    out.push_str(resource);
    out.push_str(r#","scopeSpans":[{"scope":{"name":"#);
    push_json_string(&mut out, SCOPE_NAME);
    out.push_str(r#","version":"#);
    push_json_string(&mut out, SCOPE_VERSION);
    out.push_str(r#"},"spans":["#);
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_span(&mut out, span);
    }
    out.push_str("]}]}]}");
    out
}

fn push_span(out: &mut String, span: &FinishedSpan) {
    out.push_str(r#"{"traceId":""#);
    push_hex(out, &span.trace_id);
    out.push_str(r#"","spanId":""#);
    push_hex(out, &span.span_id);
    out.push('"');
    if let Some(parent) = &span.parent_span_id {
        out.push_str(r#","parentSpanId":""#);
        push_hex(out, parent);
        out.push('"');
    }
    if let Some(state) = &span.trace_state {
        out.push_str(r#","traceState":"#);
        push_json_string(out, state);
    }
    out.push_str(r#","name":"#);
    push_json_string(out, &span.name);
    out.push_str(r#","kind":"#);
    push_decimal(out, u64::from(span.kind as u8));
    out.push_str(r#","startTimeUnixNano":""#);
    push_decimal(out, span.start_unix_nanos);
    out.push_str(r#"","endTimeUnixNano":""#);
    push_decimal(out, span.end_unix_nanos);
    out.push_str(r#"","attributes":["#);
    for (index, (key, value)) in span.attributes.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_attribute(out, key, value);
    }
    out.push(']');
    if !span.links.is_empty() {
        out.push_str(r#","links":["#);
        for (index, link) in span.links.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(r#"{"traceId":""#);
            push_hex(out, &link.trace_id);
            out.push_str(r#"","spanId":""#);
            push_hex(out, &link.span_id);
            out.push('"');
            if let Some(state) = &link.trace_state {
                out.push_str(r#","traceState":"#);
                push_json_string(out, state);
            }
            out.push('}');
        }
        out.push(']');
    }
    if let Some(description) = &span.error {
        let _ = write!(out, r#","status":{{"code":{STATUS_ERROR},"message":"#);
        push_json_string(out, description);
        out.push('}');
    }
    out.push('}');
}

fn push_attribute(out: &mut String, key: &str, value: &Value) {
    match value {
        Value::Text(text) => push_string_attribute(out, key, text),
        Value::Int(number) => {
            out.push_str(r#"{"key":"#);
            push_json_string(out, key);
            out.push_str(r#","value":{"intValue":""#);
            if *number < 0 {
                out.push('-');
            }
            push_decimal(out, number.unsigned_abs());
            out.push_str(r#""}}"#);
        }
    }
}

fn push_string_attribute(out: &mut String, key: &str, value: &str) {
    out.push_str(r#"{"key":"#);
    push_json_string(out, key);
    out.push_str(r#","value":{"stringValue":"#);
    push_json_string(out, value);
    out.push_str("}}");
}

/// `number` in decimal, without the formatting machinery.
fn push_decimal(out: &mut String, mut number: u64) {
    let mut buffer = [0u8; 20];
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buffer[start..]).unwrap_or_default());
}

/// `text` as a JSON string literal: quotes, backslashes and control characters escaped (and
/// U+2028, U+2029, which some JSON readers take for line ends). Runs that need no escape are
/// copied whole.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut copied = 0;
    for (at, c) in text.char_indices() {
        let needs_escape = matches!(c, '"' | '\\' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}');
        if !needs_escape {
            continue;
        }
        out.push_str(text.get(copied..at).unwrap_or_default());
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
        copied = at + c.len_utf8();
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Link, SpanKind};

    fn span() -> FinishedSpan {
        FinishedSpan {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_span_id: Some([0x02; 8]),
            trace_state: Some("k=v".to_owned()),
            name: "tools/call \"x\"\n".to_owned(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_500_000_000,
            attributes: vec![
                ("mcp.method.name", Value::Text("tools/call".to_owned())),
                ("client.port", Value::Int(5000)),
            ],
            links: vec![Link {
                trace_id: [0x11; 16],
                span_id: [0x22; 8],
                trace_state: None,
            }],
            error: Some("boom\u{1}".to_owned()),
        }
    }

    #[test]
    fn strings_round_trip_through_a_json_reader() {
        let mut texts: Vec<String> = (0..=0x7fu32)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b{c}"))
            .collect();
        texts.extend(
            [
                "",
                "\u{2028}x\u{2029}",
                "caf\u{e9} \u{6771}\u{4eac} \u{1f600}",
                "\"\\\n\t",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut out = String::new();
            push_json_string(&mut out, &text);
            let token = crate::mcp::json::string(out.as_bytes(), 0);
            let token = token.unwrap_or_else(|| panic!("not a JSON string: {out:?}"));
            assert_eq!(token.end + 1, out.len(), "{out:?}");
            assert_eq!(
                crate::mcp::json::decode(out.as_bytes(), token).as_deref(),
                Some(text.as_str())
            );
            assert!(!out.contains(['\u{2028}', '\u{2029}']), "{out:?}");
        }
    }

    #[test]
    fn numbers_and_ids_are_written_like_the_formatter_would() {
        for number in [0, 7, 10, 99, 100, 1_764_680_000_123_456_789, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, number);
            assert_eq!(out, number.to_string());
        }
        for number in [-5, i64::MIN, 0, i64::MAX] {
            let mut out = String::new();
            push_attribute(&mut out, "k", &Value::Int(number));
            assert_eq!(
                out,
                format!(r#"{{"key":"k","value":{{"intValue":"{number}"}}}}"#)
            );
        }
        let bytes: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for length in 0..=bytes.len() {
            let mut out = String::new();
            push_hex(&mut out, &bytes[..length]);
            let expected: String = bytes[..length].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn a_batch_is_valid_otlp_json() {
        let resource = resource_json(&Export {
            upstream: "otel".into(),
            authority: "otel".into(),
            path: "/v1/traces".into(),
            metrics_path: None,
            timeout_ms: 1,
            flush_interval_ms: 10,
            batch_size: 1,
            queue_size: 1,
            service_name: "gw".into(),
            resource_attributes: vec![("env".into(), "te\"st".into())],
        });
        let body = traces_json(&resource, &[span(), span()]);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let spans = &parsed["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().map(Vec::len), Some(2));
        let first = &spans[0];
        assert_eq!(first["traceId"], "abababababababababababababababab");
        assert_eq!(first["parentSpanId"], "0202020202020202");
        assert_eq!(first["name"], "tools/call \"x\"\n");
        assert_eq!(first["kind"], 2);
        assert_eq!(first["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(first["attributes"][1]["value"]["intValue"], "5000");
        assert_eq!(first["links"][0]["spanId"], "2222222222222222");
        assert_eq!(first["status"]["code"], 2);
        assert_eq!(first["status"]["message"], "boom\u{1}");
        let attributes = &parsed["resourceSpans"][0]["resource"]["attributes"];
        assert_eq!(attributes[0]["value"]["stringValue"], "gw");
        assert_eq!(attributes[1]["value"]["stringValue"], "te\"st");
    }

    #[test]
    fn an_ok_span_has_no_status_and_a_root_no_parent() {
        let mut root = span();
        root.parent_span_id = None;
        root.error = None;
        root.links.clear();
        let body = traces_json("{}", &[root]);
        assert!(!body.contains("parentSpanId"));
        assert!(!body.contains("status"));
        assert!(!body.contains("links"));
    }
}
