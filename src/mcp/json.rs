//! JSON lexical pieces used by the scanner: strings, numbers, literals, whitespace.
//!
//! Every function takes the body and a position and returns the position after the token, or
//! `None` when the bytes there are not valid JSON. The body is already known to be valid UTF-8.

/// Skips JSON whitespace (space, tab, LF, CR).
#[inline]
pub fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// A string token: the contents are `start..end`, the closing quote is at `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringToken {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when any byte of `word` is `"`, `\` or a control character (< 0x20).
#[inline]
fn has_string_special(word: u64) -> bool {
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (quote | backslash | control) != 0
}

/// Reads a string whose opening quote is at `pos`; validates escapes and rejects raw control
/// characters. Long runs of ordinary bytes are skipped eight at a time.
pub fn string(bytes: &[u8], pos: usize) -> Option<StringToken> {
    let start = pos + 1;
    let mut i = start;
    let mut escaped = false;
    loop {
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if has_string_special(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        match *bytes.get(i)? {
            b'"' => {
                return Some(StringToken {
                    start,
                    end: i,
                    escaped,
                })
            }
            b'\\' => {
                escaped = true;
                i = escape_end(bytes, i)?;
            }
            0x00..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// Validates the escape starting at the backslash at `pos`; returns the position after it.
fn escape_end(bytes: &[u8], pos: usize) -> Option<usize> {
    match *bytes.get(pos + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(pos + 2),
        b'u' => {
            let digits = bytes.get(pos + 2..pos + 6)?;
            digits.iter().all(u8::is_ascii_hexdigit).then_some(pos + 6)
        }
        _ => None,
    }
}

/// Decodes the contents of a validated string token. `None` for an unpaired surrogate escape,
/// which is valid JSON grammar but not a Unicode string.
pub fn decode(text: &str, token: StringToken) -> Option<String> {
    let raw = text.get(token.start..token.end)?;
    if !token.escaped {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => decode_unicode_escape(&mut chars)?,
            other => other,
        };
        out.push(decoded);
    }
    Some(out)
}

/// Decodes the hex digits after `\u`, joining a surrogate pair written as two escapes.
fn decode_unicode_escape(chars: &mut std::str::Chars<'_>) -> Option<char> {
    let first = read_hex4(chars)?;
    if !(0xD800..0xDC00).contains(&first) {
        return char::from_u32(first);
    }
    if chars.next()? != '\\' || chars.next()? != 'u' {
        return None;
    }
    let second = read_hex4(chars)?;
    if !(0xDC00..0xE000).contains(&second) {
        return None;
    }
    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
}

fn read_hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut value = 0;
    for _ in 0..4 {
        value = value * 16 + chars.next()?.to_digit(16)?;
    }
    Some(value)
}

/// Reads a number starting at `pos` (JSON grammar); returns the position after it.
pub fn number(bytes: &[u8], pos: usize) -> Option<usize> {
    let digits_from = |mut i: usize| {
        let from = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = pos;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match bytes.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits_from(i)?,
        _ => return None,
    };
    if bytes.get(i) == Some(&b'.') {
        i = digits_from(i + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        i = digits_from(i)?;
    }
    Some(i)
}

/// Reads the literal `word` (`true`, `false`, `null`) at `pos`.
pub fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    let end = pos + word.len();
    (bytes.get(pos..end)? == word).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(input: &str) -> Option<StringToken> {
        string(input.as_bytes(), 0)
    }

    #[test]
    fn strings_end_at_the_first_unescaped_quote() {
        let t = token(r#""abc" tail"#);
        assert_eq!(
            t,
            Some(StringToken {
                start: 1,
                end: 4,
                escaped: false
            })
        );
        let long = format!("\"{}\\\"{}\"", "x".repeat(37), "y".repeat(19));
        let t = token(&long);
        assert_eq!(t.map(|t| (t.end, t.escaped)), Some((long.len() - 1, true)));
    }

    #[test]
    fn strings_reject_control_characters_and_bad_escapes() {
        for bad in [
            "\"a\nb\"",
            "\"a\u{0}b\"",
            "\"0123456789\tabc\"",
            r#""\x""#,
            r#""\u12g4""#,
            r#""\u12""#,
            "\"unterminated",
            "\"ends with backslash\\",
        ] {
            assert_eq!(token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decoding_handles_every_escape() {
        let input = r#""a\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00z""#;
        let t = token(input);
        let decoded = t.and_then(|t| decode(input, t));
        assert_eq!(
            decoded.as_deref(),
            Some("a\"\\/\u{8}\u{c}\n\r\tA\u{e9}\u{1F600}z")
        );
    }

    #[test]
    fn unpaired_surrogates_are_valid_json_but_not_decodable() {
        for input in [
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
        ] {
            let t = token(input);
            assert!(t.is_some(), "{input}");
            assert_eq!(t.and_then(|t| decode(input, t)), None, "{input}");
        }
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for (input, end) in [
            ("0", 1),
            ("-0", 2),
            ("12.5e+3,", 7),
            ("1E9", 3),
            ("7]", 1),
            ("01", 1),
        ] {
            assert_eq!(number(input.as_bytes(), 0), Some(end), "{input}");
        }
        for bad in ["-", "+1", ".5", "1.", "1e", "1e+", "-a"] {
            assert_eq!(number(bad.as_bytes(), 0), None, "{bad}");
        }
    }

    #[test]
    fn literals_must_match_exactly() {
        assert_eq!(literal(b"true,", 0, b"true"), Some(4));
        assert_eq!(literal(b"nul", 0, b"null"), None);
        assert_eq!(literal(b"fals3", 0, b"false"), None);
    }

    #[test]
    fn special_byte_detection_matches_a_byte_loop() {
        for b in 0u8..=255 {
            for lane in 0..8 {
                let mut word = [b'a'; 8];
                word[lane] = b;
                let expected = b == b'"' || b == b'\\' || b < 0x20;
                assert_eq!(
                    has_string_special(u64::from_le_bytes(word)),
                    expected,
                    "byte {b:#x} lane {lane}"
                );
            }
        }
    }
}
