//! [`Protocol`]: the one answer to "is this an HTTP request, and what is its deadline?".
//!
//! Every weir layer that reads a request's HTTP parts takes a protocol type parameter, chosen on
//! its builder:
//!
//! - [`Plain`]: any request type, nothing read, nothing to implement on your own request types.
//!   A `Plain` layer costs nothing per call, and a `Duration`, a tuple or your own struct is a
//!   request without a newtype or a marker impl.
//! - [`Http`]: `http::Request`, as axum, hyper and tonic use; its headers, extensions, method and
//!   deadline are read (and written where the layer writes them).
//! - [`Auto`]: an `http::Request` read as [`Http`] reads it, the standard library's types
//!   (integers, strings, `Duration`, tuples, `Vec`, `Box`, `Option`) as [`Plain`] does. The
//!   default of the two layers that read every request's HTTP parts whatever else they are
//!   told, weir-timeout's `TimeoutLayer` (the deadline) and weir-retry's `IdempotentReplay` (the
//!   method): an `http::Request` is served as HTTP without being asked, so forgetting `.http()`
//!   never silently drops a deadline or retries a POST. A request type of your own is not one
//!   `Auto` knows: the layer does not build until it is given [`Plain`] (`.plain()`); where the
//!   service meets a `Service<Req>` bound, the compiler's message names `Plain`.
//!
//! Every other layer defaults to [`Plain`] and reads HTTP only when told (`.http()`).
//!
//! The choice is made once, at the type level, so the dispatch costs nothing per call. The
//! layers that read a request's deadline, and when each measures time, follow one rule,
//! written once in [`Deadline`]'s *Time base*.
//!
//! A layer's response-side behaviour (holding a permit in the body, writing headers on an
//! admitted response) is the layer's own trait, implemented for these same types.

use http::header::CONTENT_TYPE;
use http::{Extensions, HeaderMap, Method};

use crate::deadline::Deadline;

/// What a layer can read and write in a request of type `Req`; implemented by [`Plain`] for
/// every type, by [`Http`] for `http::Request<B>`, and by [`Auto`] for both an
/// `http::Request<B>` and the standard library's request types.
///
/// ```
/// use std::time::Duration;
/// use weir_core::Deadline;
/// use weir_core::protocol::{Http, Plain, Protocol};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut req = http::Request::new(());
/// Deadline::after(Duration::from_secs(1)).set_earliest(req.extensions_mut());
/// assert!(<Http as Protocol<_>>::deadline(&req).is_some());
/// assert!(<Plain as Protocol<_>>::deadline(&req).is_none());
/// assert!(<Plain as Protocol<_>>::deadline(&(1_u32, "any type")).is_none());
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "weir's protocol `{Self}` cannot read a request of type `{Req}`",
    label = "`{Self}` does not read `{Req}`",
    note = "`Auto`, the default of `TimeoutLayer` and `IdempotentReplay` (and so of `RetryLayer::new`), reads an `http::Request` and the standard library's types; for a request type of your own, choose `Plain` (any type, no impl): `.plain()` on the timeout's layer or builder, `IdempotentReplay::plain()` as the retry's replay",
    note = "`Http` reads an `http::Request` only"
)]
pub trait Protocol<Req>: Copy + Default + Send + Sync + 'static {
    /// Whether this protocol reads HTTP parts at all (`false` for [`Plain`]), so a layer can
    /// skip work that only HTTP needs at compile time.
    const HTTP: bool;

    /// The request's headers, if it is an HTTP request.
    fn headers(req: &Req) -> Option<&HeaderMap>;

    /// The request's headers, mutably, if it is an HTTP request.
    fn headers_mut(req: &mut Req) -> Option<&mut HeaderMap>;

    /// The request's extensions, if it is an HTTP request (where its [`Deadline`] is kept).
    fn extensions(req: &Req) -> Option<&Extensions>;

    /// The request's extensions, mutably, if it is an HTTP request.
    fn extensions_mut(req: &mut Req) -> Option<&mut Extensions>;

    /// The request's method, if it is an HTTP request.
    fn method(req: &Req) -> Option<&Method>;

    /// The request's [`Deadline`], if it is an HTTP request that carries one.
    #[inline]
    fn deadline(req: &Req) -> Option<Deadline> {
        Self::extensions(req).and_then(Deadline::get)
    }

    /// Whether the request is gRPC ([`is_grpc`] on its headers); `false` for [`Plain`].
    #[inline]
    fn is_grpc(req: &Req) -> bool {
        Self::headers(req).is_some_and(is_grpc)
    }
}

/// Any request type: no HTTP parts are read or written. The default of every layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plain;

/// `http::Request<B>`: the layer reads and writes its headers, extensions and deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http;

/// [`Http`] for an `http::Request<B>`, [`Plain`] for the standard library's request types
/// (`()`, `bool`, `char`, the integers and floats, `String`, `&str`, `Duration`, tuples of up to
/// four, `Vec<T>`, `Box<T>`, `Option<T>`): the default of the layers that must read an
/// `http::Request` whether or not they are told it is one (weir-timeout's `TimeoutLayer`,
/// weir-retry's `IdempotentReplay`), see the [module docs](self).
///
/// The choice is made by trait impls (one for `http::Request<B>`, whatever its body: `Full`,
/// hyper's `Incoming`, tonic's body; one for each standard type), not by the type's name, so
/// it is fixed at compile time and costs nothing per call. A request type of your own has no
/// impl: a layer in `Auto` mode does not build for it, and [`Plain`] serves it with no impl.
///
/// ```
/// use std::time::Duration;
/// use weir_core::protocol::{Auto, Protocol};
///
/// let req = http::Request::post("http://shop/orders").body(()).unwrap();
/// assert_eq!(<Auto as Protocol<_>>::method(&req), Some(&http::Method::POST));
/// assert!(<Auto as Protocol<_>>::method(&Duration::from_secs(1)).is_none());
/// assert!(<Auto as Protocol<_>>::method(&(7_u32, "seven")).is_none());
/// ```
///
/// A request type of your own is not one `Auto` reads (choose [`Plain`]):
///
/// ```compile_fail
/// use weir_core::protocol::{Auto, Protocol};
///
/// struct Query(u32);
/// let _ = <Auto as Protocol<Query>>::method(&Query(7));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Auto;

impl<Req> Protocol<Req> for Plain {
    const HTTP: bool = false;

    #[inline(always)]
    fn headers(_req: &Req) -> Option<&HeaderMap> {
        None
    }

    #[inline(always)]
    fn headers_mut(_req: &mut Req) -> Option<&mut HeaderMap> {
        None
    }

    #[inline(always)]
    fn extensions(_req: &Req) -> Option<&Extensions> {
        None
    }

    #[inline(always)]
    fn extensions_mut(_req: &mut Req) -> Option<&mut Extensions> {
        None
    }

    #[inline(always)]
    fn method(_req: &Req) -> Option<&Method> {
        None
    }

    #[inline(always)]
    fn deadline(_req: &Req) -> Option<Deadline> {
        None
    }

    #[inline(always)]
    fn is_grpc(_req: &Req) -> bool {
        false
    }
}

impl<B> Protocol<http::Request<B>> for Http {
    const HTTP: bool = true;

    #[inline]
    fn headers(req: &http::Request<B>) -> Option<&HeaderMap> {
        Some(req.headers())
    }

    #[inline]
    fn headers_mut(req: &mut http::Request<B>) -> Option<&mut HeaderMap> {
        Some(req.headers_mut())
    }

    #[inline]
    fn extensions(req: &http::Request<B>) -> Option<&Extensions> {
        Some(req.extensions())
    }

    #[inline]
    fn extensions_mut(req: &mut http::Request<B>) -> Option<&mut Extensions> {
        Some(req.extensions_mut())
    }

    #[inline]
    fn method(req: &http::Request<B>) -> Option<&Method> {
        Some(req.method())
    }
}

impl<B> Protocol<http::Request<B>> for Auto {
    const HTTP: bool = true;

    #[inline]
    fn headers(req: &http::Request<B>) -> Option<&HeaderMap> {
        Some(req.headers())
    }

    #[inline]
    fn headers_mut(req: &mut http::Request<B>) -> Option<&mut HeaderMap> {
        Some(req.headers_mut())
    }

    #[inline]
    fn extensions(req: &http::Request<B>) -> Option<&Extensions> {
        Some(req.extensions())
    }

    #[inline]
    fn extensions_mut(req: &mut http::Request<B>) -> Option<&mut Extensions> {
        Some(req.extensions_mut())
    }

    #[inline]
    fn method(req: &http::Request<B>) -> Option<&Method> {
        Some(req.method())
    }
}

/// [`Auto`] on a request with no HTTP parts: [`Plain`]'s answers.
macro_rules! auto_is_plain {
    ($([$($param:tt)*] $ty:ty),* $(,)?) => {
        // The lifetimes are named: `&str`'s own makes elision ambiguous for that one type.
        $(#[allow(clippy::needless_lifetimes)]
        impl<$($param)*> Protocol<$ty> for Auto {
            const HTTP: bool = false;

            #[inline(always)]
            fn headers<'r>(_req: &'r $ty) -> Option<&'r HeaderMap> {
                None
            }

            #[inline(always)]
            fn headers_mut<'r>(_req: &'r mut $ty) -> Option<&'r mut HeaderMap> {
                None
            }

            #[inline(always)]
            fn extensions<'r>(_req: &'r $ty) -> Option<&'r Extensions> {
                None
            }

            #[inline(always)]
            fn extensions_mut<'r>(_req: &'r mut $ty) -> Option<&'r mut Extensions> {
                None
            }

            #[inline(always)]
            fn method<'r>(_req: &'r $ty) -> Option<&'r Method> {
                None
            }

            #[inline(always)]
            fn deadline(_req: &$ty) -> Option<Deadline> {
                None
            }

            #[inline(always)]
            fn is_grpc(_req: &$ty) -> bool {
                false
            }
        })*
    };
}

auto_is_plain!(
    [] (),
    [] bool,
    [] char,
    [] u8,
    [] u16,
    [] u32,
    [] u64,
    [] u128,
    [] usize,
    [] i8,
    [] i16,
    [] i32,
    [] i64,
    [] i128,
    [] isize,
    [] f32,
    [] f64,
    [] String,
    ['s] &'s str,
    [] std::time::Duration,
    [T] Vec<T>,
    [T: ?Sized] Box<T>,
    [T] Option<T>,
    [A, B] (A, B),
    [A, B, C] (A, B, C),
    [A, B, C, D] (A, B, C, D),
);

/// Whether a request's or a response's `content-type` is gRPC: `application/grpc`,
/// `application/grpc+proto`, gRPC-Web's `application/grpc-web...`, compared without letter case
/// (media types are case-insensitive, RFC 9110 §8.3.1) and without allocating. The one gRPC test
/// in weir.
///
/// ```
/// use http::HeaderMap;
/// use http::header::{CONTENT_TYPE, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// assert!(!weir_core::protocol::is_grpc(&headers));
/// headers.insert(CONTENT_TYPE, HeaderValue::from_static("Application/GRPC+proto"));
/// assert!(weir_core::protocol::is_grpc(&headers));
/// ```
#[must_use]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    // An empty map has no content-type: not hashed and looked up.
    !headers.is_empty()
        && headers.get(CONTENT_TYPE).is_some_and(|value| {
            value
                .as_bytes()
                .get(..GRPC.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn plain_reads_nothing_http_reads_everything() {
        let mut req = http::Request::builder()
            .method(Method::POST)
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert!(<Http as Protocol<_>>::is_grpc(&req));
        assert_eq!(<Http as Protocol<_>>::method(&req), Some(&Method::POST));
        assert!(<Http as Protocol<_>>::headers_mut(&mut req).is_some());
        assert!(<Http as Protocol<_>>::extensions_mut(&mut req).is_some());
        assert!(!<Plain as Protocol<_>>::is_grpc(&req));
        assert!(<Plain as Protocol<_>>::method(&req).is_none());
        assert!(<Plain as Protocol<_>>::headers_mut(&mut req).is_none());
        const { assert!(<Http as Protocol<http::Request<()>>>::HTTP) };
        const { assert!(!<Plain as Protocol<u64>>::HTTP) };
    }

    #[test]
    fn grpc_content_types_in_any_case() {
        for (value, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web+proto", true),
            ("APPLICATION/GRPC", true),
            ("application/json", false),
            ("application/grp", false),
            ("", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_grpc(&headers), grpc, "{value:?}");
        }
    }
}
