//! The MCP duration histograms: bucket placement (upper-inclusive), the aggregates, delta
//! export and reset, the cardinality bounds, JSON escaping and structure of the OTLP body, and
//! the host (Envoy) histogram names and values.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter::operation_metrics::{
    host_histogram_value_ms, host_metric_name, OperationAttributes, OperationMetrics,
    RecordOutcome, Side, BOUNDS_MS, BOUNDS_SECONDS, CLIENT_METRIC, HOST_STATS_TAGS,
    MAX_LABEL_BYTES, MAX_SECONDS, OTHER, SERVER_METRIC,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

const RESOURCE: &str =
    r#"{"attributes":[{"key":"service.name","value":{"stringValue":"mcp-gateway"}}]}"#;

fn attrs<'a>(
    method: &'a str,
    target: Option<&'a str>,
    error_type: Option<&'a str>,
) -> OperationAttributes<'a> {
    OperationAttributes {
        method,
        target,
        error_type,
    }
}

fn tool(name: &str) -> OperationAttributes<'_> {
    attrs("tools/call", Some(name), None)
}

fn take(metrics: &mut OperationMetrics) -> Option<Value> {
    let body = metrics.take_otlp_json(RESOURCE, "mcp-trace-filter", 1_000, 2_000)?;
    Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}")))
}

/// The `metrics` array of the single resource and scope.
fn metrics_of(body: &Value) -> &Vec<Value> {
    body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
        .as_array()
        .expect("metrics array")
}

/// The data points of `metric` in `body`.
fn points<'a>(body: &'a Value, metric: &str) -> Vec<&'a Value> {
    metrics_of(body)
        .iter()
        .filter(|m| m["name"] == metric)
        .flat_map(|m| m["histogram"]["dataPoints"].as_array().expect("dataPoints"))
        .collect()
}

fn attributes(point: &Value) -> BTreeMap<String, String> {
    point["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|kv| {
            let key = kv["key"].as_str().expect("key").to_owned();
            let value = kv["value"]["stringValue"]
                .as_str()
                .expect("stringValue")
                .to_owned();
            (key, value)
        })
        .collect()
}

/// A 64-bit integer field, which OTLP JSON writes as a decimal string.
fn u64_field(value: &Value) -> u64 {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .expect("decimal")
}

fn bucket_counts(point: &Value) -> Vec<u64> {
    point["bucketCounts"]
        .as_array()
        .expect("bucketCounts")
        .iter()
        .map(u64_field)
        .collect()
}

fn next_up(x: f64) -> f64 {
    f64::from_bits(x.to_bits() + 1)
}

fn next_down(x: f64) -> f64 {
    f64::from_bits(x.to_bits() - 1)
}

/// The bucket a single `seconds` lands in, read back from the export.
fn bucket_of(seconds: f64) -> usize {
    let mut metrics = OperationMetrics::default();
    metrics.record(Side::Server, &tool("t"), seconds);
    let body = take(&mut metrics).expect("a body");
    let counts = bucket_counts(points(&body, SERVER_METRIC)[0]);
    assert_eq!(counts.len(), BOUNDS_SECONDS.len() + 1);
    assert_eq!(counts.iter().sum::<u64>(), 1);
    counts.iter().position(|c| *c == 1).expect("one bucket")
}

#[test]
fn a_value_equal_to_a_boundary_goes_in_the_bucket_it_closes() {
    for (i, bound) in BOUNDS_SECONDS.iter().enumerate() {
        assert_eq!(bucket_of(*bound), i, "exactly {bound}");
        assert_eq!(bucket_of(next_down(*bound)), i, "just below {bound}");
        assert_eq!(bucket_of(next_up(*bound)), i + 1, "just above {bound}");
    }
    assert_eq!(bucket_of(0.0), 0);
    assert_eq!(bucket_of(1e6), BOUNDS_SECONDS.len());
}

#[test]
fn count_sum_min_max_per_series() {
    let mut metrics = OperationMetrics::default();
    for seconds in [0.5, 0.003, 2.25, 0.125] {
        metrics.record(Side::Server, &tool("weather"), seconds);
    }
    metrics.record(Side::Server, &tool("other"), 7.0);
    let body = take(&mut metrics).expect("a body");
    let points = points(&body, SERVER_METRIC);
    assert_eq!(points.len(), 2);
    let weather = points[0];
    assert_eq!(attributes(weather)["gen_ai.tool.name"], "weather");
    assert_eq!(u64_field(&weather["count"]), 4);
    assert_eq!(weather["sum"].as_f64(), Some(0.5 + 0.003 + 2.25 + 0.125));
    assert_eq!(weather["min"].as_f64(), Some(0.003));
    assert_eq!(weather["max"].as_f64(), Some(2.25));
    // 0.003 <= 0.01, 0.125 <= 0.2, 0.5 <= 0.5, 2.25 <= 5.
    let mut expected = vec![0; 15];
    expected[0] = 1;
    expected[4] = 1;
    expected[5] = 1;
    expected[8] = 1;
    assert_eq!(bucket_counts(weather), expected);
    let other = points[1];
    assert_eq!(u64_field(&other["count"]), 1);
    assert_eq!(other["min"].as_f64(), Some(7.0));
    assert_eq!(other["max"].as_f64(), Some(7.0));
}

#[test]
fn nothing_recorded_means_no_body() {
    let mut metrics = OperationMetrics::default();
    assert_eq!(metrics.take_otlp_json(RESOURCE, "s", 0, 1), None);
}

#[test]
fn a_take_resets_the_aggregates_and_idle_series_are_left_out() {
    let mut metrics = OperationMetrics::default();
    metrics.record(Side::Server, &tool("a"), 1.0);
    metrics.record(Side::Client, &tool("a"), 0.5);
    let first = take(&mut metrics).expect("first body");
    assert_eq!(points(&first, SERVER_METRIC).len(), 1);
    assert_eq!(points(&first, CLIENT_METRIC).len(), 1);
    assert!(take(&mut metrics).is_none(), "nothing since the take");

    // Only the client side, only series b: a is idle and not exported; counts restart at 0.
    metrics.record(Side::Client, &tool("b"), 0.25);
    metrics.record(Side::Client, &tool("b"), 0.25);
    let second = take(&mut metrics).expect("second body");
    assert_eq!(metrics_of(&second).len(), 1, "no empty server metric");
    let client = points(&second, CLIENT_METRIC);
    assert_eq!(client.len(), 1);
    assert_eq!(attributes(client[0])["gen_ai.tool.name"], "b");
    assert_eq!(u64_field(&client[0]["count"]), 2);
    assert_eq!(client[0]["sum"].as_f64(), Some(0.5));

    // The series keys stay (the bound is for the aggregator's life).
    assert_eq!(metrics.series_count(Side::Client), 2);
    metrics.record(Side::Client, &tool("a"), 3.0);
    let third = take(&mut metrics).expect("third body");
    let client = points(&third, CLIENT_METRIC);
    assert_eq!(u64_field(&client[0]["count"]), 1);
    assert_eq!(client[0]["min"].as_f64(), Some(3.0), "min restarted");
}

#[test]
fn series_beyond_the_bound_are_dropped_and_counted() {
    let mut metrics = OperationMetrics::new(3, 32);
    for method in ["initialize", "tools/list", "ping"] {
        let outcome = metrics.record(Side::Server, &attrs(method, None, None), 0.1);
        assert!(matches!(outcome, RecordOutcome::Recorded(_)));
    }
    let fourth = attrs("prompts/list", None, None);
    assert_eq!(
        metrics.record(Side::Server, &fourth, 0.1),
        RecordOutcome::Dropped
    );
    let with_error = attrs("ping", None, Some("-32603"));
    assert_eq!(
        metrics.record(Side::Server, &with_error, 0.1),
        RecordOutcome::Dropped,
        "another error type is another series"
    );
    assert_eq!(metrics.dropped(), 2);
    // Known series still record; the other side has its own bound.
    assert!(matches!(
        metrics.record(Side::Server, &attrs("ping", None, None), 0.1),
        RecordOutcome::Recorded(_)
    ));
    assert!(matches!(
        metrics.record(Side::Client, &fourth, 0.1),
        RecordOutcome::Recorded(_)
    ));
    assert_eq!(metrics.series_count(Side::Server), 3);
    let body = take(&mut metrics).expect("a body");
    let counted: u64 = points(&body, SERVER_METRIC)
        .iter()
        .map(|p| u64_field(&p["count"]))
        .sum();
    assert_eq!(counted, 4);
    // The take does not reset the drop counter.
    assert_eq!(metrics.dropped(), 2);
}

#[test]
fn targets_beyond_the_bound_become_other() {
    let mut metrics = OperationMetrics::new(64, 2);
    assert_eq!(
        metrics.record(Side::Server, &tool("a"), 0.1),
        RecordOutcome::Recorded(tool("a"))
    );
    assert_eq!(
        metrics.record(Side::Server, &tool("b"), 0.1),
        RecordOutcome::Recorded(tool("b"))
    );
    for late in ["c", "d", OTHER] {
        assert_eq!(
            metrics.record(Side::Server, &tool(late), 0.1),
            RecordOutcome::Recorded(tool(OTHER)),
            "{late}"
        );
    }
    // Known targets keep their name, with another error type too; prompts share the bound.
    assert_eq!(
        metrics.record(
            Side::Server,
            &attrs("tools/call", Some("a"), Some("tool_error")),
            0.1
        ),
        RecordOutcome::Recorded(attrs("tools/call", Some("a"), Some("tool_error")))
    );
    assert_eq!(
        metrics.record(Side::Server, &attrs("prompts/get", Some("p"), None), 0.1),
        RecordOutcome::Recorded(attrs("prompts/get", Some(OTHER), None))
    );
    let body = take(&mut metrics).expect("a body");
    let mut by_target: BTreeMap<String, u64> = BTreeMap::new();
    for point in points(&body, SERVER_METRIC) {
        let attributes = attributes(point);
        if let Some(target) = attributes.get("gen_ai.tool.name") {
            *by_target.entry(target.clone()).or_default() += u64_field(&point["count"]);
        }
    }
    let expected: BTreeMap<String, u64> = [("a", 2), ("b", 1), (OTHER, 3)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(by_target, expected);
}

#[test]
fn over_long_labels_become_other() {
    let long = "x".repeat(MAX_LABEL_BYTES + 1);
    let just = "y".repeat(MAX_LABEL_BYTES);
    let mut metrics = OperationMetrics::default();
    assert_eq!(
        metrics.record(
            Side::Server,
            &attrs("tools/call", Some(&long), Some(&long)),
            0.1
        ),
        RecordOutcome::Recorded(attrs("tools/call", Some(OTHER), Some(OTHER)))
    );
    assert_eq!(
        metrics.record(Side::Server, &attrs(&long, None, None), 0.1),
        RecordOutcome::Recorded(attrs(OTHER, None, None))
    );
    assert_eq!(
        metrics.record(Side::Server, &tool(&just), 0.1),
        RecordOutcome::Recorded(tool(&just))
    );
}

#[test]
fn bad_durations_are_rejected_and_negative_ones_count_as_zero() {
    let mut metrics = OperationMetrics::default();
    for bad in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        next_up(MAX_SECONDS),
    ] {
        assert_eq!(
            metrics.record(Side::Server, &tool("t"), bad),
            RecordOutcome::Rejected
        );
    }
    assert_eq!(metrics.rejected(), 4);
    assert!(take(&mut metrics).is_none());
    metrics.record(Side::Server, &tool("t"), -0.5);
    metrics.record(Side::Server, &tool("t"), -0.0);
    metrics.record(Side::Server, &tool("t"), MAX_SECONDS);
    let body = take(&mut metrics).expect("a body");
    let point = points(&body, SERVER_METRIC)[0];
    assert_eq!(u64_field(&point["count"]), 3);
    assert_eq!(point["min"].as_f64(), Some(0.0));
    assert_eq!(point["sum"].as_f64(), Some(MAX_SECONDS));
    assert_eq!(bucket_counts(point)[0], 2);
    assert_eq!(bucket_counts(point)[14], 1);
}

#[test]
fn attributes_follow_the_semantic_conventions() {
    let mut metrics = OperationMetrics::default();
    metrics.record(Side::Server, &tool("get_weather"), 0.1);
    metrics.record(
        Side::Server,
        &attrs("tools/call", Some("get_weather"), Some("tool_error")),
        0.1,
    );
    metrics.record(
        Side::Server,
        &attrs("prompts/get", Some("review"), Some("-32602")),
        0.1,
    );
    // A target of another method (a resource URI, say) is not a series dimension.
    metrics.record(
        Side::Server,
        &attrs("resources/read", Some("file:///etc/passwd"), None),
        0.1,
    );
    metrics.record(Side::Server, &attrs("resources/read", None, None), 0.1);
    metrics.record(Side::Server, &attrs("tools/call", None, None), 0.1);
    let body = take(&mut metrics).expect("a body");
    let got: Vec<BTreeMap<String, String>> = points(&body, SERVER_METRIC)
        .into_iter()
        .map(attributes)
        .collect();
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([
                ("network.protocol.name".to_owned(), "http".to_owned()),
                ("network.transport".to_owned(), "tcp".to_owned()),
            ])
            .collect()
    };
    let expected = vec![
        map(&[
            ("mcp.method.name", "tools/call"),
            ("gen_ai.operation.name", "execute_tool"),
            ("gen_ai.tool.name", "get_weather"),
        ]),
        map(&[
            ("mcp.method.name", "tools/call"),
            ("gen_ai.operation.name", "execute_tool"),
            ("gen_ai.tool.name", "get_weather"),
            ("error.type", "tool_error"),
        ]),
        map(&[
            ("mcp.method.name", "prompts/get"),
            ("gen_ai.prompt.name", "review"),
            ("error.type", "-32602"),
            ("rpc.response.status_code", "-32602"),
        ]),
        map(&[("mcp.method.name", "resources/read")]),
        map(&[
            ("mcp.method.name", "tools/call"),
            ("gen_ai.operation.name", "execute_tool"),
        ]),
    ];
    assert_eq!(got, expected);
    let resource_read = points(&body, SERVER_METRIC)[3];
    assert_eq!(u64_field(&resource_read["count"]), 2);
    // No key appears twice in a point, and mcp.method.name comes first.
    for point in points(&body, SERVER_METRIC) {
        let keys: Vec<&str> = point["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| kv["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys[0], "mcp.method.name");
        assert_eq!(
            keys.iter().collect::<BTreeSet<_>>().len(),
            keys.len(),
            "{keys:?}"
        );
    }
}

#[test]
fn hostile_names_are_escaped() {
    let hostile = "a\"b\\c\n\r\t\u{0}\u{1}\u{1f}\u{7f}é\u{2028}😀\"},{\"key\":\"x";
    let mut metrics = OperationMetrics::default();
    metrics.record(Side::Server, &attrs(hostile, None, Some(hostile)), 0.1);
    metrics.record(Side::Client, &tool(hostile), 0.1);
    metrics.record(
        Side::Client,
        &attrs("prompts/get", Some(hostile), None),
        0.1,
    );
    let body = metrics
        .take_otlp_json(RESOURCE, hostile, 5, 6)
        .expect("a body");
    assert!(!body.contains('\n'), "raw control characters escaped");
    let body: Value = serde_json::from_str(&body).expect("valid JSON");
    assert_eq!(
        body["resourceMetrics"][0]["scopeMetrics"][0]["scope"]["name"],
        hostile
    );
    let server = attributes(points(&body, SERVER_METRIC)[0]);
    assert_eq!(server["mcp.method.name"], hostile);
    assert_eq!(server["error.type"], hostile);
    assert!(!server.contains_key("x"), "no injected attribute");
    let client = points(&body, CLIENT_METRIC);
    assert_eq!(attributes(client[0])["gen_ai.tool.name"], hostile);
    assert_eq!(attributes(client[1])["gen_ai.prompt.name"], hostile);
}

#[test]
fn the_body_is_an_otlp_json_export_request() {
    let mut metrics = OperationMetrics::default();
    metrics.record(Side::Server, &tool("t"), 0.2);
    metrics.record(Side::Client, &tool("t"), 0.1);
    let body = metrics
        .take_otlp_json(
            RESOURCE,
            "mcp-trace-filter",
            1_700_000_000_000_000_000,
            u64::MAX,
        )
        .expect("a body");
    let body: Value = serde_json::from_str(&body).expect("valid JSON");
    let top: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(top, ["resourceMetrics"]);
    let resource_metrics = body["resourceMetrics"].as_array().unwrap();
    assert_eq!(resource_metrics.len(), 1);
    let expected_resource: Value = serde_json::from_str(RESOURCE).unwrap();
    assert_eq!(resource_metrics[0]["resource"], expected_resource);
    let scope_metrics = resource_metrics[0]["scopeMetrics"].as_array().unwrap();
    assert_eq!(scope_metrics.len(), 1);
    assert_eq!(scope_metrics[0]["scope"]["name"], "mcp-trace-filter");
    let metrics = metrics_of(&body);
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [SERVER_METRIC, CLIENT_METRIC]);
    for metric in metrics {
        assert_eq!(metric["unit"], "s");
        assert!(metric["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        assert!(metric.get("sum").is_none() && metric.get("gauge").is_none());
        let histogram = &metric["histogram"];
        assert_eq!(
            histogram["aggregationTemporality"], 1,
            "DELTA, as an integer"
        );
        let point = &histogram["dataPoints"][0];
        assert_eq!(point["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(point["timeUnixNano"], u64::MAX.to_string());
        assert_eq!(point["count"], "1");
        assert!(point["sum"].is_f64() || point["sum"].is_u64());
        assert!(point["min"].is_number() && point["max"].is_number());
        let counts = point["bucketCounts"].as_array().unwrap();
        assert_eq!(counts.len(), 15);
        assert!(counts.iter().all(Value::is_string), "fixed64 as strings");
        let bounds: Vec<f64> = point["explicitBounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_f64().unwrap())
            .collect();
        assert_eq!(bounds, BOUNDS_SECONDS);
    }
}

#[test]
fn bounds_in_milliseconds_match_the_seconds() {
    for (ms, seconds) in BOUNDS_MS.iter().zip(BOUNDS_SECONDS) {
        assert_eq!(*ms as f64 / 1000.0, seconds);
    }
}

#[test]
fn host_metric_names_are_one_segment_per_value() {
    let cases = [
        (
            Side::Server,
            tool("get_weather"),
            "mcp_trace_filter.mcp_server_operation_duration_ms.method.tools_call.tool.get_weather",
        ),
        (
            Side::Client,
            attrs("tools/call", Some("a.b/c:d\u{0}é-1"), Some("-32602")),
            "mcp_trace_filter.mcp_client_operation_duration_ms.method.tools_call.tool.a_b_c_d__-1.error_type.-32602",
        ),
        (
            Side::Server,
            attrs("prompts/get", Some("review"), Some("tool_error")),
            "mcp_trace_filter.mcp_server_operation_duration_ms.method.prompts_get.prompt.review.error_type.tool_error",
        ),
        (
            Side::Server,
            attrs("notifications/initialized", Some("ignored"), None),
            "mcp_trace_filter.mcp_server_operation_duration_ms.method.notifications_initialized",
        ),
        (
            Side::Server,
            attrs("tools/call", Some(""), Some(OTHER)),
            "mcp_trace_filter.mcp_server_operation_duration_ms.method.tools_call.tool._EMPTY.error_type._OTHER",
        ),
    ];
    for (side, attrs, expected) in cases {
        assert_eq!(host_metric_name(side, &attrs), expected);
    }
}

#[test]
fn host_stats_tags_name_the_labels() {
    let names: Vec<&str> = HOST_STATS_TAGS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "mcp_method_name",
            "gen_ai_tool_name",
            "gen_ai_prompt_name",
            "error_type"
        ]
    );
    for (_, regex) in HOST_STATS_TAGS {
        assert!(regex.starts_with(r"^wasmcustom\.mcp_trace_filter\."));
        // Envoy: the first group is removed from the name, the second is the value.
        assert_eq!(regex.matches('(').count() - regex.matches("(?:").count(), 2);
    }
}

#[test]
fn host_values_are_whole_milliseconds_clear_of_envoy_bin_edges() {
    let cases = [
        (0.0, 0),
        (-1.0, 0),
        (f64::NAN, 0),
        (0.0004, 0),
        (0.001, 0),
        (0.0012, 1),
        (0.0099, 9),
        (0.01, 9),
        // Just above 10 ms: past the bin [10, 11) that Envoy 1.40 counts in le=10.
        (next_up(0.01), 11),
        (0.0105, 11),
        (0.0115, 11),
        (0.0125, 12),
        (0.02, 19),
        (0.1, 99),
        (0.1002, 110),
        (0.1234, 123),
        (1.0, 999),
        (1.05, 1_100),
        (300.0, 299_999),
        (next_up(300.0), 310_000),
        (400.0, 399_999),
        (f64::INFINITY, u64::MAX),
    ];
    for (seconds, expected) in cases {
        assert_eq!(host_histogram_value_ms(seconds), expected, "{seconds}");
    }
}

/// The Envoy histogram bin (libcircllhist: two significant digits) holding the whole number
/// `r`, as (lower edge, upper edge).
fn envoy_bin(r: u64) -> (f64, f64) {
    if r == 0 {
        return (0.0, 0.0);
    }
    if r < 10 {
        return (r as f64, r as f64 + 0.1);
    }
    let mut width = 1;
    while r / width >= 100 {
        width *= 10;
    }
    let lower = r / width * width;
    (lower as f64, (lower + width) as f64)
}

/// Envoy counts a sample in `le=B` by its bin's lower edge (1.40) or upper edge (older
/// releases); either way it must agree with the OTLP export, which counts `seconds` in the
/// bucket closed by `B / 1000` when `seconds <= B / 1000`.
fn same_bucket_in_envoy(seconds: f64) -> bool {
    let (lower, upper) = envoy_bin(host_histogram_value_ms(seconds));
    BOUNDS_MS.iter().zip(BOUNDS_SECONDS).all(|(ms, s)| {
        let in_otlp = seconds <= s;
        (lower <= *ms as f64) == in_otlp && (upper <= *ms as f64) == in_otlp
    })
}

#[test]
fn the_envoy_bin_model_matches_envoy_1_40() {
    // Observed on Envoy 1.40 /stats/prometheus with these buckets: the first le counting r.
    let observed = [
        (0, 10),
        (10, 10),
        (11, 20),
        (20, 20),
        (21, 50),
        (100, 100),
        (109, 100),
        (110, 200),
        (1_099, 1_000),
        (1_100, 2_000),
        (309_999, 300_000),
    ];
    for (r, first_le) in observed {
        let (lower, _) = envoy_bin(r);
        let first = BOUNDS_MS.iter().find(|b| lower <= **b as f64).copied();
        assert_eq!(first, Some(first_le), "{r}");
    }
    assert_eq!(envoy_bin(310_000), (310_000.0, 320_000.0));
}

#[test]
fn host_values_land_in_the_otlp_bucket_at_every_boundary() {
    for bound in BOUNDS_SECONDS {
        let mut x = bound;
        for _ in 0..64 {
            x = next_down(x);
        }
        for _ in 0..128 {
            assert!(same_bucket_in_envoy(x), "{x}");
            x = next_up(x);
        }
        // Up to and past the end of the bin starting at the boundary.
        for tenth_percent in 0..=200 {
            let x = bound * (1.0 + f64::from(tenth_percent) / 1000.0);
            assert!(same_bucket_in_envoy(x), "{x}");
        }
    }
}

/// Away from the boundaries the value is one less than the smallest whole `k` with
/// `k / 1000 >= seconds`, checked a few ulps either side of every whole millisecond up to
/// 400 s (where a plain `ceil(seconds * 1000)` is off by one thousands of times); near a
/// boundary it is raised just enough to leave the Envoy bin starting there.
#[test]
fn host_value_is_one_below_the_duration_unless_raised_past_a_bin() {
    let mut raised = 0;
    for whole in 1..=400_000u32 {
        let mut x = f64::from(whole) / 1000.0;
        for _ in 0..3 {
            x = next_down(x);
        }
        for _ in 0..7 {
            // x is a few ulps from whole / 1000, so (whole - 1) / 1000 is below it.
            let mut k = u64::from(whole) - 1;
            while (k as f64) / 1000.0 < x {
                k += 1;
            }
            let r = host_histogram_value_ms(x);
            if r != k - 1 {
                raised += 1;
                assert!(r > k - 1, "{x}: {r} below {}", k - 1);
                // Raised to the first value whose bin starts past the bucket's lower boundary.
                let lower_bound = BOUNDS_MS[BOUNDS_SECONDS.iter().rposition(|b| *b < x).unwrap()];
                assert!(envoy_bin(r).0 > lower_bound as f64, "{x}: {r}");
                assert!(
                    envoy_bin(r - 1).0 <= lower_bound as f64,
                    "{x}: {r} not the least"
                );
            }
            x = next_up(x);
        }
    }
    assert!(raised > 0);
}

/// A duration drawn to hit the boundaries often: a boundary, one ulp beside one, a whole or
/// half millisecond, or anything up to 400 s.
fn duration() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(BOUNDS_SECONDS.to_vec()),
        prop::sample::select(BOUNDS_SECONDS.to_vec()).prop_map(next_up),
        prop::sample::select(BOUNDS_SECONDS.to_vec()).prop_map(next_down),
        (0u32..400_000).prop_map(|ms| f64::from(ms) / 1000.0),
        (0u32..800_000).prop_map(|half| f64::from(half) / 2000.0),
        0.0f64..400.0,
        Just(f64::NAN),
        Just(-0.25),
    ]
}

const METHODS: [&str; 5] = ["tools/call", "prompts/get", "ping", "tools/list", "_OTHER"];
const ERRORS: [Option<&str>; 4] = [None, Some("tool_error"), Some("-32602"), Some("-32603")];

#[derive(Debug, Clone)]
struct Op {
    client: bool,
    method: usize,
    target: Option<u8>,
    error: usize,
    seconds: f64,
}

fn op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        0..METHODS.len(),
        prop::option::of(0u8..40),
        0..ERRORS.len(),
        duration(),
    )
        .prop_map(|(client, method, target, error, seconds)| Op {
            client,
            method,
            target,
            error,
            seconds,
        })
}

#[derive(Default, Debug)]
struct Hits {
    boundary_values: Cell<u64>,
    rejected: Cell<u64>,
    dropped: Cell<u64>,
    other_targets: Cell<u64>,
    takes_with_no_body: Cell<u64>,
    overflow_bucket: Cell<u64>,
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get() + by);
}

/// Random series and durations, taken in two rounds: every measurement is in exactly one
/// place (a bucket of an exported point, the drop count or the reject count), every point's
/// buckets add up to its count, the bounds hold, and the host value agrees on the bucket.
#[test]
fn every_measurement_is_counted_once() {
    let hits = Hits::default();
    let strategy = (
        prop::collection::vec(op(), 0..300),
        prop::collection::vec(op(), 0..100),
        1usize..40,
        0usize..20,
    );
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(first, second, max_series, max_targets)| {
        let mut metrics = OperationMetrics::new(max_series, max_targets);
        let names: Vec<String> = (0..40).map(|i| format!("tool-{i}")).collect();
        let mut exported = 0u64;
        let mut attempted = 0u64;
        for round in [&first, &second] {
            for op in round {
                attempted += 1;
                let side = if op.client {
                    Side::Client
                } else {
                    Side::Server
                };
                let target = op.target.map(|t| names[usize::from(t)].as_str());
                let attrs = attrs(METHODS[op.method], target, ERRORS[op.error]);
                if BOUNDS_SECONDS.contains(&op.seconds) {
                    bump(&hits.boundary_values, 1);
                }
                if op.seconds > 300.0 {
                    bump(&hits.overflow_bucket, 1);
                }
                prop_assert!(op.seconds.is_nan() || same_bucket_in_envoy(op.seconds));
                if let RecordOutcome::Recorded(effective) = metrics.record(side, &attrs, op.seconds)
                {
                    if effective.target == Some(OTHER) {
                        bump(&hits.other_targets, 1);
                    }
                }
            }
            let Some(body) = take(&mut metrics) else {
                bump(&hits.takes_with_no_body, 1);
                continue;
            };
            for metric in [SERVER_METRIC, CLIENT_METRIC] {
                let points = points(&body, metric);
                prop_assert!(points.len() <= max_series);
                let mut targets = BTreeSet::new();
                for point in points {
                    let count = u64_field(&point["count"]);
                    prop_assert!(count > 0, "no empty points");
                    prop_assert_eq!(bucket_counts(point).iter().sum::<u64>(), count);
                    prop_assert!(point["min"].as_f64() <= point["max"].as_f64());
                    exported += count;
                    let attributes = attributes(point);
                    for key in ["gen_ai.tool.name", "gen_ai.prompt.name"] {
                        if let Some(t) = attributes.get(key) {
                            if t != OTHER {
                                targets.insert(t.clone());
                            }
                        }
                    }
                }
                prop_assert!(targets.len() <= max_targets);
            }
        }
        prop_assert!(metrics.series_count(Side::Server) <= max_series);
        prop_assert!(metrics.series_count(Side::Client) <= max_series);
        prop_assert_eq!(exported + metrics.dropped() + metrics.rejected(), attempted);
        bump(&hits.rejected, metrics.rejected());
        bump(&hits.dropped, metrics.dropped());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("interesting cases hit: {hits:?}");
    assert!(hits.boundary_values.get() > 0);
    assert!(hits.rejected.get() > 0);
    assert!(hits.dropped.get() > 0);
    assert!(hits.other_targets.get() > 0);
    assert!(hits.takes_with_no_body.get() > 0);
    assert!(hits.overflow_bucket.get() > 0);
}

proptest! {
    /// Any finite duration gives the host value of the OTLP bucket.
    #[test]
    fn host_values_agree_with_otlp_buckets(seconds in 0.0f64..1e6) {
        prop_assert!(same_bucket_in_envoy(seconds));
    }
}
