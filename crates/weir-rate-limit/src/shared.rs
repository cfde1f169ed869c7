//! The state every service of one [`RateLimitLayer`](crate::RateLimitLayer) shares
//! ([`Limiter`]), and what a request does after its decision ([`Next`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::observer::TraceId;
use weir_core::{
    BoxError, Error, Name, Observer, key::MissingKey, wire::HeaderStyle, wire::RateLimitInfo,
};

use crate::event::Event;
use crate::live::Tables;
use crate::quota::Quota;
use crate::store::{Decision, Store, Tier};
use crate::tier::TierOf;
use crate::top::TopLimited;

/// What a refused request does: answer at once, wait up to a bound, or pass (shadow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Reject,
    Wait(Duration),
    Shadow,
}

/// Everything a layer's services share: created once by `build()`, behind one `Arc`.
pub(crate) struct Limiter<X, St, T, C, O, P> {
    pub(crate) name: Name,
    pub(crate) store: St,
    pub(crate) extractor: X,
    pub(crate) tier_of: T,
    /// The tiers, replaced whole by an apply; a request reads one table.
    pub(crate) tiers: Tables,
    pub(crate) cost: C,
    /// Shared with the store's eviction hook.
    pub(crate) observer: Arc<O>,
    pub(crate) protocol: P,
    pub(crate) mode: Mode,
    pub(crate) missing: MissingKey,
    /// Requests refused (or, in shadow mode, that would have been) since the layer was built:
    /// counted where the refusal is judged, never on an admitted request.
    pub(crate) refused: AtomicU64,
    /// The most refused keys, written only on a refusal.
    pub(crate) top: TopLimited,
}

/// A reserved wait: given back to the store if dropped before it is used.
pub(crate) struct Reservation(Option<Box<dyn FnOnce() + Send>>);

impl Reservation {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel();
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reservation")
            .field(&self.0.is_some())
            .finish()
    }
}

/// What a request does after its decision: the rate-limit fields an admitted response
/// reports ride inline (never boxed), to be kept by the protocol
/// ([`Protocol::keep`](crate::Protocol::keep)).
pub(crate) enum Next {
    Call(Option<RateLimitInfo>),
    Wait(Duration, Option<RateLimitInfo>, Reservation),
    Reject(BoxError),
}

impl<X, St, T, C, O, P> Limiter<X, St, T, C, O, P> {
    pub(crate) fn tier_index<K>(&self, key: Option<&K>) -> usize
    where
        T: TierOf<K>,
    {
        let Some(name) = key.and_then(|k| self.tier_of.tier(k)) else {
            return 0;
        };
        // Tier names never change while the layer runs: the first table has them.
        self.tiers
            .at(0)
            .iter()
            .position(|t| t.name() == name)
            .unwrap_or(0)
    }

    pub(crate) fn max_wait(&self, deadline: Option<Instant>, now: Instant) -> Duration {
        match self.mode {
            Mode::Wait(max) => deadline.map_or(max, |d| max.min(d.saturating_duration_since(now))),
            Mode::Reject | Mode::Shadow => Duration::ZERO,
        }
    }

    /// The state a response reports: the decision's policy, its units left (never more than
    /// the quota `RateLimit-Policy` advertises, even with a burst above the rate), every other
    /// quota of the tier listed after it, and the limiter's header style if it has one. A
    /// clone of the tier's prepared state: no allocation.
    fn info(&self, tier: &Tier, decision: &Decision, style: Option<HeaderStyle>) -> RateLimitInfo {
        let report = tier.report(decision.policy());
        let q = report.quota();
        let info = report
            .clone()
            .remaining(decision.remaining().min(q))
            .reset(decision.reset());
        match style {
            Some(style) => info.style(style),
            None => info,
        }
    }

    fn quota<'t>(tier: &'t Tier, decision: &Decision) -> &'t Quota {
        let quotas = tier.quotas();
        quotas.get(decision.policy()).unwrap_or(&quotas[0])
    }

    /// The refusal for a request without a key under [`MissingKey::Reject`]: not a rate limit
    /// (no `Retry-After`: waiting gives the request no key), `Error::missing_key` (401).
    pub(crate) fn missing_key_error(&self) -> BoxError {
        Error::missing_key().with_layer(self.name.clone()).into()
    }
}

impl<X, St, T, C, O, P> Limiter<X, St, T, C, O, P>
where
    O: for<'a> Observer<Event<'a>>,
{
    /// Turns a decision into what the request does next; emits the refusal events. Out of
    /// line: the service answers the plain happy path (admitted at once, no fields to write)
    /// itself. `tier_ref` is the request's tier in the table the request read, so its decision
    /// and its response fields come from one version of the settings. `trace_id` reads the
    /// request's trace id, called only for a refused or shadowed request.
    #[inline(never)]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one decision, passed in registers; a struct would be built only to be taken apart"
    )]
    pub(crate) fn judge<K>(
        self: &Arc<Self>,
        decision: Decision,
        decided: Instant,
        key: Option<K>,
        tier_ref: &Tier,
        cost: u32,
        style: Option<HeaderStyle>,
        trace_id: impl FnOnce() -> Option<TraceId>,
    ) -> Next
    where
        St: Store<K>,
        K: std::hash::Hash + fmt::Debug + Send + 'static,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        let headers = style.is_some_and(|s| s != HeaderStyle::None);
        if decision.is_admitted() && decision.is_immediate() && !headers {
            // The plain happy path: no quota to look up, nothing to report.
            return Next::Call(None);
        }
        let quota = Self::quota(tier_ref, &decision);
        if decision.is_admitted() {
            let info = headers.then(|| self.info(tier_ref, &decision, style));
            if decision.is_immediate() {
                return Next::Call(info);
            }
            let (table, tier) = self.tiers.locate(tier_ref);
            let this = Arc::clone(self);
            let end = decided + decision.reset();
            let reservation = Reservation(Some(Box::new(move || {
                let tier = &this.tiers.at(table)[tier];
                this.store
                    .cancel_reserved(key.as_ref(), tier, cost, end, Instant::now());
            })));
            return Next::Wait(decision.wait(), info, reservation);
        }
        let shadow = self.mode == Mode::Shadow;
        if !shadow && let Some(key) = &key {
            self.top.record(key);
        }
        let never = decision.is_never_admissible();
        let event = Event::new(
            shadow,
            &self.name,
            quota.name_ref(),
            tier_ref.name(),
            if never {
                Duration::MAX
            } else {
                decision.retry_after()
            },
            cost,
            trace_id(),
        );
        self.observer.on_event(&event);
        self.refused.fetch_add(1, Ordering::Relaxed);
        if shadow {
            let info = headers.then(|| self.info(tier_ref, &decision, style));
            return Next::Call(info);
        }
        // A cost the quota can never admit is not a 429 a client would retry forever.
        let error = if never {
            Error::never_admissible()
        } else {
            Error::rate_limited(decision.retry_after())
        };
        Next::Reject(
            error
                .with_layer(self.name.clone())
                .with_rate_limit(self.info(tier_ref, &decision, style))
                .into(),
        )
    }
}
