//! Second, deliberately plain readings of the W3C grammars, written from the specifications
//! (and the filter's documented choices where the specifications leave room) rather than from
//! the filter's parsers, so the fuzz targets can compare the two on every input.

use mcp_trace_filter::trace_context::TraceParent;

/// W3C Trace Context `traceparent`, plus the filter's rule that whatever a future version
/// appends is visible ASCII (it is forwarded verbatim).
pub fn traceparent(value: &str) -> Option<TraceParent> {
    let mut fields = value.splitn(5, '-');
    let version = fields.next()?;
    let trace_id = fields.next()?;
    let parent_id = fields.next()?;
    let flags = fields.next()?;
    let rest = fields.next();

    let lower_hex = |field: &str, len: usize| {
        field.len() == len && field.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    };
    if !(lower_hex(version, 2)
        && lower_hex(trace_id, 32)
        && lower_hex(parent_id, 16)
        && lower_hex(flags, 2))
    {
        return None;
    }
    let version = u8::from_str_radix(version, 16).ok()?;
    let trace = u128::from_str_radix(trace_id, 16).ok()?;
    let parent = u64::from_str_radix(parent_id, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if version == 255 || trace == 0 || parent == 0 {
        return None;
    }
    match rest {
        None => {}
        Some(_) if version == 0 => return None,
        Some(suffix) if !suffix.chars().all(|c| c.is_ascii_graphic()) => return None,
        Some(_) => {}
    }
    Some(TraceParent {
        version,
        trace_id: trace.to_be_bytes(),
        parent_id: parent.to_be_bytes(),
        flags,
    })
}

/// HTTP optional whitespace.
fn strip_ows(text: &str) -> &str {
    text.trim_start_matches([' ', '\t'])
        .trim_end_matches([' ', '\t'])
}

/// The list headers carry printable ASCII, with tab allowed only as whitespace.
fn list_chars_ok(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || (' '..='~').contains(&c))
}

/// W3C Trace Context `tracestate`: the members (key, value) in order. Empty members are
/// skipped, at most 32 members, keys unique.
pub fn tracestate(value: &str) -> Option<Vec<(String, String)>> {
    if !list_chars_ok(value) {
        return None;
    }
    let mut members: Vec<(String, String)> = Vec::new();
    for member in value.split(',').map(strip_ows).filter(|m| !m.is_empty()) {
        let equals = member.find('=')?;
        let (key, value) = (&member[..equals], &member[equals + 1..]);
        if !tracestate_key(key) || !tracestate_value(value) {
            return None;
        }
        if members.iter().any(|(k, _)| k == key) {
            return None;
        }
        members.push((key.to_owned(), value.to_owned()));
        if members.len() > 32 {
            return None;
        }
    }
    Some(members)
}

fn tracestate_key(key: &str) -> bool {
    let rest_ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-*/".contains(c))
    };
    let parts: Vec<&str> = key.split('@').collect();
    match parts.as_slice() {
        [simple] => {
            (1..=256).contains(&simple.len())
                && simple.starts_with(|c: char| c.is_ascii_lowercase())
                && rest_ok(simple)
        }
        [tenant, system] => {
            (1..=241).contains(&tenant.len())
                && tenant.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && rest_ok(tenant)
                && (1..=14).contains(&system.len())
                && system.starts_with(|c: char| c.is_ascii_lowercase())
                && rest_ok(system)
        }
        _ => false,
    }
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`, `nblk-chr` printable but not `,`
/// or `=`.
fn tracestate_value(value: &str) -> bool {
    let nblk = |c: char| ('!'..='~').contains(&c) && c != ',' && c != '=';
    match value.chars().last() {
        Some(last) => {
            value.len() <= 256 && nblk(last) && value.chars().all(|c| c == ' ' || nblk(c))
        }
        None => false,
    }
}

/// One W3C Baggage list-member: its key, and its text with the optional whitespace around
/// `=`, `;` and the member itself left out (`key=value;property;name=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageMember {
    pub key: String,
    pub text: String,
}

/// W3C Baggage: the members in order. At most 8192 bytes and 180 members; an empty (or
/// whitespace-only) value has no members, but an empty member inside a list is invalid.
pub fn baggage(value: &str) -> Option<Vec<BaggageMember>> {
    if value.len() > 8192 || !list_chars_ok(value) {
        return None;
    }
    if strip_ows(value).is_empty() {
        return Some(Vec::new());
    }
    let mut members = Vec::new();
    for member in value.split(',') {
        let mut pieces = member.split(';');
        let (key, value) = pieces.next()?.split_once('=')?;
        let (key, value) = (strip_ows(key), strip_ows(value));
        if !token(key) || !baggage_value(value) {
            return None;
        }
        let mut text = format!("{key}={value}");
        for property in pieces {
            let property = match property.split_once('=') {
                Some((k, v)) => {
                    let (k, v) = (strip_ows(k), strip_ows(v));
                    (token(k) && baggage_value(v)).then(|| format!("{k}={v}"))
                }
                None => {
                    let name = strip_ows(property);
                    token(name).then(|| name.to_owned())
                }
            }?;
            text.push(';');
            text.push_str(&property);
        }
        members.push(BaggageMember {
            key: key.to_owned(),
            text,
        });
        if members.len() > 180 {
            return None;
        }
    }
    Some(members)
}

/// RFC 7230 `token`.
fn token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// `*baggage-octet` where each `%` starts a two-hex-digit escape.
fn baggage_value(text: &str) -> bool {
    let octet = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\');
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !octet(b) {
            return false;
        }
        if b == b'%' {
            let escape_ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !escape_ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// MCP and the span conventions

/// Every method the MCP specification defines (2024-11-05 to 2026-07-28), requests and
/// notifications, as listed in its schema.
pub const MCP_METHODS: [&str; 31] = [
    "initialize",
    "notifications/initialized",
    "ping",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "logging/setLevel",
    "completion/complete",
    "tools/list",
    "tools/call",
    "notifications/tools/list_changed",
    "prompts/list",
    "prompts/get",
    "notifications/prompts/list_changed",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "sampling/createMessage",
    "elicitation/create",
    "notifications/elicitation/complete",
    "roots/list",
    "notifications/roots/list_changed",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/tasks/status",
];

/// A value as the filter may publish it: each control character (Unicode category Cc: U+0000
/// to U+001F and U+007F to U+009F) replaced by U+FFFD, then as many whole characters as fit in
/// 256 bytes.
pub fn sanitized(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        let c = match u32::from(c) {
            0x00..=0x1F | 0x7F..=0x9F => '\u{FFFD}',
            _ => c,
        };
        if out.len() + c.len_utf8() > 256 {
            return out;
        }
        out.push(c);
    }
    out
}

/// An SEP-2243 header value as text: `=?base64?<standard base64 of UTF-8>?=`, or else the
/// value itself. `None` for an encoded form that does not decode to UTF-8.
pub fn header_text(raw: &str) -> Option<String> {
    const PREFIX: &str = "=?base64?";
    const SUFFIX: &str = "?=";
    if raw.len() < PREFIX.len() + SUFFIX.len() || !raw.starts_with(PREFIX) || !raw.ends_with(SUFFIX)
    {
        return Some(raw.to_owned());
    }
    let encoded = &raw[PREFIX.len()..raw.len() - SUFFIX.len()];
    String::from_utf8(base64(encoded)?).ok()
}

/// RFC 4648 base64 with the standard alphabet; the `=` padding may be left out, but when
/// present it makes the length a multiple of four; the unused low bits of the last character
/// must be zero (the canonical encoding, RFC 4648 3.5).
fn base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    let (mut bits, mut held) = (0u32, 0u32);
    for byte in data.bytes() {
        let sextet = ALPHABET.iter().position(|a| *a == byte)?;
        bits = (bits << 6) | u32::try_from(sextet).ok()?;
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push(u8::try_from(bits >> held).ok()?);
            bits &= (1 << held) - 1;
        }
    }
    (bits == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_rfc_4648_vectors() {
        for (encoded, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zg", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(
                base64(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
        for bad in [
            "Z", "Zg=", "Zg===", "Zh==", "Zm9=v", "Zm9v====", "Zm 9v", "Zm9v-_",
        ] {
            assert_eq!(base64(bad), None, "{bad}");
        }
        assert_eq!(
            header_text("=?base64?bcOpdMOpbw==?=").as_deref(),
            Some("m\u{e9}t\u{e9}o")
        );
        assert_eq!(header_text("=?base64?/w==?="), None);
        assert_eq!(header_text("=?base64?=").as_deref(), Some("=?base64?="));
    }

    #[test]
    fn sanitizing_replaces_controls_and_bounds_bytes() {
        assert_eq!(
            sanitized("a\r\nb\u{7f}\u{85}\u{a0}"),
            "a\u{FFFD}\u{FFFD}b\u{FFFD}\u{FFFD}\u{a0}"
        );
        let long = "\u{e9}".repeat(200);
        assert_eq!(sanitized(&long).len(), 256);
        assert_eq!(sanitized(&format!("x{long}")).len(), 255);
    }
}
