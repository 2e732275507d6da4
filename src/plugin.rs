//! The proxy-wasm plugin (wasm only): the root context that reads the configuration, recognises
//! the host and defines the metrics, and the HTTP context that hands each callback to the
//! request state machine over the raw-hostcall host.

use crate::config::Config;
use crate::filter::{self, Configured, RequestFilter, UnconfiguredRequest};
use crate::host::hostcalls::{self, CounterIds, ProxyWasmHost};
use crate::host::{logger, Action, HostKind};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{self, ContextType};
use std::cell::Cell;
use std::rc::Rc;

/// How often each VM adds its memory growth to the `wasm_memory_bytes` gauge.
const MEMORY_SAMPLE_MS: u32 = 5_000;

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
/// is `None` when the configuration was refused on a host that must not refuse it.
#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    kind: HostKind,
    counters: Rc<CounterIds>,
    wasm_memory_bytes: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let detected = detect_host();
        self.counters = Rc::new(CounterIds::define());
        self.wasm_memory_bytes = hostcalls::define_gauge("mcp_trace_filter.wasm_memory_bytes");
        match filter::configure(detected, &hostcalls::plugin_configuration()) {
            Configured::Ready(config, kind) => {
                self.kind = kind;
                self.config = Some(Rc::new(config));
            }
            Configured::PassThrough(kind, error) => {
                // Refusing kills this worker for good on this host: pass traffic through instead.
                log::error!("mcp-trace-filter: {error}; passing every request through untouched (counted as `unconfigured`)");
                self.kind = kind;
                self.config = None;
            }
            Configured::Refused(error) => {
                log::error!("mcp-trace-filter: {error}");
                return false;
            }
        }
        self.record_memory();
        if let Err(error) = hostcalls::set_tick_period(MEMORY_SAMPLE_MS) {
            log::info!("mcp-trace-filter: no timer (host status {}), memory gauge stays at its first value", error.0);
        }
        true
    }

    fn on_tick(&mut self) {
        self.record_memory();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let host = ProxyWasmHost::new(Rc::clone(&self.counters));
        let request: Box<dyn RequestFilter> = match &self.config {
            Some(config) => filter::request_filter(Rc::clone(config), self.kind, host),
            None => Box::new(UnconfiguredRequest::new(host)),
        };
        Some(Box::new(Http { request }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
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
}

/// Higress's proxy-wasm host passes a `Pause` from request headers through as a plain
/// StopIteration only for modules that export this marker (ABI "0.2.100"); for the upstream ABI
/// 0.2.1 it turns it into "stop all" and the request hangs. Upstream hosts (Envoy) do not know
/// the name and load the module by its 0.2.1 marker, so exporting both serves both. The
/// callbacks Higress binds for 0.2.100 have the 0.2.1 signatures.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_100() {}
