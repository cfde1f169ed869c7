//! What the load shedder does with responses: plain values, or HTTP responses whose body holds
//! the in-flight slot. The modes are weir-core's (`weir_core::protocol`); this response-side role
//! is the load shedder's own, sealed.

use http_body::Body;
use weir_core::body::EndBody;
use weir_core::protocol::{Http, Plain};

use crate::shared::{InFlight, Outcome, grpc_outcome};

/// When a load shedder lets go of an admitted call's in-flight slot: implemented for
/// weir-core's two modes, chosen on the builder. Sealed.
///
/// - `weir_core::protocol::Plain`, any response (the default): the slot is released, and the
///   call's round-trip time measured, when the inner service's response future completes.
/// - `weir_core::protocol::Http`, `http::Response`: the slot is held by the response body
///   ([`EndBody`]) until the body has been sent to its end, has failed or has been dropped,
///   and an adaptive limit's round-trip time runs until then. A gRPC call is counted by its
///   status, in the head (trailers-only) or in the trailers (#16.5): `DEADLINE_EXCEEDED`,
///   `UNAVAILABLE` and a `RESOURCE_EXHAUSTED` without pushback are drops (the loss signal), a
///   `RESOURCE_EXHAUSTED` with pushback (one caller's quota) is ignored, any other status a
///   success; a body that fails is ignored.
pub trait Protocol<Res>: sealed::Sealed {
    /// The response the load shedder returns.
    type Response;

    /// Turns the inner service's successful response into the load shedder's, with the slot the
    /// call held: ended here, or handed to the response.
    fn finish(res: Res, slot: InFlight) -> Self::Response;
}

impl<Res> Protocol<Res> for Plain {
    type Response = Res;

    #[inline]
    fn finish(res: Res, slot: InFlight) -> Res {
        slot.finish(Outcome::Success);
        res
    }
}

impl<ResBody: Body> Protocol<http::Response<ResBody>> for Http {
    type Response = http::Response<EndBody<ResBody, InFlight>>;

    #[inline]
    fn finish(res: http::Response<ResBody>, slot: InFlight) -> Self::Response {
        // The head says how the call went so far: a success, or, for an answer with no body (a
        // trailers-only gRPC status), its status (looked up only then: a response with a body
        // pays no header look-up here). The call ends, and is counted so, with its body, or by
        // its trailers' status.
        let head = if res.body().is_end_stream() {
            grpc_outcome(res.headers()).unwrap_or(Outcome::Success)
        } else {
            Outcome::Success
        };
        res.map(|body| EndBody::new(body, slot.ends_as(head)))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for weir_core::protocol::Plain {}
    impl Sealed for weir_core::protocol::Http {}
}
