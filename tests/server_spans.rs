//! SEP-2448 server spans in responses: finding `result._meta.otel`, stripping it byte-exactly,
//! the payloads to export, and the body-callback decisions for JSON and event-stream responses.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::server_spans::{
    find, payloads, strip, Action, BodyStep, PassbackFilter, PassbackOptions, MAX_FOUND,
};
use proptest::prelude::*;
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's live heap bytes and their peak, so a test can measure its own peak
/// while other tests run on other threads.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        grew(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as the worst case, both blocks alive at once.
            grew(new_size, 0);
            grew(0, layout.size());
        }
        new
    }
}

fn grew(allocated: usize, freed: usize) {
    let _ = LIVE.try_with(|live| {
        let now = (live.get() + allocated).saturating_sub(freed);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of this thread's heap, above what was live before, while `work` runs.
fn peak_during(work: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    work();
    PEAK.with(Cell::get) - base
}

const SEP: &str = r#"{"traces":{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"tools/call x"}]}]}],"truncated":false}}"#;
const SEP_TRACES: &str = r#"{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"tools/call x"}]}]}],"truncated":false}"#;
const DIRECT: &str = r#"{"resourceSpans":[{"scopeSpans":[]}]}"#;

fn stripped(doc: &str) -> String {
    let findings = find(doc.as_bytes()).expect("valid JSON");
    String::from_utf8(strip(doc.as_bytes(), &findings.found)).unwrap()
}

fn payload_texts(doc: &str) -> Vec<String> {
    let findings = find(doc.as_bytes()).expect("valid JSON");
    payloads(doc.as_bytes(), &findings.found)
        .into_iter()
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect()
}

fn in_result_meta(meta: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[],"_meta":{meta}}}}}"#)
}

// ---------------------------------------------------------------------------------------------
// find / strip: exact bytes.

#[test]
fn the_member_goes_with_the_right_comma_wherever_it_stands() {
    for (meta, expected) in [
        (r#"{"otel":{"x":1}}"#, r#"{}"#),
        (r#"{"otel":1,"a":2}"#, r#"{"a":2}"#),
        (r#"{"a":1,"otel":2,"b":3}"#, r#"{"a":1,"b":3}"#),
        (r#"{"a":1,"otel":2}"#, r#"{"a":1}"#),
        (
            r#"{ "a" : 1 , "otel" : 2 , "b" : 3 }"#,
            r#"{ "a" : 1 , "b" : 3 }"#,
        ),
        (r#"{ "otel" : 2 , "b" : 3 }"#, r#"{ "b" : 3 }"#),
        (r#"{ "a" : 1 , "otel" : 2 }"#, r#"{ "a" : 1 }"#),
        (r#"{ "otel" : 2 }"#, r#"{  }"#),
        ("{\r\n  \"otel\": 2\r\n}", "{\r\n  \r\n}"),
        (
            "{\n\t\"traceparent\": \"00-x\",\n\t\"otel\": {}\n}",
            "{\n\t\"traceparent\": \"00-x\"\n}",
        ),
    ] {
        let doc = in_result_meta(meta);
        assert_eq!(stripped(&doc), in_result_meta(expected), "{meta}");
    }
}

#[test]
fn every_duplicate_is_removed_and_the_rest_stays_valid() {
    for (meta, expected) in [
        (r#"{"otel":1,"otel":2}"#, r#"{}"#),
        (r#"{"otel":1,"a":0,"otel":2}"#, r#"{"a":0}"#),
        (r#"{"a":0,"otel":1,"otel":2}"#, r#"{"a":0}"#),
        (r#"{"otel":1,"otel":2,"a":0}"#, r#"{"a":0}"#),
        (
            r#"{"otel":1,"a":0,"otel":2,"b":0,"otel":3}"#,
            r#"{"a":0,"b":0}"#,
        ),
        (r#"{ "otel":1 , "otel":2 , "otel":3 }"#, r#"{  }"#),
    ] {
        let doc = in_result_meta(meta);
        assert_eq!(stripped(&doc), in_result_meta(expected), "{meta}");
    }
}

#[test]
fn found_ranges_are_exact() {
    let doc = in_result_meta(r#"{"a":1 ,  "otel" : {"k":[1,2]} }"#);
    let findings = find(doc.as_bytes()).unwrap();
    assert_eq!(findings.found.len(), 1);
    let found = &findings.found[0];
    assert_eq!(found.message, 0);
    assert_eq!(&doc[found.value.clone()], r#"{"k":[1,2]}"#);
    assert_eq!(&doc[found.member.clone()], r#" ,  "otel" : {"k":[1,2]}"#);
    assert_eq!(found.payload, None);
    assert!(!findings.capped);
}

#[test]
fn otel_anywhere_else_is_not_touched() {
    for doc in [
        r#"{"id":1,"result":{"content":[{"type":"text","text":"x","_meta":{"otel":{"resourceSpans":[1]}}}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"otel":{"traces":{"request":true}}}}}"#,
        r#"{"id":1,"params":{"_meta":{"otel":1}},"result":{}}"#,
        r#"{"id":1,"result":{"otel":1}}"#,
        r#"{"id":1,"_meta":{"otel":1},"result":{}}"#,
        r#"{"id":1,"result":{"_meta":{"x":{"otel":1}}}}"#,
        r#"{"id":1,"result":{"structuredContent":{"_meta":{"otel":1}}}}"#,
        r#"{"id":1,"error":{"code":-32000,"message":"m","data":{"_meta":{"otel":1}}}}"#,
        r#"{"id":1,"result":{"_meta":{"otel2":1,"Otel":2,"otel ":3,"_otel":4}}}"#,
        r#"{"id":1,"result":[{"_meta":{"otel":1}}]}"#,
        r#"{"id":1,"result":{"_meta":[{"otel":1}]}}"#,
        r#"[[{"result":{"_meta":{"otel":1}}}]]"#,
        r#"{"a":{"result":{"_meta":{"otel":1}}}}"#,
        r#""result _meta otel""#,
        r#"{}"#,
        r#"[]"#,
        r#"null"#,
    ] {
        let findings = find(doc.as_bytes()).expect(doc);
        assert!(findings.found.is_empty(), "{doc}");
        assert_eq!(stripped(doc), doc);
    }
}

#[test]
fn strings_that_look_like_members_are_just_strings() {
    let doc = r#"{"result":{"text":"\"otel\": {}}, \"_meta\"","_meta":{"note":"{\"otel\":1}","otel":{"s":"}\\\"otel\\\"{","t":"\u0022otel"},"z":"otel"}}}"#;
    let expected = r#"{"result":{"text":"\"otel\": {}}, \"_meta\"","_meta":{"note":"{\"otel\":1}","z":"otel"}}}"#;
    assert_eq!(stripped(doc), expected);
}

#[test]
fn escaped_keys_are_decoded() {
    for meta in [
        r#"{"\u006ftel":1,"a":2}"#,
        r#"{"\u006Ftel":1,"a":2}"#,
        r#"{"o\u0074el":1,"a":2}"#,
    ] {
        assert_eq!(
            stripped(&in_result_meta(meta)),
            in_result_meta(r#"{"a":2}"#)
        );
    }
    let doc = r#"{"\u0072esult":{"_\u006deta":{"otel":1}}}"#;
    assert_eq!(stripped(doc), r#"{"\u0072esult":{"_\u006deta":{}}}"#);
    // Escapes that do not decode to `otel` are other keys.
    let doc = in_result_meta(r#"{"\u00f6tel":1,"ot\"el":2,"otel\n":3,"\ud800otel":4}"#);
    assert!(find(doc.as_bytes()).unwrap().found.is_empty());
}

#[test]
fn a_batch_has_one_entry_per_response_message() {
    let doc = format!(
        r#"[{{"id":1,"result":{{"_meta":{{"otel":{SEP}}}}}}},{{"id":2,"method":"m","params":{{"_meta":{{"otel":1}}}}}},7,{{"id":3,"result":{{"_meta":{{"a":1,"otel":{DIRECT}}}}}}},[{{"result":{{"_meta":{{"otel":1}}}}}}],{{"id":4,"error":{{}}}}]"#
    );
    let findings = find(doc.as_bytes()).unwrap();
    let messages: Vec<usize> = findings.found.iter().map(|f| f.message).collect();
    assert_eq!(messages, [0, 3]);
    assert_eq!(payload_texts(&doc), [SEP_TRACES, DIRECT]);
    assert_eq!(
        stripped(&doc),
        r#"[{"id":1,"result":{"_meta":{}}},{"id":2,"method":"m","params":{"_meta":{"otel":1}}},7,{"id":3,"result":{"_meta":{"a":1}}},[{"result":{"_meta":{"otel":1}}}],{"id":4,"error":{}}]"#
    );
}

// ---------------------------------------------------------------------------------------------
// Payloads.

#[test]
fn the_sep_shape_forwards_the_traces_object() {
    let doc = in_result_meta(&format!(r#"{{"traceparent":"00-a","otel":{SEP}}}"#));
    assert_eq!(payload_texts(&doc), [SEP_TRACES]);
    let found = &find(doc.as_bytes()).unwrap().found[0];
    assert_eq!(&doc[found.value.clone()], SEP);
}

#[test]
fn resource_spans_directly_at_otel_forwards_otel() {
    let doc = in_result_meta(&format!(r#"{{"otel":{DIRECT}}}"#));
    assert_eq!(payload_texts(&doc), [DIRECT]);
}

#[test]
fn which_shapes_give_a_payload() {
    let valid_traces = r#"{"resourceSpans":[{}]}"#;
    for (otel, expected) in [
        // Both shapes: the SEP's `traces` wins.
        (
            format!(r#"{{"resourceSpans":[1],"traces":{valid_traces}}}"#),
            Some(valid_traces.to_string()),
        ),
        // An unusable `traces` falls back to a direct `resourceSpans`.
        (
            r#"{"traces":{"request":true},"resourceSpans":[2]}"#.to_string(),
            Some(r#"{"traces":{"request":true},"resourceSpans":[2]}"#.to_string()),
        ),
        (
            r#"{"traces":{"request":true,"detailed":false}}"#.to_string(),
            None,
        ),
        (r#"{"traces":{"resourceSpans":[ ]}}"#.to_string(), None),
        (r#"{"resourceSpans":[]}"#.to_string(), None),
        (r#"{"resourceSpans":{}}"#.to_string(), None),
        (r#"{"resourceSpans":null}"#.to_string(), None),
        (r#"{"traces":[{"resourceSpans":[1]}]}"#.to_string(), None),
        (r#"{"x":{"resourceSpans":[1]}}"#.to_string(), None),
        (r#"null"#.to_string(), None),
        (r#""resourceSpans""#.to_string(), None),
        (r#"[{"resourceSpans":[1]}]"#.to_string(), None),
        // Last one wins inside `otel` and inside `traces`.
        (
            format!(r#"{{"traces":{valid_traces},"traces":{{}}}}"#),
            None,
        ),
        (
            r#"{"traces":{"resourceSpans":[1],"resourceSpans":[]}}"#.to_string(),
            None,
        ),
        (
            r#"{"traces":{"resourceSpans":[],"resourceSpans":[3]}}"#.to_string(),
            Some(r#"{"resourceSpans":[],"resourceSpans":[3]}"#.to_string()),
        ),
        (
            r#"{"resourceSpans":[1],"resourceSpans":0}"#.to_string(),
            None,
        ),
    ] {
        let doc = in_result_meta(&format!(r#"{{"otel":{otel}}}"#));
        let found = find(doc.as_bytes()).unwrap().found;
        assert_eq!(found.len(), 1, "{otel}");
        assert_eq!(payload_texts(&doc), Vec::from_iter(expected), "{otel}");
    }
}

#[test]
fn only_what_a_last_wins_parser_reads_is_forwarded() {
    let a = r#"{"resourceSpans":["a"]}"#;
    let b = r#"{"resourceSpans":["b"]}"#;
    for (doc, expected) in [
        (
            in_result_meta(&format!(r#"{{"otel":{a},"otel":{b}}}"#)),
            vec![b],
        ),
        (
            in_result_meta(&format!(r#"{{"otel":{a},"otel":null}}"#)),
            vec![],
        ),
        (
            in_result_meta(&format!(r#"{{"otel":{a},"x":1,"otel":{b},"y":2}}"#)),
            vec![b],
        ),
        (
            format!(r#"{{"result":{{"_meta":{{"otel":{a}}},"_meta":{{}}}}}}"#),
            vec![],
        ),
        (
            format!(r#"{{"result":{{"_meta":{{"otel":{a}}},"_meta":{{"otel":{b}}}}}}}"#),
            vec![b],
        ),
        (
            format!(r#"{{"result":{{"_meta":{{"otel":{a}}}}},"result":1}}"#),
            vec![],
        ),
        (
            format!(
                r#"{{"result":{{"_meta":{{"otel":{a}}}}},"result":{{"_meta":{{"otel":{b}}}}}}}"#
            ),
            vec![b],
        ),
        // A later message does not hide an earlier one's.
        (
            format!(
                r#"[{{"result":{{"_meta":{{"otel":{a}}}}}}},{{"result":{{"_meta":{{"otel":{b}}}}}}}]"#
            ),
            vec![a, b],
        ),
    ] {
        assert_eq!(payload_texts(&doc), expected, "{doc}");
        // Whatever is read, every copy is stripped.
        let out = stripped(&doc);
        assert!(!out.contains("resourceSpans"), "{out}");
        serde_json::from_str::<Value>(&out).unwrap();
    }
}

#[test]
fn more_than_the_cap_leaves_the_rest_valid_and_forwards_nothing_stale() {
    let members: Vec<String> = (0..MAX_FOUND + 6)
        .map(|i| format!(r#""otel":{{"resourceSpans":[{i}]}}"#))
        .collect();
    let doc = in_result_meta(&format!("{{{}}}", members.join(",")));
    let findings = find(doc.as_bytes()).unwrap();
    assert_eq!(findings.found.len(), MAX_FOUND);
    assert!(findings.capped);
    assert_eq!(payloads(doc.as_bytes(), &findings.found).len(), 0);
    let out = String::from_utf8(strip(doc.as_bytes(), &findings.found)).unwrap();
    assert_eq!(out.matches("\"otel\"").count(), 6);
    serde_json::from_str::<Value>(&out).unwrap();

    // A kept member first: the remaining ones take their leading commas with them.
    let doc = in_result_meta(&format!("{{\"a\":0,{}}}", members.join(",")));
    let findings = find(doc.as_bytes()).unwrap();
    let out = String::from_utf8(strip(doc.as_bytes(), &findings.found)).unwrap();
    assert_eq!(out.matches("\"otel\"").count(), 6);
    serde_json::from_str::<Value>(&out).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Validation and nesting.

#[test]
fn invalid_documents_are_refused() {
    for doc in [
        &b""[..],
        b"   ",
        b"{",
        br#"{"a":1,}"#,
        b"[1,]",
        br#"{"a" 1}"#,
        br#"{"a":01}"#,
        b"\"a\x01\"",
        br#""\q""#,
        br#""\u12g4""#,
        b"\"\xff\"",
        b"\"\xc3\"",
        br#"{"a":1} x"#,
        br#"{"a":1}}"#,
        b"\xEF\xBB\xBF{}",
        b"tru",
        b"nul",
        b"]",
        b"{1:2}",
        b"[1 2]",
        br#"{"a":-}"#,
        b"1.",
        b".5",
        b"+1",
        br#"{"result":{"_meta":{"otel":1,}}}"#,
        br#"{"result":{"_meta":{"otel":}}}"#,
        br#"{"result":{"_meta":{"otel" 1}}}"#,
        br#"{"result":{"_meta":{"otel":1}}"#,
        br#"{"result":{"_meta":{"otel":[}}}"#,
    ] {
        assert_eq!(find(doc), None, "{:?}", String::from_utf8_lossy(doc));
    }
    for doc in [
        "1",
        "-0.5e+3",
        r#""\ud800""#,
        "true",
        " [ ] ",
        "{\"\":\"\"}",
    ] {
        assert!(find(doc.as_bytes()).is_some(), "{doc}");
    }
}

#[test]
fn deep_nesting_costs_no_recursion() {
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let doc = in_result_meta(&format!(r#"{{"a":{deep},"otel":{{"x":{deep}}}}}"#));
    let findings = find(doc.as_bytes()).unwrap();
    assert_eq!(findings.found.len(), 1);
    assert_eq!(
        stripped(&doc),
        in_result_meta(&format!(r#"{{"a":{deep}}}"#))
    );

    let objects = format!("{}1{}", r#"{"otel":"#.repeat(depth), "}".repeat(depth));
    let doc = in_result_meta(&format!(r#"{{"otel":{objects}}}"#));
    assert_eq!(stripped(&doc), in_result_meta("{}"));
    let unbalanced = format!("{}{}", "[".repeat(depth), "]".repeat(depth - 1));
    assert_eq!(find(unbalanced.as_bytes()), None);
}

#[test]
fn strip_ignores_ranges_that_do_not_fit() {
    let doc = in_result_meta(r#"{"otel":1,"a":2}"#);
    let mut found = find(doc.as_bytes()).unwrap().found;
    let mut wild = found[0].clone();
    wild.member = doc.len()..doc.len() + 10;
    found.push(wild.clone());
    wild.member = 0..3;
    found.push(wild);
    assert_eq!(
        String::from_utf8(strip(doc.as_bytes(), &found)).unwrap(),
        in_result_meta(r#"{"a":2}"#)
    );
}

// ---------------------------------------------------------------------------------------------
// The body-callback decisions.

const BOTH: PassbackOptions = PassbackOptions {
    forward: true,
    strip: true,
};
const STRIP: PassbackOptions = PassbackOptions {
    forward: false,
    strip: true,
};
const FORWARD: PassbackOptions = PassbackOptions {
    forward: true,
    strip: false,
};
const NEITHER: PassbackOptions = PassbackOptions {
    forward: false,
    strip: false,
};

/// A host that buffers while the filter waits and flushes on Pass or Replace.
struct Host {
    filter: PassbackFilter,
    buffered: Vec<u8>,
    downstream: Vec<u8>,
    payloads: Vec<Vec<u8>>,
    actions: Vec<&'static str>,
    over_limit: usize,
    unreadable: usize,
    capped: usize,
}

impl Host {
    fn new(content_type: &str, options: PassbackOptions, limit: usize) -> Host {
        Host {
            filter: PassbackFilter::new(Some(content_type), options, limit),
            buffered: Vec::new(),
            downstream: Vec::new(),
            payloads: Vec::new(),
            actions: Vec::new(),
            over_limit: 0,
            unreadable: 0,
            capped: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.buffered.extend_from_slice(chunk);
        let BodyStep {
            action,
            payloads,
            over_limit,
            unreadable,
            capped,
        } = self.filter.on_body(&self.buffered, end_of_stream);
        self.payloads.extend(payloads);
        self.over_limit += usize::from(over_limit);
        self.unreadable += usize::from(unreadable);
        self.capped += usize::from(capped);
        match action {
            Action::Wait => {
                assert!(!end_of_stream, "waiting at the end of the stream");
                self.actions.push("wait");
            }
            Action::Pass => {
                self.downstream.append(&mut self.buffered);
                self.actions.push("pass");
            }
            Action::Replace(bytes) => {
                self.downstream.extend_from_slice(&bytes);
                self.buffered.clear();
                self.actions.push("replace");
            }
        }
    }

    /// Feeds `chunks`, the last one ending the stream.
    fn run(content_type: &str, options: PassbackOptions, limit: usize, chunks: &[&[u8]]) -> Host {
        let mut host = Host::new(content_type, options, limit);
        for (i, chunk) in chunks.iter().enumerate() {
            host.feed(chunk, i + 1 == chunks.len());
        }
        host
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.downstream).unwrap()
    }

    fn payload_texts(&self) -> Vec<&str> {
        self.payloads
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect()
    }
}

const LIMIT: usize = 1 << 20;
const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";

fn response(meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":"hi"}}],"_meta":{meta}}}}}"#
    )
}

#[test]
fn json_waits_for_the_end_then_replaces() {
    let body = response(&format!(r#"{{"a":1,"otel":{SEP}}}"#));
    let (first, rest) = body.as_bytes().split_at(20);
    let (second, third) = rest.split_at(30);
    let host = Host::run(JSON, BOTH, LIMIT, &[first, second, third]);
    assert_eq!(host.actions, ["wait", "wait", "replace"]);
    assert_eq!(host.text(), response(r#"{"a":1}"#));
    assert_eq!(host.payload_texts(), [SEP_TRACES]);

    let host = Host::run(
        "Application/JSON; charset=utf-8",
        STRIP,
        LIMIT,
        &[body.as_bytes()],
    );
    assert_eq!(host.actions, ["replace"]);
    assert_eq!(host.text(), response(r#"{"a":1}"#));
    assert!(host.payloads.is_empty());
}

#[test]
fn forwarding_alone_passes_the_body_unchanged() {
    let body = response(&format!(r#"{{"otel":{DIRECT}}}"#));
    let host = Host::run(JSON, FORWARD, LIMIT, &[body.as_bytes(), b""]);
    assert_eq!(host.actions, ["wait", "pass"]);
    assert_eq!(host.text(), body);
    assert_eq!(host.payload_texts(), [DIRECT]);
}

#[test]
fn with_neither_option_or_another_type_nothing_is_looked_at() {
    let body = response(&format!(r#"{{"otel":{DIRECT}}}"#));
    for (content_type, options) in [
        (JSON, NEITHER),
        (SSE, NEITHER),
        ("text/plain", BOTH),
        ("application/json-seq", BOTH),
    ] {
        let filter = PassbackFilter::new(Some(content_type), options, LIMIT);
        assert!(!filter.is_active(), "{content_type}");
        let host = Host::run(content_type, options, LIMIT, &[b"{", body.as_bytes()]);
        assert_eq!(host.actions, ["pass", "pass"], "{content_type}");
        assert!(host.payloads.is_empty());
    }
    let filter = PassbackFilter::new(None, BOTH, LIMIT);
    assert!(!filter.is_active());
    assert!(PassbackFilter::new(Some(" text/event-stream ;x=1"), FORWARD, LIMIT).is_active());
}

#[test]
fn a_json_body_over_the_limit_passes_and_so_does_its_rest() {
    let body = response(&format!(r#"{{"otel":{DIRECT}}}"#));
    let (first, rest) = body.as_bytes().split_at(40);
    let (second, third) = rest.split_at(20);
    let host = Host::run(JSON, BOTH, 50, &[first, second, third]);
    assert_eq!(host.actions, ["wait", "pass", "pass"]);
    assert_eq!(host.over_limit, 1);
    assert_eq!(host.text(), body);
    assert!(host.payloads.is_empty());
    // At the limit exactly is still examined.
    let host = Host::run(JSON, BOTH, body.len(), &[body.as_bytes()]);
    assert_eq!(host.actions, ["replace"]);
}

#[test]
fn unusable_json_passes_and_is_flagged() {
    let host = Host::run(JSON, BOTH, LIMIT, &[br#"{"result":{"_meta":{"otel":1}}"#]);
    assert_eq!(
        (host.actions.as_slice(), host.unreadable),
        (&["pass"][..], 1)
    );
    let host = Host::run(JSON, BOTH, LIMIT, &[b""]);
    assert_eq!(
        (host.actions.as_slice(), host.unreadable),
        (&["pass"][..], 0)
    );
    let host = Host::run(JSON, BOTH, LIMIT, &[br#"{"result":{}}"#]);
    assert_eq!(host.actions, ["pass"]);
}

fn event_body(meta: &str) -> String {
    response(meta)
}

#[test]
fn an_event_keeps_its_other_fields_and_gets_one_data_line() {
    let data = event_body(&format!(r#"{{"otel":{SEP},"b":2}}"#));
    let stream = format!("event: message\nid: 7\ndata: {data}\nretry: 100\n: note\n\n");
    let host = Host::run(SSE, BOTH, LIMIT, &[stream.as_bytes()]);
    assert_eq!(host.actions, ["replace"]);
    assert_eq!(
        host.text(),
        format!(
            "event: message\nid: 7\ndata: {}\nretry: 100\n: note\n\n",
            event_body(r#"{"b":2}"#)
        )
    );
    assert_eq!(host.payload_texts(), [SEP_TRACES]);
}

#[test]
fn crlf_and_cr_line_endings_are_kept() {
    let data = event_body(r#"{"otel":1}"#);
    let clean = event_body("{}");
    for ending in ["\r\n", "\r", "\n"] {
        let stream = format!("id: 1{ending}data:{data}{ending}{ending}");
        let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
        assert_eq!(host.actions, ["replace"], "{ending:?}");
        assert_eq!(
            host.text(),
            format!("id: 1{ending}data: {clean}{ending}{ending}"),
            "{ending:?}"
        );
    }
}

#[test]
fn several_events_in_one_buffer_are_each_handled() {
    let a = event_body(&format!(r#"{{"otel":{DIRECT}}}"#));
    let b = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"_meta":{"otel":1}}}"#;
    let c = event_body(&format!(r#"{{"x":0,"otel":{SEP}}}"#));
    let stream = format!("data: {a}\n\nevent: message\ndata: {b}\n\nid: 3\ndata: {c}\n\n");
    let host = Host::run(SSE, BOTH, LIMIT, &[stream.as_bytes(), b""]);
    assert_eq!(host.actions, ["replace", "pass"]);
    assert_eq!(
        host.text(),
        format!(
            "data: {}\n\nevent: message\ndata: {b}\n\nid: 3\ndata: {}\n\n",
            event_body("{}"),
            event_body(r#"{"x":0}"#)
        )
    );
    assert_eq!(host.payload_texts(), [DIRECT, SEP_TRACES]);
}

#[test]
fn an_event_split_across_callbacks_waits_then_is_handled() {
    let data = event_body(&format!(r#"{{"otel":{DIRECT}}}"#));
    let stream = format!("id: 9\r\ndata: {data}\r\n\r\nid: 10\r\ndata: {data}\r\n\r\n");
    let clean = format!(
        "id: 9\r\ndata: {0}\r\n\r\nid: 10\r\ndata: {0}\r\n\r\n",
        event_body("{}")
    );
    let bytes = stream.as_bytes();
    // Every single cut, and cuts inside the CRLF pairs.
    for cut in 1..bytes.len() {
        let (first, second) = bytes.split_at(cut);
        let host = Host::run(SSE, BOTH, LIMIT, &[first, second]);
        assert_eq!(host.text(), clean, "cut at {cut}");
        assert_eq!(host.payloads.len(), 2, "cut at {cut}");
    }
    let half = bytes.len() / 2 - 20;
    let host = Host::run(
        SSE,
        BOTH,
        LIMIT,
        &[&bytes[..30], &bytes[30..half], &bytes[half..]],
    );
    assert_eq!(host.actions, ["wait", "wait", "replace"]);
}

#[test]
fn a_cr_at_the_end_of_a_flushed_buffer_owns_the_next_lf() {
    let data = event_body(r#"{"otel":1}"#);
    let clean = event_body("{}");
    let first = format!("data: {data}\r\r");
    let second = format!("\ndata: {data}\r\n\r\n");
    let host = Host::run(SSE, STRIP, LIMIT, &[first.as_bytes(), second.as_bytes()]);
    assert_eq!(host.actions, ["replace", "replace"]);
    assert_eq!(
        host.text(),
        format!("data: {clean}\r\r\ndata: {clean}\r\n\r\n")
    );
    // A lone LF after that CR is not an event of its own; the buffer is complete.
    let host = Host::run(SSE, STRIP, LIMIT, &[first.as_bytes(), b"\n", b""]);
    assert_eq!(host.actions, ["replace", "pass", "pass"]);
}

#[test]
fn multi_line_data_is_joined_and_written_back_faithfully() {
    // The document keeps a line break: the client must join back exactly the stripped one.
    let stream = "data: {\"result\":\ndata: {\"_meta\":{\"otel\":1,\"a\":2}}}\n\n";
    let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
    assert_eq!(
        host.text(),
        "data: {\"result\":\ndata: {\"_meta\":{\"a\":2}}}\n\n"
    );
    // The removed member took the line break with it: one line.
    let stream = "id: 1\ndata: {\"result\":{\"_meta\":{\"a\":1,\ndata:\"otel\":2}}}\nevent: x\n\n";
    let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
    assert_eq!(
        host.text(),
        "id: 1\ndata: {\"result\":{\"_meta\":{\"a\":1}}}\nevent: x\n\n"
    );
    // `data` with no colon is an empty line of data.
    let stream = "data\ndata: {\"result\":{\"_meta\":{\"otel\":2}}}\n\n";
    let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
    assert_eq!(host.text(), "data: \ndata: {\"result\":{\"_meta\":{}}}\n\n");
}

#[test]
fn events_without_spans_or_json_pass_byte_identical() {
    let stream = "id: abc\ndata: \n\n: ping\n\nevent: endpoint\ndata: /messages?x=1\n\ndata: {\"result\":{}}\n\n";
    let host = Host::run(SSE, BOTH, LIMIT, &[stream.as_bytes()]);
    assert_eq!(host.actions, ["pass"]);
    assert_eq!(host.text(), stream);
    assert_eq!(host.unreadable, 1);
}

#[test]
fn an_oversize_event_passes_and_the_stream_recovers_at_the_next_boundary() {
    let big = event_body(&format!(
        r#"{{"otel":{DIRECT},"pad":"{}"}}"#,
        "x".repeat(200)
    ));
    let small = event_body(r#"{"otel":1}"#);
    let stream = format!("data: {big}\n\ndata: {small}\n\n");
    let bytes = stream.as_bytes();
    let cut = 150;
    let middle = bytes.len() - small.len() - 10;
    let host = Host::run(
        SSE,
        BOTH,
        200,
        &[&bytes[..cut], &bytes[cut..middle], &bytes[middle..]],
    );
    assert_eq!(host.actions, ["wait", "pass", "replace"]);
    assert_eq!(host.over_limit, 1);
    assert_eq!(
        host.text(),
        format!("data: {big}\n\ndata: {}\n\n", event_body("{}"))
    );
    assert!(host.payloads.is_empty());
}

#[test]
fn the_rest_of_an_event_that_passed_over_the_limit_is_not_examined() {
    // The client reads one line `data: xxx…data: {…}`: its data is not JSON, and the bytes
    // after the flush must not be mistaken for a line of their own.
    let first = format!("id: 1\ndata: {}", "x".repeat(100));
    let second = "data: {\"result\":{\"_meta\":{\"otel\":1}}}\n\n";
    assert!(first.len() > 64 && second.len() < 64);
    let host = Host::run(SSE, STRIP, 64, &[first.as_bytes(), second.as_bytes()]);
    assert_eq!(host.actions, ["pass", "pass"]);
    assert_eq!(host.text(), format!("{first}{second}"));
    // The same after a whole data line went: the event's data is `x…\n{…}`, not JSON.
    let first = format!("data: {}\n", "x".repeat(100));
    let host = Host::run(SSE, STRIP, 64, &[first.as_bytes(), second.as_bytes()]);
    assert_eq!(host.text(), format!("{first}{second}"));
}

#[test]
fn no_event_is_handled_before_its_blank_line_whatever_the_cuts() {
    // The second event's first data line alone is JSON with spans; its whole data is not, so
    // handling it early (before its blank line) would change it. Every pair of cuts.
    let stream = format!(
        "data: {}\n\ndata: {}\ndata: \"tail\"\r\n\r\nid: 3\rdata: {}\r\r",
        event_body(r#"{"otel":1}"#),
        event_body(r#"{"otel":2}"#),
        event_body(r#"{"otel":3}"#),
    );
    let expected = format!(
        "data: {0}\n\ndata: {1}\ndata: \"tail\"\r\n\r\nid: 3\rdata: {0}\r\r",
        event_body("{}"),
        event_body(r#"{"otel":2}"#),
    );
    let bytes = stream.as_bytes();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let chunks = [&bytes[..i], &bytes[i..j], &bytes[j..]];
            let host = Host::run(SSE, STRIP, LIMIT, &chunks);
            assert_eq!(host.text(), expected, "cuts at {i}, {j}");
        }
    }
}

#[test]
fn the_last_event_is_handled_at_the_end_even_without_its_blank_line() {
    let data = event_body(&format!(r#"{{"otel":{DIRECT}}}"#));
    let stream = format!("id: 1\ndata: {data}");
    let host = Host::run(SSE, BOTH, LIMIT, &[stream.as_bytes()]);
    assert_eq!(host.text(), format!("id: 1\ndata: {}", event_body("{}")));
    assert_eq!(host.payload_texts(), [DIRECT]);
    let stream = format!("data: {data}\nid: 1");
    let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
    assert_eq!(host.text(), format!("data: {}\nid: 1", event_body("{}")));
}

#[test]
fn a_byte_order_mark_opening_the_stream_is_kept() {
    let data = event_body(r#"{"otel":1}"#);
    let stream = format!("\u{feff}data: {data}\n\n");
    let host = Host::run(SSE, STRIP, LIMIT, &[stream.as_bytes()]);
    assert_eq!(
        host.text(),
        format!("\u{feff}data: {}\n\n", event_body("{}"))
    );
}

#[test]
fn a_buffer_that_shrank_is_read_again_from_its_start() {
    // Outside the contract, but it must not panic or lose its way.
    let data = event_body(r#"{"otel":1}"#);
    let stream = format!("data: {data}\n\n");
    let mut filter = PassbackFilter::new(Some(SSE), STRIP, LIMIT);
    let step = filter.on_body(&stream.as_bytes()[..40], false);
    assert_eq!(step.action, Action::Wait);
    let step = filter.on_body(&stream.as_bytes()[..10], false);
    assert_eq!(step.action, Action::Wait);
    let step = filter.on_body(stream.as_bytes(), false);
    assert_eq!(
        step.action,
        Action::Replace(format!("data: {}\n\n", event_body("{}")).into_bytes())
    );
}

fn ratio(peak: usize, size: usize) -> f64 {
    peak as f64 / size as f64
}

#[test]
fn memory_stays_within_a_small_multiple_of_the_body() {
    const MIB: usize = 1 << 20;
    let message = format!(r#"{{"id":1,"result":{{"_meta":{{"a":1,"otel":{DIRECT}}}}}}},"#);
    let mut batch = String::from("[");
    while batch.len() + message.len() < MIB {
        batch.push_str(&message);
    }
    batch.push_str("{}]");
    let deep = format!("{}{}", "[".repeat(MIB / 2), "]".repeat(MIB / 2));
    let keys: String = (0..MIB / 16).map(|i| format!(r#""k{i:05}":1,"#)).collect();
    let many_keys = in_result_meta(&format!(r#"{{{keys}"otel":{DIRECT}}}"#));
    for (name, doc) in [("batch", &batch), ("deep", &deep), ("keys", &many_keys)] {
        let peak = peak_during(|| {
            let findings = find(doc.as_bytes()).unwrap();
            let out = strip(doc.as_bytes(), &findings.found);
            let sent = payloads(doc.as_bytes(), &findings.found);
            assert!(out.len() <= doc.len() && sent.len() <= MAX_FOUND);
        });
        println!(
            "{name}: find, strip, payloads: {:.2} x the body",
            ratio(peak, doc.len())
        );
        assert!(
            peak <= 5 * doc.len() / 2,
            "{name}: peak {peak} for {}",
            doc.len()
        );
        let peak = peak_during(|| {
            let mut filter = PassbackFilter::new(Some(JSON), BOTH, 2 * MIB);
            let step = filter.on_body(doc.as_bytes(), true);
            assert_ne!(step.action, Action::Wait);
        });
        println!("{name}: filter: {:.2} x the body", ratio(peak, doc.len()));
        assert!(
            peak <= 5 * doc.len() / 2,
            "{name} filter: peak {peak} for {}",
            doc.len()
        );
    }

    // Event streams: many events with spans, and one event of many data lines.
    let event = format!(
        "id: 1\ndata: {}\n\n",
        event_body(&format!(r#"{{"otel":{DIRECT}}}"#))
    );
    let events = event.repeat(MIB / event.len());
    let line = format!("data: {}\n", " ".repeat(60));
    let lines = format!(
        "event: message\n{}data: {}\n\n",
        line.repeat(MIB / line.len()),
        event_body(&format!(r#"{{"otel":{DIRECT}}}"#))
    );
    for (name, stream) in [("events", &events), ("lines", &lines)] {
        let peak = peak_during(|| {
            let mut filter = PassbackFilter::new(Some(SSE), BOTH, 2 * MIB);
            let step = filter.on_body(stream.as_bytes(), false);
            assert!(matches!(step.action, Action::Replace(_)), "{name}");
        });
        println!(
            "{name}: filter: {:.2} x the stream",
            ratio(peak, stream.len())
        );
        assert!(
            peak <= 5 * stream.len() / 2,
            "{name}: peak {peak} for {}",
            stream.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Generated documents against serde_json.

/// A JSON tree whose keys and scalars are raw JSON text, so duplicates, escapes and layout are
/// whatever the generator chose.
#[derive(Debug, Clone)]
enum J {
    Raw(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn raw(s: &str) -> J {
    J::Raw(s.to_string())
}

fn scalar() -> impl Strategy<Value = J> + Clone {
    prop::sample::select(vec![
        "null",
        "true",
        "false",
        "0",
        "-1.5e3",
        "12",
        r#""otel""#,
        r#""{\"otel\":1}""#,
        r#""}]\\\"""#,
        r#""\u006ftel""#,
        "\"é東\"",
        "\"\"",
    ])
    .prop_map(raw)
}

fn key() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        r#""a""#,
        r#""otel""#,
        r#""_meta""#,
        r#""result""#,
        r#""traces""#,
        r#""resourceSpans""#,
        r#""\u006ftel""#,
        r#""b c""#,
    ])
    .prop_map(str::to_string)
}

fn any_value() -> BoxedStrategy<J> {
    scalar()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((key(), inner), 0..4).prop_map(J::Obj),
            ]
        })
        .boxed()
}

fn member(
    name: &'static str,
    value: impl Strategy<Value = J> + 'static,
) -> BoxedStrategy<(String, J)> {
    value.prop_map(move |v| (name.to_string(), v)).boxed()
}

fn spans() -> BoxedStrategy<J> {
    let span = J::Obj(vec![
        (
            r#""traceId""#.into(),
            raw(r#""0af7651916cd43dd8448eb211c80319c""#),
        ),
        (r#""name""#.into(), raw(r#""tools/call {\"otel\"}""#)),
    ]);
    prop::collection::vec(prop_oneof![3 => Just(span), 1 => any_value()], 1..3)
        .prop_map(J::Arr)
        .boxed()
}

fn otel_value() -> BoxedStrategy<J> {
    let traces = (spans(), any::<bool>()).prop_map(|(spans, extras)| {
        let mut members = vec![(r#""resourceSpans""#.to_string(), spans)];
        if extras {
            members.push((r#""truncated""#.into(), raw("true")));
            members.insert(0, (r#""droppedSpanCount""#.into(), raw("2")));
        }
        J::Obj(members)
    });
    prop_oneof![
        4 => traces.clone().prop_map(|t| J::Obj(vec![(r#""traces""#.into(), t)])),
        2 => spans().prop_map(|s| J::Obj(vec![(r#""resourceSpans""#.into(), s)])),
        1 => (traces, spans()).prop_map(|(t, s)| J::Obj(vec![
            (r#""resourceSpans""#.into(), s),
            (r#""traces""#.into(), t),
        ])),
        1 => Just(J::Obj(vec![(r#""traces""#.into(), J::Obj(vec![
            (r#""request""#.into(), raw("true")),
            (r#""detailed""#.into(), raw("false")),
        ]))])),
        1 => Just(J::Obj(vec![(r#""resourceSpans""#.into(), J::Arr(vec![]))])),
        2 => any_value(),
    ]
    .boxed()
}

fn otel_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(r#""otel""#),
        1 => Just(r#""\u006ftel""#),
        1 => Just(r#""o\u0074el""#),
    ]
    .prop_map(str::to_string)
}

fn meta_object() -> BoxedStrategy<J> {
    let entry = prop_oneof![
        3 => (otel_key(), otel_value()),
        2 => (
            prop::sample::select(vec![r#""traceparent""#, r#""a""#, r#""progressToken""#])
                .prop_map(str::to_string),
            any_value(),
        ),
    ];
    prop::collection::vec(entry, 0..5).prop_map(J::Obj).boxed()
}

fn result_object() -> BoxedStrategy<J> {
    let content = prop::collection::vec(
        meta_object().prop_map(|meta| {
            J::Obj(vec![
                (r#""type""#.into(), raw(r#""text""#)),
                (r#""_meta""#.into(), meta),
            ])
        }),
        0..3,
    )
    .prop_map(J::Arr);
    let entry = prop_oneof![
        6 => member(r#""_meta""#, meta_object()),
        1 => member(r#""_\u006deta""#, meta_object()),
        1 => member(r#""_meta""#, scalar()),
        1 => member(r#""content""#, content),
        1 => (key(), any_value()).boxed(),
    ];
    prop::collection::vec(entry, 0..4).prop_map(J::Obj).boxed()
}

fn message() -> BoxedStrategy<J> {
    let entry = prop_oneof![
        6 => member(r#""result""#, result_object()),
        1 => member(r#""\u0072esult""#, result_object()),
        1 => member(r#""result""#, scalar()),
        2 => member(r#""id""#, Just(raw("1"))),
        1 => member(r#""params""#, meta_object().prop_map(|m| J::Obj(vec![(r#""_meta""#.into(), m)]))),
        1 => member(r#""error""#, meta_object().prop_map(|m| J::Obj(vec![
            (r#""code""#.into(), raw("-32000")),
            (r#""data""#.into(), J::Obj(vec![(r#""_meta""#.into(), m)])),
        ]))),
        1 => member(r#""_meta""#, meta_object()),
    ];
    prop::collection::vec(entry, 0..5).prop_map(J::Obj).boxed()
}

fn document() -> BoxedStrategy<J> {
    prop_oneof![
        5 => message(),
        3 => prop::collection::vec(
            prop_oneof![
                5 => message(),
                1 => scalar().boxed(),
                1 => prop::collection::vec(message(), 0..2).prop_map(J::Arr).boxed(),
            ],
            0..5,
        )
        .prop_map(J::Arr),
        1 => scalar(),
    ]
    .boxed()
}

/// Renders a tree with the whitespace in `ws`, taken in turn between tokens.
struct Writer<'a> {
    ws: &'a [&'static str],
    turn: usize,
    out: String,
}

impl Writer<'_> {
    fn render(tree: &J, ws: &[&'static str]) -> String {
        let mut writer = Writer {
            ws,
            turn: 0,
            out: String::new(),
        };
        writer.pad();
        writer.value(tree);
        writer.pad();
        writer.out
    }

    fn pad(&mut self) {
        if !self.ws.is_empty() {
            self.out.push_str(self.ws[self.turn % self.ws.len()]);
            self.turn += 1;
        }
    }

    fn value(&mut self, tree: &J) {
        match tree {
            J::Raw(text) => self.out.push_str(text),
            J::Arr(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.pad();
                    if i > 0 {
                        self.out.push(',');
                        self.pad();
                    }
                    self.value(item);
                }
                self.pad();
                self.out.push(']');
            }
            J::Obj(members) => {
                self.out.push('{');
                for (i, (name, value)) in members.iter().enumerate() {
                    self.pad();
                    if i > 0 {
                        self.out.push(',');
                        self.pad();
                    }
                    self.out.push_str(name);
                    self.pad();
                    self.out.push(':');
                    self.pad();
                    self.value(value);
                }
                self.pad();
                self.out.push('}');
            }
        }
    }
}

fn whitespace(with_cr: bool) -> BoxedStrategy<Vec<&'static str>> {
    let mut choices = vec!["", "", "", " ", "\n", "  ", "\t"];
    if with_cr {
        choices.extend(["\r\n", "\r"]);
    }
    prop::collection::vec(prop::sample::select(choices), 0..8).boxed()
}

fn decoded(raw_key: &str) -> String {
    serde_json::from_str(raw_key).unwrap()
}

/// The messages of a document: the object itself, or a batch's object elements.
fn messages_of(value: &Value) -> Vec<&serde_json::Map<String, Value>> {
    match value {
        Value::Object(message) => vec![message],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => vec![],
    }
}

/// The oracle for stripping: the document as serde_json reads it, minus `result._meta.otel`.
fn expected_stripped(mut value: Value) -> Value {
    let mut strip_message = |message: &mut Value| {
        if let Some(Value::Object(meta)) = message
            .get_mut("result")
            .filter(|r| r.is_object())
            .and_then(|r| r.get_mut("_meta"))
        {
            meta.remove("otel");
        }
    };
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(&mut strip_message),
        other => strip_message(other),
    }
    value
}

/// The oracle for payloads: per message, what serde_json reads at `result._meta.otel`.
fn expected_payloads(value: &Value) -> Vec<Value> {
    let non_empty = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    messages_of(value)
        .into_iter()
        .filter_map(|message| {
            let otel = message.get("result")?.get("_meta")?.get("otel")?;
            if !otel.is_object() {
                return None;
            }
            match otel.get("traces") {
                Some(traces) if traces.is_object() && non_empty(traces, "resourceSpans") => {
                    Some(traces.clone())
                }
                _ => non_empty(otel, "resourceSpans").then(|| otel.clone()),
            }
        })
        .collect()
}

/// Where the `otel` members of `result._meta` objects stand, from the generated tree.
#[derive(Debug, Default)]
struct Coverage {
    cases: usize,
    only: usize,
    first: usize,
    middle: usize,
    last: usize,
    duplicates: usize,
    escaped: usize,
    batches: usize,
    sep_payloads: usize,
    direct_payloads: usize,
    found_without_payload: usize,
    decoys: usize,
    superseded_meta: usize,
}

impl Coverage {
    fn note_tree(&mut self, tree: &J) {
        let messages: Vec<&J> = match tree {
            J::Obj(_) => vec![tree],
            J::Arr(items) => items.iter().filter(|i| matches!(i, J::Obj(_))).collect(),
            J::Raw(_) => vec![],
        };
        let mut responding = 0;
        for message in messages {
            let J::Obj(members) = message else { continue };
            let results = members
                .iter()
                .filter(|(k, v)| decoded(k) == "result" && matches!(v, J::Obj(_)));
            let mut any = false;
            for (_, result) in results {
                let J::Obj(result_members) = result else {
                    continue;
                };
                let metas: Vec<&J> = result_members
                    .iter()
                    .filter(|(k, _)| decoded(k) == "_meta")
                    .map(|(_, v)| v)
                    .collect();
                if metas.len() > 1 {
                    self.superseded_meta += 1;
                }
                for meta in metas {
                    let J::Obj(meta_members) = meta else { continue };
                    let n = meta_members.len();
                    let otel: Vec<usize> = (0..n)
                        .filter(|i| decoded(&meta_members[*i].0) == "otel")
                        .collect();
                    any |= !otel.is_empty();
                    if otel.len() > 1 {
                        self.duplicates += 1;
                    }
                    for &i in &otel {
                        match (i, n) {
                            (_, 1) => self.only += 1,
                            (0, _) => self.first += 1,
                            (i, n) if i + 1 == n => self.last += 1,
                            _ => self.middle += 1,
                        }
                        if meta_members[i].0.contains('\\') {
                            self.escaped += 1;
                        }
                    }
                }
            }
            responding += usize::from(any);
        }
        if matches!(tree, J::Arr(_)) && responding > 1 {
            self.batches += 1;
        }
    }
}

/// Checks one generated document; returns what it found for the coverage counts.
fn check_document(doc: &str, coverage: &mut Coverage) {
    let original: Value = serde_json::from_str(doc).unwrap();
    let findings = find(doc.as_bytes()).unwrap_or_else(|| panic!("refused {doc:?}"));
    let out = strip(doc.as_bytes(), &findings.found);
    let out_value: Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {doc:?} → {:?}", String::from_utf8_lossy(&out)));
    assert_eq!(out_value, expected_stripped(original.clone()), "{doc:?}");
    if findings.found.is_empty() {
        assert_eq!(out, doc.as_bytes());
        if doc.contains("otel") {
            coverage.decoys += 1;
        }
    }
    let removed: usize = findings.found.iter().map(|f| f.member.len()).sum();
    assert_eq!(out.len() + removed, doc.len(), "only the members go");

    let forwarded: Vec<Value> = payloads(doc.as_bytes(), &findings.found)
        .into_iter()
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(forwarded, expected_payloads(&original), "{doc:?}");
    for found in &findings.found {
        match &found.payload {
            Some(p) if *p == found.value => coverage.direct_payloads += 1,
            Some(_) => coverage.sep_payloads += 1,
            None => coverage.found_without_payload += 1,
        }
    }
}

fn run_property<S: Strategy>(cases: u32, strategy: S, mut test: impl FnMut(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let test = std::cell::RefCell::new(&mut test);
    let result = runner.run(&strategy, |value| {
        (test.borrow_mut())(value);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn generated_documents_agree_with_serde_json() {
    let mut coverage = Coverage::default();
    run_property(3000, (document(), whitespace(true)), |(tree, ws)| {
        let doc = Writer::render(&tree, &ws);
        coverage.cases += 1;
        coverage.note_tree(&tree);
        check_document(&doc, &mut coverage);
    });
    println!("{coverage:?}");
    let Coverage {
        cases,
        only,
        first,
        middle,
        last,
        duplicates,
        escaped,
        batches,
        sep_payloads,
        direct_payloads,
        found_without_payload,
        decoys,
        superseded_meta,
    } = coverage;
    for (name, count) in [
        ("cases", cases),
        ("only", only),
        ("first", first),
        ("middle", middle),
        ("last", last),
        ("duplicates", duplicates),
        ("escaped", escaped),
        ("batches", batches),
        ("sep_payloads", sep_payloads),
        ("direct_payloads", direct_payloads),
        ("found_without_payload", found_without_payload),
        ("decoys", decoys),
        ("superseded_meta", superseded_meta),
    ] {
        assert!(count > 0, "the generator never produced {name}");
    }
}

/// One generated event: field lines around its data, and one line ending for all its lines
/// (mixing endings could make a CR and the blank line's LF one CRLF).
#[derive(Debug, Clone)]
struct Event {
    before: Vec<&'static str>,
    after: Vec<&'static str>,
    data: Option<String>,
    colon_space: bool,
    ending: &'static str,
}

fn field_lines() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "event: message",
            "id: 42",
            "retry: 1000",
            ": keep-alive",
            "id",
            "event:ping",
            "datum: no",
        ]),
        0..3,
    )
}

fn event() -> impl Strategy<Value = Event> {
    let data = prop_oneof![
        6 => (document(), whitespace(false)).prop_map(|(tree, ws)| Some(Writer::render(&tree, &ws))),
        1 => Just(Some("not json".to_string())),
        // Its first line alone is a document; the whole data is not.
        1 => (document(), whitespace(false))
            .prop_map(|(tree, ws)| Some(format!("{}\n\"tail\"", Writer::render(&tree, &ws)))),
        1 => Just(Some(String::new())),
        1 => Just(None),
    ];
    (
        field_lines(),
        field_lines(),
        data,
        any::<bool>(),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_filter("an event has a line", |(b, a, d, _, _)| {
            !b.is_empty() || !a.is_empty() || d.is_some()
        })
        .prop_map(|(before, after, data, colon_space, ending)| Event {
            before,
            after,
            data,
            colon_space,
            ending,
        })
}

fn render_event(event: &Event) -> String {
    let mut lines: Vec<String> = event.before.iter().map(|s| s.to_string()).collect();
    if let Some(data) = &event.data {
        let prefix = if event.colon_space { "data: " } else { "data:" };
        lines.extend(data.split('\n').map(|line| format!("{prefix}{line}")));
    }
    lines.extend(event.after.iter().map(|s| s.to_string()));
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push_str(event.ending);
    }
    out.push_str(event.ending);
    out
}

/// An event as a WHATWG event-stream parser sees it: its data, and its other lines in order.
#[derive(Debug, PartialEq)]
struct Parsed {
    data: Option<String>,
    fields: Vec<String>,
}

/// An independent event-stream parser (WHATWG HTML, "event stream interpretation"), keeping
/// every event, data or not, so the structure can be compared.
fn parse_stream(stream: &str) -> Vec<Parsed> {
    let mut events = Vec::new();
    let mut current = Parsed {
        data: None,
        fields: Vec::new(),
    };
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        rest = if rest[at..].starts_with("\r\n") {
            &rest[at + 2..]
        } else {
            &rest[at + 1..]
        };
    }
    assert_eq!(rest, "", "the generated streams end their lines");
    for line in lines {
        if line.is_empty() {
            if let Some(data) = &mut current.data {
                data.pop();
            }
            if current.data.is_some() || !current.fields.is_empty() {
                events.push(std::mem::replace(
                    &mut current,
                    Parsed {
                        data: None,
                        fields: Vec::new(),
                    },
                ));
            }
            continue;
        }
        let value = if line == "data" {
            Some("")
        } else {
            line.strip_prefix("data:")
                .map(|v| v.strip_prefix(' ').unwrap_or(v))
        };
        match value {
            Some(value) => {
                let data = current.data.get_or_insert_with(String::new);
                data.push_str(value);
                data.push('\n');
            }
            None => current.fields.push(line.to_string()),
        }
    }
    events
}

#[derive(Debug, Default)]
struct StreamCoverage {
    stripped_events: usize,
    forwarded: usize,
    waits: usize,
    multi_line: usize,
    over_limit: usize,
    endings: [usize; 3],
}

fn chunked<'a>(stream: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for point in points {
        chunks.push(&stream[from..point]);
        from = point;
    }
    chunks.push(&stream[from..]);
    chunks
}

#[test]
fn generated_event_streams_survive_any_chunking() {
    let mut coverage = StreamCoverage::default();
    let options = prop::sample::select(vec![BOTH, STRIP, FORWARD, NEITHER]);
    let limit = prop_oneof![3 => Just(LIMIT), 1 => 16usize..400];
    let input = (
        prop::collection::vec(event(), 1..5),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        options,
        limit,
    );
    run_property(1500, input, |(events, cuts, options, limit)| {
        let stream: String = events.iter().map(render_event).collect();
        let host = Host::run(SSE, options, limit, &chunked(stream.as_bytes(), &cuts));
        coverage.waits += host.actions.iter().filter(|a| **a == "wait").count();
        coverage.over_limit += host.over_limit;
        for event in &events {
            let ending = ["\n", "\r\n", "\r"].iter().position(|e| *e == event.ending);
            coverage.endings[ending.unwrap()] += 1;
        }
        if !options.strip {
            assert_eq!(host.text(), stream, "without strip the stream is unchanged");
        }
        let before = parse_stream(&stream);
        let after = parse_stream(host.text());
        assert_eq!(before.len(), after.len(), "{stream:?} → {:?}", host.text());
        let mut wanted = Vec::new();
        for (old, new) in before.iter().zip(&after) {
            assert_eq!(old.fields, new.fields);
            let Some(old_data) = &old.data else {
                assert_eq!(new.data, None);
                continue;
            };
            let new_data = new.data.as_ref().unwrap();
            let Ok(value) = serde_json::from_str::<Value>(old_data) else {
                assert_eq!(old_data, new_data);
                continue;
            };
            wanted.extend(expected_payloads(&value));
            if old_data == new_data {
                continue;
            }
            let stripped: Value = serde_json::from_str(new_data).unwrap();
            assert_eq!(stripped, expected_stripped(value));
            coverage.stripped_events += 1;
            coverage.multi_line += usize::from(old_data.contains('\n'));
        }
        let forwarded: Vec<Value> = host
            .payloads
            .iter()
            .map(|p| serde_json::from_slice(p).unwrap())
            .collect();
        coverage.forwarded += forwarded.len();
        if !options.forward {
            assert!(forwarded.is_empty());
        } else if host.over_limit == 0 {
            assert_eq!(forwarded, wanted);
        } else {
            // Events that passed over the limit were not examined: what was forwarded is a
            // subsequence of what could have been.
            let mut expected = wanted.iter();
            for payload in &forwarded {
                assert!(expected.any(|e| e == payload), "{payload} not expected");
            }
        }
        if options.strip && limit == LIMIT {
            // Everything was examined: no span reaches the client.
            for new in &after {
                let Some(data) = &new.data else { continue };
                if let Ok(value) = serde_json::from_str::<Value>(data) {
                    assert_eq!(value.clone(), expected_stripped(value));
                }
            }
        }
    });
    println!("{coverage:?}");
    assert!(coverage.stripped_events > 0);
    assert!(coverage.forwarded > 0);
    assert!(coverage.waits > 0);
    assert!(coverage.multi_line > 0);
    assert!(coverage.over_limit > 0);
    assert!(coverage.endings.iter().all(|n| *n > 0));
}

#[test]
fn generated_json_bodies_survive_any_chunking() {
    let input = (
        document(),
        whitespace(true),
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        prop::sample::select(vec![BOTH, STRIP, FORWARD]),
    );
    run_property(500, input, |(tree, ws, cuts, options)| {
        let doc = Writer::render(&tree, &ws);
        let host = Host::run(JSON, options, LIMIT, &chunked(doc.as_bytes(), &cuts));
        let findings = find(doc.as_bytes()).unwrap();
        let expected = if options.strip {
            strip(doc.as_bytes(), &findings.found)
        } else {
            doc.clone().into_bytes()
        };
        assert_eq!(host.downstream, expected);
        let expected: Vec<&[u8]> = if options.forward {
            payloads(doc.as_bytes(), &findings.found)
        } else {
            vec![]
        };
        assert_eq!(host.payloads, expected);
        assert_eq!(
            host.actions.iter().filter(|a| **a != "wait").count(),
            1,
            "one decision, at the end"
        );
    });
}
