//! What the layer does with responses: pass them through ([`Plain`]), or also mark fallback
//! answers as degraded ([`Http`]) and keep the last good answer per key
//! ([`LastGood`](crate::LastGood)). The modes are weir-core's request-side ones
//! (`weir_core::protocol`); this response-side role is the fallback's own, sealed.

use http::HeaderValue;
use http::header::HeaderName;
use weir_core::observer::TraceId;
use weir_core::protocol::{Http, Plain};
use weir_core::{Outcome, degrade::Degraded};

use crate::state::Source;

/// The header every HTTP fallback answer carries: `weir-fallback: value`, `service` or
/// `last_good` (the [`Source`] that answered), so clients and caches can tell a degraded answer
/// from a fresh one.
/// Declared once, in weir-core, as [`weir_core::wire::WEIR_FALLBACK`].
pub const FALLBACK_HEADER: HeaderName = weir_core::wire::WEIR_FALLBACK;

/// How the layer hands responses back: `weir_core::protocol::`[`Plain`] (the default),
/// [`Http`] (from [`FallbackBuilder::http`](crate::FallbackBuilder::http)) or
/// [`LastGood`](crate::LastGood). Sealed: the builder chooses the mode.
///
/// - [`Plain`], any response type: responses pass through unchanged and fallback answers are
///   not marked (a layer outside sees a fallback answer as a success; use [`Http`] for HTTP and
///   gRPC).
/// - [`Http`], HTTP (and gRPC over HTTP) responses: every fallback answer carries the
///   [`FALLBACK_HEADER`] and a [`weir_core::degrade::Degraded`] extension recording the original outcome,
///   which weir's `HttpStatus` and `GrpcStatus` classifiers outside read, so a breaker or a
///   retry budget there still counts the original failure.
pub trait Protocol<Req, Res>: sealed::Sealed {
    /// The layer's response type.
    type Response;
    /// What is kept from a request to look its last good answer up (`()`: nothing).
    type Key;

    /// The key of a request whose good answer is kept, or `None`.
    fn key(&self, req: &Req) -> Option<Self::Key>;

    /// What is kept of a request for its events' trace id: `()` in [`Plain`] mode (nothing, so
    /// the future does not grow), an `Option<TraceId>` in [`Http`] mode (and
    /// [`LastGood`](crate::LastGood)'s).
    type Trace;

    /// The W3C trace id of the request's `traceparent` header, read at call only when `wanted`
    /// (the observer [wants trace ids](weir_core::Observer::wants_trace_id)): the request has
    /// gone to the primary when the fallback reports. Nothing in [`Plain`] mode.
    fn trace(&self, req: &Req, wanted: bool) -> Self::Trace;

    /// The trace id kept in `trace`.
    fn trace_id(trace: &Self::Trace) -> Option<TraceId>;

    /// A response the primary gave and the classifier accepted (kept under `key` if any).
    fn success(&self, response: Res, key: Option<Self::Key>) -> Self::Response;

    /// A failed response no source replaced, handed back as it was.
    fn pass(&self, response: Res) -> Self::Response;

    /// A fallback answer from `source`, standing in for a call whose outcome was `outcome`.
    fn answer(&self, response: Res, source: Source, outcome: Outcome) -> Self::Response;

    /// The last good answer kept under `key`, if one is fresh enough, marked as a fallback answer.
    fn last_good(&self, key: &Self::Key, outcome: Outcome) -> Option<Self::Response>;
}

impl<Req, Res> Protocol<Req, Res> for Plain {
    type Response = Res;
    type Key = ();
    type Trace = ();

    #[inline(always)]
    fn key(&self, _req: &Req) -> Option<()> {
        None
    }

    #[inline(always)]
    fn trace(&self, _req: &Req, _wanted: bool) {}

    #[inline(always)]
    fn trace_id(_trace: &()) -> Option<TraceId> {
        None
    }

    #[inline(always)]
    fn success(&self, response: Res, _key: Option<()>) -> Res {
        response
    }

    #[inline(always)]
    fn pass(&self, response: Res) -> Res {
        response
    }

    #[inline]
    fn answer(&self, response: Res, _source: Source, _outcome: Outcome) -> Res {
        response
    }

    #[inline(always)]
    fn last_good(&self, _key: &(), _outcome: Outcome) -> Option<Res> {
        None
    }
}

impl<ReqB, B> Protocol<http::Request<ReqB>, http::Response<B>> for Http {
    type Response = http::Response<B>;
    type Key = ();
    type Trace = Option<TraceId>;

    #[inline(always)]
    fn key(&self, _req: &http::Request<ReqB>) -> Option<()> {
        None
    }

    #[inline]
    fn trace(&self, req: &http::Request<ReqB>, wanted: bool) -> Option<TraceId> {
        trace(req, wanted)
    }

    fn trace_id(trace: &Option<TraceId>) -> Option<TraceId> {
        *trace
    }

    #[inline(always)]
    fn success(&self, response: http::Response<B>, _key: Option<()>) -> http::Response<B> {
        response
    }

    #[inline(always)]
    fn pass(&self, response: http::Response<B>) -> http::Response<B> {
        response
    }

    fn answer(
        &self,
        response: http::Response<B>,
        source: Source,
        outcome: Outcome,
    ) -> http::Response<B> {
        mark(response, source, outcome)
    }

    #[inline(always)]
    fn last_good(&self, _key: &(), _outcome: Outcome) -> Option<http::Response<B>> {
        None
    }
}

/// The trace id of `req`'s `traceparent` header, read only when `wanted`.
#[inline]
pub(crate) fn trace<B>(req: &http::Request<B>, wanted: bool) -> Option<TraceId> {
    if wanted {
        TraceId::from_headers(req.headers())
    } else {
        None
    }
}

/// Marks `response` as a fallback answer from `source` standing in for `outcome`.
pub(crate) fn mark<B>(
    mut response: http::Response<B>,
    source: Source,
    outcome: Outcome,
) -> http::Response<B> {
    response
        .headers_mut()
        .insert(FALLBACK_HEADER, HeaderValue::from_static(source.as_str()));
    response.extensions_mut().insert(Degraded::new(outcome));
    response
}

/// Seals [`Protocol`]: implemented for weir-core's modes here and for
/// [`LastGood`](crate::LastGood) beside it.
pub(crate) mod sealed {
    /// The seal.
    pub trait Sealed {}
    impl Sealed for weir_core::protocol::Plain {}
    impl Sealed for weir_core::protocol::Http {}
}
