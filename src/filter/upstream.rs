//! The upstream role: an upstream (cluster) HTTP filter that runs after the router injected the
//! proxy span's `traceparent`, and rewrites the body's `_meta.traceparent` to it, so an MCP
//! server that parents on `_meta` continues the proxy's span.

use super::hold::{self, Hold};
use super::RequestFilter;
use crate::body_sync;
use crate::config::Config;
use crate::digest;
use crate::host::{Action, Host, HostKind};
use crate::routing_headers::RoutingHeaders;
use std::rc::Rc;

pub struct UpstreamRequest<H> {
    config: Rc<Config>,
    host: H,
    hold: Hold,
    /// The upstream request's `traceparent`, while the body is held.
    traceparent: Option<String>,
    /// Whether the request declared its length (which a rewrite must then keep true).
    length_declared: bool,
}

impl<H: Host> UpstreamRequest<H> {
    pub fn new(config: Rc<Config>, kind: HostKind, host: H) -> UpstreamRequest<H> {
        UpstreamRequest {
            config,
            host,
            hold: Hold::new(kind),
            traceparent: None,
            length_declared: false,
        }
    }

    /// Rewrites the body in place and writes it back whole (Envoy accepts only whole-body
    /// writes). A body that is not MCP was already counted by the gateway role.
    fn process(&mut self, body_size: usize) -> Action {
        let Some(upstream) = self.traceparent.take() else {
            return Action::Continue;
        };
        let Some(mut body) = hold::read_body(&mut self.host, body_size) else {
            return Action::Continue;
        };
        let Ok(digest) = digest::digest(&body, &RoutingHeaders::default()) else {
            return Action::Continue;
        };
        let held = body.len();
        if body_sync::sync_traceparent(&mut body, &digest, &upstream) {
            hold::replace_body(&mut self.host, held, &body, self.length_declared);
        }
        Action::Continue
    }
}

impl<H: Host> RequestFilter for UpstreamRequest<H> {
    fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        let Some(headers) = self.host.request_headers() else {
            return Action::Continue;
        };
        // Only a body that has a `traceparent` header to sync to is held.
        if headers.traceparent.is_none() {
            return Action::Continue;
        }
        let action = self
            .hold
            .start(&mut self.host, &self.config, &headers, end_of_stream);
        self.traceparent = headers.traceparent;
        self.length_declared = headers.content_length.is_some();
        action
    }

    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.hold
            .body(&mut self.host, body_size, end_of_stream)
            .or_process(|size| self.process(size))
    }

    fn on_request_trailers(&mut self) -> Action {
        self.hold.trailers().or_process(|size| self.process(size))
    }

    fn on_response_headers(&mut self, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}
