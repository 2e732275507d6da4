//! What the filter keeps of one request body: the few messages and byte ranges its decisions
//! need, gathered in the one scan. Its size does not grow with the number of messages in a
//! batch (beyond one byte range per copy of the lifted `traceparent`, which itself takes at
//! least 55 bytes of body), so no body shape can make the filter's memory outgrow a small
//! multiple of the body.

use crate::mcp::{self, Message, MetaValue, NotMcp};
use crate::routing_headers::{self, Mismatch, RoutingHeaders};
use crate::trace_context::TraceParent;
use std::ops::Range;

/// The digest of a request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    /// The body is a (legacy) JSON-RPC batch.
    pub batch: bool,
    /// The first message with a `method`: the request the span describes.
    pub request: Option<Message>,
    /// The message whose `_meta` provides the trace context: the first one with a valid
    /// `traceparent`, else the first one with any trace value (to count what was invalid).
    pub context: Option<Message>,
    /// The context's `traceparent`, parsed, when valid.
    pub context_parent: Option<TraceParent>,
    /// Where the context's `traceparent` sits in the body (the raw characters between the
    /// quotes), in its own message and in every later message that carries the same value,
    /// however written (escapes, a later version). Other messages' contexts are not listed:
    /// they belong to other traces.
    pub context_ranges: Vec<Range<usize>>,
    /// The first way the SEP-2243 headers contradict the body, if they do.
    pub header_mismatch: Option<Mismatch>,
}

/// Scans `body` into its digest, checking every request in it against the SEP-2243 headers.
pub fn digest(body: &[u8], routing: &RoutingHeaders<'_>) -> Result<Digest, NotMcp> {
    let mut digest = Digest::default();
    let mut saw_request = false;
    digest.batch = mcp::scan_each(body, |message| {
        if message.method.is_some() {
            saw_request = true;
            if digest.header_mismatch.is_none() && !routing.is_empty() {
                digest.header_mismatch = routing_headers::check(routing, &message).err();
            }
        }
        digest.add_context(&message);
        if digest.request.is_none() && message.method.is_some() {
            digest.request = Some(message);
        }
    })?;
    // Headers that name a request the body does not hold contradict it too.
    if !saw_request && digest.header_mismatch.is_none() {
        if routing.method.is_some() {
            digest.header_mismatch = Some(Mismatch::Method);
        } else if routing.name.is_some() {
            digest.header_mismatch = Some(Mismatch::Name);
        }
    }
    Ok(digest)
}

impl Digest {
    /// Takes `message`'s `_meta` as the context if it is the first valid one, or records where
    /// it repeats the chosen one.
    fn add_context(&mut self, message: &Message) {
        let text = message.meta.traceparent.as_ref().and_then(|v| match v {
            MetaValue::Text(text) => Some(text),
            MetaValue::Unusable => None,
        });
        if self.context_parent.is_some() {
            let chosen = self
                .context
                .as_ref()
                .and_then(|c| c.meta.traceparent.as_ref())
                .and_then(MetaValue::text);
            if let Some(text) = text.filter(|t| Some(t.value.as_str()) == chosen) {
                self.push_range(text);
            }
            return;
        }
        if let Some(parent) = text.and_then(|t| TraceParent::parse(&t.value)) {
            self.context_parent = Some(parent);
            self.context = Some(message.clone());
            if let Some(text) = text {
                self.push_range(text);
            }
        } else if self.context.is_none() && message.meta.has_trace_fields() {
            self.context = Some(message.clone());
        }
    }

    fn push_range(&mut self, text: &mcp::MetaText) {
        self.context_ranges.push(text.raw.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    const B: &str = "00-11111111111111111111111111111111-2222222222222222-01";

    fn digest_of(body: &str) -> Digest {
        digest(body.as_bytes(), &RoutingHeaders::default()).unwrap_or_default()
    }

    fn call(traceparent: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"traceparent":"{traceparent}"}}}}}}"#
        )
    }

    #[test]
    fn first_valid_context_wins_and_only_its_copies_are_listed() {
        let body = format!(
            "[{},{},{},{}]",
            call("not valid"),
            call(A),
            call(B),
            call(A)
        );
        let d = digest_of(&body);
        assert!(d.batch);
        assert_eq!(d.context_parent, TraceParent::parse(A));
        assert_eq!(d.context_ranges.len(), 2);
        for range in &d.context_ranges {
            assert_eq!(body.get(range.clone()), Some(A));
        }
        // The span describes the first request, whatever its context.
        let request_parent = d
            .request
            .and_then(|m| m.meta.traceparent)
            .and_then(|v| v.text().map(str::to_owned));
        assert_eq!(request_parent.as_deref(), Some("not valid"));
    }

    #[test]
    fn invalid_only_context_is_kept_for_counting() {
        let d = digest_of(&call("00-zz"));
        assert!(d.context.is_some());
        assert_eq!(d.context_parent, None);
        assert!(d.context_ranges.is_empty());
        let none = digest_of(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert_eq!(none.context, None);
        assert!(none.request.is_some());
    }

    #[test]
    fn escaped_and_future_version_copies_are_listed_by_their_raw_range() {
        let raw = format!("\\u0030{}", &A[1..]);
        let escaped = call(&raw);
        let d = digest_of(&escaped);
        assert_eq!(d.context_parent, TraceParent::parse(A));
        let ranges: Vec<&str> = d
            .context_ranges
            .iter()
            .filter_map(|r| escaped.get(r.clone()))
            .collect();
        assert_eq!(ranges, vec![raw.as_str()]);
        let future = format!("01{}-extra", &A[2..]);
        let body = format!("[{},{}]", call(&future), call(A));
        let d = digest_of(&body);
        assert!(d.context_parent.is_some());
        let ranges: Vec<&str> = d
            .context_ranges
            .iter()
            .filter_map(|r| body.get(r.clone()))
            .collect();
        assert_eq!(ranges, vec![future.as_str()]);
    }

    #[test]
    fn many_messages_keep_the_digest_small() {
        let mut body = String::from("[");
        for i in 0..50_000 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r#"{"jsonrpc":"2.0","method":"ping"}"#);
        }
        body.push(']');
        let d = digest_of(&body);
        assert!(d.request.is_some());
        assert!(d.context.is_none() && d.context_ranges.is_empty());
    }

    #[test]
    fn every_request_of_a_batch_must_agree_with_the_headers() {
        let routing = RoutingHeaders {
            method: Some("tools/call"),
            name: Some("t"),
        };
        let agree = format!("[{},{}]", call(A), call(B));
        assert_eq!(
            digest(agree.as_bytes(), &routing).map(|d| d.header_mismatch),
            Ok(None)
        );
        let second_differs = format!(
            r#"[{},{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"rm"}}}}]"#,
            call(A)
        );
        assert_eq!(
            digest(second_differs.as_bytes(), &routing).map(|d| d.header_mismatch),
            Ok(Some(Mismatch::Name))
        );
        let only_responses = r#"[{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        assert_eq!(
            digest(only_responses.as_bytes(), &routing).map(|d| d.header_mismatch),
            Ok(Some(Mismatch::Method))
        );
        let name_only = RoutingHeaders {
            method: None,
            name: Some("t"),
        };
        assert_eq!(
            digest(only_responses.as_bytes(), &name_only).map(|d| d.header_mismatch),
            Ok(Some(Mismatch::Name))
        );
        let no_headers = RoutingHeaders::default();
        assert_eq!(
            digest(only_responses.as_bytes(), &no_headers).map(|d| d.header_mismatch),
            Ok(None)
        );
    }
}
