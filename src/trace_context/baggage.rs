//! The W3C `baggage` header: application key/value pairs that travel with a trace.
//!
//! Values are kept percent-encoded exactly as received: we only relay them, so decoding would
//! just create a chance to re-encode differently.

use super::{forwardable_verbatim, is_list_input_byte, trim_ows};

/// The spec's total-size cap for a `baggage` header; bigger input is rejected, not truncated.
pub const MAX_BAGGAGE_BYTES: usize = 8192;
/// The spec's cap on list-members (`list-member 0*179( OWS "," OWS list-member )`).
pub const MAX_BAGGAGE_MEMBERS: usize = 180;

/// One list-member: its key for lookups, and its normalised text (`key=value;prop...`, no
/// optional whitespace) for re-joining when the original cannot be forwarded as is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: String,
    text: String,
}

/// A validated `baggage`, members in their original order. Duplicate keys are allowed by the
/// spec and kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<Member>,
    /// The input itself when it can go upstream byte for byte.
    verbatim: Option<String>,
}

impl Baggage {
    /// None when invalid (grammar, > 8192 bytes total, > 180 members).
    ///
    /// An input that is empty or only whitespace has zero members. Empty list-members inside a
    /// non-empty header (`"a=1,,b=2"`, a trailing `","`) are invalid: unlike `tracestate`, the
    /// baggage grammar has no empty member, and forwarding such a value verbatim would put a
    /// non-conforming header on the wire.
    pub fn parse(value: &str) -> Option<Baggage> {
        if value.len() > MAX_BAGGAGE_BYTES || !value.bytes().all(is_list_input_byte) {
            return None;
        }
        let mut members = Vec::new();
        if !trim_ows(value).is_empty() {
            for raw in value.split(',') {
                if members.len() == MAX_BAGGAGE_MEMBERS {
                    return None;
                }
                members.push(parse_member(trim_ows(raw))?);
            }
        }
        let verbatim = forwardable_verbatim(value).then(|| value.to_owned());
        Some(Baggage { members, verbatim })
    }

    /// Number of list-members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there is nothing to forward.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member keys in order; a key appears once per member carrying it.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.key.as_str())
    }

    /// What to forward: the original input unchanged when it contains no tab and no
    /// leading/trailing whitespace; otherwise the normalised members re-joined with ",".
    /// Never contains bytes outside 0x20..=0x7E.
    pub fn to_header_value(&self) -> String {
        match &self.verbatim {
            Some(original) => original.clone(),
            None => join(&self.members),
        }
    }

    /// Union: every member of `winner`, then members of `other` whose key is not in `winner`,
    /// added in order only while the result stays within 180 members and 8192 bytes.
    ///
    /// Adding stops at the first member of `other` that would break a limit, so what survives
    /// is always a prefix of `other`'s eligible members (the spec forbids partial members, and
    /// a prefix keeps `other`'s own priority order). Sizes are measured on the re-joined form.
    pub fn merge(winner: &Baggage, other: &Baggage) -> Baggage {
        if winner.is_empty() {
            return other.clone();
        }
        let mut members = winner.members.clone();
        let mut size = joined_len(&members);
        for candidate in &other.members {
            if winner.members.iter().any(|m| m.key == candidate.key) {
                continue;
            }
            let grown = size + 1 + candidate.text.len();
            if members.len() >= MAX_BAGGAGE_MEMBERS || grown > MAX_BAGGAGE_BYTES {
                break;
            }
            members.push(candidate.clone());
            size = grown;
        }
        if members.len() == winner.members.len() {
            // Nothing added: keep the winner exactly, including its verbatim form.
            return winner.clone();
        }
        Baggage {
            members,
            verbatim: None,
        }
    }
}

/// `key OWS "=" OWS value *( OWS ";" OWS property )`, input already trimmed of outer OWS.
fn parse_member(member: &str) -> Option<Member> {
    let mut parts = member.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let key = trim_ows(key);
    let value = trim_ows(value);
    if !is_token(key) || !is_valid_value(value) {
        return None;
    }
    let mut text = format!("{key}={value}");
    for raw in parts {
        let property = trim_ows(raw);
        text.push(';');
        match property.split_once('=') {
            Some((prop_key, prop_value)) => {
                let prop_key = trim_ows(prop_key);
                let prop_value = trim_ows(prop_value);
                if !is_token(prop_key) || !is_valid_value(prop_value) {
                    return None;
                }
                text.push_str(prop_key);
                text.push('=');
                text.push_str(prop_value);
            }
            None => {
                if !is_token(property) {
                    return None;
                }
                text.push_str(property);
            }
        }
    }
    Some(Member {
        key: key.to_owned(),
        text,
    })
}

fn join(members: &[Member]) -> String {
    let mut out = String::with_capacity(joined_len(members));
    for (index, member) in members.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&member.text);
    }
    out
}

fn joined_len(members: &[Member]) -> usize {
    members.iter().map(|m| m.text.len()).sum::<usize>() + members.len().saturating_sub(1)
}

/// RFC 7230 `token`: one or more `tchar`.
fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(is_tchar)
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// `*baggage-octet`, where every `%` must start a `%XX` escape (the value is URL-encoded UTF-8).
/// An empty value is allowed by the grammar.
fn is_valid_value(value: &str) -> bool {
    let mut bytes = value.bytes();
    while let Some(byte) = bytes.next() {
        if !is_baggage_octet(byte) {
            return false;
        }
        if byte == b'%' {
            match (bytes.next(), bytes.next()) {
                (Some(hi), Some(lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {}
                _ => return false,
            }
        }
    }
    true
}

/// Printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys_of(value: &str) -> Option<Vec<String>> {
        Baggage::parse(value).map(|b| b.keys().map(str::to_owned).collect())
    }

    fn header(value: &str) -> Option<String> {
        Baggage::parse(value).map(|b| b.to_header_value())
    }

    fn parsed(value: &str) -> Baggage {
        match Baggage::parse(value) {
            Some(baggage) => baggage,
            None => unreachable!("test input {value:?} should parse"),
        }
    }

    fn numbered(count: usize, prefix: &str) -> String {
        (0..count)
            .map(|i| format!("{prefix}{i:03}=v"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn simple_members() {
        assert_eq!(
            keys_of("userId=alice,serverNode=DF%2028,isProduction=false"),
            Some(vec![
                "userId".to_owned(),
                "serverNode".to_owned(),
                "isProduction".to_owned()
            ])
        );
        assert_eq!(Baggage::parse("a=1").map(|b| b.len()), Some(1));
    }

    #[test]
    fn empty_and_whitespace_only_have_zero_members() {
        for value in ["", " ", "\t", " \t "] {
            let baggage = Baggage::parse(value);
            assert_eq!(
                baggage.as_ref().map(Baggage::is_empty),
                Some(true),
                "{value:?}"
            );
        }
        assert_eq!(header(" \t"), Some(String::new()));
    }

    #[test]
    fn empty_members_are_invalid() {
        for value in [",", ",,", "a=1,,b=2", "a=1,", ",a=1", "a=1, ,b=2", "a=1,\t"] {
            assert_eq!(Baggage::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn whitespace_is_optional_around_separators() {
        let value = " a = 1 ; p1 = x ;p2 , b\t=\t2 ";
        assert_eq!(keys_of(value), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(header(value), Some("a=1;p1=x;p2,b=2".to_owned()));
        // Spaces only (no tab, no surrounding whitespace): forwarded untouched.
        assert_eq!(header("a = 1, b=2"), Some("a = 1, b=2".to_owned()));
        assert_eq!(header("a=1,\tb=2"), Some("a=1,b=2".to_owned()));
        assert_eq!(header("a=1 "), Some("a=1".to_owned()));
    }

    #[test]
    fn properties() {
        assert_eq!(
            header("\tkey1=value1;property1;property2=p2, key2=v2"),
            Some("key1=value1;property1;property2=p2,key2=v2".to_owned())
        );
        assert!(Baggage::parse("k=v;p").is_some());
        assert!(Baggage::parse("k=v;p=").is_some());
        assert!(Baggage::parse("k=v;p=%41;q").is_some());
        assert_eq!(Baggage::parse("k=v;"), None);
        assert_eq!(Baggage::parse("k=v;;p"), None);
        assert_eq!(Baggage::parse("k=v;=x"), None);
        assert_eq!(Baggage::parse("k=v;p=a b"), None);
        assert_eq!(Baggage::parse("k=v;p=%zz"), None);
        assert_eq!(Baggage::parse("k=v;p q"), None);
    }

    #[test]
    fn key_must_be_token() {
        assert!(Baggage::parse("!#$%&'*+-.^_`|~09AZaz=1").is_some());
        for value in [
            "=1", "a b=1", "a\"=1", "a(b)=1", "a/b=1", "a@b=1", "a:b=1", "{x}=1", "k",
        ] {
            assert_eq!(Baggage::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn value_octets() {
        assert!(Baggage::parse("k=").is_some());
        assert!(Baggage::parse("k=a=b").is_some());
        assert!(Baggage::parse("k=!#$&'()*+-./09:<=>?@AZ[]^_`az{|}~").is_some());
        for value in ["k=a b", "k=\"x\"", "k=a\\b", "k=a\tb"] {
            assert_eq!(Baggage::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn percent_encoding() {
        assert!(Baggage::parse("k=%20").is_some());
        assert!(Baggage::parse("k=%e2%9C%93").is_some());
        assert!(Baggage::parse("k=100%25").is_some());
        for value in [
            "k=%",
            "k=%2",
            "k=%g0",
            "k=%0g",
            "k=100%",
            "k=%%41",
            "k=a%2,b=1",
        ] {
            assert_eq!(Baggage::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn injection_bytes_are_invalid() {
        for value in [
            "k=v\r\nx-evil: 1",
            "k=v\n",
            "k=v\r",
            "k=v\0",
            "\0k=v",
            "k=v\u{7f}",
            "k=caf\u{e9}",
            "k\u{e9}=v",
            "k=v;p=\r\n",
        ] {
            assert_eq!(Baggage::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn size_limit() {
        let exact = format!("k={}", "v".repeat(MAX_BAGGAGE_BYTES - 2));
        assert_eq!(exact.len(), 8192);
        assert_eq!(Baggage::parse(&exact).map(|b| b.len()), Some(1));
        let over = format!("k={}", "v".repeat(MAX_BAGGAGE_BYTES - 1));
        assert_eq!(over.len(), 8193);
        assert_eq!(Baggage::parse(&over), None);
        // Whitespace counts: the limit is on what arrives.
        let padded = format!("{exact} ");
        assert_eq!(Baggage::parse(&padded), None);
    }

    #[test]
    fn member_limit() {
        assert_eq!(
            Baggage::parse(&numbered(180, "k")).map(|b| b.len()),
            Some(180)
        );
        assert_eq!(Baggage::parse(&numbered(181, "k")), None);
    }

    #[test]
    fn duplicate_keys_are_kept() {
        assert_eq!(
            keys_of("a=1,a=2,b=3"),
            Some(vec!["a".to_owned(), "a".to_owned(), "b".to_owned()])
        );
        assert_eq!(header("a=1,a=2"), Some("a=1,a=2".to_owned()));
    }

    #[test]
    fn merge_winner_first_then_new_keys() {
        let winner = parsed("a=1,b=2");
        let other = parsed("b=9,c=3;p,a=8,d=4");
        let merged = Baggage::merge(&winner, &other);
        assert_eq!(merged.keys().collect::<Vec<_>>(), vec!["a", "b", "c", "d"]);
        assert_eq!(merged.to_header_value(), "a=1,b=2,c=3;p,d=4");
    }

    #[test]
    fn merge_with_empty_sides() {
        let empty = parsed("");
        let some = parsed("a=1 , b=2");
        assert_eq!(Baggage::merge(&some, &empty), some);
        assert_eq!(Baggage::merge(&empty, &some), some);
        assert_eq!(Baggage::merge(&empty, &some).to_header_value(), "a=1 , b=2");
        assert!(Baggage::merge(&empty, &empty).is_empty());
    }

    #[test]
    fn merge_keeps_winner_verbatim_when_nothing_added() {
        let winner = parsed("a = 1,b=2");
        let other = parsed("b=3,a=4");
        assert_eq!(
            Baggage::merge(&winner, &other).to_header_value(),
            "a = 1,b=2"
        );
    }

    #[test]
    fn merge_normalises_when_members_added() {
        let winner = parsed("a = 1");
        let other = parsed("c=3");
        assert_eq!(Baggage::merge(&winner, &other).to_header_value(), "a=1,c=3");
    }

    #[test]
    fn merge_keeps_duplicates_from_other() {
        let merged = Baggage::merge(&parsed("a=1"), &parsed("x=1,x=2"));
        assert_eq!(merged.keys().collect::<Vec<_>>(), vec!["a", "x", "x"]);
    }

    #[test]
    fn merge_respects_member_limit() {
        let winner = parsed(&numbered(170, "w"));
        let other = parsed(&numbered(20, "o"));
        let merged = Baggage::merge(&winner, &other);
        assert_eq!(merged.len(), 180);
        assert_eq!(merged.keys().last(), Some("o009"));
        assert!(Baggage::parse(&merged.to_header_value()).is_some());

        let full = parsed(&numbered(180, "w"));
        assert_eq!(Baggage::merge(&full, &other), full);
    }

    #[test]
    fn merge_respects_byte_limit() {
        let winner = parsed(&format!("a={}", "x".repeat(8000)));
        // 8002 + ',' + 189 = 8192: fits exactly.
        let fits = parsed(&format!("b={}", "y".repeat(187)));
        let merged = Baggage::merge(&winner, &fits);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged.to_header_value().len(), MAX_BAGGAGE_BYTES);

        // One byte more does not fit, and adding stops there even if a later member would fit.
        let too_big = parsed(&format!("b={},c=1", "y".repeat(188)));
        let merged = Baggage::merge(&winner, &too_big);
        assert_eq!(merged, winner);
    }

    #[test]
    fn merge_measures_winner_normalised() {
        // The winner's verbatim form has spaces the merged (re-joined) form drops.
        let winner = parsed(&format!("a = {}", "x".repeat(8000)));
        let other = parsed(&format!("b={}", "y".repeat(187)));
        let merged = Baggage::merge(&winner, &other);
        assert_eq!(merged.len(), 2);
        assert!(merged.to_header_value().len() <= MAX_BAGGAGE_BYTES);
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in "\\PC{0,200}") {
            let _ = Baggage::parse(&s);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = Baggage::parse(&s);
        }

        #[test]
        fn accepted_output_is_header_safe(s in "[a-c%0-9=;, \\t\\r\\n\\x00\"\\\\!~]{0,60}") {
            if let Some(baggage) = Baggage::parse(&s) {
                let out = baggage.to_header_value();
                prop_assert!(out.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{:?}", out);
                prop_assert!(!out.starts_with(' ') && !out.ends_with(' '));
                let again = Baggage::parse(&out);
                prop_assert_eq!(again.map(|a| a.members), Some(baggage.members));
            }
        }

        #[test]
        fn merge_stays_within_limits(
            a in proptest::collection::vec(("[a-e]{1,3}", "[a-z0-9%]{0,300}"), 0..120),
            b in proptest::collection::vec(("[a-h]{1,3}", "[a-z0-9]{0,400}"), 0..120),
        ) {
            let render = |list: &[(String, String)]| {
                list.iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('%', "%25")))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let (Some(winner), Some(other)) = (Baggage::parse(&render(&a)), Baggage::parse(&render(&b))) else {
                return Ok(());
            };
            let merged = Baggage::merge(&winner, &other);
            prop_assert!(merged.len() <= MAX_BAGGAGE_MEMBERS);
            let out = merged.to_header_value();
            prop_assert!(out.len() <= MAX_BAGGAGE_BYTES);
            prop_assert!(Baggage::parse(&out).is_some());
            let winner_keys: Vec<&str> = winner.keys().collect();
            let merged_keys: Vec<&str> = merged.keys().collect();
            prop_assert_eq!(merged_keys.get(..winner_keys.len()), Some(winner_keys.as_slice()));
            for extra in merged_keys.iter().skip(winner_keys.len()) {
                prop_assert!(!winner_keys.contains(extra));
            }
        }
    }
}
