//! What the load shedder knows about responses: plain values, or HTTP responses whose body
//! holds the in-flight slot.

use http_body::Body;
use weir_core::GuardedBody;

use crate::shared::{InFlight, Outcome};

/// When a load shedder lets go of an admitted call's in-flight slot; a sealed trait with two
/// modes, [`Plain`] and [`Http`], chosen on the builder.
pub trait Protocol<Res>: sealed::Sealed {
    /// The response the load shedder returns.
    type Response;

    /// Turns the inner service's successful response into the load shedder's, with the slot the
    /// call held: ended here, or handed to the response.
    fn finish(res: Res, slot: InFlight) -> Self::Response;
}

/// Any response: the slot is released, and the call's round-trip time measured, when the inner
/// service's response future completes. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

/// `http::Response`: the slot is held by the response body ([`GuardedBody`]) until the body
/// has been sent to its end, has failed or has been dropped, and an adaptive limit's round-trip
/// time runs until then.
#[derive(Clone, Copy, Debug, Default)]
pub struct Http;

impl<Res> Protocol<Res> for Plain {
    type Response = Res;

    #[inline]
    fn finish(res: Res, slot: InFlight) -> Res {
        slot.finish(Outcome::Success);
        res
    }
}

impl<ResBody: Body> Protocol<http::Response<ResBody>> for Http {
    type Response = http::Response<GuardedBody<ResBody, InFlight>>;

    #[inline]
    fn finish(res: http::Response<ResBody>, slot: InFlight) -> Self::Response {
        // The head was a success; the call ends, and is counted so, with its body.
        res.map(|body| GuardedBody::new(body, slot.succeeded()))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Http {}
}
