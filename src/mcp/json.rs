//! JSON lexical pieces used by the scanner: strings, numbers, literals, whitespace.
//!
//! Every function takes the body and a position and returns the position after the token, or
//! `None` when the bytes there are not valid JSON. UTF-8 is the caller's to check, over the
//! whole body at once ([`super::utf8`]).

use super::block::{group_at, kept, Block, NIBBLE};

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
/// Sixty-four bytes a step (four blocks): their quotes, backslashes and control characters come
/// out as 64-bit masks, the escaped bytes follow from the backslash mask by arithmetic, a quote
/// is the end unless escaped, and the bytes after backslashes are classified block-wide (only
/// `\u` escapes are then read one by one). The per-step scalar work is paid once per 64 bytes,
/// and text with or without escapes never stops the reader per character.
pub fn string(bytes: &[u8], pos: usize) -> Option<StringToken> {
    let lanes = StringLanes::kept();
    let start = pos + 1;
    let mut at = start;
    let mut escaped = false;
    // 1 when the group's first byte is escaped by a backslash that ended the previous group.
    let mut carried = 0u64;
    loop {
        // The last bytes are read as a zero-padded group: a zero is a control character, so a
        // string the body does not close fails there.
        let group = group_at(bytes, at).unwrap_or_else(|| padded_group(bytes, at));
        let quotes = lanes_where(&group, |block| block.eq(lanes.quote));
        let backslashes = lanes_where(&group, |block| block.eq(lanes.backslash));
        let (escapes, carry) = escaped_bytes(backslashes, carried);
        carried = carry;
        let end = (quotes & !escapes).trailing_zeros();
        let before_end = u64::MAX.checked_shl(end).map_or(u64::MAX, |after| !after);
        // A group seldom holds a control byte (a string never may; whitespace after one can):
        // a vector test first, the mask only when there is one.
        let controls = group.map(|block| block.at_most(lanes.last_control));
        if any_lane(&controls) && lanes_where(&controls, |block| block) & before_end != 0 {
            return None;
        }
        let to_check = escapes & before_end;
        if to_check != 0 {
            escaped = true;
            let others = to_check & lanes_where(&group, |block| lanes.not_simple_escape(block));
            if others != 0 && !unicode_escapes_are_valid(bytes, at, others) {
                return None;
            }
        }
        if end < 64 {
            return Some(StringToken {
                start,
                end: at + end as usize,
                escaped,
            });
        }
        at += 64;
    }
}

/// Whether any lane of a group of comparison results is set.
#[inline]
fn any_lane(group: &[Block; 4]) -> bool {
    let [a, b, c, d] = *group;
    a.or(b).or(c.or(d)).any()
}

/// One bit per lane of a group of four blocks: bit `16 * i + j` is lane `j` of block `i`.
#[inline]
fn lanes_where(group: &[Block; 4], test: impl Fn(Block) -> Block) -> u64 {
    group.iter().enumerate().fold(0, |mask, (i, block)| {
        mask | u64::from(test(*block).high_bits()) << (16 * i)
    })
}

/// The bytes of a group that a backslash escapes, from its backslash mask and the bit carried
/// from the previous group (1: the first byte is escaped), and the bit to carry into the next.
/// A backslash that is itself escaped escapes nothing.
///
/// No branch on the text: in a run of backslashes from position `p`, the escaped bytes are
/// those an odd distance after `p`, up to one past the run's end. Adding the run's first bit
/// to the mask carries through the run and clears it, so `(mask + first) ^ mask` is the run and
/// the byte after it; runs that start on even positions keep the odd positions of that, the
/// others the even ones. Runs never touch, so one addition serves every run of a parity. Only
/// a run from an odd position can escape the byte after the group (position 64 is even): its
/// addition's overflow is the carry.
#[inline]
fn escaped_bytes(backslashes: u64, carried: u64) -> (u64, u64) {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    const ODD: u64 = !EVEN;
    let live = backslashes & !carried;
    let starts = live & !(live << 1);
    let after_even_starts = live.wrapping_add(starts & EVEN) ^ live;
    let (sum, carry) = live.overflowing_add(starts & ODD);
    let after_odd_starts = sum ^ live;
    (
        carried | (after_even_starts & ODD) | (after_odd_starts & EVEN),
        u64::from(carry),
    )
}

/// The bytes that may follow a backslash in a JSON string with nothing more to check. The
/// only other one, `u`, takes four hex digits.
const ESCAPE_CHARACTERS: &[u8] = b"\"\\/bfnrt";

/// One of the two nibble tables that tell a simple escape character from any other byte: a byte is
/// one when `HIGH[high nibble] & LOW[low nibble]` is not zero. Every escape character is below
/// 0x80, so each high nibble gets a bit of its own and the product admits no other byte.
const fn escape_table(high: bool) -> [u8; 16] {
    let mut table = [0u8; 16];
    let mut i = 0;
    while i < ESCAPE_CHARACTERS.len() {
        let character = ESCAPE_CHARACTERS[i];
        let bit = 1 << (character >> 4);
        if high {
            table[(character >> 4) as usize] = bit;
        } else {
            table[(character & 0x0F) as usize] |= bit;
        }
        i += 1;
    }
    table
}

const ESCAPE_HIGH: [u8; 16] = escape_table(true);
const ESCAPE_LOW: [u8; 16] = escape_table(false);

/// The vectors the string reader compares with, [`kept`] in locals.
struct StringLanes {
    quote: Block,
    backslash: Block,
    last_control: Block,
    escape_high: Block,
    escape_low: Block,
    nibble: Block,
    zero: Block,
}

impl StringLanes {
    #[inline]
    fn kept() -> StringLanes {
        StringLanes {
            quote: kept(Block::splat(b'"')),
            backslash: kept(Block::splat(b'\\')),
            last_control: kept(Block::splat(0x1F)),
            escape_high: kept(Block::from_array(ESCAPE_HIGH)),
            escape_low: kept(Block::from_array(ESCAPE_LOW)),
            nibble: kept(Block::splat(NIBBLE)),
            zero: kept(Block::splat(0)),
        }
    }

    /// The lanes that hold no simple escape character (a `u` is one of them).
    #[inline]
    fn not_simple_escape(&self, block: Block) -> Block {
        block
            .high_nibbles(self.nibble)
            .look_up_in(self.escape_high)
            .and(block.low_nibbles(self.nibble).look_up_in(self.escape_low))
            .eq(self.zero)
    }
}

/// Whether the escaped bytes at the bits of `escaped` (lanes of the group at `at`) are each a
/// `u` with four hex digits after it: the escapes the block-wide test leaves to be read.
fn unicode_escapes_are_valid(bytes: &[u8], at: usize, mut escaped: u64) -> bool {
    while escaped != 0 {
        let u_at = at + escaped.trailing_zeros() as usize;
        let valid = matches!(
            bytes.get(u_at..u_at + 5),
            Some([b'u', digits @ ..]) if digits.iter().all(u8::is_ascii_hexdigit)
        );
        if !valid {
            return false;
        }
        escaped &= escaped - 1;
    }
    true
}

/// The bytes from `at` to the end, padded with zeros to a group.
fn padded_group(bytes: &[u8], at: usize) -> [Block; 4] {
    let mut padded = [0u8; 64];
    let rest = bytes.get(at..).unwrap_or_default();
    let length = rest.len().min(64);
    padded[..length].copy_from_slice(&rest[..length]);
    group_at(&padded, 0).unwrap_or([Block::splat(0); 4])
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
                for offset in [0usize, 9, 13, 15, 16, 29, 58, 59, 60, 61, 62, 63] {
                    let mut input = vec![b'"'];
                    input.extend(std::iter::repeat_n(b'x', offset));
                    input.extend_from_slice(&contents);
                    let expected = byte_by_byte(&input, 0);
                    let found = string(&input, 0).map(|t| (t.end, t.escaped));
                    assert_eq!(found, expected, "{:?}", String::from_utf8_lossy(&input));
                    closed += usize::from(expected.is_some());
                    // The first group starts after the opening quote: content byte `i` is
                    // lane `offset + i`, so lanes 63 and 64 straddle the group boundary.
                    let straddling = 63usize
                        .checked_sub(offset)
                        .and_then(|last| contents.get(last..=last + 1));
                    if straddling == Some(b"\\\"") {
                        escaped_quote_across_blocks += 1;
                    }
                }
            }
        }
        // The suite really reaches closed strings and escapes split by a group boundary.
        assert!(closed > 10_000, "{closed}");
        assert!(
            escaped_quote_across_blocks > 100,
            "{escaped_quote_across_blocks}"
        );
    }

    /// Every backslash pattern of sixteen lanes, at the start, the middle and the end of a
    /// group (where runs reach the group's last lane and carry), with and without an escape
    /// carried in, against a walk through the group byte by byte.
    #[test]
    fn escaped_bytes_agree_with_a_walk_through_the_group() {
        let mut carried_out = 0;
        for pattern in 0..=u16::MAX {
            for shift in [0, 23, 48] {
                for carried in [0, 1] {
                    let backslashes = u64::from(pattern) << shift;
                    let mut expected = 0u64;
                    let mut next_is_escaped = carried == 1;
                    for lane in 0..64 {
                        if next_is_escaped {
                            expected |= 1 << lane;
                            next_is_escaped = false;
                        } else if backslashes & (1 << lane) != 0 {
                            next_is_escaped = true;
                        }
                    }
                    let want = (expected, u64::from(next_is_escaped));
                    assert_eq!(
                        escaped_bytes(backslashes, carried),
                        want,
                        "{backslashes:064b} {carried}"
                    );
                    carried_out += usize::from(next_is_escaped);
                }
            }
        }
        // A third of the patterns at the group's end leave its last byte escaping the next.
        assert!(carried_out > 30_000, "{carried_out}");
    }

    /// Every byte value raw and after a backslash, at every lane, next to another escape in
    /// the same block: the block-wide classification of escapes and control bytes.
    #[test]
    fn every_byte_raw_and_escaped_agrees_with_a_byte_by_byte_reader() {
        let mut rejected_escapes = 0;
        for byte in 0..=255u8 {
            for offset in 0..66 {
                for escaped in [false, true] {
                    let mut input = vec![b'"'];
                    input.extend(std::iter::repeat_n(b'x', offset));
                    input.extend_from_slice(b"\\n");
                    if escaped {
                        input.push(b'\\');
                    }
                    input.extend_from_slice(&[byte, b'0', b'A', b'f', b'9', b'"']);
                    let expected = byte_by_byte(&input, 0);
                    let found = string(&input, 0).map(|t| (t.end, t.escaped));
                    assert_eq!(found, expected, "{input:x?}");
                    rejected_escapes += usize::from(escaped && expected.is_none());
                }
            }
        }
        // Every byte but the nine escape characters, after a backslash, at each offset.
        assert_eq!(rejected_escapes, (256 - 9) * 66);
    }

    #[test]
    fn long_escape_runs_end_where_the_grammar_says() {
        for run in 0..140 {
            for offset in 0..66 {
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
