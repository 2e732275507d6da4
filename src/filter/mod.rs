//! The request state machine, generic over the host seam ([`crate::host::Host`]): which
//! callbacks hold the body, and what is done with it once complete. Decisions come from the pure
//! core; this layer only sequences them, so whole callback sequences are tested natively under
//! each host's semantics (`tests/hosts/`).
//!
//! The configured role is looked at once, in [`request_filter`]: a gateway and an upstream
//! request are different types sharing the body hold. On Higress, a configuration with `_rules_`
//! is chosen per request by [`RoutedRequest`], which then delegates to that filter.

mod gateway;
mod hold;
mod own_span;
mod routed;
mod upstream;

use crate::config::{Config, ConfigError, Role};
use crate::host::{Action, Counter, Host, HostKind};
use crate::match_rules::{self, MatchRules};
use std::rc::Rc;

pub use gateway::GatewayRequest;
pub use routed::RoutedRequest;
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

/// The filter for one request on Higress when the configuration has rules: the configuration
/// is chosen when the request headers arrive.
pub fn routed_filter<H: Host + 'static>(
    rules: Rc<MatchRules>,
    kind: HostKind,
    host: H,
) -> Box<dyn RequestFilter> {
    Box::new(RoutedRequest::new(rules, kind, host))
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
    /// Higress with `_rules_`: each request gets the configuration of the first rule it matches,
    /// else the global one, else passes untouched ([`RoutedRequest`]).
    Routed(MatchRules, HostKind),
    /// The configuration was refused, but refusing would kill the worker on this host: log the
    /// error and pass every request through ([`UnconfiguredRequest`]).
    PassThrough(HostKind, ConfigError),
    /// The configuration was refused; the plugin reports it by failing to load.
    Refused(ConfigError),
}

/// Reads the plugin configuration on a host recognised as `detected` (its `host` key, when
/// set, overrides the detection). Higress's `_rules_` are read only when the host is Higress;
/// everywhere else they are ignored like every `_` key.
pub fn configure(detected: HostKind, bytes: &[u8]) -> Configured {
    let error = match Config::parse(bytes) {
        Ok(config) => {
            let kind = config.host.unwrap_or(detected);
            if kind != HostKind::Higress {
                return Configured::Ready(config, kind);
            }
            match match_rules::parse(bytes, &config, kind) {
                Ok(None) => return Configured::Ready(config, kind),
                Ok(Some(rules)) => return Configured::Routed(rules, kind),
                Err(error) => error,
            }
        }
        Err(error) => error,
    };
    if detected.may_refuse_configuration() {
        Configured::Refused(error)
    } else {
        Configured::PassThrough(detected, error)
    }
}
