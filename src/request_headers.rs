//! The request headers the filter reads, taken from one snapshot of the whole header map.
//!
//! One host call that returns every header is much cheaper in a wasm VM than a call per header
//! name (each crossing costs far more than the lookup), and the filter needs about a dozen names
//! per request: its own headers to strip, the gate's, the trace context and the MCP transport.

use crate::plan::{BAGGAGE, TRACEPARENT, TRACESTATE};
use crate::semconv::OWNED_HEADERS;

/// The names read into [`RequestHeaders`], in the order of its fields.
const READ: [&str; 10] = [
    ":method",
    "content-type",
    "content-length",
    TRACEPARENT,
    TRACESTATE,
    BAGGAGE,
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

/// The headers of one request the filter uses: first value of each, as a per-name lookup gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    pub method: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub baggage: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    /// `Mcp-Method` (SEP-2243).
    pub mcp_method: Option<String>,
    /// `Mcp-Name` (SEP-2243).
    pub mcp_name: Option<String>,
    /// The filter-owned headers the client sent (each once), to be removed.
    pub owned_present: Vec<&'static str>,
}

impl RequestHeaders {
    /// Picks the filter's headers out of `(name, value)` pairs in arrival order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> RequestHeaders {
        let mut headers = RequestHeaders::default();
        for (name, value) in pairs {
            if let Some(owned) = OWNED_HEADERS
                .iter()
                .find(|owned| owned.eq_ignore_ascii_case(name))
            {
                if !headers.owned_present.contains(owned) {
                    headers.owned_present.push(owned);
                }
                continue;
            }
            // Case-insensitive without allocating: some hosts keep HTTP/1 names as sent.
            let Some(index) = READ.iter().position(|read| read.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let slot = match index {
                0 => &mut headers.method,
                1 => &mut headers.content_type,
                2 => &mut headers.content_length,
                3 => &mut headers.traceparent,
                4 => &mut headers.tracestate,
                5 => &mut headers.baggage,
                6 => &mut headers.session_id,
                7 => &mut headers.protocol_version,
                8 => &mut headers.mcp_method,
                _ => &mut headers.mcp_name,
            };
            if slot.is_none() {
                *slot = Some(value.to_owned());
            }
        }
        headers
    }
}

/// Decodes a header map as proxy-wasm serialises it: a little-endian `u32` count, then a `u32`
/// name length and value length per pair, then each name and value followed by a NUL byte.
/// `None` when the bytes do not follow that layout; pairs that are not UTF-8 are skipped.
pub fn parse_header_pairs(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
    let count = read_u32(bytes, 0)?;
    let mut sizes_at = 4usize;
    let mut data_at = count.checked_mul(8)?.checked_add(4)?;
    // Each pair needs at least 8 size bytes and 2 NULs, so a count beyond that is a lie.
    if data_at > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = read_u32(bytes, sizes_at)?;
        let value_len = read_u32(bytes, sizes_at + 4)?;
        sizes_at += 8;
        let name = field(bytes, data_at, name_len)?;
        data_at += name_len + 1;
        let value = field(bytes, data_at, value_len)?;
        data_at += value_len + 1;
        if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
            pairs.push((name, value));
        }
    }
    Some(pairs)
}

/// Encodes `(name, value)` pairs in the layout [`parse_header_pairs`] reads.
pub fn serialize_header_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let as_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let data: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend(as_u32(pairs.len()));
    for (name, value) in pairs {
        out.extend(as_u32(name.len()));
        out.extend(as_u32(value.len()));
    }
    for (name, value) in pairs {
        out.extend(name.as_bytes());
        out.push(0);
        out.extend(value.as_bytes());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    let value = u32::from_le_bytes(<[u8; 4]>::try_from(word).ok()?);
    usize::try_from(value).ok()
}

/// `len` bytes at `at`, which must be followed by a NUL.
fn field(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    let end = at.checked_add(len)?;
    if *bytes.get(end)? != 0 {
        return None;
    }
    bytes.get(at..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialise(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend((name.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend(*name);
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_the_serialised_map() {
        let bytes = serialise(&[(b":method", b"POST"), (b"x-empty", b""), (b"a", b"1")]);
        assert_eq!(
            parse_header_pairs(&bytes),
            Some(vec![(":method", "POST"), ("x-empty", ""), ("a", "1")])
        );
        assert_eq!(parse_header_pairs(&serialise(&[])), Some(vec![]));
    }

    #[test]
    fn serialised_pairs_decode_to_themselves() {
        let pairs = [
            ("content-type", "application/json"),
            ("x-empty", ""),
            ("a", "1"),
        ];
        let bytes = serialize_header_pairs(&pairs);
        assert_eq!(
            bytes,
            serialise(&pairs.map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        );
        assert_eq!(parse_header_pairs(&bytes), Some(pairs.to_vec()));
    }

    #[test]
    fn skips_pairs_that_are_not_utf8() {
        let bytes = serialise(&[(b"x-bin", b"\xff\xfe"), (b"traceparent", b"v")]);
        assert_eq!(parse_header_pairs(&bytes), Some(vec![("traceparent", "v")]));
    }

    #[test]
    fn refuses_every_truncation_and_lying_lengths() {
        let bytes = serialise(&[(b"content-type", b"application/json"), (b"b", b"2")]);
        for cut in 0..bytes.len() {
            assert_eq!(parse_header_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut missing_nul = bytes.clone();
        let last = missing_nul.len() - 1;
        missing_nul[last] = b'x';
        assert_eq!(parse_header_pairs(&missing_nul), None);
        let mut huge_count = bytes.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header_pairs(&huge_count), None);
        let mut huge_name = bytes;
        huge_name[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header_pairs(&huge_name), None);
    }

    #[test]
    fn picks_the_first_value_and_lists_owned_headers_once() {
        let headers = RequestHeaders::from_pairs([
            (":method", "POST"),
            ("content-type", "application/json"),
            ("traceparent", "first"),
            ("traceparent", "second"),
            ("x-mcp-tool-name", "forged"),
            ("X-MCP-Tool-Name", "forged again"),
            ("x-envoy-decorator-operation", "forged"),
            ("Mcp-Session-Id", "s1"),
            ("mcp-protocol-version", "2025-06-18"),
            ("Mcp-Method", "tools/call"),
            ("mcp-name", "get_weather"),
            ("baggage", "k=v"),
            ("tracestate", "a=b"),
            ("content-length", "12"),
            ("x-other", "ignored"),
        ]);
        assert_eq!(headers.method.as_deref(), Some("POST"));
        assert_eq!(headers.content_type.as_deref(), Some("application/json"));
        assert_eq!(headers.content_length.as_deref(), Some("12"));
        assert_eq!(headers.traceparent.as_deref(), Some("first"));
        assert_eq!(headers.tracestate.as_deref(), Some("a=b"));
        assert_eq!(headers.baggage.as_deref(), Some("k=v"));
        assert_eq!(headers.session_id.as_deref(), Some("s1"));
        assert_eq!(headers.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(headers.mcp_method.as_deref(), Some("tools/call"));
        assert_eq!(headers.mcp_name.as_deref(), Some("get_weather"));
        assert_eq!(
            headers.owned_present,
            vec!["x-mcp-tool-name", "x-envoy-decorator-operation"]
        );
    }
}
