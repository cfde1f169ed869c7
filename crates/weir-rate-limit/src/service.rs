//! [`RateLimit`]: the service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;
use tower_service::Service;
use weir_core::{BoxError, Global, KeyExtractor, Observer, Resolved};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::layer::{Limiter, Mode, Next};
use crate::protocol::{AnyProtocol, Protocol};
use crate::store::{Ask, MemoryStore, Store};
use crate::tier::{Cost, DefaultTier, TierOf, UnitCost};

/// Limits the rate of requests to `S`; made by [`RateLimitLayer`](crate::RateLimitLayer).
///
/// `poll_ready` is the inner service's: the limiter never waits for readiness (axum routes are
/// always ready). `call` extracts the key, resolves its tier and cost, and decides at once: an
/// admitted request calls the inner service, a refused one gets a future that fails with
/// [`weir_core::Error::rate_limited`]. In wait mode (or with a store that answers later) the
/// readied inner service moves into the response future and a clone stays behind, which is why
/// `S` must be `Clone`.
pub struct RateLimit<
    S,
    X = Global,
    St = MemoryStore,
    T = DefaultTier,
    C = UnitCost,
    O = (),
    P = AnyProtocol,
> {
    inner: S,
    limiter: Arc<Limiter<X, St, T, C, O, P>>,
}

impl<S, X, St, T, C, O, P> RateLimit<S, X, St, T, C, O, P> {
    pub(crate) const fn new(inner: S, limiter: Arc<Limiter<X, St, T, C, O, P>>) -> Self {
        Self { inner, limiter }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the limiter.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, X, St, T, C, O, P> Clone for RateLimit<S, X, St, T, C, O, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S: fmt::Debug, X, St, T, C, O, P> fmt::Debug for RateLimit<S, X, St, T, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("name", &self.limiter.name)
            .finish_non_exhaustive()
    }
}

/// Moves the readied instance out and leaves a clone (not readied) behind.
fn take_readied<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, Req, X, St, T, C, O, P> Service<Req> for RateLimit<S, X, St, T, C, O, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    X: KeyExtractor<Req> + Send + Sync + 'static,
    St: Store<X::Key>,
    St::Future: Unpin,
    T: TierOf<X::Key>,
    C: Cost<Req>,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    P: Protocol<Req, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, St::Future, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let lim = &self.limiter;
        let protocol = lim.protocol.clone();
        let cost = lim.cost.cost(&req);
        if cost == 0 {
            return ResponseFuture::calling(self.inner.call(req), protocol, None);
        }
        let key = match lim.missing.resolve(lim.extractor.extract(&req)) {
            Resolved::Key(key) => Some(key),
            Resolved::Shared => None,
            Resolved::Bypass => {
                return ResponseFuture::calling(self.inner.call(req), protocol, None);
            }
            Resolved::Reject => return ResponseFuture::rejected(lim.missing_key_error(), protocol),
        };
        let tier = lim.tier_index(key.as_ref());
        let now = Instant::now();
        let max_wait = match lim.mode {
            Mode::Wait(_) => lim.max_wait(protocol.deadline(&req), now),
            Mode::Reject | Mode::Shadow => std::time::Duration::ZERO,
        };
        let headers = protocol.writes_headers();
        let ask = Ask { cost, max_wait };
        let mut decision = lim.store.decide(key.as_ref(), &lim.tiers[tier], ask, now);
        let polled = Pin::new(&mut decision).poll(&mut Context::from_waker(Waker::noop()));
        let next = match polled {
            Poll::Ready(Ok(decision)) => lim.judge(decision, key, tier, cost, headers),
            Poll::Ready(Err(error)) => Next::Reject(error),
            Poll::Pending => {
                let lim = Arc::clone(lim);
                let then = Box::new(move |decided| match decided {
                    Ok(decision) => lim.judge(decision, key, tier, cost, headers),
                    Err(error) => Next::Reject(error),
                });
                let svc = take_readied(&mut self.inner);
                return ResponseFuture::deciding(decision, then, svc, req, protocol);
            }
        };
        match next {
            Next::Call(info) => ResponseFuture::calling(self.inner.call(req), protocol, info),
            Next::Wait(wait, info, reservation) => {
                let svc = take_readied(&mut self.inner);
                ResponseFuture::waiting(wait, svc, req, protocol, info, reservation)
            }
            Next::Reject(error) => ResponseFuture::rejected(error, protocol),
        }
    }
}
