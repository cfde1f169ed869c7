//! How a limiter key is written into a Redis key.

use std::net::IpAddr;

use http::{HeaderValue, Method};
use weir_core::{ApiKeyToken, OrKey, RouteKey};

/// A key that can be written into a Redis key name: the same bytes on every instance and every
/// build (no process-random hash), so every instance of a fleet finds the same state.
///
/// Implemented for the keys of weir-core's extractors (`()`, [`IpAddr`], [`HeaderValue`],
/// [`ApiKeyToken`], [`RouteKey`], `(Method, RouteKey)`, [`http::uri::Authority`], the
/// [`OrKey`] of `ApiKey::new().or(PeerIp::new())`), for strings, integers and pairs of keys. Implement it for your own key type by writing its bytes.
pub trait RedisKey {
    /// Appends the key's bytes to `out`.
    fn write_key(&self, out: &mut Vec<u8>);
}

impl RedisKey for () {
    fn write_key(&self, _out: &mut Vec<u8>) {}
}

impl RedisKey for IpAddr {
    fn write_key(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{self}");
    }
}

impl RedisKey for str {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for &'static str {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for [u8] {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for HeaderValue {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for ApiKeyToken {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for RouteKey {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

impl RedisKey for Method {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

impl RedisKey for http::uri::Authority {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn write_key(&self, out: &mut Vec<u8>) {
                use std::io::Write;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

integers!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl<A: RedisKey, B: RedisKey> RedisKey for (A, B) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
        // A separator that a header value, route or address never holds.
        out.push(0);
        self.1.write_key(out);
    }
}

impl<A: RedisKey, B: RedisKey> RedisKey for OrKey<A, B> {
    /// A tag first (`L` or `R`), so that equal keys from the two extractors stay two keys, as
    /// `OrKey` compares them: an API key `127.0.0.1` is not the address `127.0.0.1`.
    fn write_key(&self, out: &mut Vec<u8>) {
        match self {
            Self::Left(key) => {
                out.push(b'L');
                key.write_key(out);
            }
            Self::Right(key) => {
                out.push(b'R');
                key.write_key(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(key: &impl RedisKey) -> Vec<u8> {
        let mut out = Vec::new();
        key.write_key(&mut out);
        out
    }

    /// The gateway example keys by `ApiKey.or(PeerIp)` in Redis: the two sides never meet.
    #[test]
    fn or_keys_from_either_side_stay_apart() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let left: OrKey<&'static str, IpAddr> = OrKey::Left("127.0.0.1");
        let right: OrKey<&'static str, IpAddr> = OrKey::Right(ip);
        assert_eq!(written(&left), b"L127.0.0.1");
        assert_eq!(written(&right), b"R127.0.0.1");
    }
}
