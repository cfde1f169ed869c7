//! How a limiter key is written into a Redis key.

use std::net::IpAddr;

use http::{HeaderValue, Method};
use weir_core::{ApiKeyToken, RouteKey};

/// A key that can be written into a Redis key name: the same bytes on every instance and every
/// build (no process-random hash), so every instance of a fleet finds the same state.
///
/// Implemented for the keys of weir-core's extractors (`()`, [`IpAddr`], [`HeaderValue`],
/// [`ApiKeyToken`], [`RouteKey`], `(Method, RouteKey)`, [`http::uri::Authority`]), for strings,
/// integers and pairs of keys. Implement it for your own key type by writing its bytes.
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
