//! `_meta` injection: exact bytes on hand-written bodies, and a generated cross-check against
//! serde_json as an independent oracle.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::mcp::{scan, Message, MetaLevel, MetaSite, MetaValue};
use mcp_trace_filter::meta_inject::{inject, TraceFields};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn tp_only() -> TraceFields<'static> {
    TraceFields {
        traceparent: Some(TP),
        ..TraceFields::default()
    }
}

fn messages(body: &[u8]) -> Vec<Message> {
    match scan(body) {
        Ok(scanned) => scanned.messages,
        Err(e) => panic!("{e:?}: {}", String::from_utf8_lossy(body)),
    }
}

fn text(value: &Option<MetaValue>) -> Option<&str> {
    value.as_ref().and_then(MetaValue::text)
}

/// Injects `fields` into message `index` of `body`, checks the exact result, that it is JSON,
/// and that a new scan finds the fields in that same message.
fn injects(body: &str, index: usize, fields: TraceFields<'_>, expected: &str) {
    let before = messages(body.as_bytes());
    let result = inject(body.as_bytes(), &before[index], &fields)
        .unwrap_or_else(|| panic!("refused: {body}"));
    assert_eq!(String::from_utf8(result.clone()).unwrap(), expected);
    serde_json::from_slice::<Value>(&result).unwrap();
    let after = messages(&result);
    assert_eq!(after.len(), before.len());
    // Each field is the inserted value, or the one that was there.
    let (old, new) = (&before[index].meta, &after[index].meta);
    assert_eq!(
        text(&new.traceparent),
        fields.traceparent.or(text(&old.traceparent))
    );
    assert_eq!(
        text(&new.tracestate),
        fields.tracestate.or(text(&old.tracestate))
    );
    assert_eq!(text(&new.baggage), fields.baggage.or(text(&old.baggage)));
    assert!(matches!(
        after[index].meta_site,
        MetaSite::Object {
            level: MetaLevel::Meta,
            empty: false,
            ..
        }
    ));
}

fn refused(body: &str, fields: TraceFields<'_>) {
    let message = &messages(body.as_bytes())[0];
    assert_eq!(inject(body.as_bytes(), message, &fields), None, "{body}");
}

#[test]
fn creates_params_when_there_is_none() {
    injects(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        0,
        tp_only(),
        &format!(
            r#"{{"params":{{"_meta":{{"traceparent":"{TP}"}}}},"jsonrpc":"2.0","id":1,"method":"ping"}}"#
        ),
    );
}

#[test]
fn creates_params_in_an_empty_message() {
    injects(
        "{}",
        0,
        tp_only(),
        &format!(r#"{{"params":{{"_meta":{{"traceparent":"{TP}"}}}}}}"#),
    );
    injects(
        " { \n } ",
        0,
        tp_only(),
        &format!(" {{\"params\":{{\"_meta\":{{\"traceparent\":\"{TP}\"}}}} \n }} "),
    );
}

#[test]
fn creates_meta_in_params_without_one() {
    injects(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"_meta":{}}}}"#,
        0,
        tp_only(),
        &format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{"traceparent":"{TP}"}},"name":"t","arguments":{{"_meta":{{}}}}}}}}"#
        ),
    );
}

#[test]
fn creates_meta_in_empty_params() {
    injects(
        r#"{"method":"m","params":{}}"#,
        0,
        tp_only(),
        &format!(r#"{{"method":"m","params":{{"_meta":{{"traceparent":"{TP}"}}}}}}"#),
    );
    injects(
        "{\"method\":\"m\",\"params\":{\t}}",
        0,
        tp_only(),
        &format!("{{\"method\":\"m\",\"params\":{{\"_meta\":{{\"traceparent\":\"{TP}\"}}\t}}}}"),
    );
}

#[test]
fn fills_an_empty_meta() {
    injects(
        r#"{"method":"m","params":{"_meta":{}}}"#,
        0,
        tp_only(),
        &format!(r#"{{"method":"m","params":{{"_meta":{{"traceparent":"{TP}"}}}}}}"#),
    );
}

#[test]
fn adds_to_a_meta_with_other_keys() {
    let body = r#"{"method":"m","params":{"_meta":{"progressToken":1,"tracestate":"a=1"}}}"#;
    injects(
        body,
        0,
        tp_only(),
        &format!(
            r#"{{"method":"m","params":{{"_meta":{{"traceparent":"{TP}","progressToken":1,"tracestate":"a=1"}}}}}}"#
        ),
    );
    // The scan's tracestate is the one already there; inserting another would duplicate it.
    refused(
        body,
        TraceFields {
            traceparent: Some(TP),
            tracestate: Some("b=2"),
            baggage: None,
        },
    );
}

#[test]
fn keeps_whitespace_and_newlines() {
    let body = "\n{\n  \"method\": \"m\",\n  \"params\": {\n    \"_meta\": {\n      \"progressToken\": \"p\"\n    }\n  }\n}\n";
    let expected = format!("\n{{\n  \"method\": \"m\",\n  \"params\": {{\n    \"_meta\": {{\"traceparent\":\"{TP}\",\n      \"progressToken\": \"p\"\n    }}\n  }}\n}}\n");
    injects(body, 0, tp_only(), &expected);
    let body = "{ \"method\" : \"m\" , \"params\" : { \"name\" : \"t\" } }";
    let expected = format!("{{\"_meta\":{{\"traceparent\":\"{TP}\"}}, ");
    let expected = format!("{{ \"method\" : \"m\" , \"params\" : {expected}\"name\" : \"t\" }} }}");
    injects(body, 0, tp_only(), &expected);
}

#[test]
fn writes_all_three_fields_escaped() {
    let fields = TraceFields {
        traceparent: Some(TP),
        tracestate: Some("a=\"1\"\\b"),
        baggage: Some("k=v\n\u{1}\u{1f}é\u{1F600}\t\r/"),
    };
    injects(
        r#"{"method":"m"}"#,
        0,
        fields,
        &format!(
            r#"{{"params":{{"_meta":{{"traceparent":"{TP}","tracestate":"a=\"1\"\\b","baggage":"k=v\n\u0001\u001fé{}\t\r/"}}}},"method":"m"}}"#,
            '\u{1F600}'
        ),
    );
}

#[test]
fn injects_into_the_chosen_message_of_a_batch() {
    let body = r#"[{"method":"a","id":1},{"method":"b","id":2,"params":{}}]"#;
    injects(
        body,
        0,
        tp_only(),
        &format!(
            r#"[{{"params":{{"_meta":{{"traceparent":"{TP}"}}}},"method":"a","id":1}},{{"method":"b","id":2,"params":{{}}}}]"#
        ),
    );
    injects(
        body,
        1,
        tp_only(),
        &format!(
            r#"[{{"method":"a","id":1}},{{"method":"b","id":2,"params":{{"_meta":{{"traceparent":"{TP}"}}}}}}]"#
        ),
    );
    let first = &messages(body.as_bytes())[0];
    let result = inject(body.as_bytes(), first, &tp_only()).unwrap();
    let after = messages(&result);
    assert_eq!(after[1].meta.traceparent, None);
    assert_eq!(after[1].method.as_deref(), Some("b"));
}

#[test]
fn recognises_escaped_keys() {
    injects(
        r#"{"par\u0061ms":{"\u005fmeta":{}}}"#,
        0,
        tp_only(),
        &format!(r#"{{"par\u0061ms":{{"\u005fmeta":{{"traceparent":"{TP}"}}}}}}"#),
    );
    refused(
        r#"{"params":{"_meta":{"trace\u0070arent":"x"}}}"#,
        tp_only(),
    );
}

#[test]
fn refuses_params_that_is_not_an_object() {
    for params in ["[1,2]", "[]", "null", "\"x\"", "1", "true"] {
        refused(&format!(r#"{{"method":"m","params":{params}}}"#), tp_only());
    }
}

#[test]
fn refuses_duplicated_params() {
    for body in [
        r#"{"params":{},"params":{}}"#,
        r#"{"params":1,"params":{}}"#,
        r#"{"params":{},"params":1}"#,
        r#"{"params":{"_meta":{}},"params":{"name":"x"}}"#,
        r#"{"params":{"name":"x"},"params":{"_meta":{}}}"#,
        r#"{"params":{},"par\u0061ms":{}}"#,
    ] {
        refused(body, tp_only());
    }
}

#[test]
fn refuses_meta_that_is_null_duplicated_or_not_an_object() {
    for meta in [
        "null",
        "[]",
        "\"x\"",
        "{},\"_meta\":{}",
        "1,\"_meta\":{}",
        "{},\"_meta\":1",
    ] {
        refused(
            &format!(r#"{{"method":"m","params":{{"_meta":{meta}}}}}"#),
            tp_only(),
        );
    }
}

#[test]
fn refuses_a_key_already_present() {
    for value in [
        format!("\"{TP}\""),
        "1".into(),
        "null".into(),
        "\"\"".into(),
    ] {
        refused(
            &format!(r#"{{"params":{{"_meta":{{"traceparent":{value}}}}}}}"#),
            tp_only(),
        );
    }
    refused(
        r#"{"params":{"_meta":{"baggage":"k=v"}}}"#,
        TraceFields {
            baggage: Some("a=b"),
            ..TraceFields::default()
        },
    );
}

#[test]
fn refuses_nothing_to_insert() {
    refused(r#"{"method":"m"}"#, TraceFields::default());
}

#[test]
fn refuses_a_site_from_another_body() {
    let message = &messages(br#"{"method":"m","params":{}}"#)[0];
    for other in [
        &b"{\"method\":\"m\"}"[..],
        b"{}",
        b"[]",
        b"",
        b"{\"a\":{\"b\":1}}",
    ] {
        assert_eq!(inject(other, message, &tp_only()), None);
    }
    assert_eq!(inject(b"{}", &Message::default(), &tp_only()), None);
}

#[test]
fn records_the_site_of_each_message() {
    let site = |body: &str| {
        messages(body.as_bytes())
            .iter()
            .map(|m| m.meta_site)
            .collect::<Vec<_>>()
    };
    let object = |level, at, empty| MetaSite::Object { level, at, empty };
    assert_eq!(site("{}"), [object(MetaLevel::Message, 1, true)]);
    assert_eq!(
        site(r#"[ {"a":1}, {"params":{ }} ,{"params":{"_meta":{"x":{}}}}]"#),
        [
            object(MetaLevel::Message, 3, false),
            object(MetaLevel::Params, 22, true),
            object(MetaLevel::Meta, 47, false),
        ]
    );
    // Only `$.params._meta` counts: nested look-alikes leave the site where it is.
    assert_eq!(
        site(r#"{"result":{"params":{}},"params":{"arguments":{"_meta":{}}}}"#),
        [object(MetaLevel::Params, 34, false)]
    );
    // Empty objects elsewhere say nothing about the site.
    assert_eq!(
        site(r#"{"params":{"a":{}},"error":{},"result":{},"x":[]}"#),
        [object(MetaLevel::Params, 11, false)]
    );
    assert_eq!(site(r#"{"params":[]}"#), [MetaSite::Unsafe]);
    assert_eq!(site(r#"{"params":{"_meta":null}}"#), [MetaSite::Unsafe]);
}

// ---- Generated bodies, checked against serde_json ------------------------------------------

/// A JSON value to render, with its own choice of how to write strings.
#[derive(Debug, Clone)]
enum Node {
    Literal(&'static str),
    Number(String),
    Str(Text),
    Array(Vec<Node>),
    Object(Vec<(Text, Node)>),
}

/// A string and whether every character of it is written as a `\u` escape.
#[derive(Debug, Clone)]
struct Text {
    value: String,
    escape_all: bool,
}

fn text_of(value: &str, escape_all: bool) -> Text {
    Text {
        value: value.to_owned(),
        escape_all,
    }
}

/// Renders nodes with whitespace taken in turn from a generated list.
struct Writer<'a> {
    out: String,
    spaces: &'a [&'static str],
    next: usize,
}

impl Writer<'_> {
    fn space(&mut self) {
        if !self.spaces.is_empty() {
            self.out
                .push_str(self.spaces[self.next % self.spaces.len()]);
            self.next += 1;
        }
    }

    fn string(&mut self, text: &Text) {
        self.out.push('"');
        for c in text.value.chars() {
            if text.escape_all {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    self.out.push_str(&format!("\\u{unit:04X}"));
                }
                continue;
            }
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '/' => self.out.push_str("\\/"),
                '\n' => self.out.push_str("\\n"),
                c if u32::from(c) < 0x20 => self.out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::Literal(text) => self.out.push_str(text),
            Node::Number(text) => self.out.push_str(text),
            Node::Str(text) => self.string(text),
            Node::Array(items) => {
                self.out.push('[');
                self.space();
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                        self.space();
                    }
                    self.node(item);
                    self.space();
                }
                self.out.push(']');
            }
            Node::Object(members) => {
                self.out.push('{');
                self.space();
                for (index, (key, value)) in members.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                        self.space();
                    }
                    self.string(key);
                    self.space();
                    self.out.push(':');
                    self.space();
                    self.node(value);
                    self.space();
                }
                self.out.push('}');
            }
        }
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{1,8}", "(?s).{0,6}", Just("_meta".to_string())]
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        prop::sample::select(vec!["null", "true", "false"]).prop_map(Node::Literal),
        "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?".prop_map(Node::Number),
        (any_text(), any::<bool>()).prop_map(|(v, e)| Node::Str(text_of(&v, e))),
    ]
}

fn value() -> BoxedStrategy<Node> {
    leaf()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Array),
                members(inner, &[]).prop_map(Node::Object),
            ]
        })
        .boxed()
}

/// Up to three members with distinct keys (none of `excluded`), in random order.
fn members(
    values: impl Strategy<Value = Node> + Clone + 'static,
    excluded: &'static [&'static str],
) -> BoxedStrategy<Vec<(Text, Node)>> {
    prop::collection::btree_map(
        (
            prop_oneof![
                any_text(),
                prop::sample::select(vec!["params", "traceparent", "method", "result", "error"])
                    .prop_map(String::from)
            ],
            any::<bool>(),
        ),
        values,
        0..3,
    )
    .prop_map(move |map| {
        let mut seen = BTreeMap::new();
        for ((key, escape_all), value) in map {
            if !excluded.contains(&key.as_str()) {
                seen.insert(key.clone(), (text_of(&key, escape_all), value));
            }
        }
        seen.into_values().collect::<Vec<_>>()
    })
    .prop_shuffle()
    .boxed()
}

/// What a generated `params` or `_meta` member is.
#[derive(Debug, Clone)]
enum Shape {
    Absent,
    /// An object with these members.
    Object(Vec<(Text, Node)>),
    /// A value that is not an object.
    NotObject(Node),
    /// The key twice: an object, then this value.
    Twice(Vec<(Text, Node)>, Node),
}

impl Shape {
    fn is_safe(&self) -> bool {
        matches!(self, Shape::Absent | Shape::Object(_))
    }

    /// Inserts the member `key` at `at` among `members`.
    fn place(self, key: &str, escape: bool, at: Index, members: &mut Vec<(Text, Node)>) {
        let key = text_of(key, escape);
        match self {
            Shape::Absent => {}
            Shape::Object(inner) => {
                members.insert(at.index(members.len() + 1), (key, Node::Object(inner)))
            }
            Shape::NotObject(value) => members.insert(at.index(members.len() + 1), (key, value)),
            Shape::Twice(inner, value) => {
                members.insert(
                    at.index(members.len() + 1),
                    (key.clone(), Node::Object(inner)),
                );
                members.push((key, value));
            }
        }
    }
}

fn not_object() -> impl Strategy<Value = Node> {
    prop_oneof![
        leaf(),
        prop::collection::vec(value(), 0..3).prop_map(Node::Array)
    ]
}

fn shape(
    objects: impl Strategy<Value = Vec<(Text, Node)>> + Clone,
) -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => Just(Shape::Absent),
        6 => objects.clone().prop_map(Shape::Object),
        1 => not_object().prop_map(Shape::NotObject),
        1 => (objects, prop_oneof![value(), Just(Node::Object(vec![]))])
            .prop_map(|(inner, second)| Shape::Twice(inner, second)),
    ]
}

const TRACE_KEYS: &[&str] = &["traceparent", "tracestate", "baggage"];

/// A generated message: its node, and what an injection into it should find.
#[derive(Debug, Clone)]
struct Generated {
    node: Node,
    safe: bool,
    /// Trace keys its `params._meta` already holds.
    present: Vec<&'static str>,
}

fn message() -> impl Strategy<Value = Generated> {
    let meta = (
        members(value(), TRACE_KEYS),
        prop::collection::vec((prop::sample::select(TRACE_KEYS.to_vec()), value()), 0..2),
        any::<Index>(),
    )
        .prop_map(|(mut others, present, at)| {
            let mut keys = Vec::new();
            for (key, value) in present {
                if !keys.contains(&key) {
                    keys.push(key);
                    others.insert(at.index(others.len() + 1), (text_of(key, false), value));
                }
            }
            (others, keys)
        });
    let params = (
        members(value(), &["_meta"]),
        prop_oneof![
            3 => Just((Shape::Absent, vec![])),
            5 => meta.clone().prop_map(|(m, keys)| (Shape::Object(m), keys)),
            1 => not_object().prop_map(|n| (Shape::NotObject(n), vec![])),
            1 => (meta, value()).prop_map(|((m, keys), second)| (Shape::Twice(m, second), keys)),
        ],
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut others, (meta, keys), at, escape)| {
            let safe = meta.is_safe();
            meta.place("_meta", escape, at, &mut others);
            (others, safe, keys)
        });
    (
        members(value(), &["params"]),
        prop_oneof![
            3 => Just((Shape::Absent, true, vec![])),
            6 => params.clone().prop_map(|(p, safe, keys)| (Shape::Object(p), safe, keys)),
            1 => not_object().prop_map(|n| (Shape::NotObject(n), false, vec![])),
            1 => (params, shape(Just(vec![]))).prop_map(|((p, _, keys), second)| {
                let second = match second {
                    Shape::Object(m) | Shape::Twice(m, _) => Node::Object(m),
                    Shape::NotObject(n) => n,
                    Shape::Absent => Node::Literal("null"),
                };
                (Shape::Twice(p, second), false, keys)
            }),
        ],
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut others, (params, meta_safe, present), at, escape)| {
            let safe = params.is_safe() && meta_safe;
            let present = if matches!(params, Shape::Object(_)) {
                present
            } else {
                vec![]
            };
            params.place("params", escape, at, &mut others);
            Generated {
                node: Node::Object(others),
                safe,
                present,
            }
        })
}

#[derive(Debug, Clone)]
struct Case {
    batch: bool,
    messages: Vec<Generated>,
    target: Index,
    spaces: Vec<&'static str>,
    fields: [Option<String>; 3],
}

fn case() -> impl Strategy<Value = Case> {
    let field = || prop_oneof![Just(TP.to_string()), "(?s).{0,10}"];
    (
        any::<bool>(),
        prop::collection::vec(message(), 1..4),
        any::<Index>(),
        prop::collection::vec(
            prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n  "]),
            0..8,
        ),
        (
            prop::option::weighted(0.9, field()),
            prop::option::of(field()),
            prop::option::of(field()),
        ),
    )
        .prop_map(|(batch, messages, target, spaces, (tp, ts, bg))| Case {
            batch,
            messages: if batch {
                messages
            } else {
                messages.into_iter().take(1).collect()
            },
            target,
            spaces,
            fields: [tp, ts, bg],
        })
}

#[derive(Debug, Default)]
struct Seen {
    injected: BTreeMap<(String, bool), usize>,
    unsafe_refused: usize,
    duplicate_refused: usize,
    batches: usize,
}

/// The original value with `fields` added at `params._meta` of the target message.
fn expected_value(
    mut original: Value,
    batch: bool,
    target: usize,
    fields: &[(&str, &str)],
) -> Value {
    let message = if batch {
        &mut original[target]
    } else {
        &mut original
    };
    let params = message
        .as_object_mut()
        .unwrap()
        .entry("params")
        .or_insert_with(|| Value::Object(Default::default()));
    let meta = params
        .as_object_mut()
        .unwrap()
        .entry("_meta")
        .or_insert_with(|| Value::Object(Default::default()));
    for (key, value) in fields {
        meta.as_object_mut()
            .unwrap()
            .insert((*key).to_string(), Value::String((*value).to_string()));
    }
    original
}

fn check(case: &Case, seen: &RefCell<Seen>) -> Result<(), TestCaseError> {
    let mut writer = Writer {
        out: String::new(),
        spaces: &case.spaces,
        next: 0,
    };
    writer.space();
    if case.batch {
        let items = case.messages.iter().map(|m| m.node.clone()).collect();
        writer.node(&Node::Array(items));
    } else {
        writer.node(&case.messages[0].node);
    }
    writer.space();
    let body = writer.out.into_bytes();
    let shown = String::from_utf8_lossy(&body).into_owned();

    let target = case.target.index(case.messages.len());
    let generated = &case.messages[target];
    let before = messages(&body);
    prop_assert_eq!(before.len(), case.messages.len(), "{}", shown);
    let message = &before[target];
    let fields = TraceFields {
        traceparent: case.fields[0].as_deref(),
        tracestate: case.fields[1].as_deref(),
        baggage: case.fields[2].as_deref(),
    };
    let inserted: Vec<(&str, &str)> = TRACE_KEYS
        .iter()
        .zip(&case.fields)
        .filter_map(|(key, value)| Some((*key, value.as_deref()?)))
        .collect();
    let duplicate = inserted
        .iter()
        .any(|(key, _)| generated.present.contains(key));
    let result = inject(&body, message, &fields);
    let mut seen = seen.borrow_mut();
    seen.batches += usize::from(case.batch);
    if !generated.safe || duplicate || inserted.is_empty() {
        prop_assert_eq!(result, None, "{}", shown);
        prop_assert_eq!(
            generated.safe,
            message.meta_site != MetaSite::Unsafe,
            "{}",
            shown
        );
        if !generated.safe {
            seen.unsafe_refused += 1;
        } else if duplicate {
            seen.duplicate_refused += 1;
        }
        return Ok(());
    }
    let Some(result) = result else {
        return Err(TestCaseError::fail(format!("refused: {shown}")));
    };
    let MetaSite::Object { level, at, empty } = message.meta_site else {
        return Err(TestCaseError::fail(format!("no site: {shown}")));
    };
    *seen
        .injected
        .entry((format!("{level:?}"), empty))
        .or_default() += 1;

    // Only new bytes at `at`.
    prop_assert!(result.len() > body.len());
    prop_assert_eq!(&result[..at], &body[..at], "{}", shown);
    prop_assert_eq!(
        &result[result.len() - (body.len() - at)..],
        &body[at..],
        "{}",
        shown
    );

    // The JSON value is the original plus the fields at params._meta.
    let original: Value =
        serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{e}: {shown}")))?;
    let injected: Value = serde_json::from_slice(&result)
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&result))))?;
    prop_assert_eq!(
        injected,
        expected_value(original, case.batch, target, &inserted),
        "{}",
        shown
    );

    // The scanner finds them in the same message; the others are unchanged.
    let after = messages(&result);
    prop_assert_eq!(after.len(), before.len());
    let (old, new) = (&message.meta, &after[target].meta);
    prop_assert_eq!(
        text(&new.traceparent),
        fields.traceparent.or(text(&old.traceparent))
    );
    prop_assert_eq!(
        text(&new.tracestate),
        fields.tracestate.or(text(&old.tracestate))
    );
    prop_assert_eq!(text(&new.baggage), fields.baggage.or(text(&old.baggage)));
    prop_assert_eq!(&new.protocol_version, &old.protocol_version);
    prop_assert_eq!(&after[..target], &before[..target]);
    for (old, new) in before.iter().zip(&after).skip(target + 1) {
        prop_assert_eq!(text(&old.meta.traceparent), text(&new.meta.traceparent));
        prop_assert_eq!(&old.method, &new.method);
    }
    Ok(())
}

#[test]
fn generated_messages_match_serde_json() {
    let config = ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let seen = RefCell::new(Seen::default());
    if let Err(failure) = runner.run(&case(), |case| check(&case, &seen)) {
        panic!("{failure}");
    }
    let seen = seen.into_inner();
    println!("{seen:?}");
    // Every kind of site is reached, so the checks above are not vacuous.
    for level in ["Message", "Params", "Meta"] {
        for empty in [true, false] {
            let count = seen
                .injected
                .get(&(level.to_string(), empty))
                .copied()
                .unwrap_or(0);
            assert!(
                count > 0,
                "no injection at {level} (empty: {empty}): {seen:?}"
            );
        }
    }
    assert!(seen.unsafe_refused > 0, "{seen:?}");
    assert!(seen.duplicate_refused > 0, "{seen:?}");
    assert!(seen.batches > 0, "{seen:?}");
}
