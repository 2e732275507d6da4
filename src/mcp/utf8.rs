//! Whole-body UTF-8 validation, sixteen bytes a step with no branch on the text's mix.
//!
//! JSON must be UTF-8. Checking it character by character inside the string reader cost the
//! scanner a stop at every non-ASCII character; prose in other scripts has one every two or
//! three bytes. This check classifies each byte pair by three table lookups (the lead byte's two
//! nibbles and the next byte's high nibble), each giving the set of errors that pair could be;
//! a pair is wrong when all three agree on one. The third and fourth bytes of long sequences are
//! checked by position: two and three bytes after a lead of a three- or four-byte sequence there
//! must be a continuation byte. The rules are the well-formed sequences of the Unicode Standard
//! (table 3-7), the same `str::from_utf8` follows.

use super::block::{kept, Block, NIBBLE};

/// A lead byte (0xC0..) followed by something other than a continuation byte.
const TOO_SHORT: u8 = 1 << 0;
/// A continuation byte (0x80..=0xBF) after an ASCII byte.
const TOO_LONG: u8 = 1 << 1;
/// 0xE0 followed by 0x80..=0x9F: a three-byte form of a shorter character.
const OVERLONG_3: u8 = 1 << 2;
/// 0xED followed by 0xA0..=0xBF: a UTF-16 surrogate.
const SURROGATE: u8 = 1 << 3;
/// 0xC0 or 0xC1 (then a continuation byte): a two-byte form of an ASCII character.
const OVERLONG_2: u8 = 1 << 4;
/// 0xF4..=0xFF followed by 0x90..=0xBF: above U+10FFFF (or no lead byte at all).
const TOO_LARGE: u8 = 1 << 5;
/// 0xF0 followed by 0x80..=0x8F (a four-byte form of a shorter character), or 0xF5..=0xFF
/// followed by 0x80..=0x8F (above U+10FFFF): these two share a bit because the nibble sets of
/// their union admit no valid pair.
const OVERLONG_4_OR_TOO_LARGE: u8 = 1 << 6;
/// Two continuation bytes in a row: an error unless a long sequence expects the second one.
const TWO_CONTINUATIONS: u8 = 1 << 7;
// The check finds where a continuation is expected as a high bit (saturating subtractions),
// so the error it cancels must be that bit.
const _: () = assert!(TWO_CONTINUATIONS == 0x80);

/// Each error as the three nibble sets it needs: (lead high nibble, lead low nibble, next high
/// nibble), as bit sets over the values 0..=15.
const RULES: [(u8, u16, u16, u16); 8] = [
    (TOO_SHORT, 0xF000, 0xFFFF, 0xF0FF),
    (TOO_LONG, 0x00FF, 0xFFFF, 0x0F00),
    (OVERLONG_3, 1 << 0xE, 1 << 0x0, 0x0300),
    (SURROGATE, 1 << 0xE, 1 << 0xD, 0x0C00),
    (OVERLONG_2, 1 << 0xC, 0x0003, 0x0F00),
    (TOO_LARGE, 1 << 0xF, 0xFFF0, 0x0E00),
    (OVERLONG_4_OR_TOO_LARGE, 1 << 0xF, 0xFFE1, 0x0100),
    (TWO_CONTINUATIONS, 0x0F00, 0xFFFF, 0x0F00),
];

/// The lookup table for one nibble position of [`RULES`] (0, 1 or 2).
const fn table(position: usize) -> [u8; 16] {
    let mut table = [0u8; 16];
    let mut nibble = 0;
    while nibble < 16 {
        let mut rule = 0;
        while rule < RULES.len() {
            let (error, lead_high, lead_low, next_high) = RULES[rule];
            let set = match position {
                0 => lead_high,
                1 => lead_low,
                _ => next_high,
            };
            if set & (1 << nibble) != 0 {
                table[nibble] |= error;
            }
            rule += 1;
        }
        nibble += 1;
    }
    table
}

const LEAD_HIGH: [u8; 16] = table(0);
const LEAD_LOW: [u8; 16] = table(1);
const NEXT_HIGH: [u8; 16] = table(2);

/// Per lane, the largest byte that needs no byte after this block: a lead byte in the last
/// three lanes that opens a sequence longer than what is left of the block is incomplete.
const COMPLETE_MAX: [u8; 16] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF,
];

/// Whether `bytes` is well-formed UTF-8.
pub fn is_valid(bytes: &[u8]) -> bool {
    let mut check = Check::new();
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if let Ok(chunk) = <&[u8; 16]>::try_from(chunk) {
            check.feed(Block::load(chunk));
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zero padding is ASCII: a sequence the body cuts short fails on it like on any ASCII.
        let mut tail = [0u8; 16];
        tail[..rest.len()].copy_from_slice(rest);
        check.feed(Block::from_array(tail));
    }
    check.feed(Block::splat(0));
    !check.errors.any()
}

/// The running state: the previous block, the errors so far, and whether the previous block
/// ended inside a sequence.
struct Check {
    previous: Block,
    errors: Block,
    previous_incomplete: Block,
    constants: Constants,
}

/// The vectors the check uses at every block, [`kept`] in locals.
struct Constants {
    tables: [Block; 3],
    complete_max: Block,
    nibble: Block,
    /// Subtracted with saturation, leaves the high bit set exactly on bytes from 0xE0 up (the
    /// leads of three- and four-byte sequences).
    three_byte_lead: Block,
    /// The same for bytes from 0xF0 up (leads of four-byte sequences).
    four_byte_lead: Block,
    two_continuations: Block,
}

impl Check {
    fn new() -> Check {
        Check {
            previous: Block::splat(0),
            errors: Block::splat(0),
            previous_incomplete: Block::splat(0),
            constants: Constants {
                tables: [
                    kept(Block::from_array(LEAD_HIGH)),
                    kept(Block::from_array(LEAD_LOW)),
                    kept(Block::from_array(NEXT_HIGH)),
                ],
                complete_max: kept(Block::from_array(COMPLETE_MAX)),
                nibble: kept(Block::splat(NIBBLE)),
                three_byte_lead: kept(Block::splat(0xE0 - 0x80)),
                four_byte_lead: kept(Block::splat(0xF0 - 0x80)),
                two_continuations: kept(Block::splat(TWO_CONTINUATIONS)),
            },
        }
    }

    #[inline]
    fn feed(&mut self, block: Block) {
        if block.high_bits() == 0 {
            // All ASCII: wrong only if the previous block left a sequence open.
            self.errors = self.errors.or(self.previous_incomplete);
            self.previous_incomplete = Block::splat(0);
        } else {
            let c = &self.constants;
            let lead = block.one_back(self.previous);
            let [lead_high, lead_low, next_high] = c.tables;
            let pair_errors = lead
                .high_nibbles(c.nibble)
                .look_up_in(lead_high)
                .and(lead.low_nibbles(c.nibble).look_up_in(lead_low))
                .and(block.high_nibbles(c.nibble).look_up_in(next_high));
            // The high bit, where the byte two back leads a sequence of three or more bytes or
            // the byte three back one of four: a saturating subtraction is one instruction in
            // V8, an unsigned comparison two or more.
            let third_of_three = block
                .two_back(self.previous)
                .saturating_sub(c.three_byte_lead);
            let fourth_of_four = block
                .three_back(self.previous)
                .saturating_sub(c.four_byte_lead);
            let expected_continuation = third_of_three.or(fourth_of_four).and(c.two_continuations);
            self.errors = self.errors.or(pair_errors.xor(expected_continuation));
            // Not zero exactly in the lanes above their maximum.
            self.previous_incomplete = block.saturating_sub(c.complete_max);
        }
        self.previous = block;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees_with_std(bytes: &[u8]) {
        assert_eq!(
            is_valid(bytes),
            std::str::from_utf8(bytes).is_ok(),
            "{bytes:x?}"
        );
    }

    /// Every byte pair inside a block and across a block boundary, and every long sequence
    /// from a set of interesting bytes across each boundary position it can straddle.
    #[test]
    fn short_sequences_agree_with_the_standard_library() {
        let at = |offset: usize, sequence: &[u8], tail: &[u8]| {
            let mut input = vec![b'a'; offset];
            input.extend_from_slice(sequence);
            input.extend_from_slice(tail);
            agrees_with_std(&input);
        };
        let mut invalid_pairs = 0;
        for first in 0..=0xffu8 {
            for second in 0..=0xffu8 {
                // Inside a block, then ASCII; straddling a boundary, at the end of the input.
                at(0, &[first, second], b"tail");
                at(15, &[first, second], b"");
                invalid_pairs += usize::from(std::str::from_utf8(&[first, second]).is_err());
            }
        }
        let leads = [
            0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff,
        ];
        let follows = [
            0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xed, 0xf0,
            0xf4, 0xf5, 0xff,
        ];
        let mut valid_long = 0;
        for lead in leads {
            for second in follows {
                for third in follows {
                    at(14, &[lead, second, third], b"x");
                    for fourth in follows {
                        let sequence = [lead, second, third, fourth];
                        at(12, &sequence, b"");
                        at(13, &sequence, b"x");
                        at(14, &sequence, b"");
                        at(15, &sequence, b"x");
                        valid_long += usize::from(std::str::from_utf8(&sequence).is_ok());
                    }
                }
            }
        }
        // Both answers are well represented: not a suite that only ever sees one of them.
        assert!(invalid_pairs > 30_000, "{invalid_pairs}");
        assert!(valid_long > 100, "{valid_long}");
    }

    #[test]
    fn long_texts_and_cut_sequences() {
        let text = "Prose — café, naïve, 東京, 😀 and \u{10FFFF} ".repeat(40);
        agrees_with_std(text.as_bytes());
        for cut in 0..text.len() {
            agrees_with_std(&text.as_bytes()[..cut]);
            agrees_with_std(&text.as_bytes()[cut..]);
        }
        agrees_with_std(b"");
        agrees_with_std(&[b'x'; 64]);
    }

    #[test]
    fn a_bad_byte_anywhere_in_a_long_body_is_found() {
        let good = "plain ascii text with some é and 東 "
            .repeat(30)
            .into_bytes();
        for at in (0..good.len()).step_by(7) {
            for bad in [0xffu8, 0x80, 0xc0, 0xed] {
                let mut body = good.clone();
                body[at] = bad;
                agrees_with_std(&body);
            }
        }
    }
}
