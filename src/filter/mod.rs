//! The proxy-wasm host layer: configuration and counters in the root context, the request
//! state machine in the HTTP context. It only moves bytes and headers; decisions live in the
//! pure modules.

mod host;
mod http;
mod logger;
mod metrics;

use crate::config::Config;
use metrics::Metrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;

/// How often each VM adds its memory growth to the `wasm_memory_bytes` gauge.
const MEMORY_SAMPLE_MS: u32 = 5_000;

/// Installs the root context factory; called once by `proxy_wasm::main!`.
pub fn register() {
    logger::install();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}

/// Holds the validated configuration and the counter ids, shared with every request.
#[derive(Default)]
struct Root {
    config: Rc<Config>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(&host::plugin_configuration()) {
            Ok(config) => {
                self.config = Rc::new(config);
                self.metrics = Rc::new(Metrics::define());
                self.metrics.record_memory();
                if let Err(error) = host::set_tick_period(MEMORY_SAMPLE_MS) {
                    log::info!("mcp-trace-filter: no timer (host status {}), memory gauge stays at its first value", error.0);
                }
                true
            }
            Err(error) => {
                log::error!("mcp-trace-filter: {error}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.metrics.record_memory();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(http::McpRequest::new(
            Rc::clone(&self.config),
            Rc::clone(&self.metrics),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
