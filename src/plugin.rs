//! The proxy-wasm plugin (wasm only): the root context that reads the configuration, recognises
//! the host and defines the metrics, and the HTTP context that hands each callback to the
//! request state machine over the raw-hostcall host.

use crate::config::{Config, Export};
use crate::filter::{self, Configured, RequestFilter, UnconfiguredRequest};
use crate::host::hostcalls::{self, CounterIds, ProxyWasmHost, Telemetry};
use crate::host::{logger, Action, Counter, HostKind};
use crate::match_rules::MatchRules;
use crate::otlp;
use crate::span_export::{self, Batch, SpanQueue};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{self, ContextType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// How often each VM adds its memory growth to the `wasm_memory_bytes` gauge.
const MEMORY_SAMPLE_MS: u32 = 5_000;

/// The tick of the own-span mode: a full batch leaves within this, a partial one at the flush
/// interval.
const EXPORT_TICK_MS: u32 = 100;

thread_local! {
    /// This VM's linear memory as last added to the `wasm_memory_bytes` gauge. One per VM (not per
    /// root context), so that several plugin configurations sharing a VM add its growth once.
    static MEMORY_RECORDED: Cell<u64> = const { Cell::new(0) };
}

/// Installs the root context factory; called once by `proxy_wasm::main!`.
pub fn register() {
    logger::install();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}

/// The configuration, the host's kind and the metric ids, shared with every request. `config`
/// is `None` when the configuration was refused on a host that must not refuse it (or, with
/// `rules`, when there is no global configuration).
#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    /// Higress `_rules_`: each request's configuration is chosen when its headers arrive.
    rules: Option<Rc<MatchRules>>,
    kind: HostKind,
    counters: Rc<CounterIds>,
    wasm_memory_bytes: Option<u32>,
    /// Own-span mode: where spans go, and this worker's queue of them.
    exporter: Option<Exporter>,
    /// When the memory gauge was last sampled.
    memory_sampled_unix_nanos: u64,
}

/// The export side of the own-span mode, per worker.
struct Exporter {
    export: Export,
    /// The OTLP `resource` object, encoded once.
    resource: String,
    telemetry: Rc<RefCell<Telemetry>>,
    /// Start of the current metrics interval (delta temporality).
    metrics_since_unix_nanos: u64,
    /// The metrics export request in flight (at most one), and when it was sent.
    metrics_in_flight: Option<(u32, u64)>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        if self
            .exporter
            .as_ref()
            .and_then(|e| e.metrics_in_flight)
            .map(|(t, _)| t)
            == Some(token_id)
        {
            if let Some(exporter) = self.exporter.as_mut() {
                exporter.metrics_in_flight = None;
            }
            let status = hostcalls::http_call_response_header(":status");
            if !span_export::accepted(status.as_deref()) {
                log::debug!("mcp-trace-filter: metrics export refused");
            }
            return;
        }
        let Some(spans) = exporter
            .telemetry
            .try_borrow_mut()
            .ok()
            .and_then(|mut telemetry| telemetry.queue.answered(token_id))
        else {
            return;
        };
        let status = hostcalls::http_call_response_header(":status");
        let counter = if span_export::accepted(status.as_deref()) {
            Counter::SpansExported
        } else {
            Counter::SpansFailed
        };
        self.count(counter, spans);
        // A slot is free again: a full batch waiting goes now, not at the next tick.
        self.export_due(hostcalls::now_unix_nanos());
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let detected = detect_host();
        self.counters = Rc::new(CounterIds::define());
        self.wasm_memory_bytes = hostcalls::define_gauge("mcp_trace_filter.wasm_memory_bytes");
        match filter::configure(detected, &hostcalls::plugin_configuration()) {
            Configured::Ready(config, kind) => {
                self.kind = kind;
                self.config = Some(Rc::new(config));
                self.rules = None;
            }
            Configured::Routed(rules, kind) => {
                // The export side (below) follows the global configuration; a rule may only
                // repeat its `export`.
                self.kind = kind;
                self.config = rules.global().cloned();
                self.rules = Some(Rc::new(rules));
            }
            Configured::PassThrough(kind, error) => {
                // Refusing kills this worker for good on this host: pass traffic through instead.
                log::error!("mcp-trace-filter: {error}; passing every request through untouched (counted as `unconfigured`)");
                self.kind = kind;
                self.config = None;
                self.rules = None;
            }
            Configured::Refused(error) => {
                log::error!("mcp-trace-filter: {error}");
                return false;
            }
        }
        self.record_memory();
        let now = hostcalls::now_unix_nanos();
        self.memory_sampled_unix_nanos = now;
        self.exporter = self.config.as_ref().and_then(|config| {
            let export = config.own_span.as_ref()?.export.clone();
            let queue = SpanQueue::new(&export, now);
            let telemetry = Telemetry::new(queue, self.kind.defines_histograms());
            Some(Exporter {
                resource: otlp::resource_json(&export),
                telemetry: Rc::new(RefCell::new(telemetry)),
                export,
                metrics_since_unix_nanos: now,
                metrics_in_flight: None,
            })
        });
        let tick = match &self.exporter {
            Some(exporter) => EXPORT_TICK_MS.min(exporter.export.flush_interval_ms),
            None => MEMORY_SAMPLE_MS,
        };
        if let Err(error) = hostcalls::set_tick_period(tick) {
            log::info!("mcp-trace-filter: no timer (host status {}), memory gauge stays at its first value", error.0);
        }
        true
    }

    fn on_tick(&mut self) {
        let now = hostcalls::now_unix_nanos();
        let sample_nanos = u64::from(MEMORY_SAMPLE_MS) * 1_000_000;
        if now.saturating_sub(self.memory_sampled_unix_nanos) >= sample_nanos {
            self.memory_sampled_unix_nanos = now;
            self.record_memory();
        }
        self.export_due(now);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let telemetry = self.exporter.as_ref().map(|e| Rc::clone(&e.telemetry));
        let host = ProxyWasmHost::new(Rc::clone(&self.counters), telemetry);
        let request: Box<dyn RequestFilter> = match (&self.rules, &self.config) {
            (Some(rules), _) => filter::routed_filter(Rc::clone(rules), self.kind, host),
            (None, Some(config)) => filter::request_filter(Rc::clone(config), self.kind, host),
            (None, None) => Box::new(UnconfiguredRequest::new(host)),
        };
        Some(Box::new(Http { request }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    fn count(&self, counter: Counter, by: u64) {
        hostcalls::increment(
            self.counters.id(counter),
            i64::try_from(by).unwrap_or(i64::MAX),
        );
    }

    /// Sends every export request that is due: the queue decides, the host carries them. A
    /// request the host refuses at once is counted as failed; nothing is retried, so a
    /// collector that is down costs the spans, never memory or request latency.
    fn export_due(&mut self, now: u64) {
        self.export_metrics_due(now);
        let Some(exporter) = &self.exporter else {
            return;
        };
        let expired = match exporter.telemetry.try_borrow_mut() {
            Ok(mut telemetry) => telemetry.queue.expire(now),
            Err(_) => 0,
        };
        self.count(Counter::SpansFailed, expired);
        loop {
            let batch = match exporter.telemetry.try_borrow_mut() {
                Ok(mut telemetry) => telemetry.queue.next_batch(now),
                Err(_) => None,
            };
            let Some(batch) = batch else {
                return;
            };
            let spans = batch.span_count();
            let body = match batch {
                Batch::Spans(spans) => otlp::traces_json(&exporter.resource, &spans).into_bytes(),
                Batch::Forwarded(body) => body,
            };
            match post(&exporter.export, &exporter.export.path, &body) {
                Ok(token) => {
                    if let Ok(mut telemetry) = exporter.telemetry.try_borrow_mut() {
                        telemetry.queue.sent(token, spans, now);
                    }
                }
                Err(status) => {
                    log::debug!("mcp-trace-filter: span export not sent: {status:?}");
                    self.count(Counter::SpansFailed, spans);
                }
            }
        }
    }

    /// Adds this VM's memory growth since the last call to the gauge (or, where gauges cannot
    /// be incremented, sets it to this VM's memory), so a leak shows as a gauge that keeps
    /// rising under steady load.
    fn record_memory(&self) {
        let now = hostcalls::wasm_memory_bytes();
        if !self.kind.increments_gauges() {
            hostcalls::record(self.wasm_memory_bytes, now);
            return;
        }
        let before = MEMORY_RECORDED.with(|recorded| recorded.replace(now));
        let growth = i64::try_from(now.saturating_sub(before)).unwrap_or(i64::MAX);
        hostcalls::increment(self.wasm_memory_bytes, growth);
    }
}

impl Root {
    /// Once per flush interval, the duration histograms of the interval go to the collector
    /// (delta temporality); one request at a time, and an interval whose export could not be
    /// sent is lost, never kept.
    fn export_metrics_due(&mut self, now: u64) {
        let Some(exporter) = self.exporter.as_mut() else {
            return;
        };
        let interval = u64::from(exporter.export.flush_interval_ms) * 1_000_000;
        // An answer the host never delivers must not stop the metrics for good.
        let deadline = (u64::from(exporter.export.timeout_ms) + 1_000) * 1_000_000;
        if let Some((_, sent)) = exporter.metrics_in_flight {
            if now.saturating_sub(sent) > deadline {
                exporter.metrics_in_flight = None;
            }
        }
        if now.saturating_sub(exporter.metrics_since_unix_nanos) < interval
            || exporter.metrics_in_flight.is_some()
        {
            return;
        }
        let since = std::mem::replace(&mut exporter.metrics_since_unix_nanos, now);
        let Some(path) = exporter.export.metrics_path.clone() else {
            return;
        };
        let body = match exporter.telemetry.try_borrow_mut() {
            Ok(mut telemetry) => {
                telemetry
                    .metrics
                    .take_otlp_json(&exporter.resource, otlp::SCOPE_NAME, since, now)
            }
            Err(_) => None,
        };
        let Some(body) = body else {
            return;
        };
        match post(&exporter.export, &path, body.as_bytes()) {
            Ok(token) => exporter.metrics_in_flight = Some((token, now)),
            Err(status) => log::debug!("mcp-trace-filter: metrics export not sent: {status:?}"),
        }
    }
}

/// POSTs an OTLP/HTTP JSON body to the collector; the answer arrives in `on_http_call_response`.
fn post(export: &Export, path: &str, body: &[u8]) -> Result<u32, types::Status> {
    let headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", export.authority.as_str()),
        ("content-type", "application/json"),
    ];
    proxy_wasm::hostcalls::dispatch_http_call(
        &export.upstream,
        headers,
        Some(body),
        vec![],
        Duration::from_millis(u64::from(export.timeout_ms)),
    )
}

/// The host's kind as its properties show it; `config.host` overrides it.
fn detect_host() -> HostKind {
    if hostcalls::property(&["ngx", "nginx_version"]).is_some() {
        HostKind::NgxWasm
    } else {
        HostKind::Envoy
    }
}

/// One request: every callback goes to the state machine.
struct Http {
    request: Box<dyn RequestFilter>,
}

fn action(action: Action) -> types::Action {
    match action {
        Action::Continue => types::Action::Continue,
        Action::Pause => types::Action::Pause,
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(self.request.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(self.request.on_request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> types::Action {
        action(self.request.on_request_trailers())
    }

    fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(self.request.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(self.request.on_response_body(body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        self.request.on_log();
    }
}

/// Higress's proxy-wasm host passes a `Pause` from request headers through as a plain
/// StopIteration only for modules that export this marker (ABI "0.2.100"); for the upstream ABI
/// 0.2.1 it turns it into "stop all" and the request hangs. Upstream hosts (Envoy) do not know
/// the name and load the module by its 0.2.1 marker, so exporting both serves both. The
/// callbacks Higress binds for 0.2.100 have the 0.2.1 signatures.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_100() {}
