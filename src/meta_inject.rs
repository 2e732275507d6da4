//! Opt-in insertion of W3C trace context into a request's `params._meta`.
//!
//! MCP servers parent their span on `params._meta` when it is there, so when the context did
//! not come in `_meta` (a header-only client, or the gateway starting a root span) a backend
//! that reads only `_meta` would start a new trace. Writing the context into the body closes
//! that gap. The insertion goes at the place the scan already found ([`MetaSite`]), so no second
//! parse is needed, every other byte of the body stays as sent and the result is still exactly
//! one valid JSON value.
//!
//! The caller decides whether to inject (a request, context not taken from `_meta`) and which
//! fields are missing: a key is in `_meta` when the scanned [`Meta`] field is `Some` (e.g.
//! `message.meta.traceparent.is_some()`, usable value or not). [`inject`] refuses anything that
//! would duplicate a key rather than skip it, so a half-inserted context cannot happen.

use crate::mcp::{Message, Meta, MetaLevel, MetaSite};

/// The `_meta` trace fields to insert; `None` fields are left out. Values are written as JSON
/// strings exactly as given (JSON-escaped); checking them as W3C values is the caller's job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceFields<'a> {
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
    pub baggage: Option<&'a str>,
}

impl<'a> TraceFields<'a> {
    /// The fields to insert with their `_meta` keys, in a fixed order.
    fn members(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            ("traceparent", self.traceparent),
            ("tracestate", self.tracestate),
            ("baggage", self.baggage),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
    }

    /// True when a field to insert is already a key of `meta` (whatever its value): inserting
    /// it would make a duplicate key, which parsers resolve differently.
    pub fn collides_with(&self, meta: &Meta) -> bool {
        (self.traceparent.is_some() && meta.traceparent.is_some())
            || (self.tracestate.is_some() && meta.tracestate.is_some())
            || (self.baggage.is_some() && meta.baggage.is_some())
    }
}

/// Returns `body` with `fields` inserted as string members of `message`'s `params._meta`,
/// creating `"params":{"_meta":{…}}` or `"_meta":{…}` when missing. `message` must come from
/// scanning this very `body`.
///
/// The new bytes all go at `at` of `message.meta_site` (just after the deepest existing `{`),
/// so `result[..at] == body[..at]` and `result[at + n..] == body[at..]` with
/// `n = result.len() - body.len()`; byte ranges after `at` move by `n`.
///
/// `None` (leave the body as it is) when there is no safe site ([`MetaSite::Unsafe`]), no field
/// to insert, a field's key is already in `_meta`, or the site visibly does not fit `body` (a
/// cheap guard against a message scanned from another body, not a proof).
pub fn inject(body: &[u8], message: &Message, fields: &TraceFields<'_>) -> Option<Vec<u8>> {
    let MetaSite::Object { level, at, empty } = message.meta_site else {
        return None;
    };
    if fields.members().next().is_none() || fields.collides_with(&message.meta) {
        return None;
    }
    // A site from another body would corrupt this one; check what it claims about the bytes.
    if at == 0 || body.get(at - 1) != Some(&b'{') {
        return None;
    }
    if (body.get(skip_whitespace(body, at)) == Some(&b'}')) != empty {
        return None;
    }
    let (head, tail) = body.split_at(at);
    let mut out = Vec::with_capacity(body.len() + insertion_len(level, fields));
    out.extend_from_slice(head);
    match level {
        MetaLevel::Message => out.extend_from_slice(b"\"params\":{\"_meta\":{"),
        MetaLevel::Params => out.extend_from_slice(b"\"_meta\":{"),
        MetaLevel::Meta => {}
    }
    for (index, (key, value)) in fields.members().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_string(&mut out, key);
        out.push(b':');
        push_string(&mut out, value);
    }
    match level {
        MetaLevel::Message => out.extend_from_slice(b"}}"),
        MetaLevel::Params => out.push(b'}'),
        MetaLevel::Meta => {}
    }
    // The object had members: the first one now follows the inserted one.
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(tail);
    Some(out)
}

/// The inserted length before escaping (header values need none), for one allocation.
fn insertion_len(level: MetaLevel, fields: &TraceFields<'_>) -> usize {
    let wrapper = match level {
        MetaLevel::Message => 21,
        MetaLevel::Params => 10,
        MetaLevel::Meta => 0,
    };
    fields
        .members()
        .map(|(key, value)| key.len() + value.len() + 6)
        .sum::<usize>()
        + wrapper
        + 1
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Writes `text` as a JSON string: quotes, backslashes and control characters escaped, every
/// other character (UTF-8 included) as is.
fn push_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0x0f)]);
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}
