//! The gateway's own spans (own-span mode): which context parents them, their ids and sampling,
//! what the upstream request carries, and the finished spans handed to the exporter. Pure: ids
//! and clocks come from the caller (the host's random source and clock).
//!
//! A SERVER span describes the MCP operation at the gateway; an optional CLIENT child describes
//! the call to the backend. The backend receives the innermost of them as its parent, in the
//! `traceparent` header and in `params._meta`, so its span continues the gateway's in one pass.

use crate::trace_context::TraceParent;

/// Span kinds, numbered as OTLP numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Server = 2,
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
}

/// A link to a context that is not the parent (OTel MCP conventions: the transport context,
/// when `_meta` parents, or the other way round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: Option<String>,
}

/// A finished span, as the exporter encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub links: Vec<Link>,
    /// `Some(description)` for status ERROR (the description may be empty).
    pub error: Option<String>,
}

/// The context a request arrived with, as the plan chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivedContext {
    pub parent: TraceParent,
    pub trace_state: Option<String>,
}

/// The identity of the gateway's spans for one request, decided when its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpans {
    pub trace_id: [u8; 16],
    pub server_span_id: [u8; 8],
    /// The SERVER span's parent; `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    pub client_span_id: Option<[u8; 8]>,
    pub flags: u8,
    pub trace_state: Option<String>,
    pub link: Option<Link>,
}

/// Random bits for new ids; the filter fills them from the host's random source.
#[derive(Debug, Clone, Copy)]
pub struct FreshIds {
    pub trace_id: [u8; 16],
    pub server_span_id: [u8; 8],
    pub client_span_id: [u8; 8],
}

/// W3C `sampled` flag.
const SAMPLED: u8 = 0x01;
/// W3C level 2 `random` flag: the trace id's right 7 bytes are random.
const RANDOM: u8 = 0x02;

impl GatewaySpans {
    /// The spans of a request whose chosen context is `parent` (none: a root span, sampled for
    /// `root_sampling_millionths` of trace ids) and whose other context is `other`.
    pub fn start(
        parent: Option<&ArrivedContext>,
        other: Option<&ArrivedContext>,
        ids: FreshIds,
        client_span: bool,
        root_sampling_millionths: u32,
    ) -> GatewaySpans {
        let client_span_id = client_span.then_some(nonzero(ids.client_span_id));
        let server_span_id = nonzero(ids.server_span_id);
        let same_as_parent = |other: &&ArrivedContext| {
            parent.is_some_and(|p| {
                (p.parent.trace_id, p.parent.parent_id)
                    == (other.parent.trace_id, other.parent.parent_id)
            })
        };
        let link = other
            .filter(|other| !same_as_parent(other))
            .map(|other| Link {
                trace_id: other.parent.trace_id,
                span_id: other.parent.parent_id,
                trace_state: other.trace_state.clone(),
            });
        match parent {
            Some(parent) => GatewaySpans {
                trace_id: parent.parent.trace_id,
                server_span_id,
                parent_span_id: Some(parent.parent.parent_id),
                client_span_id,
                // Only the flags W3C defines go on with a span of the gateway's own.
                flags: parent.parent.flags & (SAMPLED | RANDOM),
                trace_state: parent.trace_state.clone(),
                link,
            },
            None => {
                let trace_id = nonzero_trace(ids.trace_id);
                let sampled = root_sampled(&trace_id, root_sampling_millionths);
                GatewaySpans {
                    trace_id,
                    server_span_id,
                    parent_span_id: None,
                    client_span_id,
                    flags: RANDOM | if sampled { SAMPLED } else { 0 },
                    trace_state: None,
                    link,
                }
            }
        }
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The span the backend continues: the CLIENT span when there is one, else the SERVER span.
    pub fn upstream_parent(&self) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id: self.trace_id,
            parent_id: self.client_span_id.unwrap_or(self.server_span_id),
            flags: self.flags,
        }
    }

    /// The finished SERVER span and, when configured, its CLIENT child.
    pub fn finish(&self, facts: &SpanFacts) -> Vec<FinishedSpan> {
        let mut spans = Vec::with_capacity(2);
        let mut server_attributes = facts.attributes.clone();
        server_attributes.extend(facts.server_side.iter().cloned());
        spans.push(FinishedSpan {
            trace_id: self.trace_id,
            span_id: self.server_span_id,
            parent_span_id: self.parent_span_id,
            trace_state: self.trace_state.clone(),
            name: facts.name.clone(),
            kind: SpanKind::Server,
            start_unix_nanos: facts.start_unix_nanos,
            end_unix_nanos: facts.end_unix_nanos.max(facts.start_unix_nanos),
            attributes: server_attributes,
            links: self.link.iter().cloned().collect(),
            error: facts.error.clone(),
        });
        if let Some(client_span_id) = self.client_span_id {
            let mut attributes = facts.attributes.clone();
            attributes.extend(facts.client_side.iter().cloned());
            let start = facts.upstream_start_unix_nanos.max(facts.start_unix_nanos);
            spans.push(FinishedSpan {
                trace_id: self.trace_id,
                span_id: client_span_id,
                parent_span_id: Some(self.server_span_id),
                trace_state: self.trace_state.clone(),
                name: facts.name.clone(),
                kind: SpanKind::Client,
                start_unix_nanos: start,
                end_unix_nanos: facts.end_unix_nanos.max(start),
                attributes,
                links: Vec::new(),
                error: facts.error.clone(),
            });
        }
        spans
    }
}

/// What the request and its response showed, for the finished spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanFacts {
    pub name: String,
    /// Attributes of both spans (the MCP ones).
    pub attributes: Vec<(&'static str, Value)>,
    /// Only on the SERVER span (`client.*`, `network.protocol.version`).
    pub server_side: Vec<(&'static str, Value)>,
    /// Only on the CLIENT span (`server.*` of the backend).
    pub client_side: Vec<(&'static str, Value)>,
    pub start_unix_nanos: u64,
    /// When the request went on to the backend.
    pub upstream_start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub error: Option<String>,
}

/// Whether a root span with `trace_id` is sampled: the trace id's last 8 bytes, read as a
/// number, fall below the ratio of the number space (as OTel's trace-id ratio sampler does), so
/// every participant using the same rule agrees.
fn root_sampled(trace_id: &[u8; 16], millionths: u32) -> bool {
    if millionths >= 1_000_000 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let value = u128::from(u64::from_be_bytes(low));
    value * 1_000_000 < u128::from(millionths) << 64
}

/// An all-zero id is invalid in W3C; the chance is negligible, but a broken random source
/// must still not produce one.
fn nonzero(mut id: [u8; 8]) -> [u8; 8] {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn nonzero_trace(mut id: [u8; 16]) -> [u8; 16] {
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

/// `host[:port]` split into the address and the port, for `client.*` / `server.*`.
pub fn split_host_port(text: &str) -> (String, Option<i64>) {
    // `[v6]:port` or `v4:port`; a bare v6 address has several colons and no port.
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_owned(), port);
        }
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), Some(port)),
            Err(_) => (text.to_owned(), None),
        },
        _ => (text.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(text: &str) -> Option<ArrivedContext> {
        TraceParent::parse(text).map(|parent| ArrivedContext {
            parent,
            trace_state: Some("k=v".to_owned()),
        })
    }

    const IDS: FreshIds = FreshIds {
        trace_id: [7; 16],
        server_span_id: [1; 8],
        client_span_id: [2; 8],
    };

    #[test]
    fn a_child_keeps_the_trace_flags_and_state_and_the_backend_gets_the_innermost_span() {
        let parent = context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03");
        let spans = GatewaySpans::start(parent.as_ref(), None, IDS, true, 0);
        assert_eq!(
            spans.upstream_parent().to_header_value(),
            "00-0af7651916cd43dd8448eb211c80319c-0202020202020202-03"
        );
        assert!(spans.sampled());
        assert_eq!(spans.trace_state.as_deref(), Some("k=v"));
        assert_eq!(spans.link, None);
        let without_client = GatewaySpans::start(parent.as_ref(), None, IDS, false, 0);
        assert_eq!(without_client.upstream_parent().parent_id, [1; 8]);
    }

    #[test]
    fn the_other_context_becomes_a_link_only_when_it_differs() {
        let meta = context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let header = context("00-11111111111111111111111111111111-2222222222222222-01");
        let spans = GatewaySpans::start(meta.as_ref(), header.as_ref(), IDS, false, 0);
        assert_eq!(spans.link.map(|l| l.span_id), Some([0x22; 8]));
        let same = GatewaySpans::start(meta.as_ref(), meta.as_ref(), IDS, false, 0);
        assert_eq!(same.link, None);
        let root_with_header = GatewaySpans::start(None, header.as_ref(), IDS, false, 0);
        assert!(root_with_header.link.is_some());
    }

    #[test]
    fn root_spans_are_sampled_by_ratio_of_the_trace_id() {
        let mut ids = IDS;
        ids.trace_id = [0; 16];
        ids.trace_id[8] = 0x7f; // just below half of the number space
        assert!(GatewaySpans::start(None, None, ids, false, 500_000).sampled());
        ids.trace_id[8] = 0x80;
        assert!(!GatewaySpans::start(None, None, ids, false, 500_000).sampled());
        assert!(GatewaySpans::start(None, None, ids, false, 1_000_000).sampled());
        assert!(!GatewaySpans::start(None, None, ids, false, 0).sampled());
        let root = GatewaySpans::start(None, None, ids, false, 1_000_000);
        assert_eq!(root.flags, 0x03);
        assert_eq!(root.parent_span_id, None);
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(
            split_host_port("10.0.0.1:8080"),
            ("10.0.0.1".into(), Some(8080))
        );
        assert_eq!(split_host_port("[::1]:443"), ("::1".into(), Some(443)));
        assert_eq!(split_host_port("::1"), ("::1".into(), None));
        assert_eq!(split_host_port("example.com"), ("example.com".into(), None));
    }
}
