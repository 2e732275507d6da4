//! serde_json's reading of a request body, the second opinion the request oracles are built
//! on: which objects are messages, what their `params._meta` holds, and where in the body a
//! message's `_meta.traceparent` is written.
//!
//! serde_json, like the Python and JavaScript parsers MCP servers use, keeps the last of
//! duplicated keys, so this is what an MCP server reads from the same bytes.

use serde_json::{Map, Value};
use std::ops::Range;

/// The JSON-RPC messages of a body: the object itself, or the objects of a (legacy) batch
/// array in order, each with its index in the array (`None` for a lone object).
pub fn messages(body: &Value) -> Vec<(Option<usize>, &Map<String, Value>)> {
    match body {
        Value::Object(message) => vec![(None, message)],
        Value::Array(elements) => elements
            .iter()
            .enumerate()
            .filter_map(|(index, element)| element.as_object().map(|m| (Some(index), m)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `params._meta`, when `params` is an object that has one.
pub fn meta(message: &Map<String, Value>) -> Option<&Value> {
    message.get("params")?.as_object()?.get("_meta")
}

/// `params._meta.<key>` when `_meta` is an object holding that key.
pub fn meta_field<'a>(message: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    meta(message)?.as_object()?.get(key)
}

/// `params._meta.<key>` when it is a string.
pub fn meta_text<'a>(message: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    meta_field(message, key)?.as_str()
}

/// The message carries trace context, usable or not: a `_meta` that is not an object, or one
/// with a `traceparent`, `tracestate` or `baggage` of any type.
pub fn has_trace_fields(message: &Map<String, Value>) -> bool {
    match meta(message) {
        None => false,
        Some(Value::Object(meta)) => ["traceparent", "tracestate", "baggage"]
            .iter()
            .any(|key| meta.contains_key(*key)),
        Some(_) => true,
    }
}

/// Where `value` is written as the `_meta.traceparent` a message's reader sees: the byte
/// ranges of the raw string contents (between the quotes, escapes as written), in body order.
///
/// Found without any scanner: every `"` of the body may open a string, which serde_json reads
/// from there; one that decodes to `value` is a candidate, and a candidate is that
/// `_meta.traceparent` when putting other text in its place changes what serde_json reads in
/// exactly one place, the `_meta.traceparent` of one message (a copy inside another string, a
/// key, a value elsewhere or a duplicate that a later key overrides changes something else, or
/// nothing).
pub fn traceparent_slots(body: &[u8], reading: &Value, value: &str) -> Vec<Range<usize>> {
    let Some(probe) = probe_of(value) else {
        return Vec::new();
    };
    let mut slots = Vec::new();
    for (at, _) in body.iter().enumerate().filter(|(_, b)| **b == b'"') {
        let mut strings = serde_json::Deserializer::from_slice(&body[at..]).into_iter::<String>();
        let Some(Ok(text)) = strings.next() else {
            continue;
        };
        let raw = at + 1..at + strings.byte_offset() - 1;
        if text == value && reads_as_meta_traceparent(body, reading, raw.clone(), &probe) {
            slots.push(raw);
        }
    }
    slots
}

/// A different string than `value`: its last character changed (`value` is a valid
/// `traceparent`, so it is plain ASCII).
fn probe_of(value: &str) -> Option<String> {
    let last = value.chars().last()?;
    if !value.is_ascii() {
        return None;
    }
    let replacement = if last == 'a' { 'b' } else { 'a' };
    Some(format!("{}{replacement}", &value[..value.len() - 1]))
}

fn reads_as_meta_traceparent(body: &[u8], reading: &Value, raw: Range<usize>, probe: &str) -> bool {
    // Written as JSON: a later version's suffix may hold `"` or `\`.
    let Ok(quoted) = serde_json::to_string(probe) else {
        return false;
    };
    let mut changed = body.to_vec();
    changed.splice(raw, quoted[1..quoted.len() - 1].bytes());
    let Ok(probed) = serde_json::from_slice::<Value>(&changed) else {
        return false;
    };
    let only_traceparent_changed = |before: &Value, after: &Value| {
        let mut expected = before.clone();
        let slot = expected
            .get_mut("params")
            .and_then(|p| p.get_mut("_meta"))
            .and_then(|m| m.get_mut("traceparent"));
        match slot {
            Some(slot @ Value::String(_)) => {
                *slot = Value::String(probe.to_owned());
                expected == *after
            }
            _ => false,
        }
    };
    match (reading, &probed) {
        (Value::Object(_), Value::Object(_)) => only_traceparent_changed(reading, &probed),
        (Value::Array(before), Value::Array(after)) if before.len() == after.len() => {
            let mut differing = before.iter().zip(after).filter(|(b, a)| b != a);
            match (differing.next(), differing.next()) {
                (Some((b, a)), None) => b.is_object() && only_traceparent_changed(b, a),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const B: &str = "00-11111111111111111111111111111111-2222222222222222-01";

    fn slots(body: &str, value: &str) -> Vec<Range<usize>> {
        let reading: Value = serde_json::from_str(body).unwrap();
        traceparent_slots(body.as_bytes(), &reading, value)
    }

    fn meta(tp: &str) -> String {
        format!(r#"{{"params":{{"_meta":{{"traceparent":"{tp}"}}}}}}"#)
    }

    #[test]
    fn a_lone_message() {
        let body = meta(A);
        let start = body.find(A).unwrap();
        assert_eq!(slots(&body, A), vec![start..start + A.len()]);
        assert_eq!(slots(&body, B), vec![]);
    }

    #[test]
    fn a_later_version_whose_suffix_needs_escapes() {
        let value = format!("01{}-a\"b\\c", &A[2..]);
        let written = serde_json::to_string(&value).unwrap();
        let body = format!(r#"{{"params":{{"_meta":{{"traceparent":{written}}}}}}}"#);
        let start = body.find(&written).unwrap() + 1;
        assert_eq!(slots(&body, &value), vec![start..start + written.len() - 2]);
    }

    #[test]
    fn only_the_copies_a_reader_takes_for_meta_traceparent() {
        // Messages 0 and 2 carry A, message 1 carries B, message 3 A escaped; message 4 has
        // copies of A in `arguments` (a value, a key, inside another string) and a duplicated
        // `traceparent` key of which only the last counts.
        let escaped = format!(
            r#"{{"params":{{"_meta":{{"traceparent":"\u0030{}"}}}}}}"#,
            &A[1..]
        );
        let elsewhere = format!(
            r#"{{"params":{{"arguments":{{"t":"{A}","{A}":1,"s":"\"{A}\""}},"_meta":{{"traceparent":"{A}","traceparent":"{A}"}}}}}}"#
        );
        let body = format!(
            "[{},{},{},{escaped},{elsewhere}]",
            meta(A),
            meta(B),
            meta(A)
        );
        let found = slots(&body, A);
        let starts: Vec<usize> = body.match_indices(A).map(|(at, _)| at).collect();
        // A appears plainly 8 times (once inside the escaped copy); the reader sees it as
        // `_meta.traceparent` in messages 0, 2, 3 (escaped) and in the last copy of message 4.
        assert_eq!(starts.len(), 8);
        let escaped_at = body.find("\\u0030").unwrap();
        let expected: Vec<Range<usize>> = vec![
            starts[0]..starts[0] + A.len(),
            starts[1]..starts[1] + A.len(),
            escaped_at..escaped_at + A.len() + 5,
            starts[7]..starts[7] + A.len(),
        ];
        assert_eq!(found, expected);
        assert_eq!(slots(&body, B).len(), 1);
    }
}
