//! What the bulkhead knows about the requests and responses it sees: plain values, or HTTP.

use http_body::Body;
use weir_core::{Deadline, GuardedBody};

use crate::permit::Permit;

/// How a bulkhead reads a request and when it lets go of a permit; a sealed trait with two
/// modes, [`Plain`] and [`Http`], chosen on the builder.
pub trait Protocol<Req, Res>: sealed::Sealed {
    /// The response the bulkhead returns.
    type Response;

    /// The request's deadline, which bounds its wait in the queue.
    fn deadline(req: &Req) -> Option<Deadline>;

    /// Turns the inner service's response into the bulkhead's, with the permit the call held:
    /// dropped here, or kept in the response (`hold` says whether to).
    fn finish(res: Res, permit: Permit, hold: bool) -> Self::Response;
}

/// Any request and response: no deadline is read, and the permit is released when the inner
/// service's response future completes. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

/// `http::Request` / `http::Response`: the queue wait is bounded by the request's
/// [`Deadline`], and the permit is held by the response body
/// ([`GuardedBody`]) until the body has been sent to its end, has failed or has been dropped
/// (unless the builder says `release_at_head()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Http;

impl<Req, Res> Protocol<Req, Res> for Plain {
    type Response = Res;

    #[inline]
    fn deadline(_req: &Req) -> Option<Deadline> {
        None
    }

    #[inline]
    fn finish(res: Res, permit: Permit, _hold: bool) -> Res {
        drop(permit);
        res
    }
}

impl<ReqBody, ResBody: Body> Protocol<http::Request<ReqBody>, http::Response<ResBody>> for Http {
    type Response = http::Response<GuardedBody<ResBody, Option<Permit>>>;

    #[inline]
    fn deadline(req: &http::Request<ReqBody>) -> Option<Deadline> {
        Deadline::get(req.extensions())
    }

    #[inline]
    fn finish(res: http::Response<ResBody>, permit: Permit, hold: bool) -> Self::Response {
        let permit = if hold {
            Some(permit)
        } else {
            drop(permit);
            None
        };
        res.map(|body| GuardedBody::new(body, permit))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Http {}
}
