//! Response watching: JSON-RPC errors and tool errors in JSON and event-stream responses,
//! whatever the chunking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::mcp::RequestId;
use mcp_trace_filter::response::{ResponseOutcome, ResponseWatcher};
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

fn id(n: &str) -> Option<RequestId> {
    Some(RequestId::Number(n.to_string()))
}

fn watch(content_type: &str, chunks: &[&[u8]]) -> Option<ResponseOutcome> {
    watch_within(LIMIT, content_type, chunks)
}

/// The outcome a watcher holding at most `limit` bytes finds in `chunks`, the last one ending
/// the stream; an outcome reported twice fails.
fn watch_within(limit: usize, content_type: &str, chunks: &[&[u8]]) -> Option<ResponseOutcome> {
    let mut watcher = ResponseWatcher::new(Some(content_type), id("7"), limit)?;
    let last = chunks.len().saturating_sub(1);
    let mut found = None;
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(outcome) = watcher.feed(chunk, i == last) {
            assert!(found.is_none(), "outcome reported twice");
            found = Some(outcome);
        }
    }
    found
}

fn error(code: &str, message: Option<&str>) -> Option<ResponseOutcome> {
    Some(ResponseOutcome {
        error_type: Some(code.to_string()),
        status_code: Some(code.to_string()),
        error_message: message.map(str::to_owned),
    })
}

const UNKNOWN_TOOL: Option<&str> = Some("Unknown tool: nope");

fn tool_error() -> Option<ResponseOutcome> {
    Some(ResponseOutcome {
        error_type: Some("tool_error".to_string()),
        status_code: None,
        error_message: None,
    })
}

fn success() -> Option<ResponseOutcome> {
    Some(ResponseOutcome {
        error_type: None,
        status_code: None,
        error_message: None,
    })
}

const ERROR_BODY: &[u8] =
    br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool: nope"}}"#;
const TOOL_ERROR_BODY: &[u8] =
    br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
const SUCCESS_BODY: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#;

#[test]
fn json_responses() {
    assert_eq!(
        watch("application/json", &[ERROR_BODY]),
        error("-32602", UNKNOWN_TOOL)
    );
    assert_eq!(
        watch("application/json; charset=utf-8", &[TOOL_ERROR_BODY]),
        tool_error()
    );
    assert_eq!(watch("Application/JSON", &[SUCCESS_BODY]), success());
    let (a, b) = ERROR_BODY.split_at(20);
    assert_eq!(
        watch("application/json", &[a, b, b""]),
        error("-32602", UNKNOWN_TOOL)
    );
}

#[test]
fn responses_to_other_ids_or_malformed_bodies_say_nothing() {
    let other = br#"{"jsonrpc":"2.0","id":8,"error":{"code":1,"message":"x"}}"#;
    assert_eq!(watch("application/json", &[other]), None);
    assert_eq!(watch("application/json", &[b"{\"id\":7,"]), None);
    let string_id = br#"{"jsonrpc":"2.0","id":"7","error":{"code":1}}"#;
    assert_eq!(watch("application/json", &[string_id]), None);
}

#[test]
fn nothing_to_watch() {
    assert!(ResponseWatcher::new(Some("text/plain"), id("1"), LIMIT).is_none());
    assert!(ResponseWatcher::new(None, id("1"), LIMIT).is_none());
    assert!(ResponseWatcher::new(Some("application/json"), None, LIMIT).is_none());
}

fn sse(events: &[&[u8]], newline: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.extend_from_slice(b"event: message");
        out.extend_from_slice(newline.as_bytes());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event);
        out.extend_from_slice(newline.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    out
}

#[test]
fn event_streams_find_the_response_among_other_events() {
    let progress =
        br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;
    let server_request =
        br#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#;
    for newline in ["\n", "\r\n", "\r"] {
        let stream = sse(&[progress, server_request, ERROR_BODY], newline);
        assert_eq!(
            watch("text/event-stream", &[&stream]),
            error("-32602", UNKNOWN_TOOL),
            "{newline:?}"
        );
        let stream = sse(&[TOOL_ERROR_BODY], newline);
        assert_eq!(watch("text/event-stream", &[&stream]), tool_error());
    }
}

#[test]
fn multi_line_data_and_a_missing_final_blank_line() {
    let stream = b"data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":7,\"error\":{\"code\":-32000}}";
    assert_eq!(watch("text/event-stream", &[stream]), error("-32000", None));
    let no_space = b"id: 1\ndata:{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
    assert_eq!(watch("text/event-stream", &[no_space]), success());
}

#[test]
fn an_event_over_the_limit_is_skipped_but_later_ones_are_read() {
    const SMALL: usize = 128;
    // The oversized event is itself a response to the watched request (a success): read whole,
    // it would be the outcome, so finding the later error proves it was skipped, not misread.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        "x".repeat(3 * SMALL)
    );
    assert!(big.len() > SMALL, "the first event must not fit");
    assert!(
        ERROR_BODY.len() + "data: ".len() <= SMALL,
        "the later one must"
    );
    for newline in ["\n", "\r\n", "\r"] {
        let stream = sse(&[big.as_bytes(), ERROR_BODY], newline);
        // Whole, and in pieces that cross the limit inside the big event.
        for piece in [stream.len(), 200, 61, 7] {
            let chunks: Vec<&[u8]> = stream.chunks(piece).collect();
            assert_eq!(
                watch_within(SMALL, "text/event-stream", &chunks),
                error("-32602", UNKNOWN_TOOL),
                "{newline:?}, pieces of {piece}"
            );
        }
        // A big response spread over many short `data:` lines, split between JSON tokens so
        // that, joined, it is valid JSON: only the limit can make the watcher skip it.
        let mut lines = vec![r#"data: {"jsonrpc":"2.0","id":7,"result":{"content":["#.to_owned()];
        lines.extend((0..12).map(|i| format!(r#"data: {{"type":"text","text":"{i:040}"}},"#)));
        lines.push(r#"data: {"type":"text","text":"end"}]}}"#.to_owned());
        assert!(lines.iter().all(|l| l.len() < SMALL));
        assert!(lines.iter().map(String::len).sum::<usize>() > SMALL);
        let whole: String = lines
            .iter()
            .map(|l| &l["data: ".len()..])
            .collect::<Vec<_>>()
            .join("\n");
        assert!(serde_json::from_str::<serde_json::Value>(&whole).is_ok());
        let mut split = lines.join(newline).into_bytes();
        split.extend_from_slice(format!("{newline}{newline}").as_bytes());
        split.extend_from_slice(&sse(&[ERROR_BODY], newline));
        assert_eq!(
            watch_within(SMALL, "text/event-stream", &[&split]),
            error("-32602", UNKNOWN_TOOL),
            "{newline:?}, many data lines"
        );
        assert_eq!(
            watch_within(4096, "text/event-stream", &[&split]),
            success()
        );
        // With room for it, the big event is the outcome: the limit is what skipped it above.
        assert_eq!(
            watch_within(4096, "text/event-stream", &[&stream]),
            success()
        );
    }
    // A JSON body over the limit yields nothing, whatever it holds.
    assert_eq!(watch_within(16, "application/json", &[ERROR_BODY]), None);
    assert_eq!(
        watch_within(ERROR_BODY.len(), "application/json", &[ERROR_BODY]),
        error("-32602", UNKNOWN_TOOL)
    );
}

proptest! {
    /// Splitting an event stream anywhere (including between CR and LF) changes nothing.
    #[test]
    fn chunking_does_not_matter(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6), crlf in any::<bool>()) {
        let progress: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
        let stream = sse(&[progress, TOOL_ERROR_BODY, ERROR_BODY], if crlf { "\r\n" } else { "\n" });
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&stream[start..point]);
            start = point;
        }
        chunks.push(&stream[start..]);
        prop_assert_eq!(watch("text/event-stream", &chunks), tool_error());
    }
}
