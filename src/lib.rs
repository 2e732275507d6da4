//! mcp-trace-filter: a proxy-wasm HTTP filter that lifts W3C trace context carried inside MCP
//! JSON-RPC bodies (`params._meta`) into upstream request headers.
//!
//! Three layers: the host seam (`host`: a trait for the hostcalls, and its one implementation
//! over the raw proxy-wasm ABI), the request state machine generic over it (`filter`), and the
//! pure core it sequences (`digest`/`mcp` scanning, `plan`, `semconv`, `trace_context`, ...).
//! Only `plugin` and `host::hostcalls` touch `proxy_wasm`; everything else is tested natively.

pub mod body_sync;
pub mod config;
pub mod digest;
pub mod gate;
pub mod header_policy;
pub mod match_rules;
pub mod mcp;
pub mod meta_inject;
pub mod operation_metrics;
pub mod otlp;
pub mod plan;
pub mod request_headers;
pub mod response;
pub mod routing_headers;
pub mod semconv;
pub mod server_spans;
pub mod span;
pub mod span_export;
pub mod trace_context;

pub mod filter;
pub mod host;
#[cfg(target_arch = "wasm32")]
mod plugin;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    plugin::register();
}}
