//! The MCP body scanner against hand-written bodies and generated JSON.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::mcp::{
    scan, Message, MetaLevel, MetaSite, MetaText, MetaValue, NotMcp, RequestId, ScannedBody,
};
use proptest::prelude::*;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn single(body: &str) -> Message {
    let scanned = scan(body.as_bytes());
    let Ok(ScannedBody {
        batch: false,
        mut messages,
    }) = scanned
    else {
        panic!("expected one message from {body}: {scanned:?}");
    };
    assert_eq!(messages.len(), 1, "{body}");
    messages.remove(0)
}

fn traceparent(message: &Message) -> Option<&str> {
    message.meta.traceparent.as_ref().and_then(MetaValue::text)
}

#[test]
fn reads_the_fields_of_a_tools_call() {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","arguments":{{"city":"Paris","_meta":{{"traceparent":"x"}}}},"_meta":{{"traceparent":"{TP}","tracestate":"a=1","baggage":"k=v","progressToken":3}}}}}}"#
    );
    let message = single(&body);
    assert_eq!(message.jsonrpc.as_deref(), Some("2.0"));
    assert_eq!(message.method.as_deref(), Some("tools/call"));
    assert_eq!(message.id, Some(RequestId::Number("7".into())));
    assert_eq!(message.name.as_deref(), Some("get_weather"));
    assert_eq!(traceparent(&message), Some(TP));
    let Some(MetaValue::Text(text)) = &message.meta.traceparent else {
        panic!("traceparent missing");
    };
    assert_eq!(&body[text.raw.clone()], TP);
    assert!(!text.escaped);
    assert_eq!(
        message.meta.tracestate.as_ref().and_then(MetaValue::text),
        Some("a=1")
    );
    assert_eq!(
        message.meta.baggage.as_ref().and_then(MetaValue::text),
        Some("k=v")
    );
}

#[test]
fn ids_of_every_kind() {
    let id = |raw: &str| {
        single(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#
        ))
        .id
    };
    assert_eq!(id("\"abc\""), Some(RequestId::String("abc".into())));
    assert_eq!(id("-1.5e3"), Some(RequestId::Number("-1.5e3".into())));
    assert_eq!(id("null"), Some(RequestId::Null));
    assert_eq!(id("true"), None);
    assert_eq!(id("{}"), None);
    let notification = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(notification.id, None);
}

#[test]
fn resources_uri_is_read() {
    let message = single(
        r#"{"jsonrpc":"2.0","id":"r1","method":"resources/read","params":{"uri":"file:///a b"}}"#,
    );
    assert_eq!(message.uri.as_deref(), Some("file:///a b"));
    assert_eq!(message.name, None);
}

#[test]
fn escapes_are_decoded_in_keys_and_values() {
    let escaped_tp = TP.replacen('0', "\\u0030", 1);
    let body = format!(
        r#"{{"\u006dethod":"tools\/call","params":{{"\u005fmeta":{{"trace\u0070arent":"{escaped_tp}"}}}}}}"#
    );
    let message = single(&body);
    assert_eq!(message.method.as_deref(), Some("tools/call"));
    assert_eq!(traceparent(&message), Some(TP));
    let Some(MetaValue::Text(text)) = &message.meta.traceparent else {
        panic!("traceparent missing");
    };
    assert!(text.escaped);
    assert_eq!(&body[text.raw.clone()], escaped_tp);
}

#[test]
fn meta_outside_params_is_never_read() {
    let misplaced = [
        format!(r#"{{"method":"x","_meta":{{"traceparent":"{TP}"}}}}"#),
        format!(
            r#"{{"method":"x","params":{{"arguments":{{"_meta":{{"traceparent":"{TP}"}}}}}}}}"#
        ),
        format!(r#"{{"method":"x","params":{{"x":{{"_meta":{{"traceparent":"{TP}"}}}}}}}}"#),
        format!(r#"{{"method":"x","params":{{"_meta":{{"inner":{{"traceparent":"{TP}"}}}}}}}}"#),
        format!(r#"{{"method":"x","params":[{{"_meta":{{"traceparent":"{TP}"}}}}]}}"#),
        format!(
            r#"{{"method":"x","params":{{"name":"{{\"_meta\":{{\"traceparent\":\"{TP}\"}}}}"}}}}"#
        ),
        format!(r#"{{"method":"x","traceparent":"{TP}","params":{{"traceparent":"{TP}"}}}}"#),
        format!(r#"{{"method":"x","result":{{"params":{{"_meta":{{"traceparent":"{TP}"}}}}}}}}"#),
    ];
    for body in misplaced {
        let message = single(&body);
        assert!(!message.meta.has_trace_fields(), "{body}");
    }
}

#[test]
fn the_last_duplicate_key_wins() {
    let other = "00-11111111111111111111111111111111-2222222222222222-01";
    let twice =
        format!(r#"{{"params":{{"_meta":{{"traceparent":"{other}","traceparent":"{TP}"}}}}}}"#);
    assert_eq!(traceparent(&single(&twice)), Some(TP));
    let meta_twice =
        format!(r#"{{"params":{{"_meta":{{"traceparent":"{TP}"}},"_meta":{{"baggage":"a=1"}}}}}}"#);
    let message = single(&meta_twice);
    assert_eq!(message.meta.traceparent, None);
    assert!(message.meta.baggage.is_some());
    let params_twice = format!(
        r#"{{"params":{{"name":"t","_meta":{{"traceparent":"{TP}"}}}},"params":{{"uri":"u"}}}}"#
    );
    let message = single(&params_twice);
    assert_eq!(message.name, None);
    assert_eq!(message.uri.as_deref(), Some("u"));
    assert!(!message.meta.has_trace_fields());
    let replaced_by_number =
        format!(r#"{{"params":{{"_meta":{{"traceparent":"{TP}","traceparent":5}}}}}}"#);
    assert_eq!(
        single(&replaced_by_number).meta.traceparent,
        Some(MetaValue::Unusable)
    );
    for later in ["\"x\"", "null", "true", "{}", "[1]"] {
        let body = format!(r#"{{"error":{{"code":-32601,"code":{later}}}}}"#);
        let error = single(&body).error;
        assert_eq!(error.and_then(|e| e.code), None, "{body}");
    }
    let number_last = r#"{"error":{"code":"x","code":-32601}}"#;
    let error = single(number_last).error;
    assert_eq!(error.and_then(|e| e.code).as_deref(), Some("-32601"));
}

#[test]
fn wrong_types_are_marked_unusable() {
    for value in ["1", "null", "true", "[\"x\"]", "{\"v\":\"x\"}"] {
        let body =
            format!(r#"{{"params":{{"_meta":{{"traceparent":{value},"tracestate":{value}}}}}}}"#);
        let message = single(&body);
        assert_eq!(
            message.meta.traceparent,
            Some(MetaValue::Unusable),
            "{body}"
        );
        assert_eq!(message.meta.tracestate, Some(MetaValue::Unusable), "{body}");
    }
    for meta in ["1", "\"x\"", "[]", "null"] {
        let body = format!(r#"{{"params":{{"_meta":{meta}}}}}"#);
        let message = single(&body);
        assert!(message.meta.not_an_object, "{body}");
        assert!(message.meta.has_trace_fields());
    }
    let lone_surrogate = r#"{"params":{"_meta":{"traceparent":"\ud800"}}}"#;
    assert_eq!(
        single(lone_surrogate).meta.traceparent,
        Some(MetaValue::Unusable)
    );
}

#[test]
fn batches_keep_every_message() {
    let body = format!(
        r#"[{{"jsonrpc":"2.0","method":"notifications/progress"}}, 5, [{{"params":{{"_meta":{{"traceparent":"x"}}}}}}], {{"id":2,"method":"tools/call","params":{{"_meta":{{"traceparent":"{TP}"}}}}}}]"#
    );
    let scanned = scan(body.as_bytes());
    let Ok(ScannedBody {
        batch: true,
        messages,
    }) = scanned
    else {
        panic!("{scanned:?}");
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(traceparent(&messages[1]), Some(TP));
    assert_eq!(messages[0].meta.traceparent, None);
    assert_eq!(
        scan(b" [ ] "),
        Ok(ScannedBody {
            batch: true,
            messages: vec![]
        })
    );
}

#[test]
fn anything_but_one_json_value_is_not_mcp() {
    let cases: [(&[u8], NotMcp); 16] = [
        (b"", NotMcp::InvalidJson),
        (b"   ", NotMcp::InvalidJson),
        (b"{", NotMcp::InvalidJson),
        (b"{\"method\":\"x\"", NotMcp::InvalidJson),
        (b"{\"method\":\"x\"} {}", NotMcp::InvalidJson),
        (b"{\"method\":\"x\"}x", NotMcp::InvalidJson),
        (b"{\"method\":\"x\",}", NotMcp::InvalidJson),
        (b"{\"method\" \"x\"}", NotMcp::InvalidJson),
        (b"[1,]", NotMcp::InvalidJson),
        (b"{'a':1}", NotMcp::InvalidJson),
        (b"{\"a\":tru}", NotMcp::InvalidJson),
        (b"{\"a\":01}", NotMcp::InvalidJson),
        (b"{\"a\":\"\x00\"}", NotMcp::InvalidJson),
        (b"{\"a\":\"\xff\"}", NotMcp::InvalidJson),
        (b"\"just a string\"", NotMcp::NotAMessage),
        (b"42", NotMcp::NotAMessage),
    ];
    for (body, expected) in cases {
        assert_eq!(
            scan(body),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        scan(b"\t{}\r\n"),
        Ok(ScannedBody {
            batch: false,
            messages: vec![Message {
                meta_site: MetaSite::Object {
                    level: MetaLevel::Message,
                    at: 2,
                    empty: true
                },
                ..Message::default()
            }]
        })
    );
}

#[test]
fn invalid_utf8_anywhere_is_reported_as_such() {
    let long = "x".repeat(37);
    let cases: [Vec<u8>; 10] = [
        b"{\"\xff\":1}".to_vec(),
        b"{\"a\":1}\xff".to_vec(),
        b"\x80{}".to_vec(),
        b"{\"a\":1\xc3}".to_vec(),
        // A multi-byte sequence cut short by the closing quote.
        b"{\"a\":\"\xe6\x9d\"}".to_vec(),
        // Overlong encoding of '/' and a UTF-16 surrogate encoded as UTF-8.
        b"{\"a\":\"\xc0\xaf\"}".to_vec(),
        b"{\"a\":\"\xed\xa0\x80\"}".to_vec(),
        // After a long ASCII run, in the middle of an 8-byte word, and right before an escape.
        format!("{{\"a\":\"{long}\u{e9}\u{e9}")
            .into_bytes()
            .into_iter()
            .chain(*b"\xe9\"}")
            .collect(),
        format!("{{\"a\":\"{long}")
            .into_bytes()
            .into_iter()
            .chain(*b"\xf0\x9f\\n\"}")
            .collect(),
        // Invalid UTF-8 in an otherwise malformed body.
        b"{\"a\":\"\xff".to_vec(),
    ];
    for body in cases {
        assert_eq!(
            scan(&body),
            Err(NotMcp::InvalidJson),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn non_ascii_text_is_read_in_every_position() {
    let long = "y".repeat(29);
    for value in [
        "é",
        "東京",
        "😀",
        "a😀b",
        "Zürich\\n",
        "\\u00e9€",
        &format!("{long}€{long}😀"),
    ] {
        let body =
            format!(r#"{{"method":"{value}","params":{{"name":"{value}","k€y":["{value}"]}}}}"#);
        let message = single(&body);
        let expected: serde_json::Value = serde_json::from_str(&format!(r#""{value}""#)).unwrap();
        assert_eq!(message.method.as_deref(), expected.as_str(), "{body}");
        assert_eq!(message.name.as_deref(), expected.as_str(), "{body}");
    }
}

#[test]
fn strings_end_at_the_right_quote_at_every_alignment() {
    for len in 0..40 {
        for special in ["\\\"", "\\\\", "\\n", "\\u0041", "é", "\"x"] {
            let name = format!("{}{special}{}", "n".repeat(len), "m".repeat(len % 9));
            let body = format!(r#"{{"params":{{"name":"{name}"}},"method":"m"}}"#);
            let parsed: serde_json::Value = match serde_json::from_str(&body) {
                Ok(parsed) => parsed,
                Err(_) => {
                    assert!(scan(body.as_bytes()).is_err(), "{body}");
                    continue;
                }
            };
            let message = single(&body);
            assert_eq!(
                message.name.as_deref(),
                parsed.pointer("/params/name").and_then(|v| v.as_str()),
                "{body}"
            );
            assert_eq!(message.method.as_deref(), Some("m"), "{body}");
        }
    }
}

#[test]
fn very_deep_nesting_does_not_overflow_the_stack() {
    for depth in [1_000, 100_000, 1_000_000] {
        let deep = format!(
            r#"{{"method":"x","params":{{"arguments":{}{},"_meta":{{"traceparent":"{TP}"}}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(traceparent(&single(&deep)), Some(TP), "depth {depth}");
        let unbalanced = format!(r#"{{"params":{}}}"#, "{\"a\":".repeat(depth));
        assert_eq!(scan(unbalanced.as_bytes()), Err(NotMcp::InvalidJson));
    }
}

/// How a body fared against serde_json in [`cross_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// serde_json reads an object or array, and the scan agrees on every recorded field.
    Messages,
    /// serde_json reads a scalar; the scan says it is not a message.
    Scalar,
    /// Both reject it.
    Rejected,
    /// The scan accepts valid JSON that serde_json refuses for a limit of its own (lone
    /// surrogate escapes, numbers beyond `f64`, nesting past 128).
    SerdeStricter,
}

/// Compares the scan of `body` with serde_json's reading of it, field by field, and says how
/// the body fared. Panics on any disagreement.
fn cross_check(body: &[u8]) -> Verdict {
    let shown = String::from_utf8_lossy(body);
    let scanned = scan(body);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => {
            let scanned = scanned.unwrap_or_else(|e| panic!("{e:?} for valid JSON: {shown}"));
            assert!(!scanned.batch, "{shown}");
            assert_eq!(scanned.messages.len(), 1, "{shown}");
            compare_message(body, &scanned.messages[0], &object);
            Verdict::Messages
        }
        Ok(serde_json::Value::Array(elements)) => {
            let scanned = scanned.unwrap_or_else(|e| panic!("{e:?} for valid JSON: {shown}"));
            assert!(scanned.batch, "{shown}");
            let objects: Vec<_> = elements.iter().filter_map(|e| e.as_object()).collect();
            assert_eq!(scanned.messages.len(), objects.len(), "messages of {shown}");
            for (message, object) in scanned.messages.iter().zip(objects) {
                compare_message(body, message, object);
            }
            Verdict::Messages
        }
        Ok(_) => {
            assert_eq!(scanned, Err(NotMcp::NotAMessage), "{shown}");
            Verdict::Scalar
        }
        Err(error) => {
            if scanned.is_err() {
                return Verdict::Rejected;
            }
            if let Err(again) = serde_json::from_slice::<serde_json::Value>(&no_surrogates(body)) {
                let reason = again.to_string();
                assert!(
                    reason.contains("recursion limit") || reason.contains("number out of range"),
                    "scan accepted a body serde_json rejects ({error}): {shown}"
                );
            }
            Verdict::SerdeStricter
        }
    }
}

/// `body` with each `\u` escape of a UTF-16 surrogate made `\u0041`: what serde_json refuses
/// as a lone surrogate becomes ordinary text of the same length.
fn no_surrogates(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let mut i = 0;
    while i + 1 < out.len() {
        if out[i] == b'\\' && out[i + 1] == b'u' {
            let unit = out
                .get(i + 2..i + 6)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u32::from_str_radix(hex, 16).ok());
            if unit.is_some_and(|u| (0xD800..0xE000).contains(&u)) {
                out[i + 2..i + 6].copy_from_slice(b"0041");
            }
        }
        // A backslash always takes the next byte with it (`\\u` is no escape).
        i += if out[i] == b'\\' { 2 } else { 1 };
    }
    out
}

/// Every field the scanner records equals what serde_json finds at the same path (both keep
/// the last of duplicated keys), and each `_meta` string's raw range holds its JSON text.
fn compare_message(
    body: &[u8],
    message: &Message,
    object: &serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::Value;
    let shown = String::from_utf8_lossy(body);
    let text = |map: &serde_json::Map<String, Value>, key: &str| {
        map.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    assert_eq!(message.jsonrpc, text(object, "jsonrpc"), "jsonrpc: {shown}");
    assert_eq!(message.method, text(object, "method"), "method: {shown}");
    let same_id = match (object.get("id"), &message.id) {
        (Some(Value::Number(n)), Some(RequestId::Number(raw))) => {
            serde_json::from_str::<Value>(raw).ok() == Some(Value::Number(n.clone()))
        }
        (Some(Value::String(s)), Some(RequestId::String(scanned))) => s == scanned,
        (Some(Value::Null), Some(RequestId::Null)) => true,
        (None | Some(Value::Bool(_) | Value::Array(_) | Value::Object(_)), None) => true,
        _ => false,
    };
    assert!(
        same_id,
        "id {:?} read as {:?}: {shown}",
        object.get("id"),
        message.id
    );

    let params = object.get("params").and_then(Value::as_object);
    assert_eq!(
        message.name,
        params.and_then(|p| text(p, "name")),
        "name: {shown}"
    );
    assert_eq!(
        message.uri,
        params.and_then(|p| text(p, "uri")),
        "uri: {shown}"
    );
    let meta = params.and_then(|p| p.get("_meta"));
    assert_eq!(
        message.meta.not_an_object,
        meta.is_some_and(|m| !m.is_object()),
        "_meta not an object: {shown}"
    );
    let meta = meta.and_then(Value::as_object);
    for (key, scanned) in [
        ("traceparent", &message.meta.traceparent),
        ("tracestate", &message.meta.tracestate),
        ("baggage", &message.meta.baggage),
    ] {
        match (meta.and_then(|m| m.get(key)), scanned) {
            (None, None) => {}
            (Some(Value::String(expected)), Some(MetaValue::Text(found))) => {
                assert_eq!(expected, &found.value, "_meta.{key}: {shown}");
                check_raw_range(body, found);
            }
            (Some(expected), Some(MetaValue::Unusable)) if !expected.is_string() => {}
            (expected, found) => panic!("_meta.{key}: {expected:?} read as {found:?}: {shown}"),
        }
    }
    assert_eq!(
        message.meta.protocol_version,
        meta.and_then(|m| text(m, "io.modelcontextprotocol/protocolVersion")),
        "_meta protocol version: {shown}"
    );

    // `error` and `result`: present whatever their type; `code` when `error.code` is a
    // number (exactly as written), `isError` when `result.isError` is `true`.
    match (object.get("error"), &message.error) {
        (None, None) => {}
        (Some(error), Some(found)) => {
            let expected = error.get("code").filter(|c| c.is_number());
            let code = found
                .code
                .as_deref()
                .map(|c| serde_json::from_str::<Value>(c).ok());
            assert_eq!(
                code,
                expected.map(|c| Some(c.clone())),
                "error.code: {shown}"
            );
        }
        (expected, found) => panic!("error: {expected:?} read as {found:?}: {shown}"),
    }
    match (object.get("result"), &message.result) {
        (None, None) => {}
        (Some(result), Some(found)) => {
            let expected = result.get("isError") == Some(&Value::Bool(true));
            assert_eq!(found.is_error, expected, "result.isError: {shown}");
        }
        (expected, found) => panic!("result: {expected:?} read as {found:?}: {shown}"),
    }
}

/// A `_meta` string's raw range sits between its quotes and is the JSON text of its value.
fn check_raw_range(body: &[u8], text: &mcp_trace_filter::mcp::MetaText) {
    let raw = &body[text.raw.clone()];
    assert_eq!(body[text.raw.start - 1], b'"');
    assert_eq!(body[text.raw.end], b'"');
    assert_eq!(text.escaped, raw.contains(&b'\\'));
    let quoted = [&b"\""[..], raw, b"\""].concat();
    let decoded: String = serde_json::from_slice(&quoted).unwrap();
    assert_eq!(decoded, text.value);
}

#[test]
fn agrees_with_serde_json_on_fixed_documents() {
    let documents = [
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","uri":"u","_meta":{{"traceparent":"{TP}","tracestate":"a=1","baggage":"k=v","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}}}}"#
        ),
        // Escaped keys and values, and the last duplicate of every field winning.
        format!(
            r#"{{"\u006aSONrpc":1,"jsonrpc":"1.0","jsonrpc":"2.\u0030","method":5,"method":"ping","id":"a","id":-1.5E+3,"params":{{"name":"x","_meta":{{"traceparent":"old"}}}},"params":{{"uri":"\ud83d\ude00","\u005fmeta":{{"trace\u0070arent":"{TP}","baggage":1,"baggage":"k=\u0076"}}}}}}"#
        ),
        r#"{"error":{"code":-32601,"code":"x"},"result":{"isError":true,"isError":1}}"#.to_owned(),
        r#"{"error":{"code":"x","code":-32601.5e2},"result":{"isError":false,"isError":true}}"#
            .to_owned(),
        r#"{"error":5,"result":[{"isError":true}],"id":true,"params":{"_meta":null}}"#.to_owned(),
        r#"{"params":{"_meta":{"traceparent":"x"},"_meta":{"tracestate":"\t"}},"id":null}"#
            .to_owned(),
        r#"[{"method":"a"},1,[{"method":"nested"}],{"method":"b","params":[{"name":"x"}]},"s"]"#
            .to_owned(),
        r#"{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":-0.5e-3,"params":{"name":"\"\\\/"}}"#
            .to_owned(),
        r#"[{"a":{}},[],[[]],{"b":[{}]}]"#.to_owned(),
        r#"{"params":{"uri":"a","name":"n","uri":"b","name":5,"x":{"uri":"c"}}}"#.to_owned(),
    ];
    for document in &documents {
        assert_eq!(
            cross_check(document.as_bytes()),
            Verdict::Messages,
            "{document}"
        );
    }
    // Valid JSON serde_json refuses: the scan accepts it.
    for document in [r#"{"a":1e400}"#, r#"{"a":"\ud800"}"#] {
        assert_eq!(
            cross_check(document.as_bytes()),
            Verdict::SerdeStricter,
            "{document}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Generated documents: text built from the JSON grammar (so duplicate keys, escapes and every
// number form occur, which a serialised `serde_json::Value` never has), MCP-shaped most of the
// time, then often broken by a few byte edits.

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(String::new()), 1 => "[ \t\r\n]{1,3}"]
}

/// The JSON string literal of `text`; the characters whose bit is set in `escapes` (and those
/// that must be) are written as escapes.
fn literal(text: &str, escapes: u64) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        let must = matches!(c, '"' | '\\') || u32::from(c) < 0x20;
        if !must && escapes & (1 << (i % 64)) == 0 {
            out.push(c);
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '/' => out.push_str("\\/"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn escapes() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(0u64), 1 => any::<u64>()]
}

/// A string literal of `text` (sometimes with escapes).
fn string_of(text: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (text, escapes()).prop_map(|(text, escapes)| literal(&text, escapes))
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => string_of("[a-z/_.]{0,10}"),
        20 => string_of(".{0,8}"),
        10 => string_of(Just(TP.to_owned())),
        // A lone surrogate escape: valid JSON, refused by serde_json.
        1 => Just(r#""\ud800x""#.to_owned()),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
        1 => Just("1e400".to_owned()),
    ]
}

fn json_text() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        3 => any_string(),
        3 => number(),
        1 => prop_oneof![Just("true"), Just("false"), Just("null")].prop_map(str::to_owned),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone(), ws()), 0..5)
                .prop_map(|items| format!("[{}]", joined(items))),
            prop::collection::vec((any_key(), inner), 0..5).prop_map(|members| object(&members)),
        ]
    })
    .boxed()
}

fn joined(items: Vec<(String, String, String)>) -> String {
    let items: Vec<String> = items.into_iter().map(|(a, v, b)| a + &v + &b).collect();
    items.join(",")
}

fn object(members: &[(String, String)]) -> String {
    let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", members.join(","))
}

/// The key `name`, sometimes escaped, with whitespace around it.
fn key(name: &'static str) -> impl Strategy<Value = String> {
    (ws(), string_of(Just(name.to_owned())), ws()).prop_map(|(a, k, b)| a + &k + &b)
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        key("params"),
        key("_meta"),
        key("traceparent"),
        key("method"),
        (ws(), any_string()).prop_map(|(a, k)| a + &k),
    ]
}

/// An object whose members come from `member`, duplicates allowed.
fn object_of(member: impl Strategy<Value = (String, String)>) -> impl Strategy<Value = String> {
    prop::collection::vec(member, 0..6).prop_map(|members| object(&members))
}

fn meta() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        6 => (key("traceparent"), prop_oneof![4 => string_of(Just(TP.to_owned())), 1 => json_text()]),
        2 => (key("tracestate"), prop_oneof![string_of("[a-z]=[0-9]"), json_text()]),
        2 => (key("baggage"), prop_oneof![string_of("[a-z]=[a-z]"), json_text()]),
        1 => (
            key("io.modelcontextprotocol/protocolVersion"),
            prop_oneof![string_of(Just("2026-07-28".to_owned())), json_text()]
        ),
        1 => (any_key(), json_text()),
    ];
    prop_oneof![6 => object_of(member), 1 => json_text()]
}

fn params() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        3 => (key("name"), prop_oneof![3 => any_string(), 1 => json_text()]),
        3 => (key("uri"), prop_oneof![3 => any_string(), 1 => json_text()]),
        1 => (key("arguments"), json_text()),
        6 => (key("_meta"), meta()),
    ];
    prop_oneof![6 => object_of(member), 1 => json_text()]
}

fn message() -> impl Strategy<Value = String> {
    let method = prop_oneof![
        string_of(prop_oneof![
            Just("tools/call".to_owned()),
            Just("ping".to_owned())
        ]),
        json_text(),
    ];
    let error = object_of(prop_oneof![
        (key("code"), prop_oneof![number(), json_text()]),
        (key("message"), any_string()),
    ]);
    let result = object_of((
        key("isError"),
        prop_oneof![Just("true".to_owned()), json_text()],
    ));
    let member = prop_oneof![
        2 => (key("jsonrpc"), prop_oneof![string_of(Just("2.0".to_owned())), json_text()]),
        2 => (key("method"), method),
        2 => (key("id"), prop_oneof![number(), any_string(), json_text()]),
        8 => (key("params"), params().boxed()),
        1 => (key("error"), prop_oneof![error.boxed(), json_text()]),
        1 => (key("result"), prop_oneof![result.boxed(), json_text()]),
        1 => (any_key(), json_text()),
    ];
    object_of(member)
}

/// A `tools/call` with a `_meta.traceparent`, its members (and those of `params` and `_meta`)
/// in any order, among others.
fn call() -> impl Strategy<Value = String> {
    let meta = (
        (key("traceparent"), string_of(Just(TP.to_owned()))),
        prop::collection::vec(
            prop_oneof![
                (key("tracestate"), string_of("[a-z]=[0-9]")),
                (key("baggage"), string_of("[a-z]=[a-z]")),
                (any_key(), json_text()),
            ],
            0..3,
        ),
    )
        .prop_flat_map(|(traceparent, mut others)| {
            others.push(traceparent);
            Just(others).prop_shuffle()
        })
        .prop_map(|members| object(&members));
    let params = (
        (key("name"), any_string()),
        (key("_meta"), meta),
        prop::collection::vec((any_key(), json_text()), 0..2),
    )
        .prop_flat_map(|(name, meta, mut others)| {
            others.extend([name, meta]);
            Just(others).prop_shuffle()
        })
        .prop_map(|members| object(&members));
    (
        (key("jsonrpc"), string_of(Just("2.0".to_owned()))),
        (key("id"), number()),
        (key("method"), string_of(Just("tools/call".to_owned()))),
        (key("params"), params),
    )
        .prop_flat_map(|(a, b, c, d)| Just(vec![a, b, c, d]).prop_shuffle())
        .prop_map(|members| object(&members))
}

fn document() -> impl Strategy<Value = String> {
    let element = prop_oneof![3 => message().boxed(), 2 => call().boxed(), 1 => json_text()];
    let batch = prop::collection::vec((ws(), element, ws()), 0..4)
        .prop_map(|items| format!("[{}]", joined(items)));
    let top = prop_oneof![
        3 => message().boxed(),
        3 => call().boxed(),
        2 => batch.boxed(),
        1 => json_text(),
    ];
    (ws(), top, ws()).prop_map(|(a, d, b)| a + &d + &b)
}

/// A byte edit: delete, insert, replace, or cut the body there.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Replace(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop::sample::select(
        b"{}[]\",:\\ \t0123456789-+.eEtrufalsn\x00\x1f\x7f\xc3\xa9\xff".to_vec(),
    );
    let at = any::<prop::sample::Index>;
    prop_oneof![
        (at()).prop_map(Edit::Delete),
        (at(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (at(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
        (at()).prop_map(Edit::Truncate),
    ]
}

fn apply(mut body: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if body.is_empty() {
            break;
        }
        match edit {
            Edit::Delete(at) => {
                body.remove(at.index(body.len()));
            }
            Edit::Insert(at, byte) => body.insert(at.index(body.len() + 1), *byte),
            Edit::Replace(at, byte) => {
                let at = at.index(body.len());
                body[at] = *byte;
            }
            Edit::Truncate(at) => body.truncate(at.index(body.len())),
        }
    }
    body
}

/// What the generated bodies covered.
#[derive(Debug, Default)]
struct Coverage {
    cases: usize,
    messages: usize,
    scalars: usize,
    rejected: usize,
    serde_stricter: usize,
    /// Valid bodies with a `_meta.traceparent` string recorded.
    traceparents: usize,
    /// Valid bodies whose `_meta` values include an escaped one.
    escaped_meta: usize,
    batches: usize,
}

#[test]
fn generated_documents_agree_with_serde_json() {
    // Nested strategies take a deep stack in unoptimised builds.
    let run = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(cross_check_generated_documents)
        .unwrap();
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic);
    }
}

fn cross_check_generated_documents() {
    let input = prop_oneof![
        6 => (document(), prop_oneof![Just(vec![]), prop::collection::vec(edit(), 1..4)])
            .prop_map(|(doc, edits)| apply(doc.into_bytes(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let config = ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let coverage = std::cell::RefCell::new(Coverage::default());
    let outcome = runner.run(&input, |body| {
        let verdict = cross_check(&body);
        let mut seen = coverage.borrow_mut();
        seen.cases += 1;
        match verdict {
            Verdict::Messages => seen.messages += 1,
            Verdict::Scalar => seen.scalars += 1,
            Verdict::Rejected => seen.rejected += 1,
            Verdict::SerdeStricter => seen.serde_stricter += 1,
        }
        if let (Verdict::Messages, Ok(scanned)) = (verdict, scan(&body)) {
            let texts: Vec<&MetaText> = scanned
                .messages
                .iter()
                .flat_map(|m| [&m.meta.traceparent, &m.meta.tracestate, &m.meta.baggage])
                .filter_map(|v| match v {
                    Some(MetaValue::Text(text)) => Some(text),
                    _ => None,
                })
                .collect();
            let traceparent = scanned
                .messages
                .iter()
                .any(|m| matches!(m.meta.traceparent, Some(MetaValue::Text(_))));
            seen.traceparents += usize::from(traceparent);
            seen.escaped_meta += usize::from(texts.iter().any(|t| t.escaped));
            seen.batches += usize::from(scanned.batch);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let seen = coverage.into_inner();
    println!("{seen:?}");
    // The comparison only means something if it is reached: a generator that stops producing
    // valid documents (or broken ones) fails here rather than passing vacuously.
    let at_least = |count: usize, percent: usize, what: &str| {
        assert!(
            count * 100 >= seen.cases * percent,
            "only {count} of {} cases {what}: {seen:?}",
            seen.cases
        );
    };
    at_least(
        seen.messages,
        40,
        "were valid messages compared field by field",
    );
    at_least(seen.rejected, 15, "were rejected by both");
    at_least(seen.traceparents, 10, "recorded a _meta.traceparent");
    at_least(seen.escaped_meta, 2, "recorded an escaped _meta value");
    at_least(seen.batches, 5, "were batches");
    at_least(
        seen.serde_stricter,
        1,
        "were valid JSON only the scan accepts",
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".*".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("params".to_string()),
                    Just("_meta".to_string()),
                    Just("traceparent".to_string()),
                    ".*"
                ],
                inner,
                0..8
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Valid JSON objects and arrays always scan, and the `_meta` values read are exactly what
    /// a JSON parser finds at `$.params._meta`.
    #[test]
    fn matches_a_json_parser(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        };
        let text = text.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let result = scan(text.as_bytes());
        match &value {
            serde_json::Value::Object(_) => {
                let scanned = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                prop_assert_eq!(scanned.messages.len(), 1);
                let expected = value.pointer("/params/_meta/traceparent").and_then(|v| v.as_str());
                prop_assert_eq!(traceparent(&scanned.messages[0]), expected);
            }
            serde_json::Value::Array(_) => prop_assert!(result.is_ok()),
            _ => prop_assert_eq!(result, Err(NotMcp::NotAMessage)),
        }
    }

    /// A body with non-UTF-8 bytes put anywhere is never accepted (JSON text is UTF-8).
    #[test]
    fn invalid_utf8_is_always_classified(
        value in json_value(),
        at in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(128u8..=255, 1..4),
    ) {
        let text = serde_json::to_string(&serde_json::json!({"params": value}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut body = text.into_bytes();
        let at = at.index(body.len());
        body.splice(at..at, bytes);
        let result = scan(&body);
        if std::str::from_utf8(&body).is_err() {
            prop_assert_eq!(result, Err(NotMcp::InvalidJson));
        }
    }

    /// Truncating a valid body anywhere makes it not MCP.
    #[test]
    fn truncation_is_detected(value in json_value(), cut in any::<prop::sample::Index>()) {
        let text = serde_json::to_string(&serde_json::json!({"params": value}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let end = cut.index(text.len());
        prop_assert!(scan(&text.as_bytes()[..end]).is_err());
    }
}
