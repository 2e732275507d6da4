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

/// W3C Baggage: the keys in order. At most 8192 bytes and 180 members; an empty (or
/// whitespace-only) value has no members, but an empty member inside a list is invalid.
pub fn baggage(value: &str) -> Option<Vec<String>> {
    if value.len() > 8192 || !list_chars_ok(value) {
        return None;
    }
    if strip_ows(value).is_empty() {
        return Some(Vec::new());
    }
    let mut keys = Vec::new();
    for member in value.split(',') {
        let mut pieces = member.split(';');
        let (key, value) = pieces.next()?.split_once('=')?;
        let key = strip_ows(key);
        if !token(key) || !baggage_value(strip_ows(value)) {
            return None;
        }
        for property in pieces {
            let ok = match property.split_once('=') {
                Some((k, v)) => token(strip_ows(k)) && baggage_value(strip_ows(v)),
                None => token(strip_ows(property)),
            };
            if !ok {
                return None;
            }
        }
        keys.push(key.to_owned());
        if keys.len() > 180 {
            return None;
        }
    }
    Some(keys)
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
