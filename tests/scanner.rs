//! The MCP body scanner against hand-written bodies and generated JSON.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::mcp::{scan, Message, MetaValue, NotMcp, RequestId, ScannedBody};
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
            messages: vec![Message::default()]
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

#[test]
fn agrees_with_serde_json_on_fixed_documents() {
    let documents = [
        r#"{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":-0.5e-3}"#,
        r#"{"a":"\""}"#,
        r#"[{"a":{}},[],[[]],{"b":[{}]}]"#,
        r#"{"a":1e400}"#,
        r#"{"a":"\ud800"}"#,
    ];
    for document in documents {
        assert!(scan(document.as_bytes()).is_ok(), "{document}");
    }
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

    /// Arbitrary bytes never panic, and whatever scans is valid JSON to serde_json as well
    /// (serde_json stops at depth 128 and rejects lone surrogates, so those are skipped).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if scan(&bytes).is_ok() {
            let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            prop_assert!(parsed.is_ok() || text.contains("\\u"), "{:?}", text);
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
