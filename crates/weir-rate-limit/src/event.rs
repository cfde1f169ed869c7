//! What a rate limiter tells its observer.

use std::time::Duration;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

/// An event of a rate limiter: a refusal, a refusal that shadow mode let through, or an idle key
/// evicted from the in-memory store.
///
/// Emitted only for requests a quota refuses (never for admitted ones) and for evictions; it
/// borrows everything, so emitting allocates nothing and costs nothing when the observer is `()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A request was refused.
    Rejected {
        /// The layer instance.
        layer: &'a Name,
        /// The quota that refused it.
        policy: &'a Name,
        /// The key's tier (`"default"` unless tiers are configured).
        tier: &'a str,
        /// When the same request could pass: `Duration::MAX` if it never could (its cost is
        /// above what the quota can ever admit; the error is then
        /// [`weir_core::Error::never_admissible`]).
        retry_after: Duration,
        /// What it would have cost.
        cost: u32,
        /// The W3C trace id of the request's `traceparent` header, for an HTTP limiter (read
        /// only here, on the refusal).
        trace_id: Option<TraceId>,
    },
    /// Shadow mode: a request would have been refused and was let through.
    Shadowed {
        /// The layer instance.
        layer: &'a Name,
        /// The quota that would have refused it.
        policy: &'a Name,
        /// The key's tier.
        tier: &'a str,
        /// When the same request could have passed.
        retry_after: Duration,
        /// What it costs.
        cost: u32,
        /// The W3C trace id of the request's `traceparent` header, for an HTTP limiter.
        trace_id: Option<TraceId>,
    },
    /// An idle key whose buckets were full again was evicted from the in-memory store by one of
    /// its sweeps (during a request: never on a hit). Emitted under the store shard's write lock,
    /// so keep the observer short (count, log).
    Evicted {
        /// The layer instance.
        layer: &'a Name,
    },
}

impl<'a> Event<'a> {
    pub(crate) const fn new(
        shadow: bool,
        layer: &'a Name,
        policy: &'a Name,
        tier: &'a str,
        retry_after: Duration,
        cost: u32,
        trace_id: Option<TraceId>,
    ) -> Self {
        if shadow {
            Self::Shadowed {
                layer,
                policy,
                tier,
                retry_after,
                cost,
                trace_id,
            }
        } else {
            Self::Rejected {
                layer,
                policy,
                tier,
                retry_after,
                cost,
                trace_id,
            }
        }
    }

    /// The quota that refused (or would have refused) the request; `None` for an eviction.
    #[must_use]
    pub const fn policy(&self) -> Option<&'a Name> {
        match self {
            Self::Rejected { policy, .. } | Self::Shadowed { policy, .. } => Some(policy),
            Self::Evicted { .. } => None,
        }
    }

    /// When the same request could pass; `None` for an eviction.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rejected { retry_after, .. } | Self::Shadowed { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Evicted { .. } => None,
        }
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "rate_limit"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::Shadowed { .. } => "shadowed",
            Self::Evicted { .. } => "evicted",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Rejected { layer, .. }
            | Self::Shadowed { layer, .. }
            | Self::Evicted { layer } => layer,
        }
    }

    /// A rejection is `debug` (a per-request decision), as is a shadowed one and an eviction.
    fn level(&self) -> Level {
        Level::Debug
    }

    /// A rejection: fate `rejected`, reason `rate_limited` (or `never_admissible` for a cost no
    /// quota can admit), `retry_after`. A shadowed request: reason `shadowed` and its
    /// `retry_after`, no fate (it was let through). Both: the `trace_id` an HTTP request
    /// carried.
    fn fields(&self) -> Fields {
        let hint = |retry_after: Duration| (retry_after != Duration::MAX).then_some(retry_after);
        match *self {
            Self::Rejected {
                retry_after,
                trace_id,
                ..
            } => Fields::NONE
                .fate(Fate::Rejected)
                .reason(if retry_after == Duration::MAX {
                    "never_admissible"
                } else {
                    "rate_limited"
                })
                .retry_after(hint(retry_after))
                .trace_id(trace_id),
            Self::Shadowed {
                retry_after,
                trace_id,
                ..
            } => Fields::NONE
                .reason("shadowed")
                .retry_after(hint(retry_after))
                .trace_id(trace_id),
            Self::Evicted { .. } => Fields::NONE,
        }
    }
}
