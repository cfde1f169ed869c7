//! How a limiter key is written into a Redis key: its bytes, digested to a fixed size.

/// A key that can be written into a Redis key name: weir-core's
/// [`StableKey`](weir_core::key::StableKey), the same bytes on every instance and every build
/// (no process-random hash), so every instance of a fleet finds the same state.
///
/// The bytes never reach Redis as they are: the store writes a fixed-size digest of them in
/// the key name (see [`RedisStore::key_name`](crate::RedisStore::key_name)), so a client
/// sending a long key does not size Redis's memory. Implemented for the keys of weir-core's
/// extractors, strings, integers and pairs of keys; implement it for your own key type by
/// writing its bytes.
pub use weir_core::key::StableKey as RedisKey;

/// The hex digits of a key's digest in a Redis key name (128 bits).
pub(crate) const DIGEST_LEN: usize = 32;

/// The fixed-size name of a limiter key in Redis: the first 128 bits of the SHA-1 of its bytes,
/// in lowercase hex, or `shared` for the key-less state. SHA-1 because it is stable across
/// builds and machines and already in the tree (redis-rs hashes its scripts with it); a
/// collision would need a second preimage of a 128-bit digest to let one client share another's
/// state, which no one can compute.
#[derive(Clone, Copy)]
pub(crate) struct KeyDigest {
    hex: [u8; DIGEST_LEN],
    shared: bool,
}

impl KeyDigest {
    /// The digest of `key`, or the shared state's name for `None` and for a zero-sized key
    /// (`()`, from `Global`, has one value).
    pub(crate) fn of<K: RedisKey>(key: Option<&K>) -> Self {
        let Some(key) = key.filter(|_| size_of::<K>() != 0) else {
            return Self {
                hex: [0; DIGEST_LEN],
                shared: true,
            };
        };
        // Off the happy path of a round trip to Redis: one buffer for the key's bytes.
        let mut bytes = Vec::new();
        key.write_key(&mut bytes);
        let sum = sha1_smol::Sha1::from(&bytes).digest().bytes();
        let mut hex = [0; DIGEST_LEN];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(sum) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        Self { hex, shared: false }
    }

    /// The digest in hex, or `"shared"`.
    pub(crate) fn as_str(&self) -> &str {
        if self.shared {
            return "shared";
        }
        std::str::from_utf8(&self.hex).unwrap_or_default()
    }

    /// The hash tag's content: `k:<digest>` or `shared`.
    pub(crate) fn write_tag(&self, out: &mut Vec<u8>) {
        if self.shared {
            out.extend_from_slice(b"shared");
        } else {
            out.extend_from_slice(b"k:");
            out.extend_from_slice(&self.hex);
        }
    }
}

const HEX: [u8; 16] = *b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use weir_core::key::OrKey;

    use super::*;

    /// The gateway example keys by `ApiKey.or(PeerIp)` in Redis: the two sides never meet
    /// (their bytes are tested in weir-core).
    #[test]
    fn or_keys_from_either_side_stay_apart() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let left: OrKey<&'static str, std::net::IpAddr> = OrKey::Left("127.0.0.1");
        let right: OrKey<&'static str, std::net::IpAddr> = OrKey::Right(ip);
        assert_ne!(
            KeyDigest::of(Some(&left)).as_str(),
            KeyDigest::of(Some(&right)).as_str()
        );
    }

    #[test]
    fn a_digest_is_fixed_size_stable_and_tells_keys_apart() {
        // SHA-1("alice") = 522b276a356bdf39013dfabea2cd43e141ecc9e8: the first 128 bits.
        let alice = KeyDigest::of(Some(&"alice"));
        assert_eq!(alice.as_str(), "522b276a356bdf39013dfabea2cd43e1");
        let long = "x".repeat(65_536);
        let mut other = long.clone();
        other.push('y');
        let (a, b) = (KeyDigest::of(Some(&long)), KeyDigest::of(Some(&other)));
        assert_eq!(a.as_str().len(), DIGEST_LEN);
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(KeyDigest::of(None::<&u32>).as_str(), "shared");
        assert_eq!(KeyDigest::of(Some(&())).as_str(), "shared");
    }
}
