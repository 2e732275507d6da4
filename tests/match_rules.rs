//! Higress's per-route rules (`_rules_`) driven through whole requests under the Higress profile
//! of the test host: which configuration a request gets, by route, domain and service, in rule
//! order, and what is refused at load. The semantics followed are those of Higress's own plugin
//! SDKs (alibaba/higress `plugins/wasm-rust/src/rule_matcher.rs`, higress-group/wasm-go
//! `pkg/matcher/rule_matcher.go`); no Higress runs here.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod hosts;

use hosts::{Exchange, Request};
use mcp_trace_filter::filter::{self, configure, Configured};
use mcp_trace_filter::host::{Counter, HostKind};
use mcp_trace_filter::span::SpanKind;
use std::rc::Rc;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const ROUTE: &str = "default/mcp-server";
const CLUSTER: &str = "outbound|8080||mcp-server.default.svc.cluster.local";

fn body() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","_meta":{{"traceparent":"{TP}","baggage":"tenant=acme"}}}}}}"#
    )
}

/// The plugin configured with `document` on a host recognised as `detected`, serving one
/// request on a proxy behaving as `proxy` that answers `properties` on top of its own.
fn serve(
    detected: HostKind,
    proxy: HostKind,
    document: &str,
    properties: &[(&str, &str)],
    request: Request<'_>,
) -> Exchange {
    let configured = configure(detected, document.as_bytes());
    let host = hosts::host(proxy);
    for (name, value) in properties {
        host.record
            .borrow_mut()
            .stream_properties
            .insert((*name).to_owned(), (*value).to_owned());
    }
    hosts::run_with(host, request, move |host| match configured {
        Configured::Ready(config, kind) => filter::request_filter(Rc::new(config), kind, host),
        Configured::Routed(rules, kind) => filter::routed_filter(Rc::new(rules), kind, host),
        other => panic!("not served: {other:?}"),
    })
}

/// On Higress the plugin recognises no host property of its own (it takes Higress for Envoy),
/// so the `"host": "higress"` key in the document is what makes it Higress.
fn higress(
    document: &str,
    properties: &[(&str, &str)],
    authority: &'static str,
    body: &str,
) -> Exchange {
    let request = Request::post(body.as_bytes()).header(":authority", authority);
    serve(
        HostKind::Envoy,
        HostKind::Higress,
        document,
        properties,
        request,
    )
}

/// Whether the `_meta` baggage reached the upstream header (not with `"baggage": "drop"`).
fn baggage_lifted(exchange: &Exchange) -> bool {
    let record = exchange.record.borrow();
    assert!(exchange.forwarded);
    assert_eq!(
        record.header("traceparent"),
        Some(TP),
        "the context is lifted"
    );
    record.header("baggage") == Some("tenant=acme")
}

/// Whether span tags were published (`span_metadata: true`).
fn tagged(exchange: &Exchange) -> bool {
    exchange
        .record
        .borrow()
        .properties
        .contains_key("trace_span_tag.mcp.method.name")
}

#[test]
fn a_route_rule_applies_on_its_route_and_the_default_elsewhere() {
    let document = r#"{"host":"higress","_rules_":[
        {"_match_route_":["default/mcp-server"],"host":"higress","baggage":"drop"}]}"#;
    let body = body();
    let on_route = higress(document, &[], "mcp.example.com", &body);
    assert!(!baggage_lifted(&on_route), "the rule's baggage: drop");
    let elsewhere = higress(
        document,
        &[("route_name", "default/other")],
        "mcp.example.com",
        &body,
    );
    assert!(baggage_lifted(&elsewhere), "the default configuration");
}

#[test]
fn a_rule_is_a_whole_configuration_not_an_override_of_the_global_one() {
    // Higress's Rust SDK reads each rule with `serde_json::from_value::<PluginConfig>(rule)`,
    // wasm-go with the same `parseConfig` as the global one: a key the rule leaves out takes
    // its default. Here the rule has no `span_metadata`, so its route publishes no span tags.
    let document = r#"{"host":"higress","span_metadata":true,"_rules_":[
        {"_match_route_":["default/mcp-server"],"baggage":"drop"}]}"#;
    let body = body();
    let on_route = higress(document, &[], "mcp.example.com", &body);
    assert!(!baggage_lifted(&on_route));
    assert!(
        !tagged(&on_route),
        "span_metadata is the default (false) in the rule"
    );
    let elsewhere = higress(
        document,
        &[("route_name", "default/other")],
        "mcp.example.com",
        &body,
    );
    assert!(baggage_lifted(&elsewhere));
    assert!(
        tagged(&elsewhere),
        "span_metadata: true from the global configuration"
    );
}

#[test]
fn domain_rules_match_the_authority_without_its_port_with_higress_wildcards() {
    let document = r#"{"host":"higress","_rules_":[
        {"_match_domain_":["*.example.com","mcp.*","exact.test"],"baggage":"drop"}]}"#;
    let body = body();
    let cases = [
        ("api.example.com:8443", true),
        ("a.b.example.com", true),
        ("example.com", false),
        ("mcp.internal", true),
        ("www.mcp.internal", false),
        ("exact.test:80", true),
        ("www.exact.test", false),
    ];
    for (authority, matched) in cases {
        let exchange = higress(document, &[], authority, &body);
        assert_eq!(!baggage_lifted(&exchange), matched, "{authority}");
    }
}

#[test]
fn service_rules_match_the_upstream_cluster_host_and_port() {
    let body = body();
    let cases = [
        ("mcp-server.default.svc.cluster.local:8080", CLUSTER, true),
        (
            "mcp-server.default.svc.cluster.local:8080",
            "outbound|9090||mcp-server.default.svc.cluster.local",
            false,
        ),
        (
            "mcp-server.default.svc.cluster.local",
            "outbound|9090||mcp-server.default.svc.cluster.local",
            true,
        ),
        ("other.default.svc.cluster.local", CLUSTER, false),
        // Not the `direction|port|subset|host` form: nothing matches it.
        ("mcp-server", "mcp-server", false),
    ];
    for (service, cluster, matched) in cases {
        let document = format!(
            r#"{{"host":"higress","_rules_":[{{"_match_service_":["{service}"],"baggage":"drop"}}]}}"#
        );
        let exchange = higress(
            &document,
            &[("cluster_name", cluster)],
            "mcp.example.com",
            &body,
        );
        assert_eq!(!baggage_lifted(&exchange), matched, "{service} {cluster}");
    }
}

#[test]
fn the_first_matching_rule_wins_and_route_rules_come_first() {
    // Higress's SDKs take the first rule in `_rules_` order that matches, of any kind; its
    // console writes route rules before domain rules, which is where "route before domain"
    // comes from (higress-console `KubernetesModelConverter.sortWasmPluginMatchRules`), and
    // Higress's controller keeps the `matchRules` order. The manifest here lists its route
    // rule first.
    let route = r#"{"_match_route_":["default/mcp-server"],"host":"higress","baggage":"drop"}"#;
    let domain = r#"{"_match_domain_":["*.example.com"],"host":"higress","span_metadata":true}"#;
    let body = body();
    let route_first = format!(r#"{{"host":"higress","_rules_":[{route},{domain}]}}"#);
    let both = higress(&route_first, &[], "mcp.example.com", &body);
    assert!(!baggage_lifted(&both) && !tagged(&both), "the route rule");
    let domain_only = higress(
        &route_first,
        &[("route_name", "default/other")],
        "mcp.example.com",
        &body,
    );
    assert!(
        baggage_lifted(&domain_only) && tagged(&domain_only),
        "the domain rule"
    );
    let domain_first = format!(r#"{{"host":"higress","_rules_":[{domain},{route}]}}"#);
    let both = higress(&domain_first, &[], "mcp.example.com", &body);
    assert!(
        baggage_lifted(&both) && tagged(&both),
        "listed first, the domain rule wins"
    );
}

#[test]
fn a_request_no_rule_matches_gets_the_global_configuration() {
    let document = r#"{"host":"higress","span_metadata":true,"baggage":"drop","_rules_":[
        {"_match_route_":["default/other"],"host":"higress"},
        {"_match_domain_":["*.example.org"],"host":"higress"},
        {"_match_service_":["other.default.svc.cluster.local"],"host":"higress"}]}"#;
    let exchange = higress(document, &[], "mcp.example.com", &body());
    assert!(!baggage_lifted(&exchange), "the global baggage: drop");
    assert!(tagged(&exchange), "the global span_metadata: true");
}

#[test]
fn without_a_global_configuration_a_request_no_rule_matches_is_left_alone() {
    // Higress's SDKs: a document with nothing but `_rules_` has no global configuration, and a
    // request no rule matches skips the plugin (wasm-go returns `ActionContinue` from every
    // callback). The plugin can only be in that state on a host it recognises as Higress: the
    // `host` key that otherwise makes it Higress is itself global configuration.
    let document = r#"{"_rules_":[{"_match_route_":["default/other"],"host":"higress"}]}"#;
    let body = body();
    let sent = |authority| {
        Request::post(body.as_bytes())
            .header(":authority", authority)
            .header("traceparent", "garbage")
    };
    let exchange = serve(
        HostKind::Higress,
        HostKind::Higress,
        document,
        &[],
        sent("mcp.example.com"),
    );
    assert!(exchange.forwarded);
    let record = exchange.record.borrow();
    let sent_headers: Vec<(String, String)> = sent("mcp.example.com")
        .headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(record.headers, sent_headers, "headers untouched");
    assert_eq!(record.body, body.as_bytes(), "body untouched");
    assert!(record.counters.is_empty(), "{:?}", record.counters);
    assert!(record.properties.is_empty());
    drop(record);
    // The rule's own route is served.
    let matched = serve(
        HostKind::Higress,
        HostKind::Higress,
        document,
        &[("route_name", "default/other")],
        sent("mcp.example.com"),
    );
    assert_eq!(matched.record.borrow().header("traceparent"), Some(TP));
    assert_eq!(matched.record.borrow().counter(Counter::Lifted), 1);
}

#[test]
fn rule_errors_name_the_rule_and_its_key_and_refuse_the_plugin() {
    let cases = [
        (r#""_rules_":{}"#, "_rules_"),
        (r#""_rules_":["route"]"#, "_rules_[0]"),
        (r#""_rules_":[{"baggage":"drop"}]"#, "_rules_[0]"),
        (
            r#""_rules_":[{"_match_route_":"default/a"}]"#,
            "_rules_[0]._match_route_",
        ),
        (
            r#""_rules_":[{"_match_domain_":[]}]"#,
            "_rules_[0]._match_domain_",
        ),
        (
            r#""_rules_":[{"_match_service_":[""]}]"#,
            "_rules_[0]._match_service_",
        ),
        (
            r#""_rules_":[{"_match_consumer_":["c"]}]"#,
            "_rules_[0]._match_consumer_",
        ),
        (
            r#""_rules_":[{"_match_route_":["a"]},{"_match_route_":["b"],"baggage":"keep"}]"#,
            "_rules_[1].baggage",
        ),
        (
            r#""_rules_":[{"_match_route_":["a"],"max_body_bytes":0}]"#,
            "_rules_[0].max_body_bytes",
        ),
        (
            r#""_rules_":[{"_match_route_":["a"],"export":{"cluster":"otel","path":"v1"}}]"#,
            "_rules_[0].export.path",
        ),
        (
            r#""_rules_":[{"_match_route_":["a"],"host":"envoy"}]"#,
            "_rules_[0].host",
        ),
    ];
    for (rules, key) in cases {
        let document = format!(r#"{{"host":"higress",{rules}}}"#);
        match configure(HostKind::Envoy, document.as_bytes()) {
            Configured::Refused(error) => {
                assert_eq!(error.key, key, "{document}");
                assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
            }
            other => panic!("{document}: {other:?}"),
        }
    }
    // Nothing but an empty `_rules_` on a host recognised as Higress: Higress refuses it too.
    assert!(matches!(
        configure(HostKind::Higress, br#"{"_rules_":[]}"#),
        Configured::Refused(e) if e.key == "_rules_"
    ));
}

#[test]
fn a_rule_may_repeat_the_global_export_but_not_bring_its_own() {
    // The export queue is made once per worker from the global configuration (src/plugin.rs).
    let export = r#""export":{"cluster":"otel","service_name":"gw"}"#;
    let refused = [
        format!(r#"{{"host":"higress","_rules_":[{{"_match_route_":["a"],{export}}}]}}"#),
        format!(
            r#"{{"host":"higress",{export},"_rules_":[{{"_match_route_":["a"],"export":{{"cluster":"other"}}}}]}}"#
        ),
        format!(
            r#"{{"host":"higress",{export},"_rules_":[{{"_match_route_":["a"],"client_span":true}}]}}"#
        ),
    ];
    let keys = [
        "_rules_[0].export",
        "_rules_[0].export",
        "_rules_[0].client_span",
    ];
    for (document, key) in refused.iter().zip(keys) {
        assert!(
            matches!(configure(HostKind::Envoy, document.as_bytes()), Configured::Refused(e) if e.key == key),
            "{document}"
        );
    }
    // The same `export` with its own span settings: this route gets a CLIENT span too.
    let document = format!(
        r#"{{"host":"higress",{export},"_rules_":[{{"_match_route_":["default/mcp-server"],{export},"client_span":true}}]}}"#
    );
    let body = body();
    let clients = |properties: &[(&str, &str)]| {
        let request = Request::post(body.as_bytes())
            .header(":authority", "mcp.example.com")
            .respond(
                vec![(":status", "200"), ("content-type", "application/json")],
                vec![br#"{"jsonrpc":"2.0","id":7,"result":{}}"#],
            );
        let exchange = serve(
            HostKind::Envoy,
            HostKind::Higress,
            &document,
            properties,
            request,
        );
        let record = exchange.record.borrow();
        assert!(record.spans.iter().any(|s| s.kind == SpanKind::Server));
        record
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Client)
            .count()
    };
    assert_eq!(clients(&[]), 1, "the rule's client_span: true");
    assert_eq!(
        clients(&[("route_name", "default/other")]),
        0,
        "the global configuration"
    );
}

#[test]
fn elsewhere_than_higress_the_rules_stay_ignored() {
    // The same document without the `host` key, on Envoy (answering the same route name) and on
    // ngx_wasm_module: `_rules_` is one more `_` key, and the default configuration applies.
    let document = r#"{"_rules_":[{"_match_route_":["default/mcp-server"],"baggage":"drop"}]}"#;
    for kind in [HostKind::Envoy, HostKind::NgxWasm] {
        assert!(
            matches!(configure(kind, document.as_bytes()), Configured::Ready(_, k) if k == kind),
            "{kind:?}"
        );
    }
    let body = body();
    let request = Request::post(body.as_bytes()).header(":authority", "mcp.example.com");
    let exchange = serve(
        HostKind::Envoy,
        HostKind::Envoy,
        document,
        &[("route_name", ROUTE), ("cluster_name", CLUSTER)],
        request,
    );
    assert!(baggage_lifted(&exchange));
    // A rule that would be refused on Higress is not even read elsewhere.
    let broken = br#"{"_rules_":[{"_match_route_":"x","baggage":"keep"}]}"#;
    assert!(matches!(
        configure(HostKind::Envoy, broken),
        Configured::Ready(_, HostKind::Envoy)
    ));
}

#[test]
fn without_rules_higress_gets_the_plain_filter() {
    // No per-request choice (and no property reads) unless there are rules.
    for document in [
        r#"{"host":"higress"}"#,
        r#"{"host":"higress","_rules_":[]}"#,
        r#"{"host":"higress","_match_route_":["ignored"]}"#,
    ] {
        assert!(
            matches!(
                configure(HostKind::Envoy, document.as_bytes()),
                Configured::Ready(_, HostKind::Higress)
            ),
            "{document}"
        );
    }
}
