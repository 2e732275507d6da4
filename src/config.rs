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
                host_key if host_key.starts_with('_') => {}
                unknown => {
                    return Err(error(
                        unknown,
                        format!("unknown key (expected one of: {})", KEYS.join(", ")),
                    ))
                }
            }
        }
        Ok(config)
    }
}

/// Every key the configuration accepts, in the order the README lists them.
pub const KEYS: [&str; 8] = [
    "precedence",
    "baggage",
    "max_body_bytes",
    "span_metadata",
    "span_headers",
    "header_mismatch",
    "role",
    "host",
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
