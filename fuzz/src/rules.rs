//! The filter's documented rules, stated from the README (its "Precedence" tables, the
//! validation and span sections) and the specifications, not from the filter's code: what
//! the upstream trace headers should be, which span a request gets, when the SEP-2243 headers
//! contradict the body. The fuzz targets compare the filter's answers with these.
//!
//! Every W3C judgement here comes from `reference`, every reading of the body from serde_json
//! (`reading`) or from scanned messages that were compared with serde_json first.

use crate::reading;
use crate::reference::{self, BaggageMember};
use mcp_trace_filter::config::{BaggageMode, Config, Precedence};
use mcp_trace_filter::mcp::{Message, RequestId};
use mcp_trace_filter::plan::{ArrivedHeaders, HeaderChange, Outcome};
use mcp_trace_filter::routing_headers::{Mismatch, RoutingHeaders};
use serde_json::{Map, Value};
use std::ops::Range;

/// Most bytes of a lifted `tracestate` (W3C: propagate at least 512 characters).
const TRACESTATE_BUDGET: usize = 512;
/// Members longer than this go first when a `tracestate` is cut (W3C Trace Context 3.3.1.5).
const LONG_TRACESTATE_MEMBER: usize = 128;
const MAX_BAGGAGE_MEMBERS: usize = 180;
const MAX_BAGGAGE_BYTES: usize = 8192;

/// What the plan should be: its header changes (in the order traceparent, tracestate,
/// baggage), how the request is counted, and how many `_meta` values were dropped as invalid.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpectedPlan {
    pub changes: Vec<HeaderChange>,
    pub outcome: Outcome,
    pub invalid_values: u32,
}

/// A `_meta` trace value of the context message, judged by the reference grammars.
enum Judged<'a, T> {
    Absent,
    Valid(&'a str, T),
    Invalid,
}

impl<'a, T> Judged<'a, T> {
    fn of(value: Option<&'a Value>, judge: impl Fn(&str) -> Option<T>) -> Self {
        match value {
            None => Judged::Absent,
            Some(Value::String(text)) => match judge(text) {
                Some(judged) => Judged::Valid(text, judged),
                None => Judged::Invalid,
            },
            Some(_) => Judged::Invalid,
        }
    }

    fn invalid(&self) -> u32 {
        u32::from(matches!(self, Judged::Invalid))
    }

    fn valid(&self) -> Option<(&'a str, &T)> {
        match self {
            Judged::Valid(text, judged) => Some((text, judged)),
            Judged::Absent | Judged::Invalid => None,
        }
    }
}

/// The message whose `_meta` provides the context (README: the first message with a valid
/// `_meta.traceparent`; else the first carrying any trace value, so that it is counted), as an
/// index into `reading::messages`.
pub fn context_index(messages: &[(Option<usize>, &Map<String, Value>)]) -> Option<usize> {
    let valid = |m: &Map<String, Value>| {
        reading::meta_text(m, "traceparent")
            .and_then(reference::traceparent)
            .is_some()
    };
    messages.iter().position(|(_, m)| valid(m)).or_else(|| {
        messages
            .iter()
            .position(|(_, m)| reading::has_trace_fields(m))
    })
}

/// README, the upstream role: where the body's context is rewritten to the upstream
/// `traceparent`. Every copy of the context's `_meta.traceparent` (the first valid one) that a
/// reader takes for a message's `_meta.traceparent`, in that message and in later ones carrying
/// the same value, however it is written: a plain version-00 copy is replaced in place, one with
/// JSON escapes or in a later version's longer form is replaced whole. Another message's
/// different context is not the proxy's to change.
pub fn context_slots(body: &[u8], reading: &Value) -> Vec<Range<usize>> {
    let messages = reading::messages(reading);
    let context = context_index(&messages)
        .and_then(|i| reading::meta_text(messages[i].1, "traceparent"))
        .filter(|value| reference::traceparent(value).is_some());
    let Some(value) = context else {
        return Vec::new();
    };
    reading::traceparent_slots(body, reading, value)
}

/// The README's precedence and baggage tables applied to serde_json's reading of the body.
pub fn expected_plan(config: &Config, arrived: &ArrivedHeaders<'_>, body: &Value) -> ExpectedPlan {
    let messages = reading::messages(body);
    let Some(context) = context_index(&messages).map(|i| messages[i].1) else {
        return ExpectedPlan {
            changes: Vec::new(),
            outcome: Outcome::NoContext,
            invalid_values: 0,
        };
    };
    let meta = reading::meta(context);
    let not_an_object = meta.is_some_and(|m| !m.is_object());
    let field = |key: &str| reading::meta_field(context, key);
    let traceparent = Judged::of(field("traceparent"), reference::traceparent);
    let tracestate = Judged::of(field("tracestate"), reference::tracestate);
    let baggage = Judged::of(field("baggage"), reference::baggage);
    let invalid_values =
        u32::from(not_an_object) + traceparent.invalid() + tracestate.invalid() + baggage.invalid();

    let mut changes = Vec::new();
    let mut header_kept = false;
    // The header's own context rewritten to version 00: a change, but not a lift.
    let mut header_rewritten = false;
    if let Some((text, _)) = traceparent.valid() {
        let header = arrived
            .traceparent
            .filter(|header| reference::traceparent(header).is_some());
        if let (Precedence::Header, Some(header)) = (config.precedence, header) {
            header_kept = true;
            // A later version's header stays, in its version-00 form (README, precedence).
            let version_00 = format!("00{}", &header[2..55]);
            if version_00 != header {
                changes.push(HeaderChange::Set("traceparent", version_00));
                header_rewritten = true;
            }
        } else {
            // Lifted as version 00: the first four fields, whatever version was sent.
            changes.push(HeaderChange::Set(
                "traceparent",
                format!("00{}", &text[2..55]),
            ));
            let own_state = tracestate
                .valid()
                .and_then(|(text, members)| bounded_tracestate(text, members));
            match own_state {
                Some(state) => changes.push(HeaderChange::Set("tracestate", state)),
                None if arrived.tracestate.is_some() => {
                    changes.push(HeaderChange::Remove("tracestate"))
                }
                None => {}
            }
        }
    }
    let mut dropped = false;
    let meta_baggage = baggage.valid().filter(|(_, members)| !members.is_empty());
    if let Some((text, members)) = meta_baggage {
        // A header baggage counts only when valid and with at least one member (the W3C
        // grammar has no empty list).
        let header = arrived
            .baggage
            .and_then(reference::baggage)
            .filter(|members| !members.is_empty());
        let lifted = match (config.baggage, header) {
            (BaggageMode::Drop, _) => {
                dropped = true;
                None
            }
            (BaggageMode::Header, Some(_)) => {
                header_kept = true;
                None
            }
            (BaggageMode::Merge, Some(header)) => Some(merged_baggage(text, members, &header)),
            (BaggageMode::Meta | BaggageMode::Header | BaggageMode::Merge, _) => {
                Some(forwarded(text, &texts(members)))
            }
        };
        if let Some(value) = lifted {
            changes.push(HeaderChange::Set("baggage", value));
        }
    }

    let outcome = if changes.len() > usize::from(header_rewritten) {
        Outcome::Lifted
    } else if header_kept {
        Outcome::HeaderKept
    } else if dropped {
        Outcome::Dropped
    } else if reading::has_trace_fields(context) {
        Outcome::InvalidContext
    } else {
        Outcome::NoContext
    };
    ExpectedPlan {
        changes,
        outcome,
        invalid_values,
    }
}

/// README: a valid value is forwarded exactly as sent, unless it holds a tab or surrounding
/// whitespace; then its members are re-joined with `,` and nothing else.
fn forwarded(text: &str, members: &[String]) -> String {
    let space = |c: char| c == ' ' || c == '\t';
    if text.contains('\t') || text.starts_with(space) || text.ends_with(space) {
        members.join(",")
    } else {
        text.to_owned()
    }
}

fn texts(members: &[BaggageMember]) -> Vec<String> {
    members.iter().map(|m| m.text.clone()).collect()
}

/// The `tracestate` to lift: the forwarded value when it has members and fits the budget;
/// else (W3C Trace Context 3.3.1.5) without the members over 128 characters and then without
/// members from the right (the oldest vendors) until it fits; none when no member is left.
fn bounded_tracestate(text: &str, members: &[(String, String)]) -> Option<String> {
    if members.is_empty() {
        return None;
    }
    let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let whole = forwarded(text, &members);
    if whole.len() <= TRACESTATE_BUDGET {
        return Some(whole);
    }
    let mut kept: Vec<String> = members
        .into_iter()
        .filter(|m| m.len() <= LONG_TRACESTATE_MEMBER)
        .collect();
    while kept.join(",").len() > TRACESTATE_BUDGET {
        kept.pop();
    }
    (!kept.is_empty()).then(|| kept.join(","))
}

/// README, `baggage: merge`: the `_meta` members first, then the header's members whose key
/// `_meta` lacks, in order, while the result stays within 180 members and 8192 bytes (the
/// first member that does not fit ends the union). When no header member joins, `_meta`'s
/// value is forwarded as it would be alone.
pub fn merged_baggage(text: &str, meta: &[BaggageMember], header: &[BaggageMember]) -> String {
    let mut members = texts(meta);
    let mut size = members.join(",").len();
    for member in header {
        if meta.iter().any(|m| m.key == member.key) {
            continue;
        }
        let grown = size + 1 + member.text.len();
        if members.len() == MAX_BAGGAGE_MEMBERS || grown > MAX_BAGGAGE_BYTES {
            break;
        }
        members.push(member.text.clone());
        size = grown;
    }
    if members.len() == meta.len() {
        forwarded(text, &texts(meta))
    } else {
        members.join(",")
    }
}

// ---------------------------------------------------------------------------------------------
// The span (README "Envoy's own span", the OpenTelemetry MCP semantic conventions)

/// What the span of `message` should be: its name and attributes in publishing order.
pub fn expected_span(
    message: &Message,
    session_id: Option<&str>,
    protocol_version: Option<&str>,
) -> Option<(String, Vec<(&'static str, String)>)> {
    let sent = message.method.as_deref()?;
    let method = if reference::MCP_METHODS.contains(&sent) {
        sent
    } else {
        "_OTHER"
    };
    let nonempty = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(reference::sanitized);
    let target = match method {
        "tools/call" | "prompts/get" => nonempty(message.name.as_deref()),
        _ => None,
    };
    let name = match &target {
        Some(target) => format!("{method} {target}"),
        None => method.to_owned(),
    };
    let mut attributes = vec![("mcp.method.name", method.to_owned())];
    let mut add = |key: &'static str, value: Option<String>| {
        if let Some(value) = value {
            attributes.push((key, value));
        }
    };
    if method == "tools/call" {
        add("gen_ai.tool.name", target.clone());
    }
    if method == "prompts/get" {
        add("gen_ai.prompt.name", target.clone());
    }
    if method.starts_with("resources/") {
        add("mcp.resource.uri", nonempty(message.uri.as_deref()));
    }
    let id = match &message.id {
        Some(RequestId::Number(text) | RequestId::String(text)) => Some(text.as_str()),
        Some(RequestId::Null) | None => None,
    };
    add("jsonrpc.request.id", nonempty(id));
    add("mcp.session.id", nonempty(session_id));
    // The header when the request has one; MCP 2026-07-28 sends it in `_meta` instead.
    let version = protocol_version.or(message.meta.protocol_version.as_deref());
    add("mcp.protocol.version", nonempty(version));
    if method == "tools/call" {
        add("gen_ai.operation.name", Some("execute_tool".to_owned()));
    }
    let jsonrpc = message.jsonrpc.as_deref().filter(|v| *v != "2.0");
    add("jsonrpc.protocol.version", nonempty(jsonrpc));
    add("network.transport", Some("tcp".to_owned()));
    Some((name, attributes))
}

/// README, `span_headers`: the span name twice, then each attribute that has a header, in this
/// order; a value that is not plain visible ASCII (or has surrounding space) is not sent.
pub fn expected_span_headers(
    name: &str,
    attributes: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    const HEADERS: [(&str, &str); 7] = [
        ("mcp.method.name", "x-mcp-method-name"),
        ("gen_ai.tool.name", "x-mcp-tool-name"),
        ("gen_ai.prompt.name", "x-mcp-prompt-name"),
        ("mcp.resource.uri", "x-mcp-resource-uri"),
        ("jsonrpc.request.id", "x-mcp-request-id"),
        ("gen_ai.operation.name", "x-mcp-operation-name"),
        ("jsonrpc.protocol.version", "x-mcp-jsonrpc-version"),
    ];
    let mut headers = vec![
        ("x-mcp-span-name", name.to_owned()),
        ("x-envoy-decorator-operation", name.to_owned()),
    ];
    for (attribute, header) in HEADERS {
        if let Some((_, value)) = attributes.iter().find(|(key, _)| *key == attribute) {
            headers.push((header, value.clone()));
        }
    }
    let plain = |v: &str| {
        v.bytes().all(|b| (b' '..=b'~').contains(&b)) && !v.starts_with(' ') && !v.ends_with(' ')
    };
    headers.retain(|(_, value)| plain(value));
    headers
}

// ---------------------------------------------------------------------------------------------
// SEP-2243

/// The first way the `Mcp-Method` / `Mcp-Name` headers contradict the body: every request (a
/// message with a method) must have the method `Mcp-Method` names and the target `Mcp-Name`
/// names (`params.name` of `tools/call` and `prompts/get`, `params.uri` of `resources/read`,
/// `resources/subscribe` and `resources/unsubscribe`; other methods have none); an encoded
/// header that does not decode is a mismatch of its own; a body without any request
/// contradicts an `Mcp-Method` header, or else an `Mcp-Name` one. An absent header contradicts
/// nothing.
pub fn expected_mismatch(routing: &RoutingHeaders<'_>, messages: &[Message]) -> Option<Mismatch> {
    let mut requests = messages.iter().filter(|m| m.method.is_some()).peekable();
    if requests.peek().is_none() {
        return match (routing.method, routing.name) {
            (Some(_), _) => Some(Mismatch::Method),
            (None, Some(_)) => Some(Mismatch::Name),
            (None, None) => None,
        };
    }
    for request in requests {
        if let Some(raw) = routing.method {
            let Some(method) = reference::header_text(raw) else {
                return Some(Mismatch::Undecodable);
            };
            if request.method.as_deref() != Some(method.as_str()) {
                return Some(Mismatch::Method);
            }
        }
        if let Some(raw) = routing.name {
            let Some(name) = reference::header_text(raw) else {
                return Some(Mismatch::Undecodable);
            };
            let target = match request.method.as_deref() {
                Some("tools/call" | "prompts/get") => request.name.as_deref(),
                Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                    request.uri.as_deref()
                }
                _ => None,
            };
            if target != Some(name.as_str()) {
                return Some(Mismatch::Name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const H: &str = "00-11111111111111111111111111111111-2222222222222222-01";

    fn plan_of(config: &Config, arrived: ArrivedHeaders<'_>, meta: &str) -> ExpectedPlan {
        let body = format!(r#"{{"id":1,"method":"tools/call","params":{{"_meta":{meta}}}}}"#);
        expected_plan(config, &arrived, &serde_json::from_str(&body).unwrap())
    }

    fn set(name: &'static str, value: &str) -> HeaderChange {
        HeaderChange::Set(name, value.to_owned())
    }

    #[test]
    fn the_precedence_table() {
        let arrived = ArrivedHeaders {
            traceparent: Some(H),
            tracestate: Some("h=1"),
            baggage: None,
        };
        let future = format!("01{}-extra", &A[2..]);
        let meta = format!(r#"{{"traceparent":"{future}"}}"#);
        let lifted = plan_of(&Config::default(), arrived, &meta);
        assert_eq!(
            lifted.changes,
            vec![set("traceparent", A), HeaderChange::Remove("tracestate")]
        );
        assert_eq!(lifted.outcome, Outcome::Lifted);
        let header = Config {
            precedence: Precedence::Header,
            ..Config::default()
        };
        let kept = plan_of(&header, arrived, &meta);
        assert_eq!((kept.changes, kept.outcome), (vec![], Outcome::HeaderKept));
        let future_header = format!("cc{}-x", &H[2..]);
        let later = ArrivedHeaders {
            traceparent: Some(&future_header),
            ..arrived
        };
        let rewritten = plan_of(&header, later, &meta);
        assert_eq!(rewritten.changes, vec![set("traceparent", H)]);
        assert_eq!(rewritten.outcome, Outcome::HeaderKept);
        let no_header = ArrivedHeaders {
            baggage: Some("h=1"),
            ..ArrivedHeaders::default()
        };
        let both = format!(r#"{{"traceparent":"{A}","baggage":"m=1"}}"#);
        let header_both = Config {
            baggage: BaggageMode::Header,
            ..header.clone()
        };
        let lifted = plan_of(&header_both, no_header, &both);
        assert_eq!(lifted.changes, vec![set("traceparent", A)]);
        assert_eq!(
            lifted.outcome,
            Outcome::Lifted,
            "the baggage kept is no reason"
        );
        let invalid = plan_of(&header, arrived, r#"{"traceparent":5,"tracestate":"a=1"}"#);
        assert_eq!(invalid.outcome, Outcome::InvalidContext);
        assert_eq!(invalid.invalid_values, 1);
    }

    #[test]
    fn a_long_tracestate_is_cut() {
        let long: Vec<String> = (0..3)
            .map(|i| format!("l{i}={}", "x".repeat(150)))
            .collect();
        let short: Vec<String> = (0..20)
            .map(|i| format!("s{i:02}={}", "y".repeat(30)))
            .collect();
        let state = [long.clone(), short.clone()].concat().join(",");
        let meta = format!(r#"{{"traceparent":"{A}","tracestate":"{state}"}}"#);
        let plan = plan_of(&Config::default(), ArrivedHeaders::default(), &meta);
        // 14 members of 34 bytes and their commas make 489 bytes; a 15th would pass 512.
        assert_eq!(plan.changes[1], set("tracestate", &short[..14].join(",")));
    }

    #[test]
    fn the_baggage_table() {
        let meta = r#"{"baggage":"m=1 , k=2"}"#;
        let mode = |baggage| Config {
            baggage,
            ..Config::default()
        };
        let header = |value| ArrivedHeaders {
            baggage: Some(value),
            ..ArrivedHeaders::default()
        };
        let cases = [
            (
                BaggageMode::Meta,
                header("k=h"),
                Some("m=1 , k=2"),
                Outcome::Lifted,
            ),
            (
                BaggageMode::Merge,
                header("k=h,x=3;p"),
                Some("m=1,k=2,x=3;p"),
                Outcome::Lifted,
            ),
            (
                BaggageMode::Merge,
                header("k=h"),
                Some("m=1 , k=2"),
                Outcome::Lifted,
            ),
            (
                BaggageMode::Header,
                header("k=h"),
                None,
                Outcome::HeaderKept,
            ),
            (
                BaggageMode::Header,
                header("k=h,,"),
                Some("m=1 , k=2"),
                Outcome::Lifted,
            ),
            (BaggageMode::Drop, header("k=h"), None, Outcome::Dropped),
        ];
        for (baggage, arrived, value, outcome) in cases {
            let plan = plan_of(&mode(baggage), arrived, meta);
            let changes: Vec<HeaderChange> = value.map(|v| set("baggage", v)).into_iter().collect();
            assert_eq!(
                (plan.changes, plan.outcome),
                (changes, outcome),
                "{baggage:?}"
            );
        }
    }

    #[test]
    fn span_names_and_headers() {
        let message = Message {
            method: Some("tools/call".to_owned()),
            name: Some("a\r\nb".to_owned()),
            id: Some(RequestId::Number("7".to_owned())),
            jsonrpc: Some("1.0".to_owned()),
            ..Message::default()
        };
        let Some((name, attributes)) = expected_span(&message, None, None) else {
            panic!("no span");
        };
        assert_eq!(name, "tools/call a\u{FFFD}\u{FFFD}b");
        let headers = expected_span_headers(&name, &attributes);
        let names: Vec<&str> = headers.iter().map(|(h, _)| *h).collect();
        assert_eq!(
            names,
            [
                "x-mcp-method-name",
                "x-mcp-request-id",
                "x-mcp-operation-name",
                "x-mcp-jsonrpc-version"
            ]
        );
        let other = Message {
            method: Some("tools/call ".to_owned()),
            ..message
        };
        assert_eq!(
            expected_span(&other, None, None).map(|s| s.0),
            Some("_OTHER".to_owned())
        );
    }
}
