//! When a call's outcome is recorded: as its response arrives ([`Head`]), or at the end of its
//! body ([`Trailers`]: gRPC, whose status comes in the trailers).

use std::fmt;

use http_body::Body;
use weir_core::{
    Classify, Observer, body::BodyEnd, body::EndBody, body::OnBodyEnd, classify::ClassifyTrailers,
};

use crate::event::Event;
use crate::shared::Guard;

/// When a breaker records a call's outcome, chosen on the layer: [`Head`] (the default) as the
/// inner service answers, [`Trailers`] at the end of the response body. `C` is the classifier,
/// `Res` and `E` the inner service's response and error.
pub trait Protocol<C, Res, E> {
    /// The response the breaker's service returns; `O` is the breaker's observer.
    type Response<O>;

    /// Records the outcome of `result` through `guard` now, or hands the guard to the response
    /// to record it later.
    ///
    /// # Errors
    ///
    /// The inner service's error, unchanged.
    fn finish<O>(
        result: Result<Res, E>,
        guard: &mut BodyGuard<C, O>,
    ) -> Result<Self::Response<O>, E>
    where
        O: for<'a> Observer<Event<'a>>;
}

/// The outcome is recorded as the inner service answers (its response head, for HTTP), and the
/// response is returned unchanged: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Head;

impl<C, Res, E> Protocol<C, Res, E> for Head
where
    C: Classify<Res, E>,
{
    type Response<O> = Res;

    // Always inlined, with `Breaker::record`: the client stack's breaker records every success
    // of its time window here, and out of line the two calls cost their prologues and
    // epilogues on every call (the figure is in benches/README.md, stacks).
    #[inline(always)]
    fn finish<O>(result: Result<Res, E>, guard: &mut BodyGuard<C, O>) -> Result<Res, E>
    where
        O: for<'a> Observer<Event<'a>>,
    {
        guard.0.finish(&result);
        result
    }
}

/// The outcome is recorded at the end of the response body, where gRPC puts the status
/// ([`CircuitBreakerLayer::trailers`](crate::CircuitBreakerLayer::trailers)): with
/// [`GrpcStatus`](weir_core::classify::GrpcStatus), an `UNAVAILABLE` that arrives in the trailers (every
/// normal gRPC completion, a failure after the first message) counts as the failure it is, not
/// as the success its `200` head looks like.
///
/// A response whose head settles it (a trailers-only gRPC error, a non-`200` status, an error)
/// is classified at once; otherwise the permit moves into the response body ([`EndBody`]),
/// which records the outcome when the trailers arrive, the body ends or it fails. A body dropped
/// before its end records nothing (as a cancelled call) and gives a half-open probe slot back.
/// A slow call is timed to the end of the body.
///
/// ```
/// use http::{HeaderMap, Response};
/// use http_body_util::BodyExt;
/// use tower::{Layer, ServiceExt, service_fn};
/// use weir_circuit_breaker::{CircuitBreakerLayer, State};
/// use weir_core::{BoxError, classify::GrpcStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A gRPC server whose every call ends with `grpc-status: 14` (UNAVAILABLE) in the trailers.
/// let server = service_fn(|_: ()| async {
///     let mut trailers = HeaderMap::new();
///     trailers.insert("grpc-status", "14".parse().unwrap());
///     let body = http_body_util::Full::new(bytes::Bytes::new())
///         .with_trailers(async { Some(Ok(trailers)) });
///     Ok::<_, BoxError>(Response::new(body))
/// });
/// let breaker = CircuitBreakerLayer::consecutive_failures(2)
///     .classifier(GrpcStatus::new())
///     .build()
///     .unwrap()
///     .trailers();
/// let handle = breaker.handle();
/// let client = breaker.layer(server);
/// for _ in 0..2 {
///     let response = client.clone().oneshot(()).await.unwrap();
///     response.into_body().collect().await.unwrap(); // the trailers end the call
/// }
/// assert_eq!(handle.state(), State::Open);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Trailers;

impl<C, B, E> Protocol<C, http::Response<B>, E> for Trailers
where
    C: ClassifyTrailers + Classify<http::Response<B>, E>,
    B: Body,
{
    type Response<O> = http::Response<EndBody<B, BodyGuard<C, O>>>;

    fn finish<O>(
        result: Result<http::Response<B>, E>,
        guard: &mut BodyGuard<C, O>,
    ) -> Result<Self::Response<O>, E>
    where
        O: for<'a> Observer<Event<'a>>,
    {
        match result {
            Ok(response)
                if guard
                    .0
                    .classifier()
                    .in_trailers(response.status(), response.headers()) =>
            {
                let moved = BodyGuard(guard.0.split());
                Ok(response.map(|body| EndBody::new(body, moved)))
            }
            result => {
                let outcome = guard.0.classifier().classify(&result);
                guard.0.settle(outcome);
                result.map(|response| response.map(EndBody::settled))
            }
        }
    }
}

/// A call's permit on its breaker, held by a response future and, with [`Trailers`], by the
/// response body until it ends (the `G` of [`EndBody`]). Opaque: it only records the call's
/// outcome, or on drop gives a half-open probe slot back.
pub struct BodyGuard<C, O>(pub(crate) Guard<C, O>);

impl<C, O> OnBodyEnd for BodyGuard<C, O>
where
    C: ClassifyTrailers,
    O: for<'a> Observer<Event<'a>>,
{
    fn on_end(mut self, end: BodyEnd<'_>) {
        let outcome = self.0.classifier().classify_end(end);
        self.0.settle(outcome);
    }
}

impl<C, O> fmt::Debug for BodyGuard<C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BodyGuard").field(&self.0).finish()
    }
}
