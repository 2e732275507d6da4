//! The W3C `tracestate` header: an ordered list of vendor `key=value` members.

use super::{forwardable_verbatim, is_list_input_byte, trim_ows};

/// The spec caps a `tracestate` at 32 list-members; more makes the whole header invalid.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Most bytes of `tracestate` the filter forwards. W3C Trace Context asks participants to
/// propagate at least 512 characters and says how to cut a longer list; a valid one can reach
/// about 16 KiB, past many upstreams' header line limits.
pub const MAX_FORWARDED_LEN: usize = 512;

/// Members longer than this are the first to go when a list is cut (W3C Trace Context §3.3.1.5).
const LONG_MEMBER_LEN: usize = 128;

/// Longest value the spec allows (`0*255(chr) nblk-chr`).
const MAX_VALUE_LEN: usize = 256;

/// A validated `tracestate`, members in their original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
    /// The input itself when it can go upstream byte for byte; keeps vendors' exact formatting.
    verbatim: Option<String>,
}

impl TraceState {
    /// None when invalid. An input consisting only of empty members / whitespace parses to a TraceState with zero members.
    ///
    /// Invalid means: a byte outside printable ASCII (tab allowed only as whitespace around
    /// members), a malformed key or value, a duplicate key, or more than 32 members. The spec
    /// says an invalid `tracestate` must be discarded whole, so there is no partial result.
    pub fn parse(value: &str) -> Option<TraceState> {
        if !value.bytes().all(is_list_input_byte) {
            return None;
        }
        let mut members: Vec<(String, String)> = Vec::new();
        for raw in value.split(',') {
            let member = trim_ows(raw);
            // The grammar explicitly allows empty list-members ("a=1,,b=2"); they carry nothing.
            if member.is_empty() {
                continue;
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                return None;
            }
            let (key, member_value) = member.split_once('=')?;
            if !is_valid_key(key) || !is_valid_value(member_value) {
                return None;
            }
            if members.iter().any(|(existing, _)| existing == key) {
                return None;
            }
            members.push((key.to_owned(), member_value.to_owned()));
        }
        let verbatim = forwardable_verbatim(value).then(|| value.to_owned());
        Some(TraceState { members, verbatim })
    }

    /// Number of non-empty members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when nothing worth forwarding was present (empty input, only commas/whitespace).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members as `(key, value)` in header order (leftmost is the most recent vendor).
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// What to forward: the original input unchanged when it contains no tab and no leading/trailing whitespace;
    /// otherwise the members re-joined with ",". Never contains bytes outside 0x20..=0x7E.
    ///
    /// An empty `TraceState` may still yield a non-empty string (e.g. `","`), which is valid but
    /// useless; callers should check `is_empty` before sending the header at all.
    pub fn to_header_value(&self) -> String {
        match &self.verbatim {
            Some(original) => original.clone(),
            None => {
                let mut out = String::new();
                for (index, (key, value)) in self.members.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(key);
                    out.push('=');
                    out.push_str(value);
                }
                out
            }
        }
    }
}

impl TraceState {
    /// What to forward within `max` bytes: the whole value when it fits; otherwise the members
    /// re-joined after dropping those over 128 characters, then members from the right (the
    /// oldest vendors) until the list fits. `None` when no member is left.
    pub fn to_bounded_header_value(&self, max: usize) -> Option<String> {
        let whole = self.to_header_value();
        if whole.len() <= max && !self.is_empty() {
            return Some(whole);
        }
        let mut kept: Vec<&(String, String)> = self
            .members
            .iter()
            .filter(|(key, value)| key.len() + 1 + value.len() <= LONG_MEMBER_LEN)
            .collect();
        let joined_len = |members: &[&(String, String)]| -> usize {
            members
                .iter()
                .map(|(k, v)| k.len() + 1 + v.len())
                .sum::<usize>()
                + members.len().saturating_sub(1)
        };
        while !kept.is_empty() && joined_len(&kept) > max {
            kept.pop();
        }
        if kept.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(joined_len(&kept));
        for (index, (key, value)) in kept.into_iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        Some(out)
    }
}

/// `simple-key` or `tenant-id "@" system-id`; the length caps keep a multi-tenant key within
/// the same 256 characters as a simple one.
fn is_valid_key(key: &str) -> bool {
    match key.split_once('@') {
        None => is_key_part(key, 256, |b| b.is_ascii_lowercase()),
        Some((tenant, system)) => {
            is_key_part(tenant, 241, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit()
            }) && is_key_part(system, 14, |b| b.is_ascii_lowercase())
        }
    }
}

/// One key segment: a constrained first character, then `[a-z0-9_\-*/]`; a second `@` fails here.
fn is_key_part(part: &str, max_len: usize, first_ok: fn(u8) -> bool) -> bool {
    let bytes = part.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= max_len && first_ok(*first) && rest.iter().all(|b| is_key_char(*b))
        }
        None => false,
    }
}

fn is_key_char(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'_' | b'-' | b'*' | b'/')
}

/// 1..=256 printable ASCII characters other than `,` and `=`, not ending in a space.
/// Leading spaces are part of the value (only the list separators carry OWS).
fn is_valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_VALUE_LEN
        && bytes
            .iter()
            .all(|b| (0x20..=0x7E).contains(b) && *b != b',' && *b != b'=')
        && bytes.last() != Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members_of(value: &str) -> Option<Vec<(String, String)>> {
        TraceState::parse(value).map(|state| {
            state
                .members()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn long_lists_are_cut_the_w3c_way() {
        let short = TraceState::parse("a=1, b=2").and_then(|s| s.to_bounded_header_value(512));
        assert_eq!(short.as_deref(), Some("a=1, b=2"));
        // A 200-character member goes first, then members from the right.
        let long_value = "v".repeat(198);
        let text = format!("a=1,big={long_value},c=3,d=4");
        let state = TraceState::parse(&text);
        let cut = state.as_ref().and_then(|s| s.to_bounded_header_value(9));
        assert_eq!(cut.as_deref(), Some("a=1,c=3"));
        let cut = state.as_ref().and_then(|s| s.to_bounded_header_value(11));
        assert_eq!(cut.as_deref(), Some("a=1,c=3,d=4"));
        let only_long = TraceState::parse(&format!("big={long_value}"));
        assert_eq!(only_long.and_then(|s| s.to_bounded_header_value(100)), None);
        assert_eq!(
            TraceState::parse(",").and_then(|s| s.to_bounded_header_value(512)),
            None
        );
        // The largest valid list (32 members of 256-character values) is cut to the bound.
        let huge = (0..32)
            .map(|i| format!("k{i}={}", "x".repeat(100)))
            .collect::<Vec<_>>()
            .join(",");
        let cut =
            TraceState::parse(&huge).and_then(|s| s.to_bounded_header_value(MAX_FORWARDED_LEN));
        let cut = cut.unwrap_or_default();
        assert!(
            cut.len() <= MAX_FORWARDED_LEN && cut.starts_with("k0="),
            "{}",
            cut.len()
        );
        assert!(TraceState::parse(&cut).is_some());
    }

    fn numbered(count: usize) -> String {
        (1..=count)
            .map(|i| format!("k{i:02}={i}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn simple_list() {
        assert_eq!(
            members_of("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            Some(pairs(&[
                ("rojo", "00f067aa0ba902b7"),
                ("congo", "t61rcWkgMzE")
            ]))
        );
        let state = TraceState::parse("foo=1,bar=2");
        assert_eq!(state.as_ref().map(TraceState::len), Some(2));
        assert_eq!(
            state.map(|s| s.to_header_value()),
            Some("foo=1,bar=2".to_owned())
        );
    }

    #[test]
    fn empty_and_whitespace_only_inputs_have_zero_members() {
        for value in ["", " ", "\t", ",", ",,", " , \t, ", "\t,\t"] {
            let state = TraceState::parse(value);
            assert_eq!(
                state.as_ref().map(TraceState::is_empty),
                Some(true),
                "{value:?}"
            );
            assert_eq!(state.as_ref().map(TraceState::len), Some(0), "{value:?}");
        }
        assert_eq!(
            TraceState::parse(" \t ").map(|s| s.to_header_value()),
            Some(String::new())
        );
    }

    #[test]
    fn empty_members_are_ignored() {
        assert_eq!(
            members_of("a=1,,b=2,"),
            Some(pairs(&[("a", "1"), ("b", "2")]))
        );
        assert_eq!(members_of(",a=1"), Some(pairs(&[("a", "1")])));
    }

    #[test]
    fn whitespace_around_members() {
        let expected = Some(pairs(&[("foo", "1"), ("bar", "2"), ("baz", "3")]));
        assert_eq!(members_of("foo=1 \t , \t bar=2, \t baz=3"), expected);
        assert_eq!(members_of("foo=1\t \t,\t \tbar=2,\t \tbaz=3"), expected);
        for value in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(members_of(value), Some(pairs(&[("foo", "1")])), "{value:?}");
        }
    }

    #[test]
    fn header_value_verbatim_or_rejoined() {
        let spaced = "foo=1 , bar=2";
        assert_eq!(
            TraceState::parse(spaced).map(|s| s.to_header_value()),
            Some(spaced.to_owned())
        );
        assert_eq!(
            TraceState::parse("a=1,,b=2").map(|s| s.to_header_value()),
            Some("a=1,,b=2".to_owned())
        );
        for value in [
            " foo=1,bar=2",
            "foo=1,bar=2 ",
            "foo=1,\tbar=2",
            "\tfoo=1 \t,bar=2\t",
        ] {
            assert_eq!(
                TraceState::parse(value).map(|s| s.to_header_value()),
                Some("foo=1,bar=2".to_owned()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn value_may_start_with_space_but_not_end_with_one() {
        assert_eq!(members_of("foo= x"), Some(pairs(&[("foo", " x")])));
        // A trailing space is list whitespace, not part of the value.
        assert_eq!(members_of("foo=x "), Some(pairs(&[("foo", "x")])));
        // Only spaces after "=" leaves an empty value.
        assert_eq!(members_of("foo= "), None);
        assert_eq!(members_of("foo=  ,bar=1"), None);
    }

    #[test]
    fn value_rules() {
        assert_eq!(members_of("foo="), None);
        assert_eq!(members_of("foo=,bar=3"), None);
        assert_eq!(members_of("foo=bar=baz"), None);
        assert_eq!(members_of("foo=a\tb"), None);
        assert!(members_of(&format!("foo={}", "v".repeat(256))).is_some());
        assert_eq!(members_of(&format!("foo={}", "v".repeat(257))), None);
        let all_allowed: String = (0x20u8..=0x7E)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect();
        assert_eq!(
            members_of(&format!("k={all_allowed}")),
            Some(pairs(&[("k", all_allowed.as_str())]))
        );
    }

    #[test]
    fn key_rules() {
        for good in [
            "a",
            "foo",
            "a0_-*/",
            "0tenant@sys",
            "tenant@s",
            "t_-*/9@s_-*/9",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/",
        ] {
            assert!(is_valid_key(good), "{good}");
        }
        for bad in [
            "",
            "FOO",
            "Foo",
            "foo.bar",
            "foo ",
            " foo",
            "0foo",
            "_foo",
            "foo@",
            "@foo",
            "foo@@bar",
            "foo@bar@baz",
            "foo@0bar",
            "foo@Bar",
            "f\u{e9}",
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn key_length_limits() {
        assert!(is_valid_key(&"z".repeat(256)));
        assert!(!is_valid_key(&"z".repeat(257)));
        assert!(is_valid_key(&format!(
            "{}@{}",
            "t".repeat(241),
            "v".repeat(14)
        )));
        assert!(!is_valid_key(&format!("{}@v", "t".repeat(242))));
        assert!(!is_valid_key(&format!("t@{}", "v".repeat(15))));
    }

    #[test]
    fn member_count_limit() {
        assert_eq!(TraceState::parse(&numbered(32)).map(|s| s.len()), Some(32));
        assert_eq!(TraceState::parse(&numbered(33)), None);
        // Empty members do not count towards the limit.
        let padded = format!("{},,,", numbered(32));
        assert_eq!(TraceState::parse(&padded).map(|s| s.len()), Some(32));
    }

    #[test]
    fn duplicate_keys_are_invalid() {
        assert_eq!(TraceState::parse("foo=1,foo=1"), None);
        assert_eq!(TraceState::parse("foo=1,foo=2"), None);
        assert_eq!(TraceState::parse("foo=1, bar=2 ,foo=3"), None);
        assert!(TraceState::parse("foo=1,foo@bar=2").is_some());
    }

    #[test]
    fn member_without_equals_is_invalid() {
        assert_eq!(TraceState::parse("foobarbaz"), None);
        assert_eq!(TraceState::parse("foo=1,bar"), None);
        assert_eq!(TraceState::parse("=1"), None);
    }

    #[test]
    fn injection_bytes_are_invalid() {
        for value in [
            "foo=1\r\nx-evil: 1",
            "foo=1\n",
            "\r\nfoo=1",
            "foo=1\0",
            "foo=a\u{7f}",
            "foo=caf\u{e9}",
            "foo=1,\u{a0}bar=2",
            "foo=1\x0b",
        ] {
            assert_eq!(TraceState::parse(value), None, "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in "\\PC{0,200}") {
            let _ = TraceState::parse(&s);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = TraceState::parse(&s);
        }

        #[test]
        fn accepted_output_is_header_safe(s in "[a-z0-9@=, \\t\\r\\n\\x00!~*/_-]{0,80}") {
            if let Some(state) = TraceState::parse(&s) {
                let out = state.to_header_value();
                prop_assert!(out.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{:?}", out);
                prop_assert!(!out.starts_with(' ') && !out.ends_with(' '));
                // What we emit parses back to the same members.
                let again = TraceState::parse(&out);
                prop_assert_eq!(again.map(|a| a.members), Some(state.members));
            }
        }

        #[test]
        fn generated_lists_round_trip(
            entries in proptest::collection::btree_map("[a-z][a-z0-9_*/-]{0,10}", "[!-+\\--<>-~]{1,12}", 0..=32),
            sep in "[ \\t]{0,2},[ \\t]{0,2}",
        ) {
            let value = entries
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(&sep);
            let state = TraceState::parse(&value);
            prop_assert!(state.is_some(), "{:?}", value);
            let members: Vec<(String, String)> = entries.into_iter().collect();
            prop_assert_eq!(state.map(|s| s.members), Some(members));
        }
    }
}
