//! mcp-trace-filter: a proxy-wasm HTTP filter that lifts W3C trace context carried inside MCP
//! JSON-RPC bodies (`params._meta`) into upstream request headers.
//!
//! The pure core (`config`, `mcp`, `trace_context`, `plan`) never touches `proxy_wasm` and is
//! tested natively; `filter` is the thin host layer that only moves bytes and headers.

pub mod body_sync;
pub mod config;
pub mod digest;
pub mod gate;
pub mod mcp;
pub mod plan;
pub mod request_headers;
pub mod response;
pub mod routing_headers;
pub mod semconv;
pub mod trace_context;

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::register();
}}
