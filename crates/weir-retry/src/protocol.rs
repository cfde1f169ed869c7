//! When the retry budget hears how a call ended: as its response arrives ([`Plain`]), or, for
//! HTTP responses whose status is in the trailers (gRPC), at the end of the body ([`Http`]).

use std::fmt;

use http_body::Body;
use weir_core::protocol::{Http, Plain};
use weir_core::{
    Outcome, body::BodyEnd, body::EndBody, body::OnBodyEnd, classify::ClassifyTrailers,
};

use crate::budget::SharedBudget;

/// How a retry layer hands back a result it does not retry, and when the budget records its
/// outcome: the `P` of [`RetryLayer`](crate::RetryLayer), [`Plain`] (the default) or [`Http`]
/// ([`RetryBuilder::trailers`](crate::RetryBuilder::trailers), and
/// [`RetryLayer::grpc`](crate::RetryLayer::grpc)'s). Sealed; `C` is the classifier, `Res` the
/// inner service's response.
pub trait Protocol<C, Res>: sealed::Sealed {
    /// The response the retry service returns.
    type Response;

    /// The final result, from a result that is not a failure (`outcome`): its outcome recorded
    /// in `budget` now, or by the response body when it ends.
    #[doc(hidden)]
    fn finish<E>(
        result: Result<Res, E>,
        outcome: Outcome,
        budget: &SharedBudget,
        classify: &C,
    ) -> Result<Self::Response, E>;

    /// The final result, from a failure whose outcome is recorded already.
    #[doc(hidden)]
    fn settled<E>(result: Result<Res, E>) -> Result<Self::Response, E>;
}

/// [`Plain`]: any response, classified as it arrives, and returned unchanged.
impl<C, Res> Protocol<C, Res> for Plain {
    type Response = Res;

    #[inline(always)]
    fn finish<E>(
        result: Result<Res, E>,
        outcome: Outcome,
        budget: &SharedBudget,
        _classify: &C,
    ) -> Result<Res, E> {
        budget.record(&outcome.for_upstream());
        result
    }

    #[inline(always)]
    fn settled<E>(result: Result<Res, E>) -> Result<Res, E> {
        result
    }
}

/// [`Http`]: `http::Response`s whose head does not settle the call (a gRPC `200` without
/// `grpc-status`: every normal completion, and a failure after the first message) are recorded
/// in the budget at the end of their body, by the `grpc-status` of the trailers
/// ([`ClassifyTrailers`]): an `UNAVAILABLE` there takes a gRPC throttle's token as any failure
/// does, and only an `OK` gives one back. Such a response is not retried (its body streams to
/// the caller); a body dropped before its end records nothing. Any other response is recorded
/// as it arrives, as with [`Plain`].
impl<C, B> Protocol<C, http::Response<B>> for Http
where
    C: ClassifyTrailers + Clone,
    B: Body,
{
    type Response = http::Response<EndBody<B, BodyGuard<C>>>;

    fn finish<E>(
        result: Result<http::Response<B>, E>,
        outcome: Outcome,
        budget: &SharedBudget,
        classify: &C,
    ) -> Result<Self::Response, E> {
        match result {
            Ok(response) if classify.in_trailers(response.status(), response.headers()) => {
                let guard = BodyGuard {
                    budget: budget.clone(),
                    classify: classify.clone(),
                };
                Ok(response.map(|body| EndBody::new(body, guard)))
            }
            result => {
                budget.record(&outcome.for_upstream());
                Self::settled(result)
            }
        }
    }

    #[inline]
    fn settled<E>(result: Result<http::Response<B>, E>) -> Result<Self::Response, E> {
        result.map(|response| response.map(EndBody::settled))
    }
}

/// Held by a response body in [`Http`] mode until it ends: records the call's outcome, read
/// from the trailers, in the retry budget. Opaque.
pub struct BodyGuard<C> {
    budget: SharedBudget,
    classify: C,
}

impl<C: ClassifyTrailers> OnBodyEnd for BodyGuard<C> {
    fn on_end(self, end: BodyEnd<'_>) {
        self.budget
            .record(&self.classify.classify_end(end).for_upstream());
    }
}

impl<C> fmt::Debug for BodyGuard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyGuard").finish_non_exhaustive()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for weir_core::protocol::Plain {}
    impl Sealed for weir_core::protocol::Http {}
}
