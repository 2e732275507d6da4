//! JSON lexical pieces used by the scanner: strings, numbers, literals, whitespace.
//!
//! Every function takes the body and a position and returns the position after the token, or
//! `None` when the bytes there are not valid JSON. UTF-8 is the caller's to check, over the
//! whole body at once ([`super::utf8`]).

use super::block::{block_at, Block};

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

/// Reads a string whose opening quote is at `pos`; validates escapes and rejects raw control
/// characters. UTF-8 is not checked here: the scanner checks the whole body first.
///
/// Sixteen bytes a step: the block's quotes, backslashes and control characters come out as bit
/// masks, a quote is the end unless a backslash escapes it, and only the escapes themselves are
/// looked at one by one. Text with or without escapes never stops the reader per character.
pub fn string(bytes: &[u8], pos: usize) -> Option<StringToken> {
    let start = pos + 1;
    let quote = Block::splat(b'"');
    let backslash = Block::splat(b'\\');
    let space = Block::splat(0x20);
    let mut at = start;
    let mut escaped = false;
    // Bit 0: the block's first byte is escaped by a backslash that ended the previous block.
    let mut carried: u32 = 0;
    loop {
        // The last bytes are read as a zero-padded block: a zero is a control character, so a
        // string the body does not close fails there.
        let block = block_at(bytes, at).unwrap_or_else(|| padded_block(bytes, at));
        let quotes = block.eq(quote).high_bits();
        let backslashes = block.eq(backslash).high_bits();
        let controls = block.lt(space).high_bits();
        let escapes = escaped_bytes(backslashes, carried);
        carried = escapes >> 16;
        let escapes = (escapes & 0xFFFF) as u16;
        let end = (quotes & !escapes).trailing_zeros();
        let before_end = if end >= 16 { u16::MAX } else { (1 << end) - 1 };
        if controls & before_end != 0 {
            return None;
        }
        let mut to_check = escapes & before_end;
        escaped |= to_check != 0;
        while to_check != 0 {
            let escape_at = at + to_check.trailing_zeros() as usize;
            match ESCAPES[usize::from(*bytes.get(escape_at)?)] {
                Escape::Simple => {}
                Escape::Unicode => {
                    let digits = bytes.get(escape_at + 1..escape_at + 5)?;
                    if !digits.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                }
                Escape::Invalid => return None,
            }
            to_check &= to_check - 1;
        }
        if end < 16 {
            return Some(StringToken {
                start,
                end: at + end as usize,
                escaped,
            });
        }
        at += 16;
    }
}

/// The bytes of a block that a backslash escapes, from its backslash mask and the bit carried
/// from the previous block (bit 0: the first byte is escaped). Bit 16 of the result is the
/// carry into the next block. A backslash that is itself escaped escapes nothing.
#[inline]
fn escaped_bytes(backslashes: u16, carried: u32) -> u32 {
    let mut escapes = carried;
    let mut starts = u32::from(backslashes) & !carried;
    while starts != 0 {
        let first = starts & starts.wrapping_neg();
        escapes |= first << 1;
        starts &= !(first | (first << 1));
    }
    escapes
}

/// What may follow a backslash in a JSON string.
#[derive(Clone, Copy)]
enum Escape {
    Invalid,
    /// `"`, `\\`, `/`, `b`, `f`, `n`, `r` or `t`.
    Simple,
    /// `u`, then four hex digits.
    Unicode,
}

/// [`Escape`] by the byte after the backslash.
const ESCAPES: [Escape; 256] = {
    let mut table = [Escape::Invalid; 256];
    let simple = *b"\"\\/bfnrt";
    let mut i = 0;
    while i < simple.len() {
        table[simple[i] as usize] = Escape::Simple;
        i += 1;
    }
    table[b'u' as usize] = Escape::Unicode;
    table
};

/// The bytes from `at` to the end, padded with zeros to a block.
fn padded_block(bytes: &[u8], at: usize) -> Block {
    let mut padded = [0u8; 16];
    let rest = bytes.get(at..).unwrap_or_default();
    let length = rest.len().min(16);
    padded[..length].copy_from_slice(&rest[..length]);
    Block::from_array(padded)
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

    /// The JSON string grammar read one byte at a time: where the string ends and whether it
    /// has escapes, or `None`.
    fn byte_by_byte(bytes: &[u8], pos: usize) -> Option<(usize, bool)> {
        let mut i = pos + 1;
        let mut escaped = false;
        loop {
            match *bytes.get(i)? {
                b'"' => return Some((i, escaped)),
                b'\\' => {
                    escaped = true;
                    i += match *bytes.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' if bytes.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                        _ => return None,
                    };
                }
                0x00..=0x1f => return None,
                _ => i += 1,
            }
        }
    }

    /// Every string over an alphabet of the bytes that matter, placed so that quotes, escapes
    /// and `\u` digits fall on and across block boundaries.
    #[test]
    fn strings_agree_with_a_byte_by_byte_reader() {
        let alphabet = [b'a', b'"', b'\\', b'u', b'0', b'\n', 0xc3];
        let (mut closed, mut escaped_quote_across_blocks) = (0, 0);
        for length in 0..=6u32 {
            for code in 0..alphabet.len().pow(length) {
                let mut contents = Vec::new();
                let mut rest = code;
                for _ in 0..length {
                    contents.push(alphabet[rest % alphabet.len()]);
                    rest /= alphabet.len();
                }
                for offset in [0usize, 9, 12, 13, 14, 15, 16, 29] {
                    let mut input = vec![b'"'];
                    input.extend(std::iter::repeat_n(b'x', offset));
                    input.extend_from_slice(&contents);
                    let expected = byte_by_byte(&input, 0);
                    let found = string(&input, 0).map(|t| (t.end, t.escaped));
                    assert_eq!(found, expected, "{:?}", String::from_utf8_lossy(&input));
                    closed += usize::from(expected.is_some());
                    let boundary = 16 - (offset + 1) % 16;
                    if contents.get(boundary.wrapping_sub(1)..=boundary) == Some(b"\\\"") {
                        escaped_quote_across_blocks += 1;
                    }
                }
            }
        }
        // The suite really reaches closed strings and escapes split by a block boundary.
        assert!(closed > 10_000, "{closed}");
        assert!(
            escaped_quote_across_blocks > 100,
            "{escaped_quote_across_blocks}"
        );
    }

    #[test]
    fn long_escape_runs_end_where_the_grammar_says() {
        for run in 0..40 {
            for offset in 0..17 {
                let input = format!("\"{}{}\"\" tail", "y".repeat(offset), "\\".repeat(run));
                let expected = byte_by_byte(input.as_bytes(), 0);
                let found = string(input.as_bytes(), 0).map(|t| (t.end, t.escaped));
                assert_eq!(found, expected, "{input}");
            }
        }
    }

    #[test]
    fn non_ascii_text_is_skipped_whole() {
        // UTF-8 is the scanner's whole-body check (`utf8::is_valid`); the string reader only
        // needs the quote, even after invalid bytes.
        for offset in 0..20 {
            let pad = "p".repeat(offset);
            let good = format!("\"{pad}é東😀{pad}\"");
            assert_eq!(token(&good).map(|t| t.end), Some(good.len() - 1), "{good}");
        }
    }
}
