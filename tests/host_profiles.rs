//! The request state machine driven natively under each host's semantics (`tests/hosts/`).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod hosts;

use hosts::{run, Request};
use mcp_trace_filter::config::{Config, Role};
use mcp_trace_filter::filter::{configure, Configured};
use mcp_trace_filter::host::{Counter, HostKind};

const TP_META: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const TP_HEADER: &str = "00-11111111111111111111111111111111-2222222222222222-01";
const PROXY_SPAN: &str = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
const ALL_HOSTS: [HostKind; 3] = [HostKind::Envoy, HostKind::NgxWasm, HostKind::Higress];

fn call(meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","_meta":{{{meta}}}}}}}"#
    )
}

fn with_traceparent(traceparent: &str) -> String {
    call(&format!(
        r#""traceparent":"{traceparent}","tracestate":"a=1""#
    ))
}

#[test]
fn every_host_lifts_meta_and_never_hangs() {
    let body = with_traceparent(TP_META);
    for kind in ALL_HOSTS {
        let exchange = run(kind, Config::default(), Request::post(body.as_bytes()));
        assert!(!exchange.hung, "{kind:?}");
        assert!(exchange.forwarded, "{kind:?}");
        let record = exchange.record.borrow();
        assert_eq!(record.header("traceparent"), Some(TP_META), "{kind:?}");
        assert_eq!(record.header("tracestate"), Some("a=1"), "{kind:?}");
        assert_eq!(
            record.body,
            body.as_bytes(),
            "{kind:?}: body byte-identical"
        );
        assert_eq!(record.counter(Counter::Lifted), 1, "{kind:?}");
    }
}

#[test]
fn envoy_chunks_are_held_until_the_end_of_the_stream() {
    // Envoy fact: with allow_on_headers_stop_iteration the body callbacks resume a header pause
    // and each sees everything held so far.
    let body = with_traceparent(TP_META);
    let third = body.len() / 3;
    let chunks = vec![third, third, body.len() - 2 * third];
    let exchange = run(
        HostKind::Envoy,
        Config::default(),
        Request::post(body.as_bytes()).chunked(chunks),
    );
    assert!(!exchange.hung);
    assert_eq!(
        exchange.record.borrow().header("traceparent"),
        Some(TP_META)
    );
}

#[test]
fn ngx_a_header_pause_is_never_resumed_so_the_filter_never_pauses_there() {
    // ngx_wasm_module fact: a Pause from on_request_headers is never resumed (every JSON POST
    // would hang); the body arrives whole in one callback and headers set there reach the
    // upstream. The test host hangs on such a pause, so a lift proves the filter continued.
    let body = with_traceparent(TP_META);
    let exchange = run(
        HostKind::NgxWasm,
        Config::default(),
        Request::post(body.as_bytes()),
    );
    assert!(!exchange.hung);
    assert_eq!(
        exchange.record.borrow().header("traceparent"),
        Some(TP_META)
    );
    // The same filter under Envoy semantics pauses in headers: on ngx that would hang.
    let envoy_filter_on_ngx = run(
        HostKind::NgxWasm,
        Config {
            host: Some(HostKind::Envoy),
            ..Config::default()
        },
        Request::post(body.as_bytes()),
    );
    assert!(
        envoy_filter_on_ngx.hung,
        "a filter told it runs in Envoy pauses and hangs on ngx: why the host is recognised"
    );
}

#[test]
fn ngx_a_body_without_content_length_is_held_up_to_max_body_bytes() {
    // ngx_wasm_module fact: on_request_body is called once with the whole body; there is no
    // stream buffer for a later chunk to overflow, so no headroom is kept. Envoy keeps half.
    let padding = "x".repeat(600 * 1024);
    let body = call(&format!(r#""traceparent":"{TP_META}","pad":"{padding}""#));
    let config = Config {
        max_body_bytes: 1 << 20,
        ..Config::default()
    };
    let ngx = hosts::TestHost::with_body_buffer(1 << 20);
    let exchange = hosts::run_on(ngx, config.clone(), Request::post(body.as_bytes()));
    assert_eq!(
        exchange.record.borrow().header("traceparent"),
        Some(TP_META)
    );
    let envoy = run(HostKind::Envoy, config, Request::post(body.as_bytes()));
    assert_eq!(envoy.record.borrow().header("traceparent"), None);
    assert_eq!(envoy.record.borrow().counter(Counter::Oversize), 1);
}

#[test]
fn ngx_a_body_spilled_to_a_file_passes_through_counted_and_logged_once() {
    // ngx_wasm_module fact: a body over client_body_buffer_size is buffered to a file and
    // proxy_get_buffer_bytes fails on it.
    let padding = "x".repeat(20 * 1024);
    let body = call(&format!(r#""traceparent":"{TP_META}","pad":"{padding}""#));
    let first = run(
        HostKind::NgxWasm,
        Config::default(),
        Request::post(body.as_bytes()),
    );
    let second = run(
        HostKind::NgxWasm,
        Config::default(),
        Request::post(body.as_bytes()),
    );
    for exchange in [&first, &second] {
        let record = exchange.record.borrow();
        assert!(exchange.forwarded);
        assert_eq!(record.header("traceparent"), None);
        assert_eq!(record.body, body.as_bytes());
        assert_eq!(record.counter(Counter::Unreadable), 1);
    }
    // Logged once per VM (these tests share this thread's VM state).
    let warnings = first.record.borrow().logs.len() + second.record.borrow().logs.len();
    assert_eq!(warnings, 1);
    assert!(first.record.borrow().logs[0]
        .1
        .contains("client_body_buffer_size"));
}

#[test]
fn ngx_properties_are_published_under_wasmx() {
    // ngx_wasm_module fact: set_property on arbitrary keys is NotFound; `wasmx.` keys work.
    let body = with_traceparent(TP_META);
    let config = Config {
        span_metadata: true,
        ..Config::default()
    };
    let exchange = run(
        HostKind::NgxWasm,
        config.clone(),
        Request::post(body.as_bytes()),
    );
    let record = exchange.record.borrow();
    assert_eq!(
        record
            .properties
            .get("wasmx.mcp.span.name")
            .map(String::as_str),
        Some("tools/call get_weather")
    );
    assert_eq!(
        record
            .properties
            .get("wasmx.gen_ai.tool.name")
            .map(String::as_str),
        Some("get_weather")
    );
    assert!(record.properties.keys().all(|k| k.starts_with("wasmx.")));
    // Higress fact: span tags come from `trace_span_tag.<key>` properties.
    let higress = run(
        HostKind::Higress,
        config.clone(),
        Request::post(body.as_bytes()),
    );
    let tags = &higress.record.borrow().properties;
    assert_eq!(
        tags.get("trace_span_tag.mcp.method.name")
            .map(String::as_str),
        Some("tools/call")
    );
    // Envoy: one-segment keys, read by the tracer as filter state `wasm.<key>`.
    let envoy = run(HostKind::Envoy, config, Request::post(body.as_bytes()));
    assert_eq!(
        envoy
            .record
            .borrow()
            .properties
            .get("mcp.method.name")
            .map(String::as_str),
        Some("tools/call")
    );
}

#[test]
fn ngx_header_removal_has_no_effect_so_forged_headers_stay() {
    // ngx_wasm_module fact: proxy_remove_header_map_value returns Ok and does nothing, and no
    // other route drops a client header; only the operator can (README, "Hosts"). This pins the
    // limit: the forged header is still there, and the filter did try to remove it.
    let body = with_traceparent(TP_META);
    let request = Request::post(body.as_bytes()).header("x-mcp-span-name", "forged");
    let ngx = run(HostKind::NgxWasm, Config::default(), request);
    assert_eq!(
        ngx.record.borrow().header("x-mcp-span-name"),
        Some("forged")
    );
    let request = Request::post(body.as_bytes()).header("x-mcp-span-name", "forged");
    let envoy = run(HostKind::Envoy, Config::default(), request);
    assert_eq!(envoy.record.borrow().header("x-mcp-span-name"), None);
}

#[test]
fn ngx_replace_rewrites_the_first_copy_only() {
    // ngx_wasm_module fact: replace_header_map_value rewrites only the first copy in place, so
    // a second client traceparent survives next to the lifted one.
    let body = with_traceparent(TP_META);
    let request = Request::post(body.as_bytes())
        .header("traceparent", TP_HEADER)
        .header("traceparent", TP_HEADER);
    let ngx = run(HostKind::NgxWasm, Config::default(), request);
    let record = ngx.record.borrow();
    assert_eq!(record.header("traceparent"), Some(TP_META));
    assert_eq!(record.header_count("traceparent"), 2);
}

#[test]
fn a_header_mismatch_is_answered_locally_on_every_host() {
    let body = with_traceparent(TP_META);
    for kind in ALL_HOSTS {
        let request = Request::post(body.as_bytes()).header("mcp-method", "tools/list");
        let exchange = run(kind, Config::default(), request);
        assert!(!exchange.forwarded, "{kind:?}");
        let record = exchange.record.borrow();
        let (status, answer) = record.local_response.clone().unwrap_or_default();
        assert_eq!(status, 400, "{kind:?}");
        assert!(String::from_utf8_lossy(&answer).contains("-32020"));
        assert_eq!(record.counter(Counter::HeaderMismatch), 1);
    }
}

#[test]
fn a_refused_configuration_never_kills_an_ngx_worker() {
    // ngx_wasm_module fact: on_configure returning false kills the worker for good; Envoy
    // reports the error and refuses to load the plugin.
    let bad = br#"{"precedance":"meta"}"#;
    assert!(
        matches!(configure(HostKind::Envoy, bad), Configured::Refused(e) if e.key == "precedance")
    );
    assert!(matches!(
        configure(HostKind::Higress, bad),
        Configured::Refused(_)
    ));
    assert!(matches!(
        configure(HostKind::NgxWasm, bad),
        Configured::PassThrough(HostKind::NgxWasm, e) if e.key == "precedance"
    ));
    // The `host` key overrides what was detected.
    assert!(matches!(
        configure(HostKind::Envoy, br#"{"host":"higress"}"#),
        Configured::Ready(_, HostKind::Higress)
    ));
    assert!(matches!(
        configure(HostKind::NgxWasm, b"{}"),
        Configured::Ready(_, HostKind::NgxWasm)
    ));
}

#[test]
fn an_unconfigured_request_passes_through_counted() {
    use mcp_trace_filter::filter::{RequestFilter, UnconfiguredRequest};
    use mcp_trace_filter::host::Action;
    let record = std::rc::Rc::new(std::cell::RefCell::new(hosts::Record::default()));
    let host = hosts::TestHost {
        kind: HostKind::NgxWasm,
        record: std::rc::Rc::clone(&record),
        body_buffer_size: 16 * 1024,
    };
    let mut request = UnconfiguredRequest::new(host);
    assert_eq!(request.on_request_headers(false), Action::Continue);
    assert_eq!(request.on_request_body(10, true), Action::Continue);
    assert_eq!(record.borrow().counter(Counter::Unconfigured), 1);
}

#[test]
fn the_upstream_role_fixes_content_length_when_the_body_length_changes() {
    // Envoy fact: a request-body write replaces the whole body; the filter keeps the length true.
    let future = format!("01{}-extra", &TP_META[2..]);
    let body = with_traceparent(&future);
    let length = body.len().to_string();
    let config = Config {
        role: Role::Upstream,
        ..Config::default()
    };
    let request = Request::post(body.as_bytes())
        .header("traceparent", PROXY_SPAN)
        .header("content-length", &length);
    let exchange = run(HostKind::Envoy, config, request);
    let record = exchange.record.borrow();
    let expected = body.replace(&future, PROXY_SPAN);
    assert_eq!(String::from_utf8_lossy(&record.body), expected);
    assert_eq!(
        record.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(record.counter(Counter::BodySynced), 1);
}

#[test]
fn responses_are_watched_only_with_span_metadata() {
    let body = with_traceparent(TP_META);
    let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"x"}}"#;
    for (span_metadata, expected) in [(true, Some("-32001")), (false, None)] {
        let config = Config {
            span_metadata,
            ..Config::default()
        };
        let request = Request::post(body.as_bytes()).respond(
            vec![("content-type", "application/json")],
            vec![&error[..20], &error[20..]],
        );
        let exchange = run(HostKind::Envoy, config, request);
        let record = exchange.record.borrow();
        assert_eq!(
            record.properties.get("error.type").map(String::as_str),
            expected
        );
    }
}
