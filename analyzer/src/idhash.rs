//! The hasher of the model's maps keyed by socket ids and tokens, looked up
//! for almost every event. std's SipHash costs more than the lookup itself
//! on 8-byte keys; these keys need no cryptographic strength, only a good
//! spread and no easy way for a crafted recording to make every key collide:
//! a multiply-rotate mix seeded per process (from std's random hasher keys).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Builds [`IdHasher`]s sharing this process's seed.
#[derive(Clone, Copy, Debug)]
pub struct IdHash {
    seed: u64,
}

impl Default for IdHash {
    fn default() -> IdHash {
        // RandomState's keys are random per process; hashing nothing with it
        // gives a value derived from them.
        IdHash {
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.seed)
    }
}

/// A multiply-rotate hasher for integer keys.
#[derive(Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(v as u64);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket from the low ones.
        (self.0 ^ (self.0 >> 32)).wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A map keyed by socket ids or tokens.
pub type IdMap<K, V> = HashMap<K, V, IdHash>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_and_aligned_ids_spread_over_buckets() {
        // Socket ids of one slab differ only in a few middle bits.
        let h = IdHash::default();
        let mut low = std::collections::HashSet::new();
        for i in 0..1024u64 {
            low.insert(h.hash_one(0xffff_8880_1234_0000u64 + i * 0x800) & 1023);
        }
        assert!(low.len() > 500, "{} distinct low bits of 1024", low.len());
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000u64 {
            m.insert(i << 12, i);
        }
        assert_eq!(m.get(&(77 << 12)), Some(&77));
    }
}
