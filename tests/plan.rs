//! Precedence and baggage rules: which headers the upstream request gets.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::config::{BaggageMode, Config, Precedence};
use mcp_trace_filter::digest::digest;
use mcp_trace_filter::plan::{plan, ArrivedHeaders, HeaderChange, Outcome, Plan};
use mcp_trace_filter::routing_headers::RoutingHeaders;
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

proptest! {
    /// Whatever `_meta` strings arrive, every header value the plan sets is visible ASCII.
    #[test]
    fn planned_values_are_always_header_safe(
        tp in prop_oneof![Just(META_TP.to_string()), ".{0,80}"],
        ts in ".{0,80}",
        bg in ".{0,80}",
        header_bg in prop::option::of("[ -~]{0,40}"),
    ) {
        let body = body(&[("traceparent", &quoted(&tp)), ("tracestate", &quoted(&ts)), ("baggage", &quoted(&bg))]);
        let arrived = ArrivedHeaders { baggage: header_bg.as_deref(), ..ArrivedHeaders::default() };
        for mode in [BaggageMode::Meta, BaggageMode::Merge] {
            let result = run(&config(Precedence::Meta, mode), arrived, &body);
            for change in &result.changes {
                if let HeaderChange::Set(_, value) = change {
                    prop_assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", value);
                    prop_assert!(!value.starts_with(' ') && !value.ends_with(' '));
                }
            }
        }
    }
}
