//! JSON lexical pieces used by the scanner: strings, numbers, literals, whitespace.
//!
//! Every function takes the body and a position and returns the position after the token, or
//! `None` when the bytes there are not valid JSON. Strings are also checked to be UTF-8, so a
//! body the scanner accepts is valid UTF-8 as a whole (everything outside strings is ASCII).

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

/// Flags (bit 7 of a lane) the bytes of `word` the string reader must stop at: `"`, `\`, a
/// control character (< 0x20) or a non-ASCII byte. Borrows between lanes can also flag a lane
/// above a flagged one, so only the lowest flag is exact; that is the one the reader jumps to.
#[inline]
fn string_stops(word: u64) -> u64 {
    let zero_lanes = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero_lanes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_lanes(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20);
    // `!word` would drop non-ASCII lanes from the three tests; `word` itself flags them.
    (quote | backslash | control | word) & HIGHS
}

fn is_string_stop(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0x00..=0x1f | 0x80..=0xff)
}

/// Position of the first byte at or after `i` that [`string_stops`] flags, eight bytes a step.
#[inline]
fn next_string_stop(bytes: &[u8], mut i: usize) -> Option<usize> {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let stops = string_stops(u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?));
        if stops != 0 {
            return Some(i + (stops.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while !is_string_stop(*bytes.get(i)?) {
        i += 1;
    }
    Some(i)
}

/// Reads a string whose opening quote is at `pos`; validates escapes, rejects raw control
/// characters and checks that the contents are UTF-8.
///
/// UTF-8 is checked here, character by character, rather than over the whole body up front:
/// outside strings the scanner accepts only ASCII, so this covers every byte of an accepted
/// body in the same pass.
pub fn string(bytes: &[u8], pos: usize) -> Option<StringToken> {
    let start = pos + 1;
    let mut i = start;
    let mut escaped = false;
    loop {
        i = next_string_stop(bytes, i)?;
        match *bytes.get(i)? {
            b'"' => {
                return Some(StringToken {
                    start,
                    end: i,
                    escaped,
                });
            }
            b'\\' => {
                escaped = true;
                i = escape_end(bytes, i)?;
            }
            0x80.. => i = utf8_char_end(bytes, i)?,
            _ => return None,
        }
    }
}

/// Validates the UTF-8 sequence whose lead byte (≥ 0x80) is at `pos`; returns the position
/// after it. The ranges are the well-formed sequences of the Unicode Standard (table 3-7), so
/// overlong forms, surrogates and values above U+10FFFF are refused, as `str::from_utf8` does.
fn utf8_char_end(bytes: &[u8], pos: usize) -> Option<usize> {
    const TAIL: std::ops::RangeInclusive<u8> = 0x80..=0xBF;
    let (second, tails) = match *bytes.get(pos)? {
        0xC2..=0xDF => (TAIL, 0),
        0xE0 => (0xA0..=0xBF, 1),
        0xE1..=0xEC | 0xEE..=0xEF => (TAIL, 1),
        0xED => (0x80..=0x9F, 1),
        0xF0 => (0x90..=0xBF, 2),
        0xF1..=0xF3 => (TAIL, 2),
        0xF4 => (0x80..=0x8F, 2),
        _ => return None,
    };
    if !second.contains(bytes.get(pos + 1)?) {
        return None;
    }
    let end = pos + 2 + tails;
    bytes
        .get(pos + 2..end)?
        .iter()
        .all(|b| TAIL.contains(b))
        .then_some(end)
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
pub fn decode(bytes: &[u8], token: StringToken) -> Option<String> {
    let raw = std::str::from_utf8(bytes.get(token.start..token.end)?).ok()?;
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
        let decoded = t.and_then(|t| decode(input.as_bytes(), t));
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
            assert_eq!(t.and_then(|t| decode(input.as_bytes(), t)), None, "{input}");
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
                assert_eq!(
                    string_stops(u64::from_le_bytes(word)) != 0,
                    is_string_stop(b),
                    "byte {b:#x} lane {lane}"
                );
            }
        }
    }

    #[test]
    fn the_lowest_flag_is_the_first_special_byte() {
        // Pairs of interesting bytes in every two lanes: the first flag must be exact even when
        // a later lane would borrow.
        let interesting = [0x00, 0x01, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xff];
        for first in interesting {
            for second in interesting {
                for (i, j) in (0..8).flat_map(|i| (i + 1..8).map(move |j| (i, j))) {
                    let mut word = [b'a'; 8];
                    word[i] = first;
                    word[j] = second;
                    let expected = word.iter().position(|b| is_string_stop(*b));
                    let specials = string_stops(u64::from_le_bytes(word));
                    let found = (specials != 0).then(|| (specials.trailing_zeros() / 8) as usize);
                    assert_eq!(found, expected, "{word:?}");
                }
            }
        }
    }

    #[test]
    fn utf8_checks_agree_with_the_standard_library() {
        let probes = [
            0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff,
        ];
        let mut sequences = Vec::new();
        for first in 0x80..=0xffu8 {
            for second in 0..=0xffu8 {
                sequences.push(vec![first, second]);
                for third in probes {
                    sequences.push(vec![first, second, third]);
                    // Only four-byte lead bytes can start a valid four-byte sequence.
                    for fourth in probes.iter().filter(|_| first >= 0xf0) {
                        sequences.push(vec![first, second, third, *fourth]);
                    }
                }
            }
        }
        for sequence in sequences {
            let mut input = vec![b'"'];
            input.extend_from_slice(&sequence);
            input.push(b'"');
            let json_ok = std::str::from_utf8(&sequence).is_ok_and(|s| !s.contains(['"', '\\']))
                && sequence.iter().all(|b| *b >= 0x20);
            assert_eq!(string(&input, 0).is_some(), json_ok, "{sequence:x?}");
        }
    }

    #[test]
    fn strings_must_be_utf8_at_any_offset() {
        for offset in 0..20 {
            let pad = "p".repeat(offset);
            let good = format!("\"{pad}é東😀{pad}\"");
            assert_eq!(token(&good).map(|t| t.end), Some(good.len() - 1), "{good}");
            for bad in [
                &b"\xff"[..],
                b"\xc3",
                b"\xe6\x9d",
                b"\xed\xa0\x80",
                b"\xc0\xaf",
            ] {
                let mut input = format!("\"{pad}").into_bytes();
                input.extend_from_slice(bad);
                input.extend_from_slice(format!("{pad}\\n\"").as_bytes());
                assert_eq!(string(&input, 0), None, "{input:?}");
            }
        }
    }
}
