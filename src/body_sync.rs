//! Keeps the MCP server's view consistent: MCP servers parent their span on
//! `params._meta.traceparent` when present, so after the proxy started its own span the body
//! must carry the proxy's context too, or the server span becomes the proxy span's sibling.
//!
//! A version-00 `traceparent` is always 55 bytes, so it is replaced in place: the body keeps
//! its length and every other byte.

use crate::mcp::{MetaValue, ScannedBody};
use crate::trace_context::TraceParent;

const VERSION_00_LENGTH: usize = 55;

/// The body with every usable `_meta.traceparent` replaced by `upstream` (the `traceparent`
/// the upstream request carries), or `None` when nothing needs to change. Values written with
/// JSON escapes are left alone: their raw length differs, so an in-place write is impossible.
pub fn sync_traceparent(body: &[u8], scanned: &ScannedBody, upstream: &str) -> Option<Vec<u8>> {
    let parsed = TraceParent::parse(upstream)?;
    if parsed.version != 0 || upstream.len() != VERSION_00_LENGTH {
        return None;
    }
    let mut synced: Option<Vec<u8>> = None;
    for message in &scanned.messages {
        let Some(MetaValue::Text(text)) = &message.meta.traceparent else {
            continue;
        };
        let replaceable = !text.escaped
            && text.raw.len() == VERSION_00_LENGTH
            && TraceParent::parse(&text.value).is_some()
            && text.value != upstream;
        if !replaceable {
            continue;
        }
        let target = synced.get_or_insert_with(|| body.to_vec());
        if let Some(slot) = target.get_mut(text.raw.clone()) {
            slot.copy_from_slice(upstream.as_bytes());
        }
    }
    synced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::scan;

    const CLIENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    const PROXY: &str = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";

    fn sync(body: &str, upstream: &str) -> Option<String> {
        let scanned = scan(body.as_bytes()).ok()?;
        sync_traceparent(body.as_bytes(), &scanned, upstream)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
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
        let escaped = format!(
            r#"{{"params":{{"_meta":{{"traceparent":"\u0030{}"}}}}}}"#,
            &CLIENT[1..]
        );
        assert_eq!(sync(&escaped, PROXY), None);
        let body = format!(r#"{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}}"#);
        assert_eq!(sync(&body, "not a traceparent"), None);
        let future = format!("01{}-extra", &PROXY[2..]);
        assert_eq!(sync(&body, &future), None);
    }

    #[test]
    fn every_message_of_a_batch() {
        let body = format!(
            r#"[{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}},{{"params":{{}}}},{{"params":{{"_meta":{{"traceparent":"{CLIENT}"}}}}}}]"#
        );
        let synced = sync(&body, PROXY).unwrap_or_default();
        assert_eq!(synced.matches(PROXY).count(), 2);
        assert!(!synced.contains(CLIENT));
    }
}
