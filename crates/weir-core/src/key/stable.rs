//! [`StableKey`]: the bytes of a key, the same on every instance and every build.

use std::net::IpAddr;

use http::{HeaderValue, Method};

use super::{ApiKeyToken, OrKey, RouteKey};

/// A key whose bytes are the same on every instance, every build and every platform (never
/// std's `Hash`, whose output is per process and may change between Rust versions), so state
/// shared by a fleet (a Redis key, an idempotency scope) is found by every instance.
///
/// A layer that sends a key out of the process digests these bytes to a fixed size first, so a
/// client sending a long key does not size anyone's memory: weir-redis names its Redis keys by
/// them (its `RedisKey` is this trait), weir-idempotency scopes its keys by them.
///
/// Implemented for the keys of weir-core's extractors (`()`, [`IpAddr`], [`HeaderValue`],
/// [`ApiKeyToken`], [`RouteKey`], `(Method, RouteKey)`, [`http::uri::Authority`], the
/// [`OrKey`] of `ApiKey::new().or(PeerIp::new())`), for strings, integers and pairs of keys.
/// Implement it for your own key type by writing its bytes.
///
/// ```
/// use weir_core::key::StableKey;
///
/// let mut out = Vec::new();
/// ("acme", 42_u32).write_key(&mut out);
/// assert_eq!(out, b"acme\x0042");
/// ```
pub trait StableKey {
    /// Appends the key's bytes to `out`.
    fn write_key(&self, out: &mut Vec<u8>);
}

impl StableKey for () {
    fn write_key(&self, _out: &mut Vec<u8>) {}
}

impl StableKey for IpAddr {
    fn write_key(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{self}");
    }
}

impl StableKey for str {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl StableKey for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl StableKey for &'static str {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl StableKey for [u8] {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl StableKey for HeaderValue {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl StableKey for ApiKeyToken {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl StableKey for RouteKey {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

impl StableKey for Method {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

impl StableKey for http::uri::Authority {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl StableKey for $t {
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

impl<A: StableKey, B: StableKey> StableKey for (A, B) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
        // A separator that a header value, route or address never holds.
        out.push(0);
        self.1.write_key(out);
    }
}

impl<A: StableKey, B: StableKey> StableKey for OrKey<A, B> {
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

    fn written(key: &impl StableKey) -> Vec<u8> {
        let mut out = Vec::new();
        key.write_key(&mut out);
        out
    }

    /// The gateway example keys by `ApiKey.or(PeerIp)`: the two sides never meet.
    #[test]
    fn or_keys_from_either_side_stay_apart() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let left: OrKey<&'static str, IpAddr> = OrKey::Left("127.0.0.1");
        let right: OrKey<&'static str, IpAddr> = OrKey::Right(ip);
        assert_eq!(written(&left), b"L127.0.0.1");
        assert_eq!(written(&right), b"R127.0.0.1");
    }

    /// The bytes are text, never a platform's integer width or byte order.
    #[test]
    fn bytes_are_the_same_on_every_platform() {
        assert_eq!(written(&"::1".parse::<IpAddr>().unwrap()), b"::1");
        assert_eq!(written(&258_usize), b"258");
        assert_eq!(written(&(Method::POST, "/orders")), b"POST\0/orders");
        assert_eq!(written(&()), b"");
    }

    /// Each key type writes the text it holds, and only that: the bytes shared state is named
    /// by on every instance (a change here renames every Redis key of a fleet).
    #[test]
    fn every_key_type_writes_its_text() {
        assert_eq!(written(&String::from("acme")), b"acme");
        let mut out = Vec::new();
        "acme".write_key(&mut out);
        b"a\xffb"[..].write_key(&mut out);
        assert_eq!(out, b"acmea\xffb");
        assert_eq!(written(&HeaderValue::from_static("k-1")), b"k-1");
        assert_eq!(
            written(&ApiKeyToken::from(HeaderValue::from_static("t0k"))),
            b"t0k"
        );
        assert_eq!(
            written(&RouteKey::from_static("/users/{id}")),
            b"/users/{id}"
        );
        assert_eq!(written(&Method::DELETE), b"DELETE");
        assert_eq!(
            written(&"api.example:8080".parse::<http::uri::Authority>().unwrap()),
            b"api.example:8080"
        );
        assert_eq!(written(&"10.1.2.3".parse::<IpAddr>().unwrap()), b"10.1.2.3");
        assert_eq!(written(&u8::MAX), b"255");
        assert_eq!(written(&u16::MAX), b"65535");
        assert_eq!(written(&u64::MAX), b"18446744073709551615");
        assert_eq!(written(&u128::MAX), u128::MAX.to_string().as_bytes());
        assert_eq!(written(&i8::MIN), b"-128");
        assert_eq!(written(&i16::MIN), b"-32768");
        assert_eq!(written(&-7_i32), b"-7");
        assert_eq!(written(&i64::MIN), b"-9223372036854775808");
        assert_eq!(written(&i128::MIN), i128::MIN.to_string().as_bytes());
        assert_eq!(written(&-1_isize), b"-1");
        assert_eq!(written(&(1_u32, (2_u8, "x"))), b"1\x002\x00x");
    }
}
