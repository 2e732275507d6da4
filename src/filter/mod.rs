//! The request state machine, generic over the host seam ([`crate::host::Host`]): which
//! callbacks hold the body, and what is done with it once complete. Decisions come from the pure
//! core; this layer only sequences them, so whole callback sequences are tested natively under
//! each host's semantics (`tests/hosts/`).
//!
//! The configured role is looked at once, in [`request_filter`]: a gateway and an upstream
//! request are different types sharing the body hold.

mod gateway;
mod hold;
mod own_span;
mod upstream;

use crate::config::{Config, ConfigError, Role};
use crate::host::{Action, Counter, Host, HostKind};
use std::rc::Rc;

pub use gateway::GatewayRequest;
pub use upstream::UpstreamRequest;

/// One request's callbacks, as a proxy-wasm HTTP context receives them.
pub trait RequestFilter {
    fn on_request_headers(&mut self, end_of_stream: bool) -> Action;
    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action;
    fn on_request_trailers(&mut self) -> Action;
    fn on_response_headers(&mut self, end_of_stream: bool) -> Action;
    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action;
    /// The stream is over (Envoy's access-log stage): whatever is still open ends here.
    fn on_log(&mut self) {}
}

/// The filter for one request under `config`'s role on a host of `kind`.
pub fn request_filter<H: Host + 'static>(
    config: Rc<Config>,
    kind: HostKind,
    host: H,
) -> Box<dyn RequestFilter> {
    match config.role {
        Role::Gateway => Box::new(GatewayRequest::new(config, kind, host)),
        Role::Upstream => Box::new(UpstreamRequest::new(config, kind, host)),
    }
}

/// The filter for a request when the configuration was refused on a host where refusing it would
/// kill the worker: everything passes through untouched, counted.
pub struct UnconfiguredRequest<H> {
    host: H,
}

impl<H: Host> UnconfiguredRequest<H> {
    pub fn new(host: H) -> UnconfiguredRequest<H> {
        UnconfiguredRequest { host }
    }
}

impl<H: Host> RequestFilter for UnconfiguredRequest<H> {
    fn on_request_headers(&mut self, _end_of_stream: bool) -> Action {
        self.host.count(Counter::Unconfigured, 1);
        Action::Continue
    }

    fn on_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_request_trailers(&mut self) -> Action {
        Action::Continue
    }

    fn on_response_headers(&mut self, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}

/// What a plugin configuration comes to on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Configured {
    /// Serve requests with this configuration under this host's semantics.
    Ready(Config, HostKind),
    /// The configuration was refused, but refusing would kill the worker on this host: log the
    /// error and pass every request through ([`UnconfiguredRequest`]).
    PassThrough(HostKind, ConfigError),
    /// The configuration was refused; the plugin reports it by failing to load.
    Refused(ConfigError),
}

/// Reads the plugin configuration on a host recognised as `detected` (its `host` key, when
/// set, overrides the detection).
pub fn configure(detected: HostKind, bytes: &[u8]) -> Configured {
    match Config::parse(bytes) {
        Ok(config) => {
            let kind = config.host.unwrap_or(detected);
            Configured::Ready(config, kind)
        }
        Err(error) if !detected.may_refuse_configuration() => {
            Configured::PassThrough(detected, error)
        }
        Err(error) => Configured::Refused(error),
    }
}
