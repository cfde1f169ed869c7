//! What the limiter knows of the request and response types: nothing ([`AnyProtocol`]) or HTTP
//! ([`Http`]).

use http::{Request, Response};
use tokio::time::Instant;
use weir_core::observer::TraceId;
use weir_core::{Deadline, wire::HeaderStyle, wire::RateLimitInfo};

/// How a limiter reads a request and writes an admitted response; [`AnyProtocol`] (any types,
/// nothing read or written) or [`Http`].
pub trait Protocol<Req, Res>: Clone + Send + Sync + 'static {
    /// What the response future keeps of an admitted response's rate-limit state until the
    /// response comes: inline, so an admitted request allocates nothing. `()` for a protocol
    /// that writes no field ([`AnyProtocol`]: the future carries nothing), [`RateLimitInfo`]
    /// for [`Http`].
    type Fields: Send + 'static;

    /// Whether admitted responses get rate-limit fields (so the limiter prepares them).
    fn writes_headers(&self) -> bool;

    /// The request's deadline, which bounds a wait.
    fn deadline(&self, req: &Req) -> Option<Instant>;

    /// What to keep of the state of the reported policy, made only when
    /// [`writes_headers`](Self::writes_headers) is true.
    fn keep(&self, info: RateLimitInfo) -> Self::Fields;

    /// Writes what [`keep`](Self::keep) kept on an admitted response.
    fn on_admitted(&self, res: &mut Res, fields: &Self::Fields);

    /// The header style the limiter was set to ([`RateLimitBuilder::response_headers`]), which
    /// its refusals carry too ([`RateLimitInfo::style`]) so admitted and refused responses
    /// agree; `None` (the default) leaves refusals to the response mapping's style.
    ///
    /// [`RateLimitBuilder::response_headers`]: crate::RateLimitBuilder::response_headers
    #[inline]
    fn header_style(&self) -> Option<HeaderStyle> {
        None
    }

    /// The W3C trace id of the request's `traceparent` header, for a refusal's event (read only
    /// when a request is refused or shadowed, never for an admitted one); `None` (the default)
    /// reads nothing.
    #[inline]
    fn trace_id(&self, _req: &Req) -> Option<TraceId> {
        None
    }
}

/// Any request and response type: no deadline read, no header written (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyProtocol;

impl<Req, Res> Protocol<Req, Res> for AnyProtocol {
    type Fields = ();

    #[inline(always)]
    fn writes_headers(&self) -> bool {
        false
    }

    #[inline(always)]
    fn deadline(&self, _req: &Req) -> Option<Instant> {
        None
    }

    #[inline(always)]
    fn keep(&self, _info: RateLimitInfo) {}

    #[inline(always)]
    fn on_admitted(&self, _res: &mut Res, _fields: &()) {}
}

/// `http::Request` in, `http::Response` out: reads [`Deadline`] from the request's extensions and
/// writes the rate-limit fields on admitted responses in a [`HeaderStyle`]. Set with
/// [`RateLimitBuilder::http`](crate::RateLimitBuilder::http).
#[derive(Clone, Copy, Debug)]
pub struct Http {
    style: HeaderStyle,
}

impl Http {
    pub(crate) const fn new(style: HeaderStyle) -> Self {
        Self { style }
    }

    /// The header style of admitted responses.
    #[must_use]
    pub const fn style(&self) -> HeaderStyle {
        self.style
    }
}

impl<B, RB> Protocol<Request<B>, Response<RB>> for Http {
    type Fields = RateLimitInfo;

    #[inline]
    fn writes_headers(&self) -> bool {
        self.style != HeaderStyle::None
    }

    #[inline]
    fn deadline(&self, req: &Request<B>) -> Option<Instant> {
        Deadline::get(req.extensions()).map(Deadline::instant)
    }

    #[inline]
    fn keep(&self, info: RateLimitInfo) -> RateLimitInfo {
        info
    }

    fn on_admitted(&self, res: &mut Response<RB>, info: &RateLimitInfo) {
        info.write_headers(res.headers_mut(), self.style);
    }

    #[inline]
    fn header_style(&self) -> Option<HeaderStyle> {
        Some(self.style)
    }

    fn trace_id(&self, req: &Request<B>) -> Option<TraceId> {
        TraceId::from_headers(req.headers())
    }
}
