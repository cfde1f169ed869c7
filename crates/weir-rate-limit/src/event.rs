//! What a rate limiter tells its observer.

use std::time::Duration;

use weir_core::{Level, Name};

/// An event of a rate limiter: a refusal, or a refusal that shadow mode let through.
///
/// Emitted only for requests a quota refuses, never for admitted ones; it borrows everything,
/// so emitting costs nothing when the observer is `()`.
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
        /// When the same request could pass.
        retry_after: Duration,
        /// What it would have cost.
        cost: u32,
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
    ) -> Self {
        if shadow {
            Self::Shadowed {
                layer,
                policy,
                tier,
                retry_after,
                cost,
            }
        } else {
            Self::Rejected {
                layer,
                policy,
                tier,
                retry_after,
                cost,
            }
        }
    }

    /// The quota that refused (or would have refused) the request.
    #[must_use]
    pub const fn policy(&self) -> &'a Name {
        match self {
            Self::Rejected { policy, .. } | Self::Shadowed { policy, .. } => policy,
        }
    }

    /// When the same request could pass.
    #[must_use]
    pub const fn retry_after(&self) -> Duration {
        match self {
            Self::Rejected { retry_after, .. } | Self::Shadowed { retry_after, .. } => *retry_after,
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
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Rejected { layer, .. } | Self::Shadowed { layer, .. } => layer,
        }
    }

    fn level(&self) -> Level {
        Level::Info
    }
}
