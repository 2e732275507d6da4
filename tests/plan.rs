//! Precedence and baggage rules: which headers the upstream request gets.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::config::{BaggageMode, Config, Precedence};
use mcp_trace_filter::digest::digest;
use mcp_trace_filter::plan::{plan, ArrivedHeaders, HeaderChange, Outcome, Plan};
use mcp_trace_filter::routing_headers::RoutingHeaders;
use mcp_trace_filter::trace_context::{Baggage, TraceParent, TraceState};
use proptest::prelude::*;

const META_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const HEADER_TP: &str = "00-11111111111111111111111111111111-2222222222222222-01";

fn config(precedence: Precedence, baggage: BaggageMode) -> Config {
    Config {
        precedence,
        baggage,
        ..Config::default()
    }
}

/// A tools/call body whose `_meta` holds the given fields (raw JSON values).
fn body(meta_fields: &[(&str, &str)]) -> String {
    let fields: Vec<String> = meta_fields
        .iter()
        .map(|(key, value)| format!("\"{key}\":{value}"))
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{{}}}}}}}"#,
        fields.join(",")
    )
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn run(config: &Config, arrived: ArrivedHeaders<'_>, body: &str) -> Plan {
    match digest(body.as_bytes(), &RoutingHeaders::default()) {
        Ok(digest) => plan(config, &arrived, &digest),
        Err(e) => panic!("test body does not scan: {e:?}: {body}"),
    }
}

fn set(name: &'static str, value: &str) -> HeaderChange {
    HeaderChange::Set(name, value.to_string())
}

#[test]
fn lifts_all_three_values() {
    let body = body(&[
        ("traceparent", &quoted(META_TP)),
        ("tracestate", "\"vendor=abc,other@sys=1\""),
        ("baggage", "\"user=alice;p=1,tenant=t%201\""),
    ]);
    let result = run(&Config::default(), ArrivedHeaders::default(), &body);
    assert_eq!(
        result.changes,
        vec![
            set("traceparent", META_TP),
            set("tracestate", "vendor=abc,other@sys=1"),
            set("baggage", "user=alice;p=1,tenant=t%201"),
        ]
    );
    assert_eq!(result.outcome, Outcome::Lifted);
    assert_eq!(result.invalid_values, 0);
}

#[test]
fn meta_precedence_replaces_the_header_context_whole() {
    let arrived = ArrivedHeaders {
        traceparent: Some(HEADER_TP),
        tracestate: Some("header=1"),
        baggage: None,
    };
    let only_parent = body(&[("traceparent", &quoted(META_TP))]);
    let result = run(&Config::default(), arrived, &only_parent);
    assert_eq!(
        result.changes,
        vec![
            set("traceparent", META_TP),
            HeaderChange::Remove("tracestate")
        ]
    );
    let invalid_state = body(&[
        ("traceparent", &quoted(META_TP)),
        ("tracestate", "\"BAD KEY=1\""),
    ]);
    let result = run(&Config::default(), arrived, &invalid_state);
    assert_eq!(
        result.changes,
        vec![
            set("traceparent", META_TP),
            HeaderChange::Remove("tracestate")
        ]
    );
    assert_eq!(result.invalid_values, 1);
}

#[test]
fn a_meta_tracestate_never_travels_without_its_traceparent() {
    let arrived = ArrivedHeaders {
        traceparent: Some(HEADER_TP),
        tracestate: None,
        baggage: None,
    };
    for tp in ["\"00-XYZ\"", "5"] {
        let body = body(&[("traceparent", tp), ("tracestate", "\"meta=1\"")]);
        let result = run(&Config::default(), arrived, &body);
        assert!(result.changes.is_empty(), "{body}");
        assert_eq!(result.outcome, Outcome::InvalidContext);
        assert_eq!(result.invalid_values, 1);
    }
    let state_only = body(&[("tracestate", "\"meta=1\"")]);
    assert!(run(&Config::default(), arrived, &state_only)
        .changes
        .is_empty());
}

#[test]
fn header_precedence_keeps_a_valid_header_context() {
    let cfg = config(Precedence::Header, BaggageMode::Meta);
    let body = body(&[
        ("traceparent", &quoted(META_TP)),
        ("tracestate", "\"meta=1\""),
    ]);
    let arrived = ArrivedHeaders {
        traceparent: Some(HEADER_TP),
        tracestate: None,
        baggage: None,
    };
    let result = run(&cfg, arrived, &body);
    assert!(result.changes.is_empty());
    assert_eq!(result.outcome, Outcome::HeaderKept);

    let invalid_header = ArrivedHeaders {
        traceparent: Some("00-invalid"),
        tracestate: Some("header=1"),
        baggage: None,
    };
    let result = run(&cfg, invalid_header, &body);
    assert_eq!(
        result.changes,
        vec![set("traceparent", META_TP), set("tracestate", "meta=1")]
    );
    let result = run(&cfg, ArrivedHeaders::default(), &body);
    assert_eq!(result.outcome, Outcome::Lifted);
}

#[test]
fn invalid_meta_values_are_never_forwarded_nor_remove_headers() {
    let arrived = ArrivedHeaders {
        traceparent: Some(HEADER_TP),
        tracestate: Some("header=1"),
        baggage: Some("h=1"),
    };
    let tracestate_33: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let huge_baggage = format!("k={}", "v".repeat(8200));
    let invalid_parents = [
        META_TP.to_uppercase(),
        META_TP.replacen("00", "ff", 1),
        "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01".to_string(),
        format!("{META_TP}\r\nx-evil: 1"),
        format!("{META_TP}\n"),
        format!("{META_TP}\u{0}"),
        format!(" {META_TP}"),
    ];
    for tp in &invalid_parents {
        let body = body(&[
            ("traceparent", &quoted(tp)),
            ("tracestate", &quoted(&tracestate_33.join(","))),
            ("baggage", &quoted(&huge_baggage)),
        ]);
        for precedence in [Precedence::Meta, Precedence::Header] {
            for mode in [
                BaggageMode::Meta,
                BaggageMode::Merge,
                BaggageMode::Header,
                BaggageMode::Drop,
            ] {
                let result = run(&config(precedence, mode), arrived, &body);
                assert!(result.changes.is_empty(), "{tp:?} {precedence:?} {mode:?}");
                assert_eq!(result.outcome, Outcome::InvalidContext);
                assert_eq!(result.invalid_values, 3);
            }
        }
    }
    let crlf_baggage = body(&[("baggage", &quoted("a=1\r\nx-evil: 1"))]);
    assert!(run(&Config::default(), arrived, &crlf_baggage)
        .changes
        .is_empty());
}

#[test]
fn every_baggage_mode() {
    let body = body(&[("baggage", "\"a=meta,b=meta\"")]);
    let with_header = ArrivedHeaders {
        baggage: Some("b=header,c=header"),
        ..ArrivedHeaders::default()
    };
    let without_header = ArrivedHeaders::default();
    let invalid_header = ArrivedHeaders {
        baggage: Some("not baggage"),
        ..ArrivedHeaders::default()
    };
    let cases = [
        (BaggageMode::Meta, with_header, Some("a=meta,b=meta")),
        (BaggageMode::Meta, without_header, Some("a=meta,b=meta")),
        (
            BaggageMode::Merge,
            with_header,
            Some("a=meta,b=meta,c=header"),
        ),
        (BaggageMode::Merge, without_header, Some("a=meta,b=meta")),
        (BaggageMode::Merge, invalid_header, Some("a=meta,b=meta")),
        (BaggageMode::Header, with_header, None),
        // An invalid header value does not count, as for `traceparent`: `_meta` replaces it.
        (BaggageMode::Header, invalid_header, Some("a=meta,b=meta")),
        (BaggageMode::Header, without_header, Some("a=meta,b=meta")),
        (BaggageMode::Drop, with_header, None),
        (BaggageMode::Drop, without_header, None),
    ];
    for (mode, arrived, expected) in cases {
        let result = run(&config(Precedence::Meta, mode), arrived, &body);
        let outcome = match (mode, expected) {
            (_, Some(_)) => Outcome::Lifted,
            (BaggageMode::Drop, None) => Outcome::Dropped,
            (_, None) => Outcome::HeaderKept,
        };
        let expected: Vec<HeaderChange> = expected.map(|v| set("baggage", v)).into_iter().collect();
        assert_eq!(result.changes, expected, "{mode:?} {arrived:?}");
        assert_eq!(result.outcome, outcome, "{mode:?} {arrived:?}");
    }
}

#[test]
fn a_future_version_traceparent_is_lifted_as_version_00() {
    let future = format!("01{}-0123-extra", &META_TP[2..]);
    let future_body = body(&[("traceparent", &quoted(&future))]);
    let result = run(&Config::default(), ArrivedHeaders::default(), &future_body);
    let version_00 = format!("00{}", &META_TP[2..]);
    assert_eq!(result.changes, vec![set("traceparent", &version_00)]);
    // However long the future value, what is forwarded is 55 bytes.
    let long = format!("cc{}-{}", &META_TP[2..], "x".repeat(200_000));
    let long_body = body(&[("traceparent", &quoted(&long))]);
    let result = run(&Config::default(), ArrivedHeaders::default(), &long_body);
    assert_eq!(
        result.changes,
        vec![set("traceparent", &format!("00{}", &META_TP[2..]))]
    );
}

#[test]
fn a_long_tracestate_is_cut_to_512_bytes() {
    let members: Vec<String> = (0..32)
        .map(|i| format!("k{i}={}", "v".repeat(120)))
        .collect();
    let body = body(&[
        ("traceparent", &quoted(META_TP)),
        ("tracestate", &quoted(&members.join(","))),
    ]);
    let result = run(&Config::default(), ArrivedHeaders::default(), &body);
    let Some(HeaderChange::Set("tracestate", state)) = result.changes.get(1) else {
        panic!("no tracestate in {:?}", result.changes);
    };
    assert!(state.len() <= 512, "{}", state.len());
    assert_eq!(state, &members[..4].join(","));
}

#[test]
fn merge_stays_within_the_w3c_limits() {
    let meta: Vec<String> = (0..100).map(|i| format!("m{i}=1")).collect();
    let header: Vec<String> = (0..100).map(|i| format!("h{i}=1")).collect();
    let body = body(&[("baggage", &quoted(&meta.join(",")))]);
    let header = header.join(",");
    let arrived = ArrivedHeaders {
        baggage: Some(&header),
        ..ArrivedHeaders::default()
    };
    let result = run(
        &config(Precedence::Meta, BaggageMode::Merge),
        arrived,
        &body,
    );
    let [HeaderChange::Set("baggage", merged)] = result.changes.as_slice() else {
        panic!("{:?}", result.changes);
    };
    assert_eq!(merged.split(',').count(), 180);
    assert!(merged.starts_with("m0=1,"));
}

#[test]
fn batch_takes_the_first_message_with_a_valid_context() {
    let other_tp = "00-33333333333333333333333333333333-4444444444444444-01";
    let body = format!(
        r#"[{{"method":"a","params":{{"_meta":{{"traceparent":"bad","baggage":"x=1"}}}}}},{{"method":"b","params":{{"_meta":{{"traceparent":"{META_TP}","baggage":"y=2"}}}}}},{{"method":"c","params":{{"_meta":{{"traceparent":"{other_tp}"}}}}}}]"#
    );
    let result = run(&Config::default(), ArrivedHeaders::default(), &body);
    assert_eq!(
        result.changes,
        vec![set("traceparent", META_TP), set("baggage", "y=2")]
    );
}

#[test]
fn a_lift_beside_a_kept_header_baggage_counts_as_lifted() {
    // `precedence: header` without a header traceparent lifts `_meta`'s; the header baggage
    // that `baggage: header` keeps does not make the request `header_kept`.
    let body = body(&[("traceparent", &quoted(META_TP)), ("baggage", "\"m=1\"")]);
    let arrived = ArrivedHeaders {
        baggage: Some("h=1"),
        ..ArrivedHeaders::default()
    };
    let result = run(
        &config(Precedence::Header, BaggageMode::Header),
        arrived,
        &body,
    );
    assert_eq!(result.changes, vec![set("traceparent", META_TP)]);
    assert_eq!(result.outcome, Outcome::Lifted);
    // A later-version header kept in its version-00 form is no lift, with or without it.
    let future = format!("01{}-extra", &HEADER_TP[2..]);
    let arrived = ArrivedHeaders {
        traceparent: Some(&future),
        baggage: Some("h=1"),
        ..ArrivedHeaders::default()
    };
    let result = run(
        &config(Precedence::Header, BaggageMode::Header),
        arrived,
        &body,
    );
    assert_eq!(result.changes, vec![set("traceparent", HEADER_TP)]);
    assert_eq!(result.outcome, Outcome::HeaderKept);
}

#[test]
fn no_meta_means_no_change() {
    let arrived = ArrivedHeaders {
        traceparent: Some(HEADER_TP),
        tracestate: Some("h=1"),
        baggage: Some("h=1"),
    };
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let result = run(&Config::default(), arrived, body);
    assert!(result.changes.is_empty());
    assert_eq!(result.outcome, Outcome::NoContext);
}

// ---------------------------------------------------------------------------------------------
// Generated contexts: W3C-valid values built from the grammars most of the time, junk
// otherwise, so every rule is reached; counted, so the test fails when generation stops
// reaching them.

fn hex(len: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9a-f]{{{len}}}")).unwrap()
}

/// Trace id, parent id and flags, the ids not all zero.
fn ids() -> impl Strategy<Value = (String, String, String)> {
    (hex(32), hex(16), hex(2)).prop_filter("non-zero ids", |(t, p, _)| {
        t.bytes().any(|b| b != b'0') && p.bytes().any(|b| b != b'0')
    })
}

fn version_00() -> impl Strategy<Value = String> {
    ids().prop_map(|(t, p, f)| format!("00-{t}-{p}-{f}"))
}

/// A valid `traceparent` (version 00 mostly, a later version with or without a suffix
/// sometimes), or a near miss.
fn traceparent() -> impl Strategy<Value = String> {
    let later = (
        "0[1-9a-f]|[1-9a-e][0-9a-f]|f[0-9a-e]",
        ids(),
        prop::option::of("-[!-~]{0,20}"),
    )
        .prop_map(|(v, (t, p, f), suffix)| {
            format!("{v}-{t}-{p}-{f}{}", suffix.unwrap_or_default())
        });
    let near_miss =
        (version_00(), any::<prop::sample::Index>(), "[A-Fg \r\n.-]").prop_map(|(valid, at, c)| {
            let at = at.index(valid.len());
            format!("{}{c}{}", &valid[..at], &valid[at + 1..])
        });
    prop_oneof![
        6 => version_00(),
        2 => later,
        1 => near_miss,
        1 => ".{0,60}",
    ]
}

/// A valid `tracestate` (short, or long enough to be cut), or junk.
fn tracestate() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        "[a-z][a-z0-9_*/-]{0,8}",
        "[a-z0-9][a-z0-9_*/-]{0,5}@[a-z][a-z0-9_*/-]{0,5}",
    ];
    let value = |max: usize| {
        proptest::string::string_regex(&format!("[ -+\\--<>-~]{{0,{max}}}[!-+\\--<>-~]")).unwrap()
    };
    let separator =
        prop_oneof![4 => Just(","), 1 => Just(" , "), 1 => Just(",\t"), 1 => Just(",,")];
    let list = |members: prop::collection::SizeRange, max: usize| {
        (
            prop::collection::vec((key.clone(), value(max)), members),
            separator.clone(),
        )
            .prop_filter_map("duplicate keys", |(members, separator)| {
                let mut keys: Vec<&String> = members.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                (keys.len() == members.len()).then(|| {
                    let members: Vec<String> =
                        members.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    members.join(separator)
                })
            })
    };
    prop_oneof![
        6 => list((1..8).into(), 20),
        2 => list((4..20).into(), 150),
        1 => "[A-Z]=1|a=1,a=2|a=1\r\n|=x|a=x,",
        1 => ".{0,40}",
    ]
}

/// A valid `baggage` (members with percent escapes, properties, optional whitespace), or
/// junk.
fn baggage() -> impl Strategy<Value = String> {
    let token = "[A-Za-z0-9!#$&'*+.^_`|~-]{1,8}";
    let value = "([!#$&-+\\--:<-\\[\\]-~]|%[0-9A-Fa-f]{2}){0,10}";
    let property = prop_oneof![
        token.prop_map(|name| format!(";{name}")),
        (token, value).prop_map(|(k, v)| format!(";{k}={v}")),
    ];
    let member = (
        token,
        value,
        prop::collection::vec(property, 0..2),
        prop_oneof![4 => Just(""), 1 => Just(" ")],
    )
        .prop_map(|(k, v, properties, ows)| {
            format!("{ows}{k}{ows}={ows}{v}{}", properties.concat())
        });
    prop_oneof![
        6 => prop::collection::vec(member, 1..8).prop_map(|members| members.join(",")),
        1 => "k=v,,x=1|k=%zz|k=v\r\n|k v=1|=v",
        1 => ".{0,40}",
    ]
}

/// What a header becomes in a generated request: absent, one of the generated values, or junk.
fn header(value: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![3 => Just(None), 3 => value.prop_map(Some), 1 => "[ -~]{0,20}".prop_map(Some)]
}

/// A `_meta` member: absent, a string of `value`, or a value of another JSON type.
fn meta_member(value: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        6 => value.prop_map(|v| Some(quoted(&v))),
        1 => prop_oneof![Just("5"), Just("null"), Just("[\"x\"]")].prop_map(|v| Some(v.to_owned())),
    ]
}

/// How often each rule was reached.
#[derive(Debug, Default)]
struct Reached {
    cases: usize,
    traceparent_lifted: usize,
    later_version_lifted: usize,
    tracestate_lifted: usize,
    tracestate_cut: usize,
    tracestate_removed: usize,
    baggage_lifted: usize,
    baggage_merged: usize,
    header_kept: usize,
    dropped: usize,
    invalid: usize,
}

/// The checks of one generated request; returns what it reached.
fn check_generated(
    precedence: Precedence,
    mode: BaggageMode,
    tp: &Option<String>,
    ts: &Option<String>,
    bg: &Option<String>,
    arrived: ArrivedHeaders<'_>,
    reached: &mut Reached,
) {
    let fields: Vec<(&str, &str)> = [("traceparent", tp), ("tracestate", ts), ("baggage", bg)]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect();
    let body = body(&fields);
    let result = run(&config(precedence, mode), arrived, &body);
    let meta_text = |value: &Option<String>| -> Option<String> {
        value
            .as_deref()
            .and_then(|v| serde_json::from_str::<String>(v).ok())
    };
    let meta_tp = meta_text(tp).filter(|v| TraceParent::parse(v).is_some());
    let meta_ts = meta_text(ts).and_then(|v| TraceState::parse(&v).map(|s| (v, s)));
    let meta_bg =
        meta_text(bg).and_then(|v| Baggage::parse(&v).filter(|b| !b.is_empty()).map(|b| (v, b)));
    let header_tp = arrived.traceparent.and_then(TraceParent::parse);

    reached.cases += 1;
    let mut names = Vec::new();
    for change in &result.changes {
        let (name, value) = match change {
            HeaderChange::Set(name, value) => (*name, Some(value.as_str())),
            HeaderChange::Remove(name) => (*name, None),
        };
        assert!(!names.contains(&name), "{name} changed twice: {body}");
        names.push(name);
        if let Some(value) = value {
            assert!(
                value.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{value:?}"
            );
            assert!(
                !value.starts_with(' ') && !value.ends_with(' '),
                "{value:?}"
            );
        }
        match (name, value) {
            ("traceparent", Some(value)) => {
                // The `_meta` context in version-00 form, or the header's own (header
                // precedence keeps a later-version header, rewritten to version 00).
                let expected = match (precedence, header_tp) {
                    (Precedence::Header, Some(header)) => header.to_header_value(),
                    _ => {
                        let meta = meta_tp.as_deref().unwrap_or_else(|| panic!("{body}"));
                        if !meta.starts_with("00") {
                            reached.later_version_lifted += 1;
                        }
                        reached.traceparent_lifted += 1;
                        format!("00{}", &meta[2..55])
                    }
                };
                assert_eq!(value, expected, "{body}");
            }
            ("tracestate", Some(value)) => {
                let (sent, state) = meta_ts.as_ref().unwrap_or_else(|| panic!("{body}"));
                assert!(value.len() <= 512 && TraceState::parse(value).is_some());
                let members: Vec<String> =
                    state.members().map(|(k, v)| format!("{k}={v}")).collect();
                // As sent, or re-joined when it holds a tab or surrounding whitespace.
                let space = |c: char| c == ' ' || c == '\t';
                let whole =
                    if sent.contains('\t') || sent.starts_with(space) || sent.ends_with(space) {
                        members.join(",")
                    } else {
                        sent.clone()
                    };
                if value != whole {
                    // Cut: longer than 512 bytes whole, now whole members of `_meta`'s own
                    // tracestate in their order, none over 128 characters.
                    assert!(whole.len() > 512, "{value} is not {whole}");
                    let mut rest = members.iter();
                    for member in value.split(',') {
                        assert!(member.len() <= 128, "{member}");
                        assert!(
                            rest.any(|m| m == member),
                            "{member} of {value} not in {sent}"
                        );
                    }
                    reached.tracestate_cut += 1;
                }
                reached.tracestate_lifted += 1;
            }
            ("tracestate", None) => {
                assert!(
                    names.contains(&"traceparent"),
                    "tracestate removed alone: {body}"
                );
                assert!(arrived.tracestate.is_some());
                reached.tracestate_removed += 1;
            }
            ("baggage", Some(value)) => {
                let (_, meta) = meta_bg.as_ref().unwrap_or_else(|| panic!("{body}"));
                assert_ne!(mode, BaggageMode::Drop);
                let lifted = Baggage::parse(value).unwrap_or_else(|| panic!("{value:?}"));
                assert!(
                    lifted.keys().take(meta.len()).eq(meta.keys()),
                    "{value} lost _meta"
                );
                if mode == BaggageMode::Header {
                    // The header's value counts only when it is valid and has a member.
                    assert!(arrived
                        .baggage
                        .and_then(Baggage::parse)
                        .filter(|b| !b.is_empty())
                        .is_none());
                }
                if lifted.len() > meta.len() {
                    assert_eq!(mode, BaggageMode::Merge);
                    reached.baggage_merged += 1;
                }
                reached.baggage_lifted += 1;
            }
            (other, _) => panic!("{other} changed: {body}"),
        }
    }
    if names.contains(&"tracestate") {
        assert!(names.contains(&"traceparent"), "{body}");
    }
    let lifts_tp = meta_tp.is_some() && (precedence == Precedence::Meta || header_tp.is_none());
    assert_eq!(
        names.contains(&"traceparent"),
        lifts_tp
            || (meta_tp.is_some()
                && header_tp.is_some_and(|h| arrived.traceparent != Some(&h.to_header_value()))),
        "{precedence:?} {arrived:?}: {body}"
    );
    // Baggage goes up whenever `_meta` has some, but for `drop` and a valid header kept.
    let header_bg_valid = arrived
        .baggage
        .and_then(Baggage::parse)
        .is_some_and(|b| !b.is_empty());
    let lifts_bg = meta_bg.is_some()
        && match mode {
            BaggageMode::Drop => false,
            BaggageMode::Header => !header_bg_valid,
            BaggageMode::Meta | BaggageMode::Merge => true,
        };
    assert_eq!(
        names.contains(&"baggage"),
        lifts_bg,
        "{mode:?} {arrived:?}: {body}"
    );
    match result.outcome {
        Outcome::HeaderKept => reached.header_kept += 1,
        Outcome::Dropped => {
            assert_eq!(mode, BaggageMode::Drop);
            reached.dropped += 1;
        }
        Outcome::InvalidContext => {
            assert!(result.changes.is_empty());
            reached.invalid += 1;
        }
        Outcome::Lifted | Outcome::NoContext => {}
    }
}

#[test]
fn generated_contexts_follow_the_rules() {
    let precedence = prop_oneof![Just(Precedence::Meta), Just(Precedence::Header)];
    let mode = prop_oneof![
        Just(BaggageMode::Meta),
        Just(BaggageMode::Merge),
        Just(BaggageMode::Header),
        Just(BaggageMode::Drop),
    ];
    let input = (
        (precedence, mode),
        (
            meta_member(traceparent()),
            meta_member(tracestate()),
            meta_member(baggage()),
        ),
        (
            header(traceparent()),
            header(tracestate()),
            header(baggage()),
        ),
    );
    let config = ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let reached = std::cell::RefCell::new(Reached::default());
    let outcome = runner.run(
        &input,
        |((precedence, mode), (tp, ts, bg), (htp, hts, hbg))| {
            let arrived = ArrivedHeaders {
                traceparent: htp.as_deref(),
                tracestate: hts.as_deref(),
                baggage: hbg.as_deref(),
            };
            check_generated(
                precedence,
                mode,
                &tp,
                &ts,
                &bg,
                arrived,
                &mut reached.borrow_mut(),
            );
            Ok(())
        },
    );
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let reached = reached.into_inner();
    println!("{reached:?}");
    let at_least = |count: usize, percent: usize, what: &str| {
        assert!(
            count * 100 >= reached.cases * percent,
            "only {count} of {} cases {what}: {reached:?}",
            reached.cases
        );
    };
    at_least(reached.traceparent_lifted, 30, "lifted a traceparent");
    at_least(
        reached.later_version_lifted,
        5,
        "lifted a later-version traceparent",
    );
    at_least(reached.tracestate_lifted, 20, "lifted a tracestate");
    at_least(reached.tracestate_cut, 2, "cut a long tracestate");
    at_least(
        reached.tracestate_removed,
        3,
        "removed the header tracestate",
    );
    at_least(reached.baggage_lifted, 25, "lifted baggage");
    at_least(reached.baggage_merged, 2, "merged baggage");
    at_least(reached.header_kept, 5, "kept the header context");
    at_least(reached.dropped, 3, "dropped baggage");
    at_least(reached.invalid, 2, "had only invalid values");
}
