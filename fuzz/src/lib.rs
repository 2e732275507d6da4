//! The invariants the fuzz targets check, one public function per target.
//!
//! Each fuzz target in `fuzz_targets/` is a one-line call into this crate, and
//! `tests/replay.rs` runs every committed seed and regression input through the same
//! functions on stable Rust, so CI checks the invariants without libFuzzer.
//!
//! A check that fails panics with a message naming the broken invariant: that panic is how
//! libFuzzer records a finding, so panics, `unwrap` and `expect` are the point here.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod reading;
mod reference;
mod rules;

use mcp_trace_filter::body_sync;
use mcp_trace_filter::config::{
    BaggageMode, Config, Export, HeaderMismatch, OwnSpan, Precedence, Role, ServerSpans,
};
use mcp_trace_filter::digest::{self, Digest};
use mcp_trace_filter::host::HostKind;
use mcp_trace_filter::mcp::{self, Message, MetaValue, NotMcp, RequestId, ScannedBody};
use mcp_trace_filter::plan::{self, ArrivedHeaders, HeaderChange, Outcome};
use mcp_trace_filter::routing_headers::RoutingHeaders;
use mcp_trace_filter::semconv::{self, TransportHeaders};
use mcp_trace_filter::trace_context::{
    baggage::{MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS},
    tracestate::MAX_TRACESTATE_MEMBERS,
    Baggage, TraceParent, TraceState,
};
use serde_json::{Map, Value};

/// A target's check: returns when the input keeps every invariant, panics otherwise.
pub type Check = fn(&[u8]);

/// Every fuzz target by name, with its check. The replay test and `scripts/fuzz.sh` use the
/// same names as the `[[bin]]` targets and the `corpus/<name>/` folders.
pub const TARGETS: [(&str, Check); 6] = [
    ("scan_body", scan_body),
    ("traceparent", traceparent),
    ("tracestate", tracestate),
    ("baggage", baggage),
    ("config", config),
    ("request_plan", request_plan),
];

/// The check of the target called `name`.
pub fn check_for(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A value that may go into an HTTP header as is: visible ASCII and inner spaces only, no
/// control character (CR, LF, NUL, TAB, DEL), nothing outside ASCII, no surrounding space.
fn assert_header_value(name: &str, value: &str) {
    assert!(
        value.bytes().all(|b| (0x20..=0x7E).contains(&b)),
        "{name}: value {value:?} holds a byte outside visible ASCII"
    );
    assert!(
        !value.starts_with(' ') && !value.ends_with(' '),
        "{name}: value {value:?} has surrounding space"
    );
}

// ---------------------------------------------------------------------------------------------
// traceparent

/// `TraceParent::parse` accepts exactly what an independent reading of the W3C grammar (plus the
/// filter's own rule that a future version's suffix is visible ASCII) accepts, and whatever it
/// accepts re-serialises to a version-00 value that parses back to the same ids and flags.
pub fn traceparent(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let parsed = TraceParent::parse(&input);
    let expected = reference::traceparent(&input);
    assert_eq!(
        parsed, expected,
        "TraceParent::parse({input:?}) disagrees with the reference"
    );
    let Some(parsed) = parsed else {
        return;
    };
    // Accepted values are forwarded verbatim: no byte that could end or smuggle a header.
    assert!(
        input.bytes().all(|b| (0x21..=0x7E).contains(&b)),
        "accepted traceparent {input:?} holds a byte outside visible ASCII"
    );
    assert_eq!(parsed.is_sampled(), parsed.flags & 1 == 1);
    let out = parsed.to_header_value();
    assert_eq!(out.len(), 55, "{out:?}");
    assert_header_value("traceparent", &out);
    if parsed.version == 0 {
        assert_eq!(out, input, "a version-00 value must re-serialise unchanged");
    }
    let again = TraceParent::parse(&out);
    assert_eq!(
        again,
        Some(TraceParent {
            version: 0,
            ..parsed
        }),
        "re-serialised {out:?} does not parse back to the same context"
    );
    let child = parsed.with_parent_id([0x5a; 8]);
    assert_eq!(
        TraceParent::parse(&child.to_header_value()).map(|c| (c.trace_id, c.parent_id)),
        Some((parsed.trace_id, [0x5a; 8]))
    );
}

// ---------------------------------------------------------------------------------------------
// tracestate

/// `TraceState::parse` agrees with the reference grammar, never accepts a control or non-ASCII
/// byte, and what it accepts re-serialises to a header-safe value with the same members.
pub fn tracestate(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let parsed = TraceState::parse(&input);
    let expected = reference::tracestate(&input);
    assert_eq!(
        parsed.as_ref().map(members_of),
        expected,
        "TraceState::parse({input:?}) disagrees with the reference"
    );
    let Some(state) = parsed else {
        return;
    };
    assert!(state.len() <= MAX_TRACESTATE_MEMBERS);
    assert_eq!(state.is_empty(), state.members().next().is_none());
    assert_tracestate_header(&state);
}

fn members_of(state: &TraceState) -> Vec<(String, String)> {
    state
        .members()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The header value of a parsed `tracestate` is safe and stable: it parses again to the same
/// members and re-serialises to itself.
fn assert_tracestate_header(state: &TraceState) {
    let out = state.to_header_value();
    assert_header_value("tracestate", &out);
    let Some(again) = TraceState::parse(&out) else {
        panic!("tracestate header value {out:?} does not parse again");
    };
    assert_eq!(members_of(&again), members_of(state), "{out:?}");
    assert_eq!(again.to_header_value(), out, "tracestate not stable");
}

// ---------------------------------------------------------------------------------------------
// baggage

/// `Baggage::parse` agrees with the reference grammar and limits; accepted values re-serialise
/// to header-safe values with the same keys. Input holding a `0xFF` byte (never part of UTF-8)
/// is split there into two baggage values that are also merged, as the `merge` mode does.
pub fn baggage(data: &[u8]) {
    let (first, second) = match data.iter().position(|b| *b == 0xFF) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let first = check_baggage(first);
    if let Some(second) = second {
        let second = check_baggage(second);
        if let (Some(winner), Some(other)) = (first, second) {
            check_merge(&winner, &other);
        }
    }
}

/// A baggage value as sent, with the filter's and the reference's readings of it.
struct ParsedBaggage {
    text: String,
    parsed: Baggage,
    members: Vec<reference::BaggageMember>,
}

fn check_baggage(data: &[u8]) -> Option<ParsedBaggage> {
    let input = String::from_utf8_lossy(data);
    let parsed = Baggage::parse(&input);
    let expected = reference::baggage(&input);
    assert_eq!(
        parsed
            .as_ref()
            .map(|b| b.keys().map(str::to_owned).collect::<Vec<_>>()),
        expected
            .as_ref()
            .map(|members| members.iter().map(|m| m.key.clone()).collect()),
        "Baggage::parse({input:?}) disagrees with the reference"
    );
    let parsed = parsed?;
    assert_baggage_header(&parsed);
    Some(ParsedBaggage {
        text: input.into_owned(),
        parsed,
        members: expected?,
    })
}

/// The header value of a parsed or merged baggage is safe, within the W3C limits, and stable.
fn assert_baggage_header(baggage: &Baggage) {
    assert!(baggage.len() <= MAX_BAGGAGE_MEMBERS);
    assert_eq!(baggage.is_empty(), baggage.keys().next().is_none());
    let out = baggage.to_header_value();
    assert_header_value("baggage", &out);
    assert!(
        out.len() <= MAX_BAGGAGE_BYTES,
        "baggage of {} bytes",
        out.len()
    );
    let Some(again) = Baggage::parse(&out) else {
        panic!("baggage header value {out:?} does not parse again");
    };
    assert!(again.keys().eq(baggage.keys()), "{out:?}: keys changed");
    assert_eq!(again.to_header_value(), out, "baggage not stable");
}

/// `merge` mode: the union the README's baggage table describes, as `rules` states it.
fn check_merge(winner: &ParsedBaggage, other: &ParsedBaggage) {
    let merged = Baggage::merge(&winner.parsed, &other.parsed);
    assert_baggage_header(&merged);
    if winner.members.is_empty() {
        // `_meta` baggage without members is never lifted; the union is then the header's.
        assert!(merged.keys().eq(other.parsed.keys()));
        return;
    }
    let expected = rules::merged_baggage(&winner.text, &winner.members, &other.members);
    let short = |text: &str| text.chars().take(80).collect::<String>();
    let merged = merged.to_header_value();
    assert!(
        merged == expected,
        "merge of {:?} and {:?} ({} bytes): {:?} ({} bytes), expected {:?} ({} bytes)",
        short(&winner.text),
        short(&other.text),
        other.text.len(),
        short(&merged),
        merged.len(),
        short(&expected),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// config

/// `Config::parse` never panics and accepts exactly the documents the configuration rules
/// (`expected_config`) accept, holding exactly the documented values of their keys; what it
/// accepts survives a round trip; an error names a key of the document, a member of `export`
/// as `export.<member>` (see `names_a_key_of`).
pub fn config(data: &[u8]) {
    let result = Config::parse(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(
            result,
            Ok(Config::default()),
            "whitespace-only configuration"
        );
        return;
    }
    let document: Option<Map<String, Value>> = match serde_json::from_slice(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let expected = document.as_ref().and_then(expected_config);
    match result {
        Ok(config) => {
            assert!(
                (1..=64 * 1024 * 1024).contains(&config.max_body_bytes),
                "max_body_bytes {} out of range",
                config.max_body_bytes
            );
            if document.is_none() {
                panic!("accepted a configuration that is not a JSON object: {data:?}");
            }
            assert_eq!(Some(&config), expected.as_ref(), "accepted {}", lossy(data));
            let text = config_json(&config);
            assert_eq!(Config::parse(text.as_bytes()), Ok(config), "{text}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            assert_eq!(
                expected,
                None,
                "rejected a configuration the rules accept ({message}): {}",
                lossy(data)
            );
            if error.key.is_empty() {
                return;
            }
            assert!(message.contains(&format!("`{}`", error.key)), "{message}");
            let Some(document) = document else {
                panic!("error names key {:?} of a non-object document", error.key);
            };
            assert!(
                names_a_key_of(&document, &error.key),
                "error names key {:?} the document lacks",
                error.key
            );
            assert!(
                !error.key.starts_with('_'),
                "an ignored key was rejected: {message}"
            );
        }
    }
}

/// Whether an error's `key` is one of `document`'s: a top-level key, or `export.<member>` for
/// a member of its `export` object, `export.resource_attributes.<name>` for one of its
/// attributes, or `export.cluster` for an `export` that has neither `cluster` nor `address`.
fn names_a_key_of(document: &Map<String, Value>, key: &str) -> bool {
    if document.contains_key(key) {
        return true;
    }
    let (Some(member), Some(Value::Object(export))) =
        (key.strip_prefix("export."), document.get("export"))
    else {
        return false;
    };
    if export.contains_key(member) {
        return true;
    }
    if member == "cluster" && !export.contains_key("address") {
        return true;
    }
    match (
        member.strip_prefix("resource_attributes."),
        export.get("resource_attributes"),
    ) {
        (Some(name), Some(Value::Object(attributes))) => attributes.contains_key(name),
        _ => false,
    }
}

/// The longest text value, in characters.
const MAX_TEXT_CHARS: usize = 256;
/// The most resource attributes.
const MAX_ATTRIBUTES: usize = 32;

/// What the configuration rules say `document` means, or `None` when it breaks one: the README's
/// configuration reference, and the own-span keys (`export`, `client_span`,
/// `root_sampling_ratio`, `inject_meta`, `server_spans`; all but `export` need `export`, which
/// needs `role: gateway` and `span_metadata: false`). Keys starting with `_` mean nothing.
fn expected_config(document: &Map<String, Value>) -> Option<Config> {
    let mut expected = Config::default();
    let mut export = None;
    let mut client_span = None;
    let mut root_sampling = None;
    let mut inject_meta = None;
    let mut server_spans = None;
    for (key, value) in document {
        let text = value.as_str();
        match key.as_str() {
            "precedence" => {
                expected.precedence = match text? {
                    "meta" => Precedence::Meta,
                    "header" => Precedence::Header,
                    _ => return None,
                }
            }
            "baggage" => {
                expected.baggage = match text? {
                    "meta" => BaggageMode::Meta,
                    "merge" => BaggageMode::Merge,
                    "header" => BaggageMode::Header,
                    "drop" => BaggageMode::Drop,
                    _ => return None,
                }
            }
            "role" => {
                expected.role = match text? {
                    "gateway" => Role::Gateway,
                    "upstream" => Role::Upstream,
                    _ => return None,
                }
            }
            "host" => {
                expected.host = match text? {
                    "auto" => None,
                    "envoy" => Some(HostKind::Envoy),
                    "ngx_wasm_module" => Some(HostKind::NgxWasm),
                    "higress" => Some(HostKind::Higress),
                    _ => return None,
                }
            }
            "span_headers" => expected.span_headers = value.as_bool()?,
            "span_metadata" => expected.span_metadata = value.as_bool()?,
            "header_mismatch" => {
                expected.header_mismatch = match text? {
                    "reject" => HeaderMismatch::Reject,
                    "count" => HeaderMismatch::Count,
                    _ => return None,
                }
            }
            "max_body_bytes" => {
                let limit = integer_in(value, 1, 64 * 1024 * 1024)?;
                expected.max_body_bytes = usize::try_from(limit).unwrap();
            }
            "export" => export = Some(expected_export(value)?),
            "client_span" => client_span = Some(value.as_bool()?),
            "inject_meta" => inject_meta = Some(value.as_bool()?),
            "root_sampling_ratio" => {
                // A number from 0 to 1, kept in millionths, rounded.
                let ratio = value.as_f64().filter(|r| (0.0..=1.0).contains(r))?;
                root_sampling = Some((ratio * 1e6).round() as u32);
            }
            "server_spans" => {
                server_spans = Some(match text? {
                    "pass" => ServerSpans {
                        forward: false,
                        strip: false,
                    },
                    "forward" => ServerSpans {
                        forward: true,
                        strip: false,
                    },
                    "strip" => ServerSpans {
                        forward: false,
                        strip: true,
                    },
                    "forward_and_strip" => ServerSpans {
                        forward: true,
                        strip: true,
                    },
                    _ => return None,
                })
            }
            other if other.starts_with('_') => {}
            _ => return None,
        }
    }
    let Some(export) = export else {
        let own_span_keys = [
            client_span.is_some(),
            root_sampling.is_some(),
            inject_meta.is_some(),
            server_spans.is_some(),
        ];
        return (!own_span_keys.contains(&true)).then_some(expected);
    };
    if expected.role != Role::Gateway || expected.span_metadata {
        return None;
    }
    expected.own_span = Some(OwnSpan {
        export,
        client_span: client_span.unwrap_or(false),
        root_sampling_millionths: root_sampling.unwrap_or(1_000_000),
        inject_meta: inject_meta.unwrap_or(false),
        server_spans: server_spans.unwrap_or(ServerSpans {
            forward: false,
            strip: false,
        }),
    });
    Some(expected)
}

/// `export`: an object of known members with exactly one collector (`cluster` or `address`);
/// `authority` defaults to the collector.
fn expected_export(value: &Value) -> Option<Export> {
    let Value::Object(members) = value else {
        return None;
    };
    let mut export = Export {
        upstream: String::new(),
        authority: String::new(),
        path: "/v1/traces".to_owned(),
        metrics_path: Some("/v1/metrics".to_owned()),
        timeout_ms: 2_000,
        flush_interval_ms: 1_000,
        batch_size: 512,
        queue_size: 2_048,
        service_name: "mcp-gateway".to_owned(),
        resource_attributes: Vec::new(),
    };
    let mut collectors = Vec::new();
    let mut authority = None;
    for (member, value) in members {
        match member.as_str() {
            "cluster" | "address" => collectors.push(text_of(value)?),
            "authority" => authority = Some(text_of(value)?),
            "path" => export.path = path_of(value)?,
            "metrics_path" => {
                export.metrics_path = match value {
                    Value::Null => None,
                    _ => Some(path_of(value)?),
                }
            }
            "timeout_ms" => export.timeout_ms = integer_in(value, 1, 60_000)? as u32,
            "flush_interval_ms" => export.flush_interval_ms = integer_in(value, 10, 60_000)? as u32,
            "batch_size" => export.batch_size = integer_in(value, 1, 4_096)? as usize,
            "queue_size" => export.queue_size = integer_in(value, 1, 65_536)? as usize,
            "service_name" => export.service_name = text_of(value)?,
            "resource_attributes" => {
                let Value::Object(attributes) = value else {
                    return None;
                };
                if attributes.len() > MAX_ATTRIBUTES {
                    return None;
                }
                for (name, value) in attributes {
                    if !is_text(name) {
                        return None;
                    }
                    let value = text_of(value)?;
                    export.resource_attributes.push((name.clone(), value));
                }
            }
            _ => return None,
        }
    }
    let [upstream] = collectors.as_slice() else {
        return None;
    };
    export.upstream = upstream.clone();
    export.authority = authority.unwrap_or_else(|| upstream.clone());
    Some(export)
}

/// A JSON integer (not `1.0`) from `min` to `max`.
fn integer_in(value: &Value, min: u64, max: u64) -> Option<u64> {
    let Value::Number(number) = value else {
        return None;
    };
    number.as_u64().filter(|n| (min..=max).contains(n))
}

/// The text rule: 1 to 256 characters (not bytes), none of them a control character
/// (U+0000 to U+001F, U+007F to U+009F).
fn is_text(text: &str) -> bool {
    let control = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
    (1..=MAX_TEXT_CHARS).contains(&text.chars().count()) && !text.chars().any(control)
}

fn text_of(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|text| is_text(text))
        .map(str::to_owned)
}

/// A text that starts with `/` and has no space.
fn path_of(value: &Value) -> Option<String> {
    text_of(value).filter(|path| path.starts_with('/') && !path.contains(' '))
}

/// `config` as a JSON document that says every value, own-span keys included.
fn config_json(config: &Config) -> String {
    let text = |s: &str| Value::String(s.to_owned());
    let mut document = Map::new();
    let precedence = match config.precedence {
        Precedence::Meta => "meta",
        Precedence::Header => "header",
    };
    let baggage = match config.baggage {
        BaggageMode::Meta => "meta",
        BaggageMode::Merge => "merge",
        BaggageMode::Header => "header",
        BaggageMode::Drop => "drop",
    };
    let role = match config.role {
        Role::Gateway => "gateway",
        Role::Upstream => "upstream",
    };
    let mismatch = match config.header_mismatch {
        HeaderMismatch::Reject => "reject",
        HeaderMismatch::Count => "count",
    };
    let host = match config.host {
        None => "auto",
        Some(HostKind::Envoy) => "envoy",
        Some(HostKind::NgxWasm) => "ngx_wasm_module",
        Some(HostKind::Higress) => "higress",
    };
    document.insert("precedence".into(), text(precedence));
    document.insert("baggage".into(), text(baggage));
    document.insert("max_body_bytes".into(), config.max_body_bytes.into());
    document.insert("span_headers".into(), config.span_headers.into());
    document.insert("span_metadata".into(), config.span_metadata.into());
    document.insert("header_mismatch".into(), text(mismatch));
    document.insert("role".into(), text(role));
    document.insert("host".into(), text(host));
    if let Some(own_span) = &config.own_span {
        let export = &own_span.export;
        let mut members = Map::new();
        members.insert("cluster".into(), text(&export.upstream));
        members.insert("authority".into(), text(&export.authority));
        members.insert("path".into(), text(&export.path));
        let metrics_path = export.metrics_path.as_deref().map_or(Value::Null, text);
        members.insert("metrics_path".into(), metrics_path);
        members.insert("timeout_ms".into(), export.timeout_ms.into());
        members.insert("flush_interval_ms".into(), export.flush_interval_ms.into());
        members.insert("batch_size".into(), export.batch_size.into());
        members.insert("queue_size".into(), export.queue_size.into());
        members.insert("service_name".into(), text(&export.service_name));
        let attributes = export
            .resource_attributes
            .iter()
            .map(|(name, value)| (name.clone(), text(value)))
            .collect();
        members.insert("resource_attributes".into(), Value::Object(attributes));
        document.insert("export".into(), Value::Object(members));
        document.insert("client_span".into(), own_span.client_span.into());
        let ratio = f64::from(own_span.root_sampling_millionths) / 1e6;
        document.insert("root_sampling_ratio".into(), ratio.into());
        document.insert("inject_meta".into(), own_span.inject_meta.into());
        let server_spans = match own_span.server_spans {
            ServerSpans {
                forward: false,
                strip: false,
            } => "pass",
            ServerSpans {
                forward: true,
                strip: false,
            } => "forward",
            ServerSpans {
                forward: false,
                strip: true,
            } => "strip",
            ServerSpans {
                forward: true,
                strip: true,
            } => "forward_and_strip",
        };
        document.insert("server_spans".into(), text(server_spans));
    }
    Value::Object(document).to_string()
}

// ---------------------------------------------------------------------------------------------
// scan_body

/// `mcp::scan` never panics and agrees with serde_json: a body serde_json reads as an object or
/// array scans, and its recorded fields are what serde_json finds at the same paths (the last
/// duplicate key winning in both); a body that scans is one serde_json reads too, except where
/// serde_json is stricter (lone surrogate escapes, nesting past 128, numbers beyond `f64`).
/// Recorded `_meta` strings point at their raw bytes in the body.
pub fn scan_body(data: &[u8]) {
    let result = mcp::scan(data);
    let reference = serde_json::from_slice::<Value>(data);
    match (&result, &reference) {
        (Ok(scanned), Ok(value)) => compare_scan(data, scanned, value),
        (Ok(_), Err(_)) => {
            // JSON's grammar allows `\uD800`-`\uDFFF` escapes unpaired; serde_json refuses them.
            // With those escapes made ordinary, serde_json must agree unless it hit one of its
            // own limits.
            let plain = without_surrogate_escapes(data);
            if let Err(error) = serde_json::from_slice::<Value>(&plain) {
                let reason = error.to_string();
                assert!(
                    reason.contains("recursion limit exceeded")
                        || reason.contains("number out of range"),
                    "scan accepted a body serde_json rejects: {reason}: {:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
        (Err(reason), Ok(value)) => {
            assert!(
                !value.is_object() && !value.is_array(),
                "scan rejected valid JSON ({reason:?}): {:?}",
                String::from_utf8_lossy(data)
            );
            assert_eq!(*reason, NotMcp::NotAMessage);
        }
        (Err(_), Err(_)) => {}
    }
    if let Ok(scanned) = &result {
        let first = data.iter().find(|b| !b" \t\r\n".contains(b));
        assert_eq!(scanned.batch, first == Some(&b'['));
        if !scanned.batch {
            assert_eq!(scanned.messages.len(), 1);
        }
        for message in &scanned.messages {
            for value in [
                &message.meta.traceparent,
                &message.meta.tracestate,
                &message.meta.baggage,
            ] {
                if let Some(MetaValue::Text(text)) = value {
                    check_raw_range(data, text);
                }
            }
        }
    }
    let digest = digest::digest(data, &RoutingHeaders::default());
    match (&result, digest) {
        (Ok(scanned), Ok(digest)) => {
            check_digest(data, &digest, scanned, reference.as_ref().ok());
            assert_eq!(digest.header_mismatch, None, "a mismatch without headers");
        }
        (Err(scan), Err(digest)) => assert_eq!(*scan, digest),
        (scan, digest) => panic!("scan {scan:?} but digest {digest:?}"),
    }
}

/// `data` with every `\u` escape of a UTF-16 surrogate replaced by `\u0041`, same length.
fn without_surrogate_escapes(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] != b'\\' {
            i += 1;
            continue;
        }
        if out.get(i + 1) == Some(&b'u') {
            let surrogate = out
                .get(i + 2..i + 6)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                .is_some_and(|unit| (0xD800..=0xDFFF).contains(&unit));
            if surrogate {
                out[i + 2..i + 6].copy_from_slice(b"0041");
            }
        }
        // Skip the escaped character, so `\\u` is not taken for an escape.
        i += 2;
    }
    out
}

/// The raw range of a `_meta` string sits between its quotes, and decodes to its value.
fn check_raw_range(data: &[u8], text: &mcp::MetaText) {
    let raw = data
        .get(text.raw.clone())
        .unwrap_or_else(|| panic!("raw range {:?} outside the body", text.raw));
    assert_eq!(data.get(text.raw.start.wrapping_sub(1)), Some(&b'"'));
    assert_eq!(data.get(text.raw.end), Some(&b'"'));
    assert_eq!(text.escaped, raw.contains(&b'\\'));
    if !text.escaped {
        assert_eq!(raw, text.value.as_bytes());
        return;
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    if let Ok(decoded) = serde_json::from_slice::<String>(&quoted) {
        assert_eq!(decoded, text.value);
    }
}

fn compare_scan(data: &[u8], scanned: &ScannedBody, value: &Value) {
    let shown = || String::from_utf8_lossy(data).into_owned();
    match value {
        Value::Object(object) => {
            assert!(!scanned.batch);
            assert_eq!(scanned.messages.len(), 1);
            compare_message(&scanned.messages[0], object, &shown);
        }
        Value::Array(elements) => {
            assert!(scanned.batch);
            let objects: Vec<&Map<String, Value>> =
                elements.iter().filter_map(Value::as_object).collect();
            assert_eq!(
                scanned.messages.len(),
                objects.len(),
                "batch messages: {}",
                shown()
            );
            for (message, object) in scanned.messages.iter().zip(objects) {
                compare_message(message, object, &shown);
            }
        }
        _ => panic!("scan accepted a JSON scalar: {}", shown()),
    }
}

fn compare_message(message: &Message, object: &Map<String, Value>, shown: &dyn Fn() -> String) {
    let string_at = |map: &Map<String, Value>, key: &str| {
        map.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    assert_eq!(
        message.jsonrpc,
        string_at(object, "jsonrpc"),
        "jsonrpc: {}",
        shown()
    );
    assert_eq!(
        message.method,
        string_at(object, "method"),
        "method: {}",
        shown()
    );
    match (object.get("id"), &message.id) {
        (Some(Value::String(s)), Some(RequestId::String(scanned))) => {
            assert_eq!(s, scanned, "id: {}", shown())
        }
        (Some(Value::Null), Some(RequestId::Null)) => {}
        (Some(Value::Number(n)), Some(RequestId::Number(text))) => {
            let reparsed: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("id number {text:?} does not parse: {e}"));
            assert_eq!(reparsed, Value::Number(n.clone()), "id: {}", shown());
        }
        (None | Some(Value::Bool(_) | Value::Array(_) | Value::Object(_)), None) => {}
        (expected, scanned) => panic!("id: serde {expected:?}, scan {scanned:?}: {}", shown()),
    }

    let params = object.get("params").and_then(Value::as_object);
    assert_eq!(
        message.name,
        params.and_then(|p| string_at(p, "name")),
        "params.name: {}",
        shown()
    );
    assert_eq!(
        message.uri,
        params.and_then(|p| string_at(p, "uri")),
        "params.uri: {}",
        shown()
    );
    let meta = params.and_then(|p| p.get("_meta"));
    assert_eq!(
        message.meta.not_an_object,
        meta.is_some_and(|m| !m.is_object()),
        "_meta not an object: {}",
        shown()
    );
    let meta = meta.and_then(Value::as_object);
    for (field, scanned) in [
        ("traceparent", &message.meta.traceparent),
        ("tracestate", &message.meta.tracestate),
        ("baggage", &message.meta.baggage),
    ] {
        match (meta.and_then(|m| m.get(field)), scanned) {
            (None, None) => {}
            (Some(Value::String(s)), Some(MetaValue::Text(text))) => {
                assert_eq!(*s, text.value, "_meta.{field}: {}", shown())
            }
            (Some(other), Some(MetaValue::Unusable)) if !other.is_string() => {}
            (expected, scanned) => {
                panic!(
                    "_meta.{field}: serde {expected:?}, scan {scanned:?}: {}",
                    shown()
                )
            }
        }
    }

    assert_eq!(
        message.meta.protocol_version.as_deref(),
        meta.and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
            .and_then(Value::as_str),
        "_meta protocol version: {}",
        shown()
    );

    // Responses: only objects are compared; what a non-object `error`/`result` records is not
    // something the scanner promises.
    match object.get("error") {
        None => assert_eq!(message.error, None, "error: {}", shown()),
        Some(Value::Object(error)) => {
            let code = message.error.as_ref().and_then(|e| e.code.as_deref());
            match error.get("code") {
                Some(Value::Number(n)) => {
                    let reparsed = code.and_then(|c| serde_json::from_str::<Value>(c).ok());
                    assert_eq!(
                        reparsed,
                        Some(Value::Number(n.clone())),
                        "error.code: {}",
                        shown()
                    );
                }
                _ => assert_eq!(code, None, "error.code: {}", shown()),
            }
        }
        Some(_) => {}
    }
    match object.get("result") {
        None => assert_eq!(message.result, None, "result: {}", shown()),
        Some(Value::Object(result)) => {
            let is_error = result.get("isError") == Some(&Value::Bool(true));
            assert_eq!(
                message.result.as_ref().map(|r| r.is_error),
                Some(is_error),
                "result.isError: {}",
                shown()
            );
        }
        Some(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// digest

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The digest holds what the README says the filter decides on: the batch flag; the request
/// (the first message with a method); the context (the first message with a valid
/// `_meta.traceparent`, else the first with any trace value) and its parsed `traceparent`; and
/// where the upstream role rewrites it (`rules::context_slots`: every copy that a reader of the
/// body takes for a message's `_meta.traceparent`, however written, another context left out).
/// `reading` is serde_json's reading of `body`, when serde_json accepts it.
fn check_digest(body: &[u8], digest: &Digest, scanned: &ScannedBody, reading: Option<&Value>) {
    assert_eq!(digest.batch, scanned.batch);
    let request = scanned.messages.iter().find(|m| m.method.is_some());
    assert_eq!(digest.request.as_ref(), request, "digest request");
    let Some(reading) = reading else {
        // serde_json is stricter than JSON here (lone surrogate escapes, deep nesting, numbers
        // beyond f64): only what the ranges promise about themselves is checked.
        let chosen = digest
            .context
            .as_ref()
            .and_then(|c| c.meta.traceparent.as_ref())
            .and_then(MetaValue::text);
        for range in &digest.context_ranges {
            // A string's raw contents, between its quotes, that read as the context's value.
            let quoted = body.get(range.start.wrapping_sub(1)..range.end + 1);
            let text = quoted.and_then(|q| serde_json::from_slice::<String>(q).ok());
            assert_eq!(
                text.as_deref(),
                chosen,
                "range {range:?} of {}",
                lossy(body)
            );
        }
        return;
    };
    let messages = reading::messages(reading);
    assert_eq!(messages.len(), scanned.messages.len(), "{}", lossy(body));
    let context = rules::context_index(&messages);
    assert_eq!(
        digest.context.as_ref(),
        context.map(|i| &scanned.messages[i]),
        "digest context: {}",
        lossy(body)
    );
    let chosen = context.and_then(|i| reading::meta_text(messages[i].1, "traceparent"));
    let parent = chosen.and_then(reference::traceparent);
    assert_eq!(digest.context_parent, parent, "digest context_parent");
    assert_eq!(
        digest.context_ranges,
        rules::context_slots(body, reading),
        "where {chosen:?} can be rewritten: {}",
        lossy(body)
    );
}

// ---------------------------------------------------------------------------------------------
// request_plan

/// A valid version-00 `traceparent` for the upstream role when the input names none.
const PROXY_PARENT: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

/// The request headers the target models, in the order of their presence bits and fields.
const HEADERS: [&str; 7] = [
    "traceparent",
    "tracestate",
    "baggage",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

/// One request as the filter sees it, decoded from fuzzer bytes:
///
/// - byte 0: configuration. Bit 0: `precedence` header (else meta); bits 1-2: `baggage` mode
///   (meta, merge, header, drop); bit 3: `span_headers`.
/// - byte 1: which request headers arrived, one bit each in the order of [`HEADERS`].
/// - then fields separated by `0xFF` (a byte UTF-8 never uses): the seven header values in
///   that order, the `traceparent` the upstream request carries for the body sync (empty:
///   derived from the body's context with a new parent id), and the body, which is everything
///   after the eighth separator and may itself hold `0xFF`.
struct RequestInput<'a> {
    config: Config,
    headers: [Option<String>; 7],
    upstream: String,
    body: &'a [u8],
}

impl RequestInput<'_> {
    fn decode(data: &[u8]) -> RequestInput<'_> {
        let config_bits = data.first().copied().unwrap_or(0);
        let present = data.get(1).copied().unwrap_or(0);
        let rest = data.get(2..).unwrap_or_default();
        let mut fields = rest.splitn(HEADERS.len() + 2, |b| *b == 0xFF);
        let mut text = || lossy(fields.next().unwrap_or_default());
        let mut headers: [Option<String>; 7] = Default::default();
        for (index, slot) in headers.iter_mut().enumerate() {
            let value = text();
            if present & (1 << index) != 0 {
                *slot = Some(value);
            }
        }
        let upstream = text();
        let body = fields.next().unwrap_or_default();
        let config = Config {
            precedence: if config_bits & 1 == 0 {
                Precedence::Meta
            } else {
                Precedence::Header
            },
            baggage: match (config_bits >> 1) & 3 {
                0 => BaggageMode::Meta,
                1 => BaggageMode::Merge,
                2 => BaggageMode::Header,
                _ => BaggageMode::Drop,
            },
            span_headers: config_bits & 8 != 0,
            ..Config::default()
        };
        RequestInput {
            config,
            headers,
            upstream,
            body,
        }
    }
}

/// The whole per-request pipeline of both roles, on arbitrary configuration, arrived headers
/// and body: digest → plan → span → span headers → body sync. Each step is compared with the
/// README's rules as `rules` states them on serde_json's reading of the body (when serde_json
/// reads it); whatever the body, every header value the filter would set is valid W3C and
/// header-safe, and a synced body changes only inside the digest's ranges.
pub fn request_plan(data: &[u8]) {
    let input = RequestInput::decode(data);
    let [traceparent, tracestate, baggage, session_id, protocol_version, mcp_method, mcp_name] =
        &input.headers;
    let routing = RoutingHeaders {
        method: mcp_method.as_deref(),
        name: mcp_name.as_deref(),
    };
    let (scanned, digest) = match (mcp::scan(input.body), digest::digest(input.body, &routing)) {
        (Ok(scanned), Ok(digest)) => (scanned, digest),
        (Err(scan), Err(digest)) => {
            assert_eq!(scan, digest);
            return;
        }
        (scan, digest) => panic!("scan {scan:?} but digest {digest:?}"),
    };
    let reading = serde_json::from_slice::<Value>(input.body).ok();
    if let Some(reading) = &reading {
        compare_scan(input.body, &scanned, reading);
    }
    check_digest(input.body, &digest, &scanned, reading.as_ref());
    assert_eq!(
        digest.header_mismatch,
        rules::expected_mismatch(&routing, &scanned.messages),
        "SEP-2243 check of {routing:?}: {}",
        lossy(input.body)
    );

    let arrived = ArrivedHeaders {
        traceparent: traceparent.as_deref(),
        tracestate: tracestate.as_deref(),
        baggage: baggage.as_deref(),
    };
    let planned = plan::plan(&input.config, &arrived, &digest);
    check_plan_values(&planned);
    if let Some(reading) = &reading {
        let expected = rules::expected_plan(&input.config, &arrived, reading);
        let actual = rules::ExpectedPlan {
            changes: planned.changes.clone(),
            outcome: planned.outcome,
            invalid_values: planned.invalid_values,
        };
        assert_eq!(
            actual,
            expected,
            "plan for {:?} {:?} {arrived:?}: {}",
            input.config.precedence,
            input.config.baggage,
            lossy(input.body)
        );
    }

    check_span(
        digest.request.as_ref(),
        session_id.as_deref(),
        protocol_version.as_deref(),
    );

    let upstream = if input.upstream.is_empty() {
        derived_upstream(&digest)
    } else {
        input.upstream.clone()
    };
    check_sync(input.body, &digest, reading.as_ref(), &upstream);
}

/// The context's `traceparent` with the proxy's parent id, or a fixed one.
fn derived_upstream(digest: &Digest) -> String {
    match digest.context_parent {
        Some(parent) => parent.with_parent_id(PROXY_PARENT).to_header_value(),
        None => "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".to_owned(),
    }
}

/// What holds of any plan: each trace header is changed at most once, only `tracestate` is
/// ever removed, a `tracestate` change comes with a `traceparent`, and every value set is
/// header-safe and valid again for the filter's own parsers within the forwarding limits.
fn check_plan_values(planned: &plan::Plan) {
    let mut names = Vec::new();
    for change in &planned.changes {
        let name = match change {
            HeaderChange::Set(name, value) => {
                assert_header_value(name, value);
                match *name {
                    plan::TRACEPARENT => {
                        let parsed = TraceParent::parse(value);
                        assert!(parsed.is_some_and(|p| p.version == 0), "{value:?}");
                    }
                    plan::TRACESTATE => {
                        let state = TraceState::parse(value)
                            .unwrap_or_else(|| panic!("tracestate {value:?} invalid"));
                        assert!(!state.is_empty(), "empty tracestate set");
                        assert!(value.len() <= 512, "tracestate of {} bytes", value.len());
                    }
                    plan::BAGGAGE => {
                        let baggage = Baggage::parse(value)
                            .unwrap_or_else(|| panic!("baggage {value:?} invalid"));
                        assert!(!baggage.is_empty(), "empty baggage set");
                        assert!(value.len() <= MAX_BAGGAGE_BYTES);
                    }
                    other => panic!("plan sets a header it does not own: {other}"),
                }
                *name
            }
            HeaderChange::Remove(name) => {
                assert_eq!(*name, plan::TRACESTATE, "only tracestate is ever removed");
                *name
            }
        };
        assert!(!names.contains(&name), "{name} changed twice");
        names.push(name);
    }
    if names.contains(&plan::TRACESTATE) {
        assert!(
            names.contains(&plan::TRACEPARENT),
            "tracestate changed without traceparent"
        );
    }
    // Only a lift changes headers, but for the header's own `traceparent` rewritten to
    // version 00 when the header context is kept.
    match planned.outcome {
        Outcome::Lifted => assert!(!planned.changes.is_empty(), "lifted nothing"),
        Outcome::HeaderKept => assert!(
            planned
                .changes
                .iter()
                .all(|c| matches!(c, HeaderChange::Set(plan::TRACEPARENT, _))),
            "header kept, yet {:?}",
            planned.changes
        ),
        other => assert!(planned.changes.is_empty(), "{other:?} with changes"),
    }
    assert!(planned.invalid_values <= 4);
}

/// The span of the request and its headers are what `rules` says, and the headers are safe.
fn check_span(request: Option<&Message>, session_id: Option<&str>, protocol: Option<&str>) {
    let transport = TransportHeaders {
        session_id,
        protocol_version: protocol,
    };
    let span = request.and_then(|r| semconv::request_span(r, &transport));
    let expected = request.and_then(|r| rules::expected_span(r, session_id, protocol));
    let (span, (name, attributes)) = match (span, expected) {
        (None, None) => return,
        (Some(span), Some(expected)) => (span, expected),
        (span, expected) => panic!("span {span:?}, expected {expected:?}"),
    };
    assert_eq!(span.name, name, "span name of {request:?}");
    assert_eq!(
        span.attributes, attributes,
        "span attributes of {request:?}"
    );
    assert_eq!(span.id, request.and_then(|r| r.id.clone()));
    let headers: Vec<(&str, String)> = semconv::span_headers(&span)
        .into_iter()
        .map(|(header, value)| (header, value.to_owned()))
        .collect();
    assert_eq!(headers, rules::expected_span_headers(&name, &attributes));
    for (header, value) in &headers {
        assert!(
            mcp_trace_filter::header_policy::is_owned(header),
            "{header} not owned"
        );
        assert_header_value(header, value);
    }
}

/// The upstream role's body rewrite (README, `role: upstream`): when the upstream
/// `traceparent` is a valid version-00 value, exactly the copies of the context's
/// `_meta.traceparent` that `rules::context_slots` names become it, and every other byte
/// stays, including another message's different context; otherwise nothing changes. Located
/// with serde_json, not with the digest, whenever serde_json reads the body.
fn check_sync(body: &[u8], digest: &Digest, reading: Option<&Value>, upstream: &str) {
    let mut synced = body.to_vec();
    let changed = body_sync::sync_traceparent(&mut synced, digest, upstream);
    let upstream_ok = reference::traceparent(upstream).is_some_and(|p| p.version == 0);
    // serde_json is stricter than JSON on some bodies: then only the digest says where.
    let slots = match reading {
        Some(reading) => rules::context_slots(body, reading),
        None => digest.context_ranges.clone(),
    };
    let mut expected = body.to_vec();
    if upstream_ok {
        for slot in slots.into_iter().rev() {
            expected.splice(slot, upstream.bytes());
        }
    }
    if synced != expected {
        let at = synced.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "synced to {upstream:?} differs from the expected body at byte {at:?}:\n  synced   {}\n  expected {}",
            lossy(&synced),
            lossy(&expected)
        );
    }
    assert_eq!(changed, expected != body, "sync reported {changed}");
}
