//! `Carrier`: what the timeout layer can reach in a request.

use http::{Extensions, HeaderMap, Method, Request};

/// A request the timeout layer can serve: an `http::Request` carries a deadline in its
/// extensions and headers; any other request is only timed.
///
/// The layer keeps one `Service` impl for every request type, so it needs to ask the request
/// whether it has HTTP parts. For an [`http::Request`] (axum, hyper, tonic) the answer is yes:
/// the layer reads the [`weir_core::Deadline`] already in the extensions, sets its own (the
/// earlier wins), reads incoming `grpc-timeout` / `x-timeout-ms` in server mode and writes them
/// in client mode. For the other types implemented here (integers, strings, `Vec`, `Box`, ...)
/// it has none and the layer only times the call.
///
/// Your own request type is one line away, with the default methods (no HTTP parts):
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, service_fn};
/// use weir_timeout::TimeoutLayer;
///
/// struct Query(u32);
/// impl weir_timeout::Carrier for Query {}
///
/// let service = TimeoutLayer::new(Duration::from_secs(1))
///     .layer(service_fn(|q: Query| async move { Ok::<_, std::convert::Infallible>(q.0) }));
/// # let _ = service;
/// ```
pub trait Carrier {
    /// The request's headers, if it is an HTTP request.
    #[inline]
    fn headers(&self) -> Option<&HeaderMap> {
        None
    }

    /// The request's headers, mutably, if it is an HTTP request.
    #[inline]
    fn headers_mut(&mut self) -> Option<&mut HeaderMap> {
        None
    }

    /// The request's extensions, mutably, if it is an HTTP request.
    #[inline]
    fn extensions_mut(&mut self) -> Option<&mut Extensions> {
        None
    }

    /// The request's method, if it is an HTTP request (the umbrella crate's client preset reads
    /// it to retry only idempotent requests).
    #[inline]
    fn method(&self) -> Option<&Method> {
        None
    }

    /// The request's extensions, if it is an HTTP request (where its
    /// [`Deadline`](weir_core::Deadline) is kept).
    #[inline]
    fn extensions(&self) -> Option<&Extensions> {
        None
    }
}

impl<B> Carrier for Request<B> {
    #[inline]
    fn headers(&self) -> Option<&HeaderMap> {
        Some(Self::headers(self))
    }

    #[inline]
    fn headers_mut(&mut self) -> Option<&mut HeaderMap> {
        Some(Self::headers_mut(self))
    }

    #[inline]
    fn extensions_mut(&mut self) -> Option<&mut Extensions> {
        Some(Self::extensions_mut(self))
    }

    #[inline]
    fn method(&self) -> Option<&Method> {
        Some(Self::method(self))
    }

    #[inline]
    fn extensions(&self) -> Option<&Extensions> {
        Some(Self::extensions(self))
    }
}

macro_rules! no_http_parts {
    ($($ty:ty),* $(,)?) => {
        $(impl Carrier for $ty {})*
    };
}

no_http_parts!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    String,
    &str,
);

impl<T> Carrier for Vec<T> {}
impl<T: ?Sized> Carrier for Box<T> {}
impl<T> Carrier for Option<T> {}
