//! The own-span mode driven through whole callback sequences under each host's semantics: the
//! gateway's SERVER (and CLIENT) span, what the backend receives in header and body, the
//! outcome on the span, sampling, links and root spans.

mod hosts;

use hosts::{run, Request};
use mcp_trace_filter::config::Config;
use mcp_trace_filter::host::{Counter, HostKind};
use mcp_trace_filter::span::{FinishedSpan, SpanKind, Value};
use mcp_trace_filter::trace_context::TraceParent;

const CLIENT_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const HEADER_TP: &str = "00-11111111111111111111111111111111-2222222222222222-01";
const TRACE: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];
const CLIENT_SPAN: [u8; 8] = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];

const HOSTS: [HostKind; 3] = [HostKind::Envoy, HostKind::NgxWasm, HostKind::Higress];

fn config(extra: &str) -> Config {
    let text = format!(r#"{{"export":{{"cluster":"otel"}}{extra}}}"#);
    match Config::parse(text.as_bytes()) {
        Ok(config) => config,
        Err(error) => unreachable!("test configuration refused: {error}"),
    }
}

fn tool_call(meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","arguments":{{"city":"Paris"}}{meta}}}}}"#
    )
}

fn with_traceparent(tp: &str) -> String {
    tool_call(&format!(
        r#","_meta":{{"traceparent":"{tp}","tracestate":"vendor=1"}}"#
    ))
}

const JSON: (&str, &str) = ("content-type", "application/json");
const OK_RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;

fn text(span: &FinishedSpan, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| match v {
            Value::Text(t) => t.clone(),
            Value::Int(n) => n.to_string(),
        })
}

#[test]
fn the_backend_continues_the_gateway_span_in_header_and_body_on_every_host() {
    for kind in HOSTS {
        let body = with_traceparent(CLIENT_TP);
        let request =
            Request::post(body.as_bytes()).respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
        let exchange = run(kind, config(""), request);
        assert!(exchange.forwarded, "{kind:?}: the request must go on");
        let record = exchange.record.borrow();
        let [server] = record.spans.as_slice() else {
            unreachable!("{kind:?}: one SERVER span expected, got {:?}", record.spans)
        };
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(
            server.trace_id, TRACE,
            "{kind:?}: the span joins the client's trace"
        );
        assert_eq!(
            server.parent_span_id,
            Some(CLIENT_SPAN),
            "{kind:?}: parented on _meta"
        );
        assert_eq!(server.trace_state.as_deref(), Some("vendor=1"));
        assert_eq!(server.name, "tools/call get_weather");
        assert_eq!(
            text(server, "mcp.method.name").as_deref(),
            Some("tools/call")
        );
        assert_eq!(
            text(server, "gen_ai.tool.name").as_deref(),
            Some("get_weather")
        );
        assert_eq!(text(server, "jsonrpc.request.id").as_deref(), Some("7"));
        assert_eq!(server.error, None);
        assert!(server.end_unix_nanos > server.start_unix_nanos);

        let upstream = record.header("traceparent").and_then(TraceParent::parse);
        let upstream = upstream.map(|p| (p.trace_id, p.parent_id, p.flags));
        assert_eq!(upstream, Some((TRACE, server.span_id, 0x03)), "{kind:?}");
        assert_eq!(record.header("tracestate"), Some("vendor=1"));
        let sent = String::from_utf8_lossy(&record.body).into_owned();
        let expected = body.replace(CLIENT_TP, record.header("traceparent").unwrap_or_default());
        assert_eq!(
            sent, expected,
            "{kind:?}: only _meta.traceparent changes, in place"
        );
        assert_eq!(sent.len(), body.len());
    }
}

#[test]
fn envoy_spans_carry_the_peer_and_protocol_the_host_exposes() {
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes())
        .header(":authority", "gateway.example:10000")
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(r#","client_span":true"#), request);
    let record = exchange.record.borrow();
    let [server, client] = record.spans.as_slice() else {
        unreachable!("SERVER and CLIENT spans expected: {:?}", record.spans)
    };
    assert_eq!(text(server, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(text(server, "client.port").as_deref(), Some("50123"));
    assert_eq!(
        text(server, "server.address").as_deref(),
        Some("gateway.example")
    );
    assert_eq!(text(server, "server.port").as_deref(), Some("10000"));
    assert_eq!(
        text(server, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, Some(server.span_id));
    assert_eq!(text(client, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(text(client, "server.port").as_deref(), Some("8000"));
    assert_eq!(text(client, "client.address"), None);
    let upstream = record.header("traceparent").and_then(TraceParent::parse);
    assert_eq!(upstream.map(|p| p.parent_id), Some(client.span_id));
}

#[test]
fn a_different_header_context_becomes_a_link_and_precedence_header_swaps_them() {
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(""), request);
    let record = exchange.record.borrow();
    let server = &record.spans[0];
    assert_eq!(server.parent_span_id, Some(CLIENT_SPAN));
    assert_eq!(server.links.len(), 1);
    assert_eq!(server.links[0].span_id, [0x22; 8]);
    drop(record);

    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(
        HostKind::Envoy,
        config(r#","precedence":"header""#),
        request,
    );
    let record = exchange.record.borrow();
    let server = &record.spans[0];
    assert_eq!(server.trace_id, [0x11; 16]);
    assert_eq!(server.parent_span_id, Some([0x22; 8]));
    assert_eq!(server.links[0].span_id, CLIENT_SPAN);
    assert_eq!(server.links[0].trace_state.as_deref(), Some("vendor=1"));
    // The backend parents on `_meta`, so the body carries the gateway span there too.
    let upstream = record.header("traceparent").unwrap_or_default().to_owned();
    assert!(String::from_utf8_lossy(&record.body).contains(&upstream));
}

#[test]
fn tool_errors_and_json_rpc_errors_set_the_status_and_error_type() {
    let tool_error: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#;
    let rpc_error: &[u8] =
        br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool"}}"#;
    let sse: &[u8] = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32000,\"message\":\"x\"}}\r\n\r\n";
    let cases: [(&[u8], &str, &str, Option<&str>); 3] = [
        (tool_error, "application/json", "tool_error", None),
        (rpc_error, "application/json", "-32602", Some("-32602")),
        (sse, "text/event-stream", "-32000", Some("-32000")),
    ];
    for kind in HOSTS {
        for (response, content_type, error_type, status_code) in cases {
            let body = with_traceparent(CLIENT_TP);
            let (head, tail) = response.split_at(response.len() / 2);
            let request = Request::post(body.as_bytes()).respond(
                vec![(":status", "200"), ("content-type", content_type)],
                vec![head, tail],
            );
            let exchange = run(kind, config(""), request);
            let record = exchange.record.borrow();
            let server = &record.spans[0];
            assert_eq!(
                text(server, "error.type").as_deref(),
                Some(error_type),
                "{kind:?}"
            );
            assert_eq!(
                text(server, "rpc.response.status_code").as_deref(),
                status_code
            );
            assert!(
                server.error.is_some(),
                "{kind:?} {error_type}: status ERROR"
            );
        }
    }
}

#[test]
fn an_http_5xx_without_a_json_rpc_answer_is_an_error() {
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes()).respond(
        vec![(":status", "503"), ("content-type", "text/plain")],
        vec![b"upstream connect error"],
    );
    let exchange = run(HostKind::Envoy, config(""), request);
    let record = exchange.record.borrow();
    let server = &record.spans[0];
    assert_eq!(text(server, "error.type").as_deref(), Some("503"));
    assert_eq!(server.error.as_deref(), Some("HTTP 503"));
}

#[test]
fn an_unsampled_context_exports_nothing_and_keeps_its_flags() {
    for kind in HOSTS {
        let body = with_traceparent(&CLIENT_TP.replace("-03", "-00"));
        let request =
            Request::post(body.as_bytes()).respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
        let exchange = run(kind, config(""), request);
        let record = exchange.record.borrow();
        assert!(record.spans.is_empty(), "{kind:?}: {:?}", record.spans);
        let flags = record.header("traceparent").and_then(TraceParent::parse);
        assert_eq!(flags.map(|p| (p.trace_id, p.flags)), Some((TRACE, 0)));
    }
}

#[test]
fn without_any_context_the_gateway_starts_a_root_span_sampled_by_ratio() {
    let body = tool_call("");
    for (ratio, exported) in [("1", 1), ("0", 0)] {
        let request = Request::post(body.as_bytes())
            .header("tracestate", "stale=1")
            .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
        let extra = format!(r#","root_sampling_ratio":{ratio}"#);
        let exchange = run(HostKind::Envoy, config(&extra), request);
        let record = exchange.record.borrow();
        assert_eq!(record.spans.len(), exported, "ratio {ratio}");
        let upstream = record.header("traceparent").and_then(TraceParent::parse);
        let Some(upstream) = upstream else {
            unreachable!("a root span still gives the backend a parent")
        };
        assert_eq!(upstream.flags & 0x01, u8::from(exported == 1));
        assert_eq!(
            record.header("tracestate"),
            None,
            "a state without its parent goes"
        );
        if let Some(root) = record.spans.first() {
            assert_eq!(root.parent_span_id, None);
            assert_eq!(root.trace_id, upstream.trace_id);
        }
        assert_eq!(
            record.body,
            body.as_bytes(),
            "no _meta to rewrite, no injection asked"
        );
    }
}

#[test]
fn an_invalid_header_traceparent_is_never_forwarded() {
    let body = tool_call("");
    let request = Request::post(body.as_bytes())
        .header("traceparent", "00-zz-bad")
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(""), request);
    let record = exchange.record.borrow();
    let upstream = record.header("traceparent").unwrap_or_default();
    assert!(TraceParent::parse(upstream).is_some(), "{upstream}");
    assert_eq!(record.spans[0].parent_span_id, None);
}

#[test]
fn requests_that_are_not_mcp_get_no_span_and_pass_untouched() {
    for body in [&b"not json"[..], br#"{"jsonrpc":"2.0","id":1,"result":{}}"#] {
        let request = Request::post(body).respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
        let exchange = run(HostKind::Envoy, config(""), request);
        let record = exchange.record.borrow();
        assert!(record.spans.is_empty());
        assert_eq!(record.body, body);
        assert_eq!(record.header("traceparent"), None);
    }
}

#[test]
fn a_notification_gets_a_span_ended_by_the_stream() {
    let body = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let request = Request::post(body).respond(vec![(":status", "202")], vec![]);
    let exchange = run(HostKind::Envoy, config(""), request);
    let record = exchange.record.borrow();
    assert_eq!(record.spans.len(), 1);
    assert_eq!(record.spans[0].name, "notifications/initialized");
    assert_eq!(record.counter(Counter::NoContext), 1);
}

#[test]
fn a_span_ends_once_even_when_the_stream_also_logs() {
    let body = with_traceparent(CLIENT_TP);
    let request =
        Request::post(body.as_bytes()).respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(r#","client_span":true"#), request);
    assert_eq!(exchange.record.borrow().spans.len(), 2);
}

#[test]
fn durations_are_recorded_for_every_request_sampled_or_not() {
    use mcp_trace_filter::operation_metrics::Side;
    let tool_error: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#;
    for (flags, exported) in [("-03", 2), ("-00", 0)] {
        let body = with_traceparent(&CLIENT_TP.replace("-03", flags));
        let request = Request::post(body.as_bytes())
            .respond(vec![(":status", "200"), JSON], vec![tool_error]);
        let exchange = run(HostKind::NgxWasm, config(r#","client_span":true"#), request);
        let record = exchange.record.borrow();
        assert_eq!(record.spans.len(), exported);
        let sides: Vec<Side> = record.operations.iter().map(|o| o.side).collect();
        assert_eq!(sides, vec![Side::Server, Side::Client], "{flags}");
        let server = &record.operations[0];
        assert_eq!(server.method, "tools/call");
        assert_eq!(server.target.as_deref(), Some("get_weather"));
        assert_eq!(server.error_type.as_deref(), Some("tool_error"));
        assert!(
            server.seconds > 0.0 && server.seconds < 1.0,
            "{}",
            server.seconds
        );
        let client = &record.operations[1];
        assert!(
            client.seconds <= server.seconds,
            "the backend call is inside the operation"
        );
    }
}

#[test]
fn the_shipped_own_span_config_labels_the_histograms_the_filter_defines() {
    let yaml = std::fs::read_to_string("envoy/own-span.yaml").unwrap_or_default();
    let unescaped = yaml.replace("\\\\", "\\");
    for (tag, regex) in mcp_trace_filter::operation_metrics::HOST_STATS_TAGS {
        assert!(
            unescaped.contains(tag),
            "{tag} missing from envoy/own-span.yaml"
        );
        assert!(
            unescaped.contains(regex),
            "{regex} missing from envoy/own-span.yaml"
        );
    }
}

#[test]
fn a_header_only_request_gets_the_gateway_context_injected_into_meta_on_every_host() {
    for kind in HOSTS {
        for (body, at) in [
            (tool_call(""), "params"),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#.to_owned(),
                "message",
            ),
            (tool_call(r#","_meta":{"progressToken":1}"#), "_meta"),
        ] {
            let length = body.len().to_string();
            let request = Request::post(body.as_bytes())
                .header("content-length", &length)
                .header("traceparent", HEADER_TP)
                .header("tracestate", "h=1")
                .header("baggage", "user=alice")
                .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
            let exchange = run(kind, config(r#","inject_meta":true"#), request);
            let record = exchange.record.borrow();
            let sent: serde_json::Value = serde_json::from_slice(&record.body).unwrap_or_default();
            let meta = &sent["params"]["_meta"];
            let upstream = record.header("traceparent").unwrap_or_default().to_owned();
            assert_eq!(meta["traceparent"], upstream.as_str(), "{kind:?} {at}");
            assert_eq!(meta["tracestate"], "h=1", "{kind:?} {at}");
            assert_eq!(meta["baggage"], "user=alice", "{kind:?} {at}");
            assert_eq!(
                record.header("content-length"),
                Some(record.body.len().to_string().as_str()),
                "{kind:?} {at}"
            );
            assert_eq!(record.counter(Counter::MetaInjected), 1);
            assert_eq!(record.spans[0].parent_span_id, Some([0x22; 8]));
        }
    }
}

#[test]
fn injection_is_opt_in_and_never_duplicates_a_key() {
    let body = tool_call("");
    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(""), request);
    assert_eq!(exchange.record.borrow().body, body.as_bytes());
    // An unusable `_meta.traceparent` is not duplicated: the body passes as it came.
    let body = tool_call(r#","_meta":{"traceparent":42}"#);
    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(r#","inject_meta":true"#), request);
    let record = exchange.record.borrow();
    assert_eq!(record.body, body.as_bytes());
    assert_eq!(record.counter(Counter::MetaInjected), 0);
}

/// A tools/call result carrying server spans of `trace` (SEP-2448).
fn with_server_spans(trace: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[],"_meta":{{"progress":1,"otel":{{"traces":{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"00f067aa0ba902b7","name":"tool"}}]}}]}}]}}}}}}}}}}"#
    )
}

const CLIENT_TRACE_HEX: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn server_spans_pass_untouched_by_default_and_are_forwarded_or_stripped_when_asked() {
    let response = with_server_spans(CLIENT_TRACE_HEX);
    let (head, tail) = response.as_bytes().split_at(40);
    let length = response.len().to_string();
    for (mode, forwarded, stripped) in [
        ("pass", 0, false),
        ("forward", 1, false),
        ("strip", 0, true),
        ("forward_and_strip", 1, true),
    ] {
        let body = with_traceparent(CLIENT_TP);
        let request = Request::post(body.as_bytes()).respond(
            vec![(":status", "200"), JSON, ("content-length", &length)],
            vec![head, tail],
        );
        let extra = format!(r#","server_spans":"{mode}""#);
        let exchange = run(HostKind::Envoy, config(&extra), request);
        let record = exchange.record.borrow();
        assert_eq!(record.forwarded.len(), forwarded, "{mode}");
        let received: serde_json::Value =
            serde_json::from_slice(&record.response_body).unwrap_or_default();
        assert_eq!(
            received["result"]["_meta"]["progress"], 1,
            "{mode}: other _meta stays"
        );
        assert_eq!(
            received["result"]["_meta"]["otel"].is_null(),
            stripped,
            "{mode}"
        );
        assert_eq!(
            record.response_header("content-length").is_none(),
            stripped,
            "{mode}"
        );
        assert_eq!(
            record.counter(Counter::ServerSpansStripped),
            u64::from(stripped)
        );
        if !stripped {
            assert_eq!(
                record.response_body,
                response.as_bytes(),
                "{mode}: byte for byte"
            );
        }
        assert_eq!(record.spans.len(), 1, "{mode}: the gateway span still ends");
    }
}

#[test]
fn server_spans_of_another_trace_are_never_forwarded() {
    let response = with_server_spans("11111111111111111111111111111111");
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes())
        .respond(vec![(":status", "200"), JSON], vec![response.as_bytes()]);
    let exchange = run(
        HostKind::Envoy,
        config(r#","server_spans":"forward""#),
        request,
    );
    let record = exchange.record.borrow();
    assert!(record.forwarded.is_empty());
    assert_eq!(record.counter(Counter::SpansDropped), 1);
}

#[test]
fn server_spans_in_an_event_stream_are_stripped_event_by_event() {
    let event = format!(
        "event: message\ndata: {}\n\n",
        with_server_spans(CLIENT_TRACE_HEX)
    );
    let (head, tail) = event.as_bytes().split_at(event.len() / 2);
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes()).respond(
        vec![(":status", "200"), ("content-type", "text/event-stream")],
        vec![head, tail],
    );
    let exchange = run(
        HostKind::Envoy,
        config(r#","server_spans":"forward_and_strip""#),
        request,
    );
    let record = exchange.record.borrow();
    let received = String::from_utf8_lossy(&record.response_body).into_owned();
    assert!(received.starts_with("event: message\ndata: "), "{received}");
    assert!(!received.contains("otel"), "{received}");
    assert_eq!(record.forwarded.len(), 1);
}

#[test]
fn ngx_never_holds_a_response_for_server_spans() {
    let response = with_server_spans(CLIENT_TRACE_HEX);
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes())
        .respond(vec![(":status", "200"), JSON], vec![response.as_bytes()]);
    let exchange = run(
        HostKind::NgxWasm,
        config(r#","server_spans":"strip""#),
        request,
    );
    let record = exchange.record.borrow();
    assert_eq!(record.response_body, response.as_bytes());
    assert_eq!(record.spans.len(), 1);
}

#[test]
fn injection_keeps_a_context_whole_and_takes_only_a_valid_header_baggage() {
    // A stray `_meta.tracestate` without a `traceparent`: nothing is inserted next to it.
    let body = tool_call(r#","_meta":{"tracestate":"stray=1"}"#);
    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(r#","inject_meta":true"#), request);
    assert_eq!(exchange.record.borrow().body, body.as_bytes());
    // An invalid header baggage stays out of the body.
    let body = tool_call("");
    let request = Request::post(body.as_bytes())
        .header("traceparent", HEADER_TP)
        .header("baggage", ";;;")
        .respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(r#","inject_meta":true"#), request);
    let record = exchange.record.borrow();
    let sent: serde_json::Value = serde_json::from_slice(&record.body).unwrap_or_default();
    assert!(sent["params"]["_meta"]["traceparent"].is_string());
    assert!(sent["params"]["_meta"]["baggage"].is_null(), "{sent}");
}

#[test]
fn the_gateway_span_forwards_only_the_flags_w3c_defines() {
    let body = with_traceparent(&CLIENT_TP.replace("-03", "-ff"));
    let request =
        Request::post(body.as_bytes()).respond(vec![(":status", "200"), JSON], vec![OK_RESULT]);
    let exchange = run(HostKind::Envoy, config(""), request);
    let record = exchange.record.borrow();
    let flags = record.header("traceparent").and_then(TraceParent::parse);
    assert_eq!(flags.map(|p| p.flags), Some(0x03));
}

#[test]
fn an_unsampled_request_forwards_no_server_spans() {
    let response = with_server_spans(CLIENT_TRACE_HEX);
    let body = with_traceparent(&CLIENT_TP.replace("-03", "-00"));
    let request = Request::post(body.as_bytes())
        .respond(vec![(":status", "200"), JSON], vec![response.as_bytes()]);
    let exchange = run(
        HostKind::Envoy,
        config(r#","server_spans":"forward""#),
        request,
    );
    assert!(exchange.record.borrow().forwarded.is_empty());
}

#[test]
fn a_response_declared_over_the_hold_limit_is_never_held() {
    let response = with_server_spans(CLIENT_TRACE_HEX);
    let body = with_traceparent(CLIENT_TP);
    let request = Request::post(body.as_bytes()).respond(
        vec![(":status", "200"), JSON, ("content-length", "600000")],
        vec![response.as_bytes()],
    );
    let exchange = run(
        HostKind::Envoy,
        config(r#","server_spans":"strip""#),
        request,
    );
    let record = exchange.record.borrow();
    assert_eq!(record.response_body, response.as_bytes());
    assert_eq!(record.response_header("content-length"), Some("600000"));
}
