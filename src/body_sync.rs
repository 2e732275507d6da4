//! Keeps the MCP server's view consistent: MCP servers parent their span on
//! `params._meta.traceparent` when present, so after the proxy started its own span the body
//! must carry the proxy's context too, or the server span becomes the proxy span's sibling.
//!
//! Only the copies of the context the proxy continued are rewritten
//! ([`Digest::context_ranges`]); another message of a batch with its own context belongs to
//! another trace and keeps it. A version-00 value written plainly is 55 bytes, like the
//! upstream one, so it is replaced in place and the body keeps its length; a copy written with
//! escapes or in a later version's longer form is replaced too, and the body's length changes by
//! the difference (the caller fixes `Content-Length`).

use crate::digest::Digest;
use crate::trace_context::TraceParent;

/// Length of a version-00 `traceparent`.
const VERSION_00_LENGTH: usize = 55;

/// Rewrites, in `body`, every copy of the context's `_meta.traceparent` to `upstream` (the
/// `traceparent` the upstream request carries); returns whether any byte changed. Nothing
/// changes unless `upstream` is a valid version-00 value, which is plain ASCII and needs no
/// JSON escaping.
pub fn sync_traceparent(body: &mut Vec<u8>, digest: &Digest, upstream: &str) -> bool {
    let valid = TraceParent::parse(upstream).is_some_and(|p| p.version == 0);
    if !valid || upstream.len() != VERSION_00_LENGTH {
        return false;
    }
    let replacement = upstream.as_bytes();
    let stale = |range: &std::ops::Range<usize>| {
        body.get(range.clone())
            .is_some_and(|raw| raw != replacement)
    };
    if !digest.context_ranges.iter().any(stale) {
        return false;
    }
    let same_length = digest
        .context_ranges
        .iter()
        .all(|range| range.len() == VERSION_00_LENGTH);
    if same_length {
        for range in &digest.context_ranges {
            if let Some(slot) = body.get_mut(range.clone()) {
                slot.copy_from_slice(replacement);
            }
        }
        return true;
    }
    // Lengths differ: rebuild the body around the ranges (they are in body order).
    let mut rebuilt =
        Vec::with_capacity(body.len() + digest.context_ranges.len() * VERSION_00_LENGTH);
    let mut copied = 0;
    for range in &digest.context_ranges {
        let (Some(before), true) = (body.get(copied..range.start), range.end <= body.len()) else {
            return false;
        };
        rebuilt.extend_from_slice(before);
        rebuilt.extend_from_slice(replacement);
        copied = range.end;
    }
    rebuilt.extend_from_slice(body.get(copied..).unwrap_or_default());
    *body = rebuilt;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;
    use crate::routing_headers::RoutingHeaders;

    const CLIENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    const OTHER: &str = "00-11111111111111111111111111111111-2222222222222222-01";
    const PROXY: &str = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";

    fn sync(body: &str, upstream: &str) -> Option<String> {
        let digest = digest(body.as_bytes(), &RoutingHeaders::default()).ok()?;
        let mut bytes = body.as_bytes().to_vec();
        sync_traceparent(&mut bytes, &digest, upstream)
            .then(|| String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn escaped_and_future_version_copies_are_replaced_whole() {
        let escaped = format!(r#"\u0030{}"#, &CLIENT[1..]);
        let future = format!("01{}-extra-fields", &CLIENT[2..]);
        for raw in [escaped, future] {
            let body = format!(
                r#"[{{"id":1,"method":"tools/call","params":{{"_meta":{{"traceparent":"{raw}"}},"x":1}}}},{{"id":2,"method":"ping","params":{{"_meta":{{"traceparent":"{raw}"}}}}}},{{"id":3,"method":"ping","params":{{"_meta":{{"traceparent":"{OTHER}"}}}}}}]"#
            );
            let expected = body.replace(&raw, PROXY);
            let synced = sync(&body, PROXY);
            assert_eq!(synced.as_deref(), Some(expected.as_str()), "{raw}");
            assert!(serde_json::from_str::<serde_json::Value>(&expected).is_ok());
            assert!(expected.contains(OTHER));
        }
    }

    #[test]
    fn replaces_in_place_and_keeps_everything_else() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"traceparent":"{CLIENT}"}},"_meta":{{"traceparent":"{CLIENT}","tracestate":"a=1"}}}}}}"#
        );
        let expected = body.replacen(
            &format!(r#""_meta":{{"traceparent":"{CLIENT}""#),
            &format!(r#""_meta":{{"traceparent":"{PROXY}""#),
            1,
        );
        assert_eq!(sync(&body, PROXY), Some(expected.clone()));
        assert_eq!(expected.len(), body.len());
    }

    #[test]
    fn nothing_to_do() {
        let same = format!(r#"{{"params":{{"_meta":{{"traceparent":"{PROXY}"}}}}}}"#);
        assert_eq!(sync(&same, PROXY), None);
        let no_meta = r#"{"params":{"name":"x"}}"#;
        assert_eq!(sync(no_meta, PROXY), None);
        let invalid = r#"{"params":{"_meta":{"traceparent":"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-03"}}}"#;
        assert_eq!(sync(invalid, PROXY), None);
        let body = format!(r#"{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}}"#);
        assert_eq!(sync(&body, "not a traceparent"), None);
        let future = format!("01{}-extra", &PROXY[2..]);
        assert_eq!(sync(&body, &future), None);
    }

    #[test]
    fn every_copy_of_the_context_in_a_batch() {
        let body = format!(
            r#"[{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}},{{"params":{{}}}},{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}}]"#
        );
        let synced = sync(&body, PROXY).unwrap_or_default();
        assert_eq!(synced.matches(PROXY).count(), 2);
        assert!(!synced.contains(CLIENT));
    }

    #[test]
    fn another_context_in_a_batch_keeps_its_own() {
        let body = format!(
            r#"[{{"id":1,"method":"tools/call","params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}},{{"id":2,"method":"tools/call","params":{{"_meta":{{"traceparent":"{OTHER}"}}}}}}]"#
        );
        let expected = body.replacen(CLIENT, PROXY, 1);
        assert_eq!(sync(&body, PROXY), Some(expected));
    }
}
