//! What the bulkhead does with responses: release the permit with the response
//! (`weir_core::protocol::Plain`), or hand it to the response body (`weir_core::protocol::Http`).
//! The modes are weir-core's request-side ones (the request's deadline comes from there); this
//! response-side role is the bulkhead's own, sealed.

use http_body::Body;
use weir_core::body::GuardedBody;
use weir_core::protocol::{Http, Plain};

use crate::permit::Permit;

pub(crate) use self::sealed::Sealed as Mode;

/// When a bulkhead lets go of a permit: implemented for `weir_core::protocol::Plain` (any
/// response: the permit is released when the inner service's response future completes; the
/// default) and `weir_core::protocol::Http` (`http::Response`: the permit rides in the response
/// body, [`GuardedBody`], until the body has been sent to its end, has failed or has been
/// dropped, unless the builder says `release_at_head()`; the queue wait is bounded by the
/// request's `Deadline`). Sealed: the builder chooses the mode.
pub trait Protocol<Req, Res>: weir_core::protocol::Protocol<Req> + sealed::Sealed {
    /// The response the bulkhead returns.
    type Response;

    /// Turns the inner service's response into the bulkhead's, with the permit the call held:
    /// dropped here, or kept in the response (`hold` says whether to).
    fn finish(res: Res, permit: Permit, hold: bool) -> Self::Response;
}

impl<Req, Res> Protocol<Req, Res> for Plain {
    type Response = Res;

    #[inline]
    fn finish(res: Res, permit: Permit, _hold: bool) -> Res {
        drop(permit);
        res
    }
}

impl<ReqBody, ResBody: Body> Protocol<http::Request<ReqBody>, http::Response<ResBody>> for Http {
    type Response = http::Response<GuardedBody<ResBody, Option<Permit>>>;

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
    /// The two modes; `HTTP` says whether the permit can ride in a response body.
    pub trait Sealed {
        const HTTP: bool;
    }

    impl Sealed for weir_core::protocol::Plain {
        const HTTP: bool = false;
    }

    impl Sealed for weir_core::protocol::Http {
        const HTTP: bool = true;
    }
}
