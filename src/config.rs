//! Plugin configuration: JSON from the host → a validated [`Config`].
//!
//! Errors are returned at load time and always name the offending key, so an operator sees
//! exactly what to fix. Keys starting with `_` are ignored because some hosts (Higress) add
//! their own (`_rules_`, `_match_route_`) to every plugin's configuration.

use crate::host::HostKind;
use serde_json::{Map, Value};
use std::fmt;

/// Default body buffering limit: 1 MiB, which is also Envoy's default per-connection buffer
/// limit, so the filter never asks Envoy to buffer more than it would by itself.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which trace context becomes the upstream parent when both the HTTP headers and
/// `params._meta` carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precedence {
    /// `_meta` wins (the OpenTelemetry MCP semantic conventions make it the parent).
    #[default]
    Meta,
    /// A valid header `traceparent` wins; `_meta` only fills in when the header has none.
    Header,
}

/// What to do with `params._meta.baggage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaggageMode {
    /// A valid `_meta` baggage replaces the header baggage.
    #[default]
    Meta,
    /// Union of both, `_meta` winning per key, kept within the W3C limits.
    Merge,
    /// The header baggage wins; `_meta` baggage only fills in when the header has none.
    Header,
    /// `_meta` baggage is never lifted.
    Drop,
}

/// Where in the proxy the filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A downstream HTTP filter: lifts `_meta` into headers and publishes span metadata.
    #[default]
    Gateway,
    /// An upstream (cluster) HTTP filter after the router injected the proxy span's context:
    /// rewrites the body's `_meta.traceparent` to the `traceparent` header so the MCP server,
    /// which prefers `_meta`, continues the proxy's span.
    Upstream,
}

/// What to do when the `Mcp-Method` / `Mcp-Name` request headers (MCP 2026-07-28, SEP-2243)
/// contradict the body. A gateway that routes or authorises on the headers while the server acts
/// on the body would be bypassed, so the specification tells an intermediary that reads the body
/// to reject such a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMismatch {
    /// Answer HTTP 400 with a JSON-RPC `HeaderMismatch` error (-32020); counted.
    #[default]
    Reject,
    /// Only count it and let the request continue.
    Count,
}

/// The validated configuration. `Config::default()` is what `{}` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub precedence: Precedence,
    pub baggage: BaggageMode,
    pub max_body_bytes: usize,
    /// Also publish the span name and attributes as request headers (`x-mcp-*` and
    /// `x-envoy-decorator-operation`), for a second listener or a backend to read.
    pub span_headers: bool,
    /// Publish the span name and attributes as filter state (`wasm.<key>`) for the proxy's
    /// tracer, and watch the response for the outcome. Off by default: a listener without a
    /// tracer has no reader for it.
    pub span_metadata: bool,
    pub header_mismatch: HeaderMismatch,
    pub role: Role,
    /// Which proxy's semantics to follow; `None` (`"auto"`) recognises it at start.
    pub host: Option<HostKind>,
    /// The filter makes and exports the gateway's own span (`export` is set).
    pub own_span: Option<OwnSpan>,
}

/// The own-span mode: the filter is the gateway's tracer. The parent is the context
/// [`Precedence`] chooses; the other one, when it differs, becomes a span link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnSpan {
    pub export: Export,
    /// Also make a CLIENT span for the call to the backend, child of the SERVER span.
    pub client_span: bool,
    /// Share of root spans (requests without any context) that are sampled, in millionths.
    pub root_sampling_millionths: u32,
    /// Insert the upstream context into `params._meta` when it did not come from there.
    pub inject_meta: bool,
    /// What to do with server spans returned in `result._meta.otel` (SEP-2448).
    pub server_spans: ServerSpans,
}

/// Where and how spans (and the duration metrics) are sent: OTLP/HTTP JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The collector: an Envoy cluster name, or on ngx_wasm_module a `host:port` address.
    pub upstream: String,
    /// `:authority` of the export requests.
    pub authority: String,
    /// Path of the trace export, `/v1/traces` by default.
    pub path: String,
    /// Path of the metrics export; `None` turns metrics export off.
    pub metrics_path: Option<String>,
    pub timeout_ms: u32,
    pub flush_interval_ms: u32,
    /// Spans per export request; reaching it also triggers an export at the next tick.
    pub batch_size: usize,
    /// Most spans waiting per worker; beyond it new spans are dropped (counted).
    pub queue_size: usize,
    pub service_name: String,
    /// More resource attributes, in the order given.
    pub resource_attributes: Vec<(String, String)>,
}

/// SEP-2448: server spans an MCP server returns in `result._meta.otel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerSpans {
    /// Send them to the collector too.
    pub forward: bool,
    /// Remove them before the response reaches the client.
    pub strip: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            precedence: Precedence::default(),
            baggage: BaggageMode::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            span_headers: false,
            span_metadata: false,
            header_mismatch: HeaderMismatch::default(),
            role: Role::default(),
            host: None,
            own_span: None,
        }
    }
}

/// A configuration error; `key` is the JSON key at fault (empty for the document itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "invalid configuration: {}", self.reason)
        } else {
            write!(
                f,
                "invalid configuration key `{}`: {}",
                self.key, self.reason
            )
        }
    }
}

fn error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Config {
    /// Parses the plugin configuration bytes. Empty (or whitespace-only) input means defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let document: Value =
            serde_json::from_slice(bytes).map_err(|e| error("", format!("not valid JSON: {e}")))?;
        let Value::Object(map) = document else {
            return Err(error("", "must be a JSON object"));
        };
        Config::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut own_span = OwnSpanKeys::default();
        for (key, value) in map {
            match key.as_str() {
                "precedence" => config.precedence = parse_precedence(key, value)?,
                "baggage" => config.baggage = parse_baggage_mode(key, value)?,
                "max_body_bytes" => config.max_body_bytes = parse_body_limit(key, value)?,
                "span_headers" => config.span_headers = expect_bool(key, value)?,
                "span_metadata" => config.span_metadata = expect_bool(key, value)?,
                "header_mismatch" => config.header_mismatch = parse_header_mismatch(key, value)?,
                "role" => config.role = parse_role(key, value)?,
                "host" => config.host = parse_host(key, value)?,
                "export" => own_span.export = Some(parse_export(key, value)?),
                "client_span" => own_span.client_span = Some(expect_bool(key, value)?),
                "root_sampling_ratio" => own_span.root_sampling = Some(parse_ratio(key, value)?),
                "inject_meta" => own_span.inject_meta = Some(expect_bool(key, value)?),
                "server_spans" => own_span.server_spans = Some(parse_server_spans(key, value)?),
                host_key if host_key.starts_with('_') => {}
                unknown => {
                    return Err(error(
                        unknown,
                        format!("unknown key (expected one of: {})", KEYS.join(", ")),
                    ))
                }
            }
        }
        config.own_span = own_span.into_own_span()?;
        if config.own_span.is_some() {
            if config.role == Role::Upstream {
                return Err(error("role", "must be \"gateway\" when `export` is set"));
            }
            if config.span_metadata {
                return Err(error(
                    "span_metadata",
                    "must be false when `export` is set: the filter is then the gateway's tracer",
                ));
            }
        }
        Ok(config)
    }
}

/// The own-span keys as found, checked together once every key is read.
#[derive(Default)]
struct OwnSpanKeys {
    export: Option<Export>,
    client_span: Option<bool>,
    root_sampling: Option<u32>,
    inject_meta: Option<bool>,
    server_spans: Option<ServerSpans>,
}

impl OwnSpanKeys {
    fn into_own_span(self) -> Result<Option<OwnSpan>, ConfigError> {
        let Some(export) = self.export else {
            let given = [
                ("client_span", self.client_span.is_some()),
                ("root_sampling_ratio", self.root_sampling.is_some()),
                ("inject_meta", self.inject_meta.is_some()),
                ("server_spans", self.server_spans.is_some()),
            ];
            return match given.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(error(key, "needs `export` (the own-span mode)")),
                None => Ok(None),
            };
        };
        Ok(Some(OwnSpan {
            export,
            client_span: self.client_span.unwrap_or(false),
            root_sampling_millionths: self.root_sampling.unwrap_or(MILLION),
            inject_meta: self.inject_meta.unwrap_or(false),
            server_spans: self.server_spans.unwrap_or_default(),
        }))
    }
}

const MILLION: u32 = 1_000_000;

/// Every key `export` accepts.
pub const EXPORT_KEYS: [&str; 11] = [
    "cluster",
    "address",
    "authority",
    "path",
    "metrics_path",
    "timeout_ms",
    "flush_interval_ms",
    "batch_size",
    "queue_size",
    "service_name",
    "resource_attributes",
];

fn parse_export(key: &str, value: &Value) -> Result<Export, ConfigError> {
    let Value::Object(map) = value else {
        return Err(error(
            key,
            format!("must be an object, got {}", type_name(value)),
        ));
    };
    let mut upstream = None;
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
    for (name, value) in map {
        let key = format!("export.{name}");
        let key = key.as_str();
        match name.as_str() {
            "cluster" | "address" => {
                if upstream.is_some() {
                    return Err(error(
                        key,
                        "give only one of `export.cluster`, `export.address`",
                    ));
                }
                upstream = Some(expect_text(key, value)?.to_owned());
            }
            "authority" => export.authority = expect_text(key, value)?.to_owned(),
            "path" => export.path = expect_path(key, value)?,
            "metrics_path" => {
                export.metrics_path = match value {
                    Value::Null => None,
                    _ => Some(expect_path(key, value)?),
                }
            }
            "timeout_ms" => export.timeout_ms = expect_count(key, value, 1, 60_000)? as u32,
            "flush_interval_ms" => {
                export.flush_interval_ms = expect_count(key, value, 10, 60_000)? as u32
            }
            "batch_size" => export.batch_size = expect_count(key, value, 1, 4_096)? as usize,
            "queue_size" => export.queue_size = expect_count(key, value, 1, 65_536)? as usize,
            "service_name" => export.service_name = expect_text(key, value)?.to_owned(),
            "resource_attributes" => export.resource_attributes = parse_attributes(key, value)?,
            unknown => {
                return Err(error(
                    &format!("export.{unknown}"),
                    format!("unknown key (expected one of: {})", EXPORT_KEYS.join(", ")),
                ))
            }
        }
    }
    export.upstream = upstream.ok_or_else(|| {
        error(
            "export.cluster",
            "`export` needs the collector: `cluster` (Envoy) or `address` (ngx_wasm_module)",
        )
    })?;
    if export.authority.is_empty() {
        export.authority = export.upstream.clone();
    }
    Ok(export)
}

/// A non-empty string without control characters (it becomes a header or an OTLP value).
fn expect_text<'v>(key: &str, value: &'v Value) -> Result<&'v str, ConfigError> {
    let text = expect_str(key, value)?;
    if text.is_empty() || text.chars().count() > 256 || text.chars().any(char::is_control) {
        return Err(error(
            key,
            "must be 1 to 256 characters without control characters",
        ));
    }
    Ok(text)
}

fn expect_path(key: &str, value: &Value) -> Result<String, ConfigError> {
    let path = expect_text(key, value)?;
    if !path.starts_with('/') || path.contains(' ') {
        return Err(error(
            key,
            format!("must be a path starting with `/`, got {path:?}"),
        ));
    }
    Ok(path.to_owned())
}

fn expect_count(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(error(
            key,
            format!("must be between {min} and {max}, got {n}"),
        )),
        None => Err(error(
            key,
            format!(
                "must be an integer between {min} and {max}, got {}",
                type_name(value)
            ),
        )),
    }
}

fn parse_attributes(key: &str, value: &Value) -> Result<Vec<(String, String)>, ConfigError> {
    let Value::Object(map) = value else {
        return Err(error(
            key,
            format!("must be an object of strings, got {}", type_name(value)),
        ));
    };
    if map.len() > 32 {
        return Err(error(key, "must have at most 32 attributes"));
    }
    map.iter()
        .map(|(name, value)| {
            let member = format!("{key}.{name}");
            if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
                return Err(error(
                    &member,
                    "attribute names must be 1 to 256 characters",
                ));
            }
            Ok((name.clone(), expect_text(&member, value)?.to_owned()))
        })
        .collect()
}

fn parse_ratio(key: &str, value: &Value) -> Result<u32, ConfigError> {
    match value.as_f64() {
        Some(ratio) if (0.0..=1.0).contains(&ratio) => {
            Ok((ratio * f64::from(MILLION)).round() as u32)
        }
        // The value is not echoed: formatting a float would add a float printer to the module.
        Some(_) => Err(error(key, "must be a number from 0 to 1")),
        None => Err(error(
            key,
            format!("must be a number from 0 to 1, got {}", type_name(value)),
        )),
    }
}

fn parse_server_spans(key: &str, value: &Value) -> Result<ServerSpans, ConfigError> {
    let (forward, strip) = match expect_str(key, value)? {
        "pass" => (false, false),
        "forward" => (true, false),
        "strip" => (false, true),
        "forward_and_strip" => (true, true),
        other => {
            return Err(error(
                key,
                format!(
                    "must be one of \"pass\", \"forward\", \"strip\", \"forward_and_strip\", got {other:?}"
                ),
            ))
        }
    };
    Ok(ServerSpans { forward, strip })
}

/// Every key the configuration accepts, in the order the README lists them.
pub const KEYS: [&str; 13] = [
    "precedence",
    "baggage",
    "max_body_bytes",
    "span_metadata",
    "span_headers",
    "header_mismatch",
    "role",
    "host",
    "export",
    "client_span",
    "root_sampling_ratio",
    "inject_meta",
    "server_spans",
];

fn expect_str<'v>(key: &str, value: &'v Value) -> Result<&'v str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| error(key, format!("must be a string, got {}", type_name(value))))
}

fn expect_bool(key: &str, value: &Value) -> Result<bool, ConfigError> {
    value.as_bool().ok_or_else(|| {
        error(
            key,
            format!("must be true or false, got {}", type_name(value)),
        )
    })
}

fn parse_role(key: &str, value: &Value) -> Result<Role, ConfigError> {
    match expect_str(key, value)? {
        "gateway" => Ok(Role::Gateway),
        "upstream" => Ok(Role::Upstream),
        other => Err(error(
            key,
            format!("must be \"gateway\" or \"upstream\", got {other:?}"),
        )),
    }
}

fn parse_host(key: &str, value: &Value) -> Result<Option<HostKind>, ConfigError> {
    match expect_str(key, value)? {
        "auto" => Ok(None),
        "envoy" => Ok(Some(HostKind::Envoy)),
        "ngx_wasm_module" => Ok(Some(HostKind::NgxWasm)),
        "higress" => Ok(Some(HostKind::Higress)),
        other => Err(error(
            key,
            format!(
                "must be one of \"auto\", \"envoy\", \"ngx_wasm_module\", \"higress\", got {other:?}"
            ),
        )),
    }
}

fn parse_header_mismatch(key: &str, value: &Value) -> Result<HeaderMismatch, ConfigError> {
    match expect_str(key, value)? {
        "reject" => Ok(HeaderMismatch::Reject),
        "count" => Ok(HeaderMismatch::Count),
        other => Err(error(
            key,
            format!("must be \"reject\" or \"count\", got {other:?}"),
        )),
    }
}

fn parse_precedence(key: &str, value: &Value) -> Result<Precedence, ConfigError> {
    match expect_str(key, value)? {
        "meta" => Ok(Precedence::Meta),
        "header" => Ok(Precedence::Header),
        other => Err(error(
            key,
            format!("must be \"meta\" or \"header\", got {other:?}"),
        )),
    }
}

fn parse_baggage_mode(key: &str, value: &Value) -> Result<BaggageMode, ConfigError> {
    match expect_str(key, value)? {
        "meta" => Ok(BaggageMode::Meta),
        "merge" => Ok(BaggageMode::Merge),
        "header" => Ok(BaggageMode::Header),
        "drop" => Ok(BaggageMode::Drop),
        other => Err(error(
            key,
            format!("must be one of \"meta\", \"merge\", \"header\", \"drop\", got {other:?}"),
        )),
    }
}

/// Upper bound for `max_body_bytes`: beyond this the filter would hold too much per request.
const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;

fn parse_body_limit(key: &str, value: &Value) -> Result<usize, ConfigError> {
    let limit = value.as_u64().ok_or_else(|| {
        error(
            key,
            format!("must be a positive integer, got {}", type_name(value)),
        )
    })?;
    if limit == 0 || limit > MAX_BODY_LIMIT {
        return Err(error(
            key,
            format!("must be between 1 and {MAX_BODY_LIMIT}, got {limit}"),
        ));
    }
    usize::try_from(limit).map_err(|_| error(key, "does not fit this platform"))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a number",
        Value::Number(_) => "a negative or fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text.as_bytes())
    }

    #[test]
    fn empty_and_empty_object_mean_defaults() {
        assert_eq!(parse(""), Ok(Config::default()));
        assert_eq!(parse("  \n"), Ok(Config::default()));
        assert_eq!(parse("{}"), Ok(Config::default()));
        let defaults = Config::default();
        assert_eq!(defaults.precedence, Precedence::Meta);
        assert_eq!(defaults.baggage, BaggageMode::Meta);
        assert_eq!(defaults.max_body_bytes, 1_048_576);
    }

    #[test]
    fn every_key_parses() {
        let config = parse(
            r#"{"precedence":"header","baggage":"merge","max_body_bytes":4096,
                "span_headers":true,"span_metadata":true,"header_mismatch":"count",
                "role":"upstream","host":"ngx_wasm_module"}"#,
        );
        assert_eq!(
            config,
            Ok(Config {
                precedence: Precedence::Header,
                baggage: BaggageMode::Merge,
                max_body_bytes: 4096,
                span_headers: true,
                span_metadata: true,
                header_mismatch: HeaderMismatch::Count,
                role: Role::Upstream,
                host: Some(HostKind::NgxWasm),
                own_span: None,
            })
        );
        for (text, mode) in [
            ("meta", BaggageMode::Meta),
            ("header", BaggageMode::Header),
            ("drop", BaggageMode::Drop),
        ] {
            let parsed = parse(&format!(r#"{{"baggage":"{text}"}}"#));
            assert_eq!(parsed.map(|c| c.baggage), Ok(mode));
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"{"precedence":"body"}"#, "precedence"),
            (r#"{"precedence":1}"#, "precedence"),
            (r#"{"baggage":null}"#, "baggage"),
            (r#"{"baggage":"keep"}"#, "baggage"),
            (r#"{"max_body_bytes":"1"}"#, "max_body_bytes"),
            (r#"{"max_body_bytes":0}"#, "max_body_bytes"),
            (r#"{"max_body_bytes":-5}"#, "max_body_bytes"),
            (r#"{"max_body_bytes":1.5}"#, "max_body_bytes"),
            (r#"{"max_body_bytes":1e12}"#, "max_body_bytes"),
            (r#"{"precedance":"meta"}"#, "precedance"),
            (r#"{"span_headers":"yes"}"#, "span_headers"),
            (r#"{"role":"edge"}"#, "role"),
            (r#"{"span_metadata":1}"#, "span_metadata"),
            (r#"{"header_mismatch":"allow"}"#, "header_mismatch"),
            (r#"{"header_mismatch":false}"#, "header_mismatch"),
            (r#"{"host":"kong"}"#, "host"),
        ];
        for (text, key) in cases {
            let err = parse(text).err();
            assert_eq!(err.as_ref().map(|e| e.key.as_str()), Some(key), "{text}");
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(&format!("`{key}`")), "{message}");
        }
    }

    #[test]
    fn the_unknown_key_message_lists_every_key() {
        let message = parse(r#"{"precedance":"meta"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for key in KEYS {
            let document = format!(r#"{{"{key}":{{}}}}"#);
            // Every listed key is known: an object value is a type error, not an unknown key.
            let err = parse(&document).err().map(|e| e.reason).unwrap_or_default();
            assert!(!err.starts_with("unknown key"), "{key}: {err}");
            assert!(message.contains(key), "{message} lacks {key}");
        }
    }

    #[test]
    fn documents_that_are_not_objects_are_rejected() {
        for text in ["[]", "null", "\"meta\"", "{", "{} {}"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn underscore_keys_are_ignored() {
        let config = parse(r#"{"_rules_":[{"x":1}],"_match_route_":["a"],"baggage":"drop"}"#);
        assert_eq!(config.map(|c| c.baggage), Ok(BaggageMode::Drop));
    }
}
