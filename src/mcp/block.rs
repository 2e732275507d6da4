//! Sixteen bytes at a time: the few vector operations the UTF-8 check and the string reader
//! need. In the shipped build (wasm32 with `simd128`) each is one VM vector instruction; on
//! other targets a plain-array version with the same meaning stands in, so the native tests run
//! the very algorithms the `.wasm` runs.

pub use imp::Block;

/// The sixteen bytes of `bytes` starting at `at`, if there are that many.
#[inline]
pub fn block_at(bytes: &[u8], at: usize) -> Option<Block> {
    let chunk: &[u8; 16] = bytes.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Block::load(chunk))
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

        /// Unsigned `self < other`, per lane.
        #[inline]
        pub fn lt(self, other: Block) -> Block {
            Block(u8x16_lt(self.0, other.0))
        }

        /// Unsigned `self >= other`, per lane.
        #[inline]
        pub fn ge(self, other: Block) -> Block {
            Block(u8x16_ge(self.0, other.0))
        }

        /// Unsigned `self > other`, per lane.
        #[inline]
        pub fn gt(self, other: Block) -> Block {
            Block(u8x16_gt(self.0, other.0))
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

        /// Each lane's high nibble, as a value 0..=15.
        #[inline]
        pub fn high_nibbles(self) -> Block {
            Block(u8x16_shr(self.0, 4))
        }

        /// Each lane's low nibble, as a value 0..=15.
        #[inline]
        pub fn low_nibbles(self) -> Block {
            Block(v128_and(self.0, u8x16_splat(0x0F)))
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

        /// Unsigned `self < other`, per lane.
        #[inline]
        pub fn lt(self, other: Block) -> Block {
            lanes(|i| mask(self.0[i] < other.0[i]))
        }

        /// Unsigned `self >= other`, per lane.
        #[inline]
        pub fn ge(self, other: Block) -> Block {
            lanes(|i| mask(self.0[i] >= other.0[i]))
        }

        /// Unsigned `self > other`, per lane.
        #[inline]
        pub fn gt(self, other: Block) -> Block {
            lanes(|i| mask(self.0[i] > other.0[i]))
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

        /// Each lane's high nibble, as a value 0..=15.
        #[inline]
        pub fn high_nibbles(self) -> Block {
            lanes(|i| self.0[i] >> 4)
        }

        /// Each lane's low nibble, as a value 0..=15.
        #[inline]
        pub fn low_nibbles(self) -> Block {
            lanes(|i| self.0[i] & 0x0F)
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
