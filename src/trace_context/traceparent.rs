//! The W3C `traceparent` header: `version-traceid-parentid-flags`.

use super::push_hex;

/// Length of the version-00 form, which is also the minimum for every later version.
const V00_LEN: usize = 55;

/// A parsed `traceparent`. Only the four fields version 00 defines are kept; whatever a future
/// version appends is validated for safety and then dropped, because we re-emit version 00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub version: u8,
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Some only when `value` is valid per W3C AND safe to forward verbatim as an HTTP header value.
    ///
    /// Surrounding whitespace is rejected rather than trimmed: HTTP stacks strip it before a
    /// header reaches an implementation, but our values come from JSON and are forwarded as is.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let bytes = value.as_bytes();
        let head = bytes.get(..V00_LEN)?;
        let tail = bytes.get(V00_LEN..)?;

        let [version] = decode_hex::<1>(head.get(0..2)?)?;
        expect_dash(head, 2)?;
        let trace_id = decode_hex::<16>(head.get(3..35)?)?;
        expect_dash(head, 35)?;
        let parent_id = decode_hex::<8>(head.get(36..52)?)?;
        expect_dash(head, 52)?;
        let [flags] = decode_hex::<1>(head.get(53..55)?)?;

        // 0xff is reserved as forever invalid so parsers can rely on the version byte.
        if version == 0xff {
            return None;
        }
        if trace_id == [0u8; 16] || parent_id == [0u8; 8] {
            return None;
        }
        if version == 0 {
            // Version 00 is fully specified: nothing may follow the flags.
            if !tail.is_empty() {
                return None;
            }
        } else if !tail.is_empty() {
            // A later version may append fields, but only after a dash, and (since we forward the
            // original text) only as visible ASCII: no space, tab, CR, LF, NUL or UTF-8.
            if tail.first() != Some(&b'-') || !tail.iter().all(|b| (0x21..=0x7E).contains(b)) {
                return None;
            }
        }

        Some(TraceParent {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The W3C `sampled` flag: the caller recorded this trace and expects downstream to as well.
    pub fn is_sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// Always the version-00 form `00-<32hex>-<16hex>-<2hex>` (55 bytes): the spec tells a
    /// participant to emit the highest version it fully understands, which for us is 00.
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(V00_LEN);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.parent_id);
        out.push('-');
        push_hex(&mut out, &[self.flags]);
        out
    }

    /// Same trace, new parent span: what a participant sends after starting its own span.
    /// The caller must supply a non-zero id; an all-zero one would make the result invalid.
    pub fn with_parent_id(&self, parent_id: [u8; 8]) -> TraceParent {
        TraceParent { parent_id, ..*self }
    }
}

/// Requires a `-` at `index`; the separators are fixed, so anything else means a malformed field.
fn expect_dash(bytes: &[u8], index: usize) -> Option<()> {
    (bytes.get(index) == Some(&b'-')).then_some(())
}

/// Decodes exactly `2 * N` lowercase hex digits. Uppercase is invalid in `traceparent`.
fn decode_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (lower_hex_value(*hi)?, lower_hex_value(*lo)?),
            _ => return None,
        };
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "b7ad6b7169203331";

    fn tp(version: &str, flags: &str) -> String {
        format!("{version}-{TRACE}-{PARENT}-{flags}")
    }

    #[test]
    fn parses_version_00() {
        let parsed = TraceParent::parse(&tp("00", "01"));
        let Some(parsed) = parsed else {
            unreachable!("valid traceparent rejected")
        };
        assert_eq!(parsed.version, 0);
        assert_eq!(
            parsed.trace_id,
            [
                0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
                0x31, 0x9c
            ]
        );
        assert_eq!(
            parsed.parent_id,
            [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
        assert_eq!(parsed.flags, 1);
        assert!(parsed.is_sampled());
        assert_eq!(parsed.to_header_value(), tp("00", "01"));
    }

    #[test]
    fn any_flags_byte_is_valid() {
        for flags in ["00", "01", "02", "03", "09", "7f", "fe", "ff"] {
            let parsed = TraceParent::parse(&tp("00", flags));
            assert!(parsed.is_some(), "{flags}");
            assert_eq!(parsed.map(|p| p.to_header_value()), Some(tp("00", flags)));
        }
        assert_eq!(
            TraceParent::parse(&tp("00", "00")).map(|p| p.is_sampled()),
            Some(false)
        );
        assert_eq!(
            TraceParent::parse(&tp("00", "02")).map(|p| p.is_sampled()),
            Some(false)
        );
        assert_eq!(
            TraceParent::parse(&tp("00", "03")).map(|p| p.is_sampled()),
            Some(true)
        );
    }

    #[test]
    fn version_ff_is_invalid() {
        assert_eq!(TraceParent::parse(&tp("ff", "01")), None);
        assert_eq!(TraceParent::parse(&format!("{}-x", tp("ff", "01"))), None);
    }

    #[test]
    fn uppercase_hex_is_invalid_anywhere() {
        assert_eq!(TraceParent::parse(&tp("0A", "01")), None);
        assert_eq!(TraceParent::parse(&tp("00", "0F")), None);
        assert_eq!(
            TraceParent::parse(&format!("00-{}-{PARENT}-01", TRACE.to_uppercase())),
            None
        );
        assert_eq!(
            TraceParent::parse(&format!("00-{TRACE}-{}-01", PARENT.to_uppercase())),
            None
        );
        assert_eq!(TraceParent::parse(&tp("CC", "01")), None);
    }

    #[test]
    fn zero_ids_are_invalid() {
        let zero_trace = format!("00-{}-{PARENT}-01", "0".repeat(32));
        let zero_parent = format!("00-{TRACE}-{}-01", "0".repeat(16));
        assert_eq!(TraceParent::parse(&zero_trace), None);
        assert_eq!(TraceParent::parse(&zero_parent), None);
        // Same rule for future versions: the ids keep their meaning.
        assert_eq!(
            TraceParent::parse(&zero_trace.replacen("00", "01", 1)),
            None
        );
    }

    #[test]
    fn version_00_must_be_exactly_55_bytes() {
        assert_eq!(TraceParent::parse(&format!("{}-", tp("00", "01"))), None);
        assert_eq!(TraceParent::parse(&format!("{}-abc", tp("00", "01"))), None);
        assert_eq!(TraceParent::parse(&format!("{}.", tp("00", "01"))), None);
        let short = tp("00", "01");
        assert_eq!(TraceParent::parse(short.get(..54).unwrap_or("")), None);
    }

    #[test]
    fn future_versions() {
        let plain = TraceParent::parse(&tp("cc", "01"));
        assert_eq!(plain.map(|p| p.version), Some(0xcc));
        assert_eq!(plain.map(|p| p.to_header_value()), Some(tp("00", "01")));

        let with_suffix =
            TraceParent::parse(&format!("{}-what-the-future-will-be-like", tp("cc", "01")));
        assert_eq!(with_suffix, plain);
        // A bare dash is a (degenerate) suffix that still starts with the separator.
        assert!(TraceParent::parse(&format!("{}-", tp("01", "00"))).is_some());
        assert!(TraceParent::parse(&format!("{}-x~!#", tp("fe", "00"))).is_some());

        // Suffix must start with a dash.
        assert_eq!(
            TraceParent::parse(&format!("{}.what", tp("cc", "01"))),
            None
        );
        assert_eq!(TraceParent::parse(&format!("{}x", tp("cc", "01"))), None);
        // Flags are still exactly two hex digits.
        assert_eq!(TraceParent::parse(&format!("{}1", tp("cc", "01"))), None);
    }

    #[test]
    fn future_version_suffix_cannot_inject_headers() {
        for bad in [
            "-a\r\nx-evil: 1",
            "-a\nb",
            "-a\rb",
            "-a\0b",
            "-a b",
            "-a\tb",
            "-\u{e9}",
            "-a\u{7f}",
            " ",
            "\r\n",
        ] {
            let value = format!("{}{bad}", tp("01", "01"));
            assert_eq!(TraceParent::parse(&value), None, "{value:?}");
        }
    }

    #[test]
    fn injection_in_fixed_fields_is_invalid() {
        let good = tp("00", "01");
        for (index, byte) in good.char_indices() {
            for bad in ['\r', '\n', '\0', ' ', '\t', 'g', 'A', '.', '\u{e9}'] {
                if bad == byte {
                    continue;
                }
                let mut mutated = String::new();
                mutated.push_str(good.get(..index).unwrap_or(""));
                mutated.push(bad);
                mutated.push_str(good.get(index + 1..).unwrap_or(""));
                assert_eq!(TraceParent::parse(&mutated), None, "{mutated:?}");
            }
        }
    }

    #[test]
    fn surrounding_whitespace_is_invalid() {
        let good = tp("00", "01");
        for value in [
            format!(" {good}"),
            format!("{good} "),
            format!("\t{good}"),
            format!("{good}\t"),
            format!("{good}\r\n"),
            format!("\t {good} \t"),
        ] {
            assert_eq!(TraceParent::parse(&value), None, "{value:?}");
        }
    }

    #[test]
    fn wrong_field_lengths_are_invalid() {
        for value in [
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "000-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319cc-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033311-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-001",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            "",
            "-",
        ] {
            assert_eq!(TraceParent::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn with_parent_id_keeps_trace() {
        let Some(parsed) = TraceParent::parse(&tp("00", "01")) else {
            unreachable!("valid traceparent rejected")
        };
        let child = parsed.with_parent_id([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_eq!(child.flags, parsed.flags);
        assert_eq!(child.version, parsed.version);
        assert_eq!(
            child.to_header_value(),
            format!("00-{TRACE}-0102030405060708-01")
        );
    }

    #[test]
    fn header_value_pads_with_zeros() {
        let value = TraceParent {
            version: 0,
            trace_id: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            parent_id: [0, 0, 0, 0, 0, 0, 0, 0x0a],
            flags: 0,
        }
        .to_header_value();
        assert_eq!(
            value,
            "00-00000000000000000000000000000001-000000000000000a-00"
        );
        assert_eq!(value.len(), V00_LEN);
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in ".{0,120}") {
            let _ = TraceParent::parse(&s);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = TraceParent::parse(&s);
        }

        #[test]
        fn formatted_round_trips(
            version in 0u8..0xff,
            trace_id in any::<[u8; 16]>(),
            parent_id in any::<[u8; 8]>(),
            flags in any::<u8>(),
        ) {
            prop_assume!(trace_id != [0u8; 16] && parent_id != [0u8; 8]);
            let original = TraceParent { version, trace_id, parent_id, flags };
            let header = original.to_header_value();
            prop_assert_eq!(header.len(), V00_LEN);
            let reparsed = TraceParent::parse(&header);
            prop_assert_eq!(reparsed, Some(TraceParent { version: 0, ..original }));
        }

        #[test]
        fn accepted_input_is_header_safe(s in "[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[\\x00-\\x7f]{0,20})?") {
            if TraceParent::parse(&s).is_some() {
                prop_assert!(s.bytes().all(|b| (0x21..=0x7E).contains(&b)));
            }
        }

        #[test]
        fn future_suffix_of_visible_ascii_is_accepted(
            version in 1u8..0xff,
            suffix in "[\\x21-\\x7e]{0,40}",
        ) {
            let value = format!("{version:02x}-{TRACE}-{PARENT}-01-{suffix}");
            prop_assert!(TraceParent::parse(&value).is_some());
        }
    }
}
