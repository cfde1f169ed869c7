//! [`RateLimit`]: the service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;
use tower_service::Service;
use weir_core::{
    BoxError, KeyExtractor, Observer, key::Global, key::Resolved, wire::RateLimitInfo,
};

use crate::event::Event;
use crate::future::{Later, ResponseFuture};
use crate::protocol::{AnyProtocol, Protocol};
use crate::shared::{Limiter, Mode, Next, Reservation};
use crate::store::{Ask, MemoryStore, Now, Store};
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

    weir_core::inner_accessors!(inner: S);
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
    type Future = ResponseFuture<S::Future, S, Req, St::Future, P, P::Fields>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // The call of a small request (up to four words: an id, a command) is inlined into the
    // caller, which then builds the response future in place: 39 to 32 ns for a GCRA call on
    // a `u64`. A larger one's is out of line: inlined, an `http::Request` (248 bytes) would be
    // copied three more times within a server stack, which measured slower. `always`: a hint
    // is not enough once one limiter type is called from two places (the rate_limit bench's
    // refusing rows share the admitted row's type), and the call out of line cost 18
    // instructions more per admitted call (benches/README.md, "The happy path's regression").
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        if size_of::<Req>() <= 4 * size_of::<usize>() {
            self.decide_and_call(req)
        } else {
            self.decide_and_call_out_of_line(req)
        }
    }
}

impl<S, X, St, T, C, O, P> RateLimit<S, X, St, T, C, O, P> {
    /// [`decide_and_call`](Self::decide_and_call), out of line, for a large request.
    #[inline(never)]
    fn decide_and_call_out_of_line<Req>(
        &mut self,
        req: Req,
    ) -> ResponseFuture<S::Future, S, Req, St::Future, P, P::Fields>
    where
        S: Service<Req> + Clone,
        X: KeyExtractor<Req> + Send + Sync + 'static,
        St: Store<X::Key>,
        St::Future: Unpin,
        T: TierOf<X::Key>,
        C: Cost<Req>,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
        P: Protocol<Req, S::Response>,
    {
        self.decide_and_call(req)
    }

    /// Decides and calls: every way out builds the response future here, from what the
    /// out-of-line parts (the judgement of a decision, the boxed states of a wait or a late
    /// answer) return in registers.
    #[inline(always)]
    fn decide_and_call<Req>(
        &mut self,
        req: Req,
    ) -> ResponseFuture<S::Future, S, Req, St::Future, P, P::Fields>
    where
        S: Service<Req> + Clone,
        X: KeyExtractor<Req> + Send + Sync + 'static,
        St: Store<X::Key>,
        St::Future: Unpin,
        T: TierOf<X::Key>,
        C: Cost<Req>,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
        P: Protocol<Req, S::Response>,
    {
        let lim = &self.limiter;
        let protocol = lim.protocol.clone();
        let next = 'next: {
            let cost = lim.cost.cost(&req);
            if cost == 0 {
                break 'next Next::Call(None);
            }
            let key = match lim.missing.resolve(lim.extractor.extract(&req)) {
                Resolved::Key(key) => Some(key),
                Resolved::Shared => None,
                Resolved::Bypass => break 'next Next::Call(None),
                Resolved::Reject => break 'next Next::Reject(lim.missing_key_error()),
            };
            let tier = lim.tier_index(key.as_ref());
            // The one key of a global extractor is kept as the key-less state: no hash, no map.
            let key = if lim.extractor.is_global() { None } else { key };
            let now = Instant::now();
            let max_wait = match lim.mode {
                Mode::Wait(_) => lim.max_wait(protocol.deadline(&req), now),
                Mode::Reject | Mode::Shadow => std::time::Duration::ZERO,
            };
            let headers = protocol.writes_headers();
            let ask = Ask { cost, max_wait };
            // One table for the whole request: its decision and its response fields read one
            // version of the settings.
            let tiers = &lim.tiers.current()[tier];
            match lim
                .store
                .decide_now(key.as_ref(), tiers, ask, !headers, now)
            {
                // The plain happy path: admitted at once, nothing to report.
                Now::Admitted => Next::Call(None),
                Now::Decided(Ok(decision), _)
                    if decision.is_admitted() && decision.is_immediate() && !headers =>
                {
                    Next::Call(None)
                }
                // The decision's own instant, not `now`: `now` is dead once the store has read
                // it, so the happy path keeps no copy of it across the decision.
                Now::Decided(Ok(decision), decided) => lim.judge(
                    decision,
                    decided,
                    key,
                    tiers,
                    cost,
                    protocol.header_style(),
                    || protocol.trace_id(&req),
                ),
                Now::Decided(Err(error), _) => Next::Reject(error),
                Now::Later => {
                    let mut decision = lim.store.decide(key.as_ref(), tiers, ask, now);
                    let mut cx = Context::from_waker(Waker::noop());
                    match Pin::new(&mut decision).poll(&mut cx) {
                        Poll::Ready(Ok(decision)) => lim.judge(
                            decision,
                            now,
                            key,
                            tiers,
                            cost,
                            protocol.header_style(),
                            || protocol.trace_id(&req),
                        ),
                        Poll::Ready(Err(error)) => Next::Reject(error),
                        Poll::Pending => {
                            let tier = lim.tiers.locate(tiers);
                            let later = self.deciding(
                                decision,
                                now,
                                req,
                                key,
                                tier,
                                cost,
                                protocol.header_style(),
                            );
                            return ResponseFuture::later(later, protocol);
                        }
                    }
                }
            }
        };
        match next {
            Next::Call(info) => {
                let fields = info.map(|info| protocol.keep(info));
                ResponseFuture::calling(self.inner.call(req), protocol, fields)
            }
            Next::Wait(wait, info, reservation) => {
                let later = self.waiting(wait, req, info, reservation);
                ResponseFuture::later(later, protocol)
            }
            Next::Reject(error) => ResponseFuture::rejected(error, protocol),
        }
    }

    /// A request that waits its turn: the readied service and the request wait in the box.
    #[inline(never)]
    fn waiting<Req, D>(
        &mut self,
        wait: std::time::Duration,
        req: Req,
        info: Option<RateLimitInfo>,
        reservation: Reservation,
    ) -> Pin<Box<Later<S, Req, D>>>
    where
        S: Clone,
    {
        Later::waiting(wait, take_readied(&mut self.inner), req, info, reservation)
    }

    /// A store that answers later: the readied service and the request wait in the box for the
    /// decision.
    #[inline(never)]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one request, moved into its box once; a struct would be built only to be taken apart"
    )]
    fn deciding<Req, K>(
        &mut self,
        decision: St::Future,
        now: Instant,
        req: Req,
        key: Option<K>,
        tier: (usize, usize),
        cost: u32,
        style: Option<weir_core::wire::HeaderStyle>,
    ) -> Pin<Box<Later<S, Req, St::Future>>>
    where
        S: Clone,
        St: Store<K>,
        K: std::hash::Hash + fmt::Debug + Send + 'static,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
        P: Protocol<Req, S::Response>,
        S: Service<Req>,
    {
        let lim = Arc::clone(&self.limiter);
        let then = Box::new(move |decided, req: &Req| match decided {
            Ok(decision) => {
                let tier = lim.tiers.at(tier.0).get(tier.1);
                match tier {
                    Some(tier) => lim.judge(decision, now, key, tier, cost, style, || {
                        lim.protocol.trace_id(req)
                    }),
                    None => Next::Call(None),
                }
            }
            Err(error) => Next::Reject(error),
        });
        Later::deciding(decision, then, take_readied(&mut self.inner), req)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Ready;
    use std::time::Duration;

    use tower::{Layer, ServiceExt, service_fn};
    use weir_core::{Error, Name, keyed::KeyedConfig};

    use super::*;
    use crate::quota::Quota;
    use crate::store::{Decision, Tier};
    use crate::{Gcra, RateLimitLayer};

    /// A store that answers later: the in-memory decision, handed over on the second poll (the
    /// limiter's own poll in `call` finds it pending), as a store asking a server would.
    struct Later(MemoryStore);

    struct Answer(Option<Result<Decision, BoxError>>, bool);

    impl Future for Answer {
        type Output = Result<Decision, BoxError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if !self.1 {
                self.1 = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.0.take().expect("polled after completion"))
        }
    }

    impl Store<()> for Later {
        type Future = Answer;

        fn decide(&self, key: Option<&()>, tier: &Tier, ask: Ask, now: Instant) -> Answer {
            let decided: Ready<_> = self.0.decide(key, tier, ask, now);
            Answer(Some(decided.into_inner()), false)
        }

        fn cancel(&self, key: Option<&()>, tier: &Tier, cost: u32, now: Instant) {
            self.0.cancel(key, tier, cost, now);
        }
    }

    fn later(quota: &Quota) -> Later {
        let tier = Tier::new(Name::default(), [quota.clone()]);
        Later(MemoryStore::new(Gcra, KeyedConfig::new(), &tier))
    }

    fn echo()
    -> impl Service<u32, Response = u32, Error = Infallible, Future = Ready<Result<u32, Infallible>>>
    + Clone {
        service_fn(|n: u32| std::future::ready(Ok(n)))
    }

    /// Readies `svc` and sends `n` through it.
    async fn send<S: Service<u32>>(svc: &mut S, n: u32) -> Result<S::Response, S::Error> {
        svc.ready().await?.call(n).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_answering_later_admits_then_refuses_with_its_retry_after() {
        let quota = Quota::per_second(2).named("edge");
        let layer = RateLimitLayer::builder()
            .quota(quota.clone())
            .build_with_store(later(&quota))
            .expect("valid");
        let mut svc = layer.layer(echo());
        for n in 0..2 {
            assert_eq!(send(&mut svc, n).await.expect("admitted"), n);
        }
        let refused = send(&mut svc, 9).await.expect_err("refused");
        let error = Error::find(&*refused).expect("a weir error");
        assert!(error.is_rate_limited());
        assert_eq!(error.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(error.rate_limit().map(|i| i.quota()), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_answering_later_can_make_a_request_wait_its_turn() {
        let quota = Quota::per_second(2).burst(1);
        let layer = RateLimitLayer::builder()
            .quota(quota.clone())
            .wait(Duration::from_secs(1))
            .build_with_store(later(&quota))
            .expect("valid");
        let mut svc = layer.layer(echo());
        assert_eq!(send(&mut svc, 1).await.expect("admitted"), 1);
        let start = Instant::now();
        assert_eq!(send(&mut svc, 2).await.expect("admitted"), 2);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_global_key_is_kept_without_a_map_and_keeps_its_tier() {
        let (layer, handle) = RateLimitLayer::builder()
            .quota(Quota::per_second(1))
            .tier("gold", [Quota::per_second(3)])
            .key(weir_core::key::Global)
            .tier_of(|_: &()| Some("gold"))
            .build_with_handle()
            .expect("valid");
        let mut svc = layer.layer(echo());
        for n in 0..3 {
            assert_eq!(send(&mut svc, n).await.expect("admitted by gold"), n);
        }
        let refused = send(&mut svc, 9).await.expect_err("gold's burst is 3");
        assert!(Error::find(&*refused).is_some_and(Error::is_rate_limited));
        assert_eq!(handle.keys(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_waiting_future_gives_its_turn_back() {
        let quota = Quota::per_second(2).burst(1);
        let layer = RateLimitLayer::builder()
            .quota(quota)
            .wait(Duration::from_secs(1))
            .build()
            .expect("valid");
        let mut svc = layer.layer(echo());
        assert_eq!(send(&mut svc, 1).await.expect("admitted"), 1);
        let mut waiting = tokio_test::task::spawn(svc.ready().await.expect("ready").call(2));
        tokio_test::assert_pending!(waiting.poll());
        assert!(format!("{:?}", &*waiting).contains("waiting"));
        drop(waiting);
        // The 500 ms turn was given back: the next request waits 500 ms, not 1 s.
        let start = Instant::now();
        assert_eq!(send(&mut svc, 3).await.expect("admitted"), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }
}
