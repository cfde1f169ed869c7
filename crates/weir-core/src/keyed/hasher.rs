//! `Prehashed`: a pass-through hasher for keys that are hashes already.

use std::hash::BuildHasher;

/// A hasher for keys that are already uniformly distributed 64-bit hashes, such as a keyed
/// SipHash of the real key computed by the caller: the map uses the value as it is instead of
/// hashing it again. Use it with [`KeyedMap::with_hasher`](crate::keyed::KeyedMap::with_hasher) only for such keys: keys an attacker
/// can choose need a keyed hash (the default `RandomState`) to keep flooding from colliding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prehashed;

/// The [`Hasher`](std::hash::Hasher) of [`Prehashed`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PrehashedHasher(u64);

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

impl std::hash::Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not a prehashed `u64`: fold the bytes in (FNV-1a), so it still works, if slowly.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
