//! Higress's per-route rules at request time: the configuration is chosen when the request
//! headers arrive (the first moment the route, the authority and the upstream cluster are
//! known), then the request is the ordinary filter for that configuration
//! ([`super::request_filter`]). When nothing applies (no rule matched and the plugin has no
//! global configuration) the request is left alone, as Higress's SDKs skip the plugin then.

use super::{request_filter, RequestFilter};
use crate::host::{Action, Host, HostKind};
use crate::match_rules::{Fact, MatchRules};
use std::rc::Rc;

/// The properties Higress's SDKs match on (alibaba/higress
/// `plugins/wasm-rust/src/rule_matcher.rs`, higress-group/wasm-go
/// `pkg/matcher/rule_matcher.go`): the route name, and the upstream cluster as
/// `outbound|<port>|<subset>|<host>`.
const ROUTE_NAME: &[&str] = &["route_name"];
const CLUSTER_NAME: &[&str] = &["cluster_name"];

pub struct RoutedRequest<H> {
    state: State<H>,
}

enum State<H> {
    /// The request headers have not arrived yet.
    Waiting {
        rules: Rc<MatchRules>,
        kind: HostKind,
        host: H,
    },
    /// The request under the configuration chosen for it.
    Chosen(Box<dyn RequestFilter>),
    /// Nothing applies to this request: every callback continues untouched.
    Skipped,
}

impl<H: Host + 'static> RoutedRequest<H> {
    pub fn new(rules: Rc<MatchRules>, kind: HostKind, host: H) -> RoutedRequest<H> {
        RoutedRequest {
            state: State::Waiting { rules, kind, host },
        }
    }

    fn choose(&mut self) {
        let State::Waiting {
            rules,
            kind,
            mut host,
        } = std::mem::replace(&mut self.state, State::Skipped)
        else {
            return;
        };
        let config = rules.select(|fact| read_fact(&mut host, fact)).cloned();
        if let Some(config) = config {
            self.state = State::Chosen(request_filter(config, kind, host));
        }
    }

    fn chosen(&mut self) -> Option<&mut dyn RequestFilter> {
        match &mut self.state {
            State::Chosen(request) => Some(request.as_mut()),
            State::Waiting { .. } | State::Skipped => None,
        }
    }
}

fn read_fact<H: Host>(host: &mut H, fact: Fact) -> Option<String> {
    match fact {
        Fact::RouteName => host.property(ROUTE_NAME),
        Fact::ClusterName => host.property(CLUSTER_NAME),
        Fact::Authority => host.request_headers().and_then(|headers| headers.authority),
    }
}

impl<H: Host + 'static> RequestFilter for RoutedRequest<H> {
    fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        self.choose();
        self.chosen()
            .map_or(Action::Continue, |r| r.on_request_headers(end_of_stream))
    }

    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.chosen().map_or(Action::Continue, |r| {
            r.on_request_body(body_size, end_of_stream)
        })
    }

    fn on_request_trailers(&mut self) -> Action {
        self.chosen()
            .map_or(Action::Continue, |r| r.on_request_trailers())
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
        self.chosen()
            .map_or(Action::Continue, |r| r.on_response_headers(end_of_stream))
    }

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.chosen().map_or(Action::Continue, |r| {
            r.on_response_body(body_size, end_of_stream)
        })
    }

    fn on_log(&mut self) {
        if let Some(request) = self.chosen() {
            request.on_log();
        }
    }
}
