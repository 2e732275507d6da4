//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage parsing.
//!
//! Every value accepted here is about to be written into an upstream HTTP header, so the
//! parsers are strict twice over: they follow the W3C grammars, and they refuse any byte that
//! could smuggle a header (CR, LF, NUL, non-ASCII). The `to_header_value` methods only ever
//! emit bytes in `0x20..=0x7E`.

pub mod baggage;
pub mod traceparent;
pub mod tracestate;

pub use baggage::Baggage;
pub use traceparent::TraceParent;
pub use tracestate::TraceState;

/// `bytes` as lowercase hex: the form of the ids in `traceparent` and in OTLP/JSON.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Through a stack buffer in one append: a span carries up to five ids, and pushing them a
    // character at a time was a good share of its encoding.
    let mut buffer = [0u8; 64];
    for chunk in bytes.chunks(32) {
        for (pair, byte) in buffer.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        let hex = buffer.get(..chunk.len() * 2).unwrap_or_default();
        out.push_str(std::str::from_utf8(hex).unwrap_or_default());
    }
}

/// Optional whitespace as HTTP defines it (RFC 7230 `OWS`): space or horizontal tab.
fn is_ows(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Strips `OWS` from both ends; list grammars allow it around members.
fn trim_ows(value: &str) -> &str {
    value.trim_matches(|c| c == ' ' || c == '\t')
}

/// Bytes the list headers may carry on input: printable ASCII plus tab (tab only as `OWS`).
/// Anything else (CR, LF, NUL, DEL, non-ASCII) is refused before any further parsing.
fn is_list_input_byte(byte: u8) -> bool {
    byte == b'\t' || (0x20..=0x7E).contains(&byte)
}

/// Whether an already validated list value can be forwarded byte for byte: it must hold no tab
/// (which we never emit) and no surrounding whitespace (which a header value must not carry).
fn forwardable_verbatim(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.contains(&b'\t')
        && !bytes.first().is_some_and(|b| is_ows(*b))
        && !bytes.last().is_some_and(|b| is_ows(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_ows_strips_space_and_tab_only() {
        assert_eq!(trim_ows(" \t a=1 \t"), "a=1");
        assert_eq!(trim_ows("\r a=1"), "\r a=1");
        assert_eq!(trim_ows(""), "");
    }

    #[test]
    fn verbatim_rule() {
        assert!(forwardable_verbatim("a=1, b=2"));
        assert!(forwardable_verbatim(""));
        assert!(!forwardable_verbatim(" a=1"));
        assert!(!forwardable_verbatim("a=1 "));
        assert!(!forwardable_verbatim("a=1,\tb=2"));
    }

    #[test]
    fn list_input_bytes() {
        assert!(is_list_input_byte(b'\t'));
        assert!(is_list_input_byte(b' '));
        assert!(is_list_input_byte(b'~'));
        for bad in [0x00u8, b'\r', b'\n', 0x7F, 0x80, 0xFF] {
            assert!(!is_list_input_byte(bad), "{bad:#x}");
        }
    }
}
