//! Runs the built `mcp_trace_filter.wasm` under a second, independent proxy-wasm host: the
//! `proxy-wasm-host` crate (a Rust port of the proxy-wasm C++/Go hosts, on wasmtime and
//! Cranelift rather than Envoy's V8). Every check starts a fresh guest from the one compiled
//! module, drives real ABI callbacks into it and reads back what the module did through the
//! hostcalls it made: header map writes, the body it was handed, local responses, metrics and
//! log lines.
//!
//! Usage: `second-host [path/to/mcp_trace_filter.wasm]`. Prints one line per check and a closing
//! `second_host: N passed, N failed`; exits non-zero when any check fails.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use proxy_wasm_host::abi::v0_2_1::types::{
    Action, BufferType, LogLevel, MapType, MetricType, Status,
};
use proxy_wasm_host::abi::v0_2_1::{
    Access, Callback, ContextId, Guest, GuestError, Host, Invocation, LocalResponse, LogContext,
    LogSink, MetricId, PluginConfig, SharedServices, Started, StreamKind, StreamState, VmServices,
};
use proxy_wasm_host::{
    AbiVersion, Buffer, Engine, HeaderMap, HeaderMapExt, Limits, Module, NotAllowed, PairVisitor,
    VecHeaderMap,
};

const DEFAULT_WASM: &str = "target/wasm32-wasip1/release/mcp_trace_filter.wasm";

/// The context an MCP client put in `_meta` (flags `03`, as the MCP Python SDK sends).
const TP_META: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
/// A different context arriving as a header.
const TP_HEADER: &str = "00-11111111111111111111111111111111-2222222222222222-01";

type Outcome = Result<(), String>;

/// Fails the running check with a message unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// What the host lends the guest: a log, metrics, and one request's headers and body.
// ---------------------------------------------------------------------------------------------

/// Every line the guest logged, kept for the checks.
#[derive(Default)]
struct Log(Mutex<Vec<(LogLevel, String)>>);

impl LogSink for Log {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        let line = String::from_utf8_lossy(message).into_owned();
        lock(&self.0).push((level, line));
    }
}

impl Log {
    fn lines(&self) -> Vec<(LogLevel, String)> {
        lock(&self.0).clone()
    }
}

/// A metric as the guest defined and changed it.
struct Metric {
    name: String,
    kind: MetricType,
    value: i128,
}

/// The guest's metrics by name (ids are positions + 1), so a check can read `lifted` etc.
#[derive(Default)]
struct Metrics(Mutex<Vec<Metric>>);

impl Metrics {
    /// The value of the metric called `name`, if the guest defined it.
    fn value(&self, name: &str) -> Option<i128> {
        lock(&self.0)
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    fn names(&self) -> Vec<(String, MetricType)> {
        lock(&self.0)
            .iter()
            .map(|m| (m.name.clone(), m.kind))
            .collect()
    }

    fn with_metric<R>(&self, id: MetricId, f: impl FnOnce(&mut Metric) -> R) -> Result<R, Status> {
        let mut metrics = lock(&self.0);
        let index = usize::try_from(id.get()).map_err(|_| Status::NotFound)?;
        let metric = index.checked_sub(1).and_then(|i| metrics.get_mut(i));
        metric.map(f).ok_or(Status::NotFound)
    }
}

impl SharedServices for Metrics {
    fn define_metric(
        &self,
        _: Invocation,
        _: &[u8],
        kind: MetricType,
        name: &[u8],
    ) -> Result<MetricId, Status> {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut metrics = lock(&self.0);
        let index = match metrics.iter().position(|m| m.name == name) {
            Some(index) if metrics[index].kind != kind => return Err(Status::BadArgument),
            Some(index) => index,
            None => {
                metrics.push(Metric {
                    name,
                    kind,
                    value: 0,
                });
                metrics.len() - 1
            }
        };
        let id = u32::try_from(index + 1).map_err(|_| Status::InternalFailure)?;
        MetricId::try_from(id).map_err(|_| Status::InternalFailure)
    }

    fn record_metric(&self, _: Invocation, metric: MetricId, value: u64) -> Result<(), Status> {
        self.with_metric(metric, |m| m.value = i128::from(value))
    }

    fn increment_metric(&self, _: Invocation, metric: MetricId, delta: i64) -> Result<(), Status> {
        self.with_metric(metric, |m| {
            if m.kind == MetricType::Counter && delta < 0 {
                return Err(Status::BadArgument);
            }
            m.value += i128::from(delta);
            Ok(())
        })?
    }

    fn get_metric(&self, _: Invocation, metric: MetricId) -> Result<u64, Status> {
        self.with_metric(metric, |m| u64::try_from(m.value).unwrap_or(0))
    }
}

/// One write the guest made to the request header map.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    Set(String, String),
    Add(String, String),
    Remove(String),
    ReplaceAll,
}

/// The request headers, recording every write the guest makes through the hostcalls.
#[derive(Default)]
struct RecordedHeaders {
    map: VecHeaderMap,
    writes: Vec<Write>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl HeaderMap for RecordedHeaders {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.map.get(key)
    }

    fn for_each_pair(&self, f: &mut PairVisitor<'_>) -> ControlFlow<()> {
        self.map.for_each_pair(f)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), NotAllowed> {
        self.writes.push(Write::Set(text(key), text(value)));
        self.map.set(key, value)
    }

    fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), NotAllowed> {
        self.writes.push(Write::Add(text(key), text(value)));
        self.map.add(key, value)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), NotAllowed> {
        self.writes.push(Write::Remove(text(key)));
        self.map.remove(key)
    }

    fn replace_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), NotAllowed> {
        self.writes.push(Write::ReplaceAll);
        self.map.replace_all(pairs)
    }
}

impl RecordedHeaders {
    fn first(&self, key: &str) -> Option<String> {
        self.map.get(key.as_bytes()).map(|value| text(&value))
    }

    fn count(&self, key: &str) -> usize {
        self.map.get_all(key.as_bytes()).len()
    }
}

/// A local response the guest sent, owned.
struct SentResponse {
    status: u32,
    details: String,
    body: String,
}

/// One request as Envoy would hold it: headers, the body held so far (a `Pause` from the body
/// callback keeps buffering; a `Continue` sends it on), and what went upstream.
#[derive(Default)]
struct Request {
    headers: RecordedHeaders,
    held: Vec<u8>,
    forwarded: Vec<u8>,
    local_response: Option<SentResponse>,
    /// Serve `ngx.nginx_version`, as ngx_wasm_module does, when the root reads it.
    nginx: bool,
    /// The header map or buffer the guest asked for that this request does not serve.
    refused: Vec<String>,
}

impl Request {
    fn with_headers(pairs: &[(&str, &str)]) -> Request {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        Request {
            headers: RecordedHeaders {
                map: VecHeaderMap::from(pairs),
                writes: Vec::new(),
            },
            ..Request::default()
        }
    }

    /// A JSON-RPC POST as an MCP client sends it over streamable HTTP.
    fn mcp_post(extra: &[(&str, &str)]) -> Request {
        let mut pairs = vec![
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "gateway.test"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        pairs.extend_from_slice(extra);
        Request::with_headers(&pairs)
    }
}

impl StreamState for Request {
    fn header_map(
        &mut self,
        _: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.headers),
            other => {
                self.refused.push(format!("{other:?}"));
                Err(Status::NotFound)
            }
        }
    }

    fn buffer(
        &mut self,
        _: Invocation,
        _: Access,
        buffer: BufferType,
    ) -> Result<&mut dyn Buffer, Status> {
        match buffer {
            BufferType::HttpRequestBody => Ok(&mut self.held),
            other => {
                self.refused.push(format!("{other:?}"));
                Err(Status::NotFound)
            }
        }
    }

    fn send_local_response(
        &mut self,
        _: Invocation,
        response: LocalResponse<'_>,
    ) -> Result<(), Status> {
        self.local_response = Some(SentResponse {
            status: response.status_code,
            details: text(&response.status_code_details),
            body: text(&response.body),
        });
        Ok(())
    }

    fn property(&mut self, _: Invocation, path: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Status> {
        if self.nginx && path == [&b"ngx"[..], &b"nginx_version"[..]] {
            out.extend_from_slice(b"1.27.1");
            return Ok(());
        }
        Err(Status::NotFound)
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the guest.
// ---------------------------------------------------------------------------------------------

/// The compiled module and the linked host functions, shared by every check.
struct Rig {
    /// Kept alive for the module and the host functions compiled against it.
    _engine: Engine,
    host: Host,
    module: Module,
}

/// A fresh guest with its own log and metrics.
struct Plugin {
    guest: Guest,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
}

impl Rig {
    fn plugin(&self) -> Result<Plugin, String> {
        let log = Arc::new(Log::default());
        let metrics = Arc::new(Metrics::default());
        let services = VmServices::new(log.clone())
            .with_shared(metrics.clone())
            .with_vm_id(*b"mcp_trace_filter");
        let guest = Guest::new(&self.host, &self.module, services, &Limits::default())
            .map_err(|e| format!("the guest did not load: {e}"))?;
        Ok(Plugin {
            guest,
            log,
            metrics,
        })
    }

    /// A guest whose root was configured with `configuration` and serves requests.
    fn serving(&self, configuration: &str) -> Result<(Plugin, ContextId), String> {
        let mut plugin = self.plugin()?;
        match plugin.start(configuration)? {
            Started::Serving(root) => Ok((plugin, root)),
            refused => Err(format!(
                "configuration {configuration} was refused: {refused:?}; log: {:?}",
                plugin.log.lines()
            )),
        }
    }
}

fn plugin_config(configuration: &str) -> PluginConfig {
    PluginConfig::new()
        .with_name(*b"mcp_trace_filter")
        .with_root_id(*b"mcp_trace_filter")
        .with_configuration(configuration.as_bytes())
}

/// What one request went through.
struct Exchange {
    headers_action: Action,
    body_actions: Vec<Action>,
    request: Request,
}

impl Plugin {
    fn start(&mut self, configuration: &str) -> Result<Started, String> {
        self.guest
            .start(plugin_config(configuration))
            .map_err(|e| format!("start failed: {e}"))
    }

    /// Sends one request through a new HTTP context of `root`: the headers (end of stream when
    /// there is no body), then each body chunk, the last with end of stream. Between body
    /// callbacks the host behaves as Envoy does: after `Pause` it keeps the held bytes and
    /// appends the next chunk; after `Continue` it sends them upstream.
    fn exchange(
        &mut self,
        root: ContextId,
        request: Request,
        chunks: &[&[u8]],
    ) -> Result<Exchange, String> {
        let num_headers = u32::try_from(request.headers.len()).map_err(|e| e.to_string())?;
        let (result, request) = self.guest.with(request, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            scope.expect_stream_kind(stream, StreamKind::Http)?;
            let headers_action =
                scope.on_request_headers(stream, num_headers, chunks.is_empty())?;
            let mut body_actions = Vec::new();
            for (index, chunk) in chunks.iter().enumerate() {
                let end_of_stream = index + 1 == chunks.len();
                scope.stream_mut().held.extend_from_slice(chunk);
                let held = u32::try_from(scope.stream().held.len()).unwrap_or(u32::MAX);
                let action = scope.on_request_body(stream, held, end_of_stream)?;
                body_actions.push(action);
                let state = scope.stream_mut();
                if state.local_response.is_some() {
                    break;
                }
                if action == Action::Continue {
                    let sent = std::mem::take(&mut state.held);
                    state.forwarded.extend_from_slice(&sent);
                }
            }
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok::<_, GuestError>((headers_action, body_actions))
        });
        let (headers_action, body_actions) = result.map_err(|e| {
            format!(
                "a callback failed: {e}; poisoned: {}",
                self.guest.is_poisoned()
            )
        })?;
        Ok(Exchange {
            headers_action,
            body_actions,
            request,
        })
    }
}

fn tools_call(meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"get_weather","arguments":{{"city":"Oslo"}},"_meta":{{{meta}}}}}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

/// The module loads by its 0.2.1 marker; the Higress `proxy_abi_version_0_2_100` export beside
/// it is ignored, as Envoy ignores it.
fn loads_by_its_0_2_1_marker_beside_the_higress_one(rig: &Rig) -> Outcome {
    let exports = rig.module.abi_exports();
    ensure!(
        exports.iter().any(|e| e == "proxy_abi_version_0_2_100"),
        "the module does not export proxy_abi_version_0_2_100 (exports: {exports:?}); is the .wasm stale?"
    );
    let plugin = rig.plugin()?;
    ensure!(
        plugin.guest.abi() == AbiVersion::V0_2_1,
        "loaded as {:?}",
        plugin.guest.abi()
    );
    ensure!(
        !plugin.guest.is_poisoned(),
        "the guest is poisoned after loading"
    );
    Ok(())
}

/// `{}` (all defaults) starts a root that serves, defines every counter and the memory gauge,
/// and asks for the 5 s memory tick.
fn empty_object_configuration_starts_the_root(rig: &Rig) -> Outcome {
    let (plugin, root) = rig.serving("{}")?;
    let names = plugin.metrics.names();
    for counter in [
        "lifted",
        "not_mcp",
        "header_mismatch",
        "unconfigured",
        "spans_exported",
        "spans_dropped",
        "spans_failed",
    ] {
        let name = format!("mcp_trace_filter.{counter}");
        ensure!(
            names.contains(&(name.clone(), MetricType::Counter)),
            "counter {name} was not defined: {names:?}"
        );
    }
    ensure!(
        names.contains(&(
            "mcp_trace_filter.wasm_memory_bytes".to_owned(),
            MetricType::Gauge
        )),
        "no wasm_memory_bytes gauge: {names:?}"
    );
    ensure!(
        names.len() == 18,
        "expected 17 counters and 1 gauge, got {names:?}"
    );
    let memory = plugin
        .metrics
        .value("mcp_trace_filter.wasm_memory_bytes")
        .unwrap_or(0);
    ensure!(
        memory >= 65_536,
        "the memory gauge was not incremented (value {memory})"
    );
    let tick = plugin.guest.tick_period(root);
    ensure!(
        tick == Some(Duration::from_secs(5)),
        "tick period {tick:?}, expected 5 s"
    );
    let errors: Vec<_> = plugin
        .log
        .lines()
        .into_iter()
        .filter(|(level, _)| i32::from(*level) >= i32::from(LogLevel::Warn))
        .collect();
    ensure!(errors.is_empty(), "warnings while configuring: {errors:?}");
    Ok(())
}

/// An empty plugin configuration means the defaults too.
fn empty_configuration_starts_the_root(rig: &Rig) -> Outcome {
    rig.serving("").map(|_| ())
}

/// A misspelled key makes `on_configure` answer false, with a log line naming the key.
fn misspelled_key_refuses_the_configuration(rig: &Rig) -> Outcome {
    let mut plugin = rig.plugin()?;
    let started = plugin.start(r#"{"precedance":1}"#)?;
    ensure!(
        matches!(
            started,
            Started::Refused {
                callback: Callback::Configure,
                ..
            }
        ),
        "expected on_configure to answer false, got {started:?}"
    );
    let lines = plugin.log.lines();
    ensure!(
        lines
            .iter()
            .any(|(level, line)| *level == LogLevel::Error && line.contains("`precedance`")),
        "no error line naming `precedance`: {lines:?}"
    );
    ensure!(!plugin.guest.is_poisoned(), "refusing poisoned the guest");
    // The guest itself stays usable: a second root with a good configuration serves.
    let second = plugin
        .guest
        .start(plugin_config("{}").with_root_id(*b"second"))
        .map_err(|e| format!("second root: {e}"))?;
    ensure!(
        matches!(second, Started::Serving(_)),
        "second root: {second:?}"
    );
    Ok(())
}

/// A JSON POST is paused at its headers, its body is held to the end of the stream, and the
/// `_meta` context is written into the request headers.
fn json_post_is_paused_then_lifted(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let body = tools_call(&format!(
        r#""traceparent":"{TP_META}","tracestate":"congo=t61rcWkgMzE""#
    ));
    let exchange = plugin.exchange(root, Request::mcp_post(&[]), &[body.as_bytes()])?;
    ensure!(
        exchange.headers_action == Action::Pause,
        "headers answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.body_actions == [Action::Continue],
        "body answered {:?}",
        exchange.body_actions
    );
    let request = &exchange.request;
    ensure!(
        request.headers.writes
            == [
                Write::Set("traceparent".into(), TP_META.into()),
                Write::Set("tracestate".into(), "congo=t61rcWkgMzE".into()),
            ],
        "header writes {:?}",
        request.headers.writes
    );
    ensure!(
        request.headers.count("traceparent") == 1,
        "traceparent not single"
    );
    ensure!(
        request.forwarded == body.as_bytes(),
        "the body upstream is not byte-identical"
    );
    ensure!(
        request.local_response.is_none(),
        "a local response was sent"
    );
    ensure!(
        request.refused.is_empty(),
        "the guest asked for {:?}",
        request.refused
    );
    ensure!(
        plugin.metrics.value("mcp_trace_filter.lifted") == Some(1),
        "lifted = {:?}",
        plugin.metrics.value("mcp_trace_filter.lifted")
    );
    Ok(())
}

/// With the default precedence a valid `_meta` context replaces the header one, and the
/// header's `tracestate` (which belongs to the replaced context) is removed.
fn meta_context_replaces_the_header_context(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving(r#"{"precedence":"meta"}"#)?;
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let request = Request::mcp_post(&[
        ("traceparent", TP_HEADER),
        ("tracestate", "rojo=00f067aa0ba902b7"),
    ]);
    let exchange = plugin.exchange(root, request, &[body.as_bytes()])?;
    ensure!(
        exchange.headers_action == Action::Pause,
        "headers answered {:?}",
        exchange.headers_action
    );
    let headers = &exchange.request.headers;
    ensure!(
        headers.first("traceparent").as_deref() == Some(TP_META),
        "traceparent {:?}",
        headers.first("traceparent")
    );
    ensure!(
        headers.count("tracestate") == 0,
        "tracestate kept: {:?}",
        headers.first("tracestate")
    );
    ensure!(
        headers.writes.contains(&Write::Remove("tracestate".into())),
        "no tracestate removal among {:?}",
        headers.writes
    );
    Ok(())
}

/// With `"precedence":"header"` a valid header context stays and nothing is written.
fn header_precedence_keeps_the_header_context(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving(r#"{"precedence":"header"}"#)?;
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let exchange = plugin.exchange(
        root,
        Request::mcp_post(&[("traceparent", TP_HEADER)]),
        &[body.as_bytes()],
    )?;
    let headers = &exchange.request.headers;
    ensure!(
        headers.first("traceparent").as_deref() == Some(TP_HEADER),
        "traceparent {:?}",
        headers.first("traceparent")
    );
    ensure!(
        headers.writes.is_empty(),
        "header writes {:?}",
        headers.writes
    );
    ensure!(
        plugin.metrics.value("mcp_trace_filter.header_kept") == Some(1),
        "header_kept = {:?}",
        plugin.metrics.value("mcp_trace_filter.header_kept")
    );
    Ok(())
}

/// A body that is not JSON passes byte-identical with no header change, counted `not_mcp`.
fn non_json_body_passes_untouched(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let body = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"_meta":{"traceparent":"#;
    let request = Request::mcp_post(&[("traceparent", TP_HEADER)]);
    let exchange = plugin.exchange(root, request, &[&body[..], b"not json at all"])?;
    ensure!(
        exchange.headers_action == Action::Pause,
        "headers answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.body_actions == [Action::Pause, Action::Continue],
        "body answered {:?}",
        exchange.body_actions
    );
    let request = &exchange.request;
    ensure!(
        request.headers.writes.is_empty(),
        "header writes {:?}",
        request.headers.writes
    );
    ensure!(
        request.headers.first("traceparent").as_deref() == Some(TP_HEADER),
        "traceparent changed"
    );
    let mut expected = body.to_vec();
    expected.extend_from_slice(b"not json at all");
    ensure!(
        request.forwarded == expected,
        "the body upstream is not byte-identical"
    );
    ensure!(
        plugin.metrics.value("mcp_trace_filter.not_mcp") == Some(1),
        "not_mcp = {:?}",
        plugin.metrics.value("mcp_trace_filter.not_mcp")
    );
    Ok(())
}

/// A body arriving in three chunks is held (`Pause`) until the last one, then lifted.
fn chunked_body_is_held_until_the_end_of_the_stream(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let bytes = body.as_bytes();
    let third = bytes.len() / 3;
    let chunks = [
        &bytes[..third],
        &bytes[third..2 * third],
        &bytes[2 * third..],
    ];
    let exchange = plugin.exchange(root, Request::mcp_post(&[]), &chunks)?;
    ensure!(
        exchange.body_actions == [Action::Pause, Action::Pause, Action::Continue],
        "body answered {:?}",
        exchange.body_actions
    );
    let headers = &exchange.request.headers;
    ensure!(
        headers.first("traceparent").as_deref() == Some(TP_META),
        "traceparent {:?}",
        headers.first("traceparent")
    );
    ensure!(
        exchange.request.forwarded == bytes,
        "the body upstream is not byte-identical"
    );
    Ok(())
}

/// An empty body at the end of the stream: the module reads the body buffer from 0 with length 0
/// (this host answers `BAD_ARGUMENT` only for a start past the end, so this is `OK`), finds no
/// JSON and continues without a header change, counted `not_mcp`.
fn empty_body_passes_untouched(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let exchange = plugin.exchange(root, Request::mcp_post(&[]), &[b""])?;
    ensure!(
        exchange.headers_action == Action::Pause,
        "headers answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.body_actions == [Action::Continue],
        "body answered {:?}",
        exchange.body_actions
    );
    ensure!(
        exchange.request.headers.writes.is_empty(),
        "header writes {:?}",
        exchange.request.headers.writes
    );
    let counted = (
        plugin.metrics.value("mcp_trace_filter.not_mcp"),
        plugin.metrics.value("mcp_trace_filter.unreadable"),
    );
    ensure!(
        counted == (Some(1), Some(0)),
        "(not_mcp, unreadable) = {counted:?}"
    );
    Ok(())
}

/// A declared `content-length` over `max_body_bytes` is never held: no pause, counted
/// `oversize`.
fn declared_oversize_body_is_not_held(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving(r#"{"max_body_bytes":64}"#)?;
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let length = body.len().to_string();
    let request = Request::mcp_post(&[("content-length", length.as_str())]);
    let exchange = plugin.exchange(root, request, &[body.as_bytes()])?;
    ensure!(
        exchange.headers_action == Action::Continue,
        "headers answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.request.headers.writes.is_empty(),
        "header writes {:?}",
        exchange.request.headers.writes
    );
    ensure!(
        plugin.metrics.value("mcp_trace_filter.oversize") == Some(1),
        "oversize = {:?}",
        plugin.metrics.value("mcp_trace_filter.oversize")
    );
    Ok(())
}

/// A GET (and a POST that is not JSON) is never paused and never touched.
fn requests_outside_the_gate_are_not_held(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let get = Request::with_headers(&[
        (":method", "GET"),
        (":path", "/mcp"),
        ("traceparent", TP_HEADER),
    ]);
    let exchange = plugin.exchange(root, get, &[])?;
    ensure!(
        exchange.headers_action == Action::Continue,
        "GET answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.request.headers.writes.is_empty(),
        "GET writes {:?}",
        exchange.request.headers.writes
    );
    let form = Request::with_headers(&[
        (":method", "POST"),
        ("content-type", "application/x-www-form-urlencoded"),
    ]);
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let exchange = plugin.exchange(root, form, &[body.as_bytes()])?;
    ensure!(
        exchange.headers_action == Action::Continue,
        "form POST answered {:?}",
        exchange.headers_action
    );
    ensure!(
        exchange.body_actions == [Action::Continue],
        "form POST body answered {:?}",
        exchange.body_actions
    );
    ensure!(
        exchange.request.headers.writes.is_empty(),
        "form POST writes {:?}",
        exchange.request.headers.writes
    );
    Ok(())
}

/// Client-sent copies of the headers the filter owns are removed at request headers.
fn owned_headers_sent_by_the_client_are_removed(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let request = Request::mcp_post(&[("x-mcp-tool-name", "forged")]);
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let exchange = plugin.exchange(root, request, &[body.as_bytes()])?;
    let headers = &exchange.request.headers;
    ensure!(
        headers.count("x-mcp-tool-name") == 0,
        "x-mcp-tool-name still present"
    );
    ensure!(
        headers.writes.first() == Some(&Write::Remove("x-mcp-tool-name".into())),
        "writes {:?}",
        headers.writes
    );
    Ok(())
}

/// `Mcp-Method` contradicting the body is answered with a local 400 (SEP-2243).
fn routing_header_mismatch_is_answered_with_400(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    let request = Request::mcp_post(&[("mcp-method", "tools/list")]);
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let exchange = plugin.exchange(root, request, &[body.as_bytes()])?;
    ensure!(
        exchange.body_actions == [Action::Pause],
        "body answered {:?}",
        exchange.body_actions
    );
    let Some(response) = &exchange.request.local_response else {
        return Err("no local response".into());
    };
    ensure!(response.status == 400, "status {}", response.status);
    ensure!(
        response.details == "mcp_header_mismatch",
        "details {:?}",
        response.details
    );
    ensure!(
        response.body.contains(r#""id":7"#),
        "body {:?}",
        response.body
    );
    ensure!(
        exchange.request.headers.writes.is_empty(),
        "writes {:?}",
        exchange.request.headers.writes
    );
    ensure!(
        exchange.request.forwarded.is_empty(),
        "the body went upstream"
    );
    Ok(())
}

/// The host is recognised through a real `proxy_get_property` call: a root that reads
/// `ngx.nginx_version` switches to ngx_wasm_module semantics (no header pause, lift in the
/// single body callback).
fn ngx_property_switches_to_ngx_wasm_module_semantics(rig: &Rig) -> Outcome {
    let mut plugin = rig.plugin()?;
    let root_state = Request {
        nginx: true,
        ..Request::default()
    };
    let (started, _) = plugin.guest.with(root_state, |scope| {
        let root = scope.on_context_create(None)?;
        let vm = scope.on_vm_start(root)?;
        let configured = scope.on_configure(root, plugin_config("{}"))?;
        Ok::<_, GuestError>((root, vm && configured))
    });
    let (root, serving) = started.map_err(|e| format!("start failed: {e}"))?;
    ensure!(serving, "the root did not start: {:?}", plugin.log.lines());
    let body = tools_call(&format!(r#""traceparent":"{TP_META}""#));
    let exchange = plugin.exchange(root, Request::mcp_post(&[]), &[body.as_bytes()])?;
    ensure!(
        exchange.headers_action == Action::Continue,
        "headers answered {:?} (ngx_wasm_module never resumes a header pause)",
        exchange.headers_action
    );
    let headers = &exchange.request.headers;
    ensure!(
        headers.first("traceparent").as_deref() == Some(TP_META),
        "traceparent {:?}",
        headers.first("traceparent")
    );
    // Gauges are recorded there, never incremented: the memory gauge holds the VM's memory.
    let memory = plugin
        .metrics
        .value("mcp_trace_filter.wasm_memory_bytes")
        .unwrap_or(0);
    ensure!(memory >= 65_536, "memory gauge {memory}");
    Ok(())
}

/// Many requests on one guest: the module keeps serving and lifts every one.
fn one_guest_serves_many_requests(rig: &Rig) -> Outcome {
    let (mut plugin, root) = rig.serving("{}")?;
    for n in 0..200u32 {
        let traceparent = format!("00-{:032x}-{:016x}-01", u128::from(n) + 1, u64::from(n) + 1);
        let body = tools_call(&format!(r#""traceparent":"{traceparent}""#));
        let exchange = plugin.exchange(root, Request::mcp_post(&[]), &[body.as_bytes()])?;
        let got = exchange.request.headers.first("traceparent");
        ensure!(
            got.as_deref() == Some(traceparent.as_str()),
            "request {n}: traceparent {got:?}"
        );
    }
    ensure!(
        plugin.metrics.value("mcp_trace_filter.lifted") == Some(200),
        "lifted = {:?}",
        plugin.metrics.value("mcp_trace_filter.lifted")
    );
    ensure!(!plugin.guest.is_poisoned(), "the guest is poisoned");
    Ok(())
}

type Check = fn(&Rig) -> Outcome;

const CHECKS: &[(&str, Check)] = &[
    (
        "loads_by_its_0_2_1_marker_beside_the_higress_one",
        loads_by_its_0_2_1_marker_beside_the_higress_one,
    ),
    (
        "empty_object_configuration_starts_the_root",
        empty_object_configuration_starts_the_root,
    ),
    (
        "empty_configuration_starts_the_root",
        empty_configuration_starts_the_root,
    ),
    (
        "misspelled_key_refuses_the_configuration",
        misspelled_key_refuses_the_configuration,
    ),
    (
        "json_post_is_paused_then_lifted",
        json_post_is_paused_then_lifted,
    ),
    (
        "meta_context_replaces_the_header_context",
        meta_context_replaces_the_header_context,
    ),
    (
        "header_precedence_keeps_the_header_context",
        header_precedence_keeps_the_header_context,
    ),
    (
        "non_json_body_passes_untouched",
        non_json_body_passes_untouched,
    ),
    (
        "chunked_body_is_held_until_the_end_of_the_stream",
        chunked_body_is_held_until_the_end_of_the_stream,
    ),
    ("empty_body_passes_untouched", empty_body_passes_untouched),
    (
        "declared_oversize_body_is_not_held",
        declared_oversize_body_is_not_held,
    ),
    (
        "requests_outside_the_gate_are_not_held",
        requests_outside_the_gate_are_not_held,
    ),
    (
        "owned_headers_sent_by_the_client_are_removed",
        owned_headers_sent_by_the_client_are_removed,
    ),
    (
        "routing_header_mismatch_is_answered_with_400",
        routing_header_mismatch_is_answered_with_400,
    ),
    (
        "ngx_property_switches_to_ngx_wasm_module_semantics",
        ngx_property_switches_to_ngx_wasm_module_semantics,
    ),
    (
        "one_guest_serves_many_requests",
        one_guest_serves_many_requests,
    ),
];

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_WASM.to_owned());
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("second_host: cannot read {path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let compile = Instant::now();
    let rig = Engine::new().and_then(|engine| {
        let host = Host::new(&engine)?;
        let module = Module::new(&engine, &bytes)?;
        Ok(Rig {
            _engine: engine,
            host,
            module,
        })
    });
    let rig = match rig {
        Ok(rig) => rig,
        Err(error) => {
            eprintln!("second_host: {path} did not compile under proxy-wasm-host: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "second_host: {path} ({} bytes) compiled by proxy-wasm-host 0.2.0 / wasmtime in {:.2?}",
        bytes.len(),
        compile.elapsed()
    );
    println!("\nrunning {} checks", CHECKS.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in CHECKS {
        match check(&rig) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(reason) => {
                failed += 1;
                println!("test {name} ... FAILED\n    {reason}");
            }
        }
    }
    println!("\nsecond_host: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
