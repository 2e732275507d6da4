//! Sixteen bytes at a time: the few vector operations the UTF-8 check and the string reader
//! need. In the shipped build (wasm32 with `simd128`) each is one VM vector instruction; on
//! other targets a plain-array version with the same meaning stands in, so the native tests run
//! the very algorithms the `.wasm` runs.

pub use imp::Block;

/// The mask the nibble operations take: `0x0F` in every lane.
pub const NIBBLE: u8 = 0x0F;

/// `block`, built once and kept in a local by the VM for the loop that uses it. V8 hoists no
/// vector constant out of a loop: it rebuilds each one at every use, several instructions
/// apiece. A value the compiler cannot see through is built once, before the loop.
#[inline]
pub fn kept(block: Block) -> Block {
    std::hint::black_box(block)
}

/// The sixty-four bytes of `bytes` starting at `at` as four blocks, if there are that many.
#[inline]
pub fn group_at(bytes: &[u8], at: usize) -> Option<[Block; 4]> {
    let group = bytes.get(at..)?.first_chunk::<64>()?;
    let (first, rest) = group.split_first_chunk::<16>()?;
    let (second, rest) = rest.split_first_chunk::<16>()?;
    let (third, fourth) = rest.split_first_chunk::<16>()?;
    let fourth = fourth.first_chunk::<16>()?;
    Some([first, second, third, fourth].map(Block::load))
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    /// Sixteen byte lanes; comparisons set a lane to 0xFF when true, 0 otherwise.
    #[derive(Clone, Copy)]
    pub struct Block(v128);

    impl Block {
        #[inline]
        pub fn load(bytes: &[u8; 16]) -> Block {
            // SAFETY: the reference guarantees 16 readable bytes; wasm's v128.load has no
            // alignment requirement.
            Block(unsafe { v128_load(bytes.as_ptr().cast::<v128>()) })
        }

        #[inline]
        pub fn from_array(bytes: [u8; 16]) -> Block {
            Block::load(&bytes)
        }

        #[inline]
        pub fn splat(byte: u8) -> Block {
            Block(u8x16_splat(byte))
        }

        #[inline]
        pub fn eq(self, other: Block) -> Block {
            Block(u8x16_eq(self.0, other.0))
        }

        /// Unsigned `self <= limit`, per lane: the lanes a minimum leaves as they were, two
        /// instructions where V8's unsigned comparisons take three or more.
        #[inline]
        pub fn at_most(self, limit: Block) -> Block {
            Block(u8x16_eq(u8x16_min(self.0, limit.0), self.0))
        }

        /// `self - other` per lane, zero where it would go below zero.
        #[inline]
        pub fn saturating_sub(self, other: Block) -> Block {
            Block(u8x16_sub_sat(self.0, other.0))
        }

        #[inline]
        pub fn and(self, other: Block) -> Block {
            Block(v128_and(self.0, other.0))
        }

        #[inline]
        pub fn or(self, other: Block) -> Block {
            Block(v128_or(self.0, other.0))
        }

        #[inline]
        pub fn xor(self, other: Block) -> Block {
            Block(v128_xor(self.0, other.0))
        }

        /// Each lane's high nibble, as a value 0..=15; `nibble` is [`NIBBLE`] kept by the caller.
        #[inline]
        pub fn high_nibbles(self, nibble: Block) -> Block {
            // A 16-bit shift and a mask: V8 has no byte shift and emulates one at more cost.
            Block(v128_and(u16x8_shr(self.0, 4), nibble.0))
        }

        /// Each lane's low nibble, as a value 0..=15; `nibble` is [`NIBBLE`] kept by the caller.
        #[inline]
        pub fn low_nibbles(self, nibble: Block) -> Block {
            Block(v128_and(self.0, nibble.0))
        }

        /// `table[lane]` for each lane, whose values must be 0..=15.
        #[inline]
        pub fn look_up_in(self, table: Block) -> Block {
            Block(u8x16_swizzle(table.0, self.0))
        }

        /// The lanes one byte earlier in the stream `previous ++ self`.
        #[inline]
        pub fn one_back(self, previous: Block) -> Block {
            Block(u8x16_shuffle::<
                15,
                16,
                17,
                18,
                19,
                20,
                21,
                22,
                23,
                24,
                25,
                26,
                27,
                28,
                29,
                30,
            >(previous.0, self.0))
        }

        /// The lanes two bytes earlier in the stream `previous ++ self`.
        #[inline]
        pub fn two_back(self, previous: Block) -> Block {
            Block(u8x16_shuffle::<
                14,
                15,
                16,
                17,
                18,
                19,
                20,
                21,
                22,
                23,
                24,
                25,
                26,
                27,
                28,
                29,
            >(previous.0, self.0))
        }

        /// The lanes three bytes earlier in the stream `previous ++ self`.
        #[inline]
        pub fn three_back(self, previous: Block) -> Block {
            Block(u8x16_shuffle::<
                13,
                14,
                15,
                16,
                17,
                18,
                19,
                20,
                21,
                22,
                23,
                24,
                25,
                26,
                27,
                28,
            >(previous.0, self.0))
        }

        /// Bit `i` is the high bit of lane `i`.
        #[inline]
        pub fn high_bits(self) -> u16 {
            u8x16_bitmask(self.0)
        }

        #[inline]
        pub fn any(self) -> bool {
            v128_any_true(self.0)
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    /// Sixteen byte lanes; comparisons set a lane to 0xFF when true, 0 otherwise.
    #[derive(Clone, Copy)]
    pub struct Block([u8; 16]);

    fn lanes(f: impl Fn(usize) -> u8) -> Block {
        Block(std::array::from_fn(f))
    }

    fn mask(condition: bool) -> u8 {
        if condition {
            0xFF
        } else {
            0
        }
    }

    impl Block {
        #[inline]
        pub fn load(bytes: &[u8; 16]) -> Block {
            Block(*bytes)
        }

        #[inline]
        pub fn from_array(bytes: [u8; 16]) -> Block {
            Block(bytes)
        }

        #[inline]
        pub fn splat(byte: u8) -> Block {
            Block([byte; 16])
        }

        #[inline]
        pub fn eq(self, other: Block) -> Block {
            lanes(|i| mask(self.0[i] == other.0[i]))
        }

        /// Unsigned `self <= limit`, per lane.
        #[inline]
        pub fn at_most(self, limit: Block) -> Block {
            lanes(|i| mask(self.0[i] <= limit.0[i]))
        }

        /// `self - other` per lane, zero where it would go below zero.
        #[inline]
        pub fn saturating_sub(self, other: Block) -> Block {
            lanes(|i| self.0[i].saturating_sub(other.0[i]))
        }

        #[inline]
        pub fn and(self, other: Block) -> Block {
            lanes(|i| self.0[i] & other.0[i])
        }

        #[inline]
        pub fn or(self, other: Block) -> Block {
            lanes(|i| self.0[i] | other.0[i])
        }

        #[inline]
        pub fn xor(self, other: Block) -> Block {
            lanes(|i| self.0[i] ^ other.0[i])
        }

        /// Each lane's high nibble, as a value 0..=15; `nibble` is [`NIBBLE`] kept by the caller.
        #[inline]
        pub fn high_nibbles(self, nibble: Block) -> Block {
            lanes(|i| (self.0[i] >> 4) & nibble.0[i])
        }

        /// Each lane's low nibble, as a value 0..=15; `nibble` is [`NIBBLE`] kept by the caller.
        #[inline]
        pub fn low_nibbles(self, nibble: Block) -> Block {
            lanes(|i| self.0[i] & nibble.0[i])
        }

        /// `table[lane]` for each lane, whose values must be 0..=15.
        #[inline]
        pub fn look_up_in(self, table: Block) -> Block {
            lanes(|i| table.0[usize::from(self.0[i] & 0x0F)])
        }

        fn back(self, previous: Block, by: usize) -> Block {
            lanes(|i| {
                if i >= by {
                    self.0[i - by]
                } else {
                    previous.0[16 + i - by]
                }
            })
        }

        /// The lanes one byte earlier in the stream `previous ++ self`.
        #[inline]
        pub fn one_back(self, previous: Block) -> Block {
            self.back(previous, 1)
        }

        /// The lanes two bytes earlier in the stream `previous ++ self`.
        #[inline]
        pub fn two_back(self, previous: Block) -> Block {
            self.back(previous, 2)
        }

        /// The lanes three bytes earlier in the stream `previous ++ self`.
        #[inline]
        pub fn three_back(self, previous: Block) -> Block {
            self.back(previous, 3)
        }

        /// Bit `i` is the high bit of lane `i`.
        #[inline]
        pub fn high_bits(self) -> u16 {
            self.0
                .iter()
                .enumerate()
                .fold(0, |bits, (i, b)| bits | (u16::from(b >> 7) << i))
        }

        #[inline]
        pub fn any(self) -> bool {
            self.0.iter().any(|b| *b != 0)
        }
    }
}
