//! The invariants the fuzz targets check, one public function per target.
//!
//! Each fuzz target in `fuzz_targets/` is a one-line call into this crate, and
//! `tests/replay.rs` runs every committed seed and regression input through the same
//! functions on stable Rust, so CI checks the invariants without libFuzzer.
//!
//! A check that fails panics with a message naming the broken invariant: that panic is how
//! libFuzzer records a finding, so panics, `unwrap` and `expect` are the point here.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod reference;

use mcp_trace_filter::body_sync;
use mcp_trace_filter::config::{BaggageMode, Config, Precedence, Role};
use mcp_trace_filter::mcp::{self, Message, MetaValue, NotMcp, RequestId, ScannedBody};
use mcp_trace_filter::plan::{self, ArrivedHeaders, HeaderChange, Outcome};
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

fn check_baggage(data: &[u8]) -> Option<Baggage> {
    let input = String::from_utf8_lossy(data);
    let parsed = Baggage::parse(&input);
    let expected = reference::baggage(&input);
    assert_eq!(
        parsed
            .as_ref()
            .map(|b| b.keys().map(str::to_owned).collect()),
        expected,
        "Baggage::parse({input:?}) disagrees with the reference"
    );
    let baggage = parsed?;
    assert_baggage_header(&baggage);
    Some(baggage)
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

/// `_meta` members first (all of them), then the header's members whose key `_meta` lacks, in
/// order, as many as fit.
fn check_merge(winner: &Baggage, other: &Baggage) {
    let merged = Baggage::merge(winner, other);
    assert_baggage_header(&merged);
    if winner.is_empty() {
        assert!(merged.keys().eq(other.keys()));
        return;
    }
    let merged_keys: Vec<&str> = merged.keys().collect();
    let winner_keys: Vec<&str> = winner.keys().collect();
    assert!(
        merged_keys.starts_with(&winner_keys),
        "merge lost or reordered the winning members"
    );
    let candidates: Vec<&str> = other
        .keys()
        .filter(|key| !winner_keys.contains(key))
        .collect();
    let added = &merged_keys[winner_keys.len()..];
    assert!(
        candidates.starts_with(added),
        "merge added {added:?}, not a prefix of {candidates:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// config

/// `Config::parse` never panics; an accepted configuration holds exactly the documented values
/// of the document's keys and survives a round trip; an error names a key of the document.
pub fn config(data: &[u8]) {
    let result = Config::parse(data);
    let whitespace_only = data.iter().all(u8::is_ascii_whitespace);
    let document: Option<Map<String, Value>> = match serde_json::from_slice(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    match result {
        Ok(config) => {
            assert!(
                (1..=64 * 1024 * 1024).contains(&config.max_body_bytes),
                "max_body_bytes {} out of range",
                config.max_body_bytes
            );
            if whitespace_only {
                assert_eq!(config, Config::default());
                return;
            }
            let Some(document) = document else {
                panic!("accepted a configuration that is not a JSON object: {data:?}");
            };
            assert_eq!(config, expected_config(&document));
            let text = config_json(&config);
            assert_eq!(Config::parse(text.as_bytes()), Ok(config), "{text}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(
                !whitespace_only,
                "whitespace-only configuration rejected: {message}"
            );
            if error.key.is_empty() {
                return;
            }
            assert!(message.contains(&format!("`{}`", error.key)), "{message}");
            let Some(document) = document else {
                panic!("error names key {:?} of a non-object document", error.key);
            };
            assert!(
                document.contains_key(&error.key),
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

/// What the README's configuration reference says `document` means (it was accepted).
fn expected_config(document: &Map<String, Value>) -> Config {
    let mut expected = Config::default();
    for (key, value) in document {
        let text = value.as_str();
        match key.as_str() {
            "precedence" => {
                expected.precedence = match text {
                    Some("meta") => Precedence::Meta,
                    Some("header") => Precedence::Header,
                    _ => panic!("accepted precedence {value}"),
                }
            }
            "baggage" => {
                expected.baggage = match text {
                    Some("meta") => BaggageMode::Meta,
                    Some("merge") => BaggageMode::Merge,
                    Some("header") => BaggageMode::Header,
                    Some("drop") => BaggageMode::Drop,
                    _ => panic!("accepted baggage {value}"),
                }
            }
            "role" => {
                expected.role = match text {
                    Some("gateway") => Role::Gateway,
                    Some("upstream") => Role::Upstream,
                    _ => panic!("accepted role {value}"),
                }
            }
            "span_headers" => {
                expected.span_headers = value
                    .as_bool()
                    .unwrap_or_else(|| panic!("accepted span_headers {value}"))
            }
            "max_body_bytes" => {
                let limit = value
                    .as_u64()
                    .unwrap_or_else(|| panic!("accepted max_body_bytes {value}"));
                expected.max_body_bytes = usize::try_from(limit).unwrap();
            }
            other => assert!(other.starts_with('_'), "accepted unknown key {other:?}"),
        }
    }
    expected
}

fn config_json(config: &Config) -> String {
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
    format!(
        r#"{{"precedence":"{precedence}","baggage":"{baggage}","max_body_bytes":{},"span_headers":{},"role":"{role}"}}"#,
        config.max_body_bytes, config.span_headers
    )
}

// ---------------------------------------------------------------------------------------------
// scan_body

/// Findings reported against code this crate's author may not change (the scanner in
/// `src/mcp/`), each with its reproducer in `regressions/open/<target>/`. The checks stay
/// strict; a fuzzing run can set `MCP_FUZZ_TOLERATE` to a comma-separated list of these names
/// to look past a known finding and keep searching for new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFinding {
    /// `error.code` keeps an earlier number when a later duplicate `code` is not a number.
    ErrorCodeDuplicate,
}

fn tolerated(finding: OpenFinding) -> bool {
    static TOLERATED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let list = TOLERATED.get_or_init(|| std::env::var("MCP_FUZZ_TOLERATE").unwrap_or_default());
    let name = match finding {
        OpenFinding::ErrorCodeDuplicate => "error_code_duplicate",
    };
    list.split(',').any(|item| item.trim() == name)
}

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

    // Responses: only objects are compared; what a non-object `error`/`result` records is not
    // something the scanner promises.
    match object.get("error") {
        None => assert_eq!(message.error, None, "error: {}", shown()),
        Some(Value::Object(error)) => {
            let code = message.error.as_ref().and_then(|e| e.code.as_deref());
            match error.get("code") {
                Some(last) if !last.is_number() && tolerated(OpenFinding::ErrorCodeDuplicate) => {}
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
// request_plan

/// A valid version-00 `traceparent` for the upstream role when the input names none.
const PROXY_PARENT: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

/// One request as the filter sees it, decoded from fuzzer bytes:
///
/// - byte 0: configuration. Bit 0: `precedence` header (else meta); bits 1-2: `baggage` mode
///   (meta, merge, header, drop); bit 3: `span_headers`.
/// - byte 1: which request headers arrived. Bit 0 `traceparent`, 1 `tracestate`, 2 `baggage`,
///   3 `mcp-session-id`, 4 `mcp-protocol-version`.
/// - then fields separated by `0xFF` (a byte UTF-8 never uses): the five header values in that
///   order, the `traceparent` the upstream request carries for the body sync (empty: derived
///   from the body's context with a new parent id), and the body, which is everything after
///   the sixth separator and may itself hold `0xFF`.
struct RequestInput<'a> {
    config: Config,
    headers: [Option<String>; 5],
    upstream: String,
    body: &'a [u8],
}

impl RequestInput<'_> {
    fn decode(data: &[u8]) -> RequestInput<'_> {
        let config_bits = data.first().copied().unwrap_or(0);
        let present = data.get(1).copied().unwrap_or(0);
        let rest = data.get(2..).unwrap_or_default();
        let mut fields = rest.splitn(7, |b| *b == 0xFF);
        let mut text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        let mut headers: [Option<String>; 5] = Default::default();
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
/// and body: scan → plan → span → span headers → body sync. Every header value the filter would
/// set is valid W3C (it parses again with the filter's own parsers) and holds no control
/// character; the plan keeps its documented rules; a synced body keeps its length and changes
/// only inside `_meta.traceparent` values, each now the upstream `traceparent`.
pub fn request_plan(data: &[u8]) {
    let input = RequestInput::decode(data);
    let Ok(scanned) = mcp::scan(input.body) else {
        return;
    };
    let [traceparent, tracestate, baggage, session_id, protocol_version] = &input.headers;
    let arrived = ArrivedHeaders {
        traceparent: traceparent.as_deref(),
        tracestate: tracestate.as_deref(),
        baggage: baggage.as_deref(),
    };
    let planned = plan::plan(&input.config, &arrived, &scanned);
    check_plan(&input.config, &arrived, &scanned, &planned);

    let transport = TransportHeaders {
        session_id: session_id.as_deref(),
        protocol_version: protocol_version.as_deref(),
    };
    if let Some(span) = semconv::request_span(&scanned, &transport) {
        assert!(span.name.len() <= 2 * semconv::MAX_VALUE_BYTES + 1);
        for (key, value) in &span.attributes {
            assert!(semconv::REQUEST_ATTRIBUTES.contains(key));
            assert!(!value.is_empty() && value.len() <= semconv::MAX_VALUE_BYTES);
        }
        let mut seen = Vec::new();
        for (header, value) in semconv::span_headers(&span) {
            assert!(
                semconv::OWNED_HEADERS.contains(&header),
                "{header} not owned"
            );
            assert!(!seen.contains(&header), "{header} set twice");
            seen.push(header);
            assert!(semconv::is_header_safe(value), "{header}: {value:?}");
            assert_header_value(header, value);
        }
    }

    let upstream = if input.upstream.is_empty() {
        derived_upstream(&scanned)
    } else {
        input.upstream.clone()
    };
    check_sync(input.body, &scanned, &upstream);
}

/// The first message's valid `_meta.traceparent` with the proxy's parent id, or a fixed one.
fn derived_upstream(scanned: &ScannedBody) -> String {
    let client = scanned
        .messages
        .iter()
        .filter_map(|m| m.meta.traceparent.as_ref().and_then(MetaValue::text))
        .find_map(TraceParent::parse);
    match client {
        Some(parent) => parent.with_parent_id(PROXY_PARENT).to_header_value(),
        None => "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".to_owned(),
    }
}

fn check_plan(
    config: &Config,
    arrived: &ArrivedHeaders<'_>,
    scanned: &ScannedBody,
    planned: &plan::Plan,
) {
    let mut names = Vec::new();
    let set = |name: &str| -> Option<&str> {
        planned.changes.iter().find_map(|change| match change {
            HeaderChange::Set(n, value) if *n == name => Some(value.as_str()),
            _ => None,
        })
    };
    let set_traceparent = set(plan::TRACEPARENT);
    let set_tracestate = set(plan::TRACESTATE);
    let set_baggage = set(plan::BAGGAGE);
    for change in &planned.changes {
        let name = match change {
            HeaderChange::Set(name, value) => {
                assert_header_value(name, value);
                match *name {
                    plan::TRACEPARENT => assert!(TraceParent::parse(value).is_some(), "{value:?}"),
                    plan::TRACESTATE => {
                        let state = TraceState::parse(value)
                            .unwrap_or_else(|| panic!("tracestate {value:?} invalid"));
                        assert!(!state.is_empty(), "empty tracestate set");
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

    // A context travels whole: any tracestate change comes with the `_meta` traceparent, and
    // the tracestate set is that same message's own.
    let source = scanned.messages.iter().find(|m| {
        m.meta
            .traceparent
            .as_ref()
            .and_then(MetaValue::text)
            .and_then(TraceParent::parse)
            .is_some()
    });
    if names.contains(&plan::TRACESTATE) {
        assert!(
            set_traceparent.is_some(),
            "tracestate changed without traceparent"
        );
    }
    if let Some(value) = set_traceparent {
        let source = source.expect("traceparent set without a valid _meta traceparent");
        assert_eq!(
            Some(value),
            source.meta.traceparent.as_ref().and_then(MetaValue::text),
            "the lifted traceparent is not the first valid _meta one, verbatim"
        );
        let own_state = source
            .meta
            .tracestate
            .as_ref()
            .and_then(MetaValue::text)
            .and_then(TraceState::parse)
            .filter(|state| !state.is_empty())
            .map(|state| state.to_header_value());
        // The `_meta` tracestate, or none: an arrived one never outlives its traceparent.
        let removes = planned
            .changes
            .contains(&HeaderChange::Remove(plan::TRACESTATE));
        assert_eq!(removes, own_state.is_none() && arrived.tracestate.is_some());
        assert_eq!(set_tracestate.map(str::to_owned), own_state);
        let header_valid = arrived.traceparent.and_then(TraceParent::parse).is_some();
        assert!(
            config.precedence == Precedence::Meta || !header_valid,
            "header precedence replaced a valid header traceparent"
        );
    } else if config.precedence == Precedence::Meta {
        assert!(source.is_none(), "a valid _meta traceparent was not lifted");
    }
    // Baggage, per the README's table, from the message that provides the context (the first
    // with a valid traceparent, else the first with any trace value).
    let context = source.or_else(|| scanned.messages.iter().find(|m| m.meta.has_trace_fields()));
    let meta_baggage = context
        .and_then(|m| m.meta.baggage.as_ref())
        .and_then(MetaValue::text)
        .and_then(Baggage::parse)
        .filter(|b| !b.is_empty());
    let expected_baggage = meta_baggage.and_then(|meta| match config.baggage {
        BaggageMode::Drop => None,
        BaggageMode::Header if arrived.baggage.is_some() => None,
        BaggageMode::Meta | BaggageMode::Header => Some(meta.to_header_value()),
        BaggageMode::Merge => Some(match arrived.baggage.and_then(Baggage::parse) {
            Some(header) => Baggage::merge(&meta, &header).to_header_value(),
            None => meta.to_header_value(),
        }),
    });
    assert_eq!(
        set_baggage.map(str::to_owned),
        expected_baggage,
        "baggage change not as documented"
    );
    assert_eq!(
        planned.outcome == Outcome::Lifted,
        !planned.changes.is_empty()
    );
    assert!(planned.invalid_values <= 4);
}

/// The upstream role's body rewrite: same length, changes only inside usable
/// `_meta.traceparent` values, each of which becomes `upstream`, and the result still scans.
fn check_sync(body: &[u8], scanned: &ScannedBody, upstream: &str) {
    let upstream_ok = TraceParent::parse(upstream).is_some_and(|p| p.version == 0);
    let replaceable: Vec<&mcp::MetaText> = scanned
        .messages
        .iter()
        .filter_map(|m| match &m.meta.traceparent {
            Some(MetaValue::Text(text))
                if !text.escaped
                    && text.raw.len() == 55
                    && TraceParent::parse(&text.value).is_some() =>
            {
                Some(text)
            }
            _ => None,
        })
        .collect();
    let synced = body_sync::sync_traceparent(body, scanned, upstream);
    let needed = upstream_ok && replaceable.iter().any(|text| text.value != upstream);
    let Some(synced) = synced else {
        assert!(!needed, "a usable _meta.traceparent was not synced");
        return;
    };
    assert!(needed, "body rewritten although nothing needed it");
    assert_eq!(synced.len(), body.len(), "synced body changed length");
    for (index, (old, new)) in body.iter().zip(&synced).enumerate() {
        if old != new {
            assert!(
                replaceable.iter().any(|text| text.raw.contains(&index)),
                "byte {index} changed outside every _meta.traceparent"
            );
        }
    }
    for text in &replaceable {
        assert_eq!(&synced[text.raw.clone()], upstream.as_bytes());
    }
    let rescanned = mcp::scan(&synced).expect("synced body no longer scans");
    assert_eq!(rescanned.messages.len(), scanned.messages.len());
    for (before, after) in scanned.messages.iter().zip(&rescanned.messages) {
        let now = after.meta.traceparent.as_ref().and_then(MetaValue::text);
        match &before.meta.traceparent {
            Some(MetaValue::Text(text)) if replaceable.iter().any(|t| std::ptr::eq(*t, text)) => {
                assert_eq!(now, Some(upstream));
            }
            was => assert_eq!(now, was.as_ref().and_then(MetaValue::text)),
        }
    }
}
