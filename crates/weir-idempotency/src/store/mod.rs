//! Where claims and stored responses live: the [`IdempotencyStore`] trait, the [`MemoryStore`]
//! (one instance) and, with the `redis` feature, the `RedisStore` (a fleet).

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::{FailurePolicy, RedisFuture, RedisStore, RedisStoreBuilder};

use crate::state::{Claim, Digest, StoredResponse, Token};

/// A store of claims and responses, shared by every service and clone of a layer.
///
/// A store answers [`claim`](Self::claim) atomically: of any number of requests with one
/// `scope`, at most one gets [`Claim::Claimed`] until that claim is completed, released, or its
/// lease runs out. [`release`](Self::release) and [`renew`](Self::renew) are called where the
/// layer cannot wait (a `Drop`, a timer), so they return at once (a remote store sends them in
/// the background).
pub trait IdempotencyStore: Send + Sync + 'static {
    /// The future of a claim.
    type ClaimFuture: Future<Output = Claim>;
    /// The future of a completion.
    type CompleteFuture: Future<Output = ()>;

    /// Answers a request with the key `scope` and the fingerprint `fingerprint`; claims the key
    /// for `lease` when it is free.
    fn claim(&self, scope: Digest, fingerprint: Digest, lease: Duration) -> Self::ClaimFuture;

    /// Finishes `token`'s claim: keeps `response` for `ttl` (or marks the key done and not
    /// replayable, `None`). Does nothing when the claim is not `token`'s any more.
    fn complete(
        &self,
        scope: Digest,
        token: Token,
        response: Option<Arc<StoredResponse>>,
        ttl: Duration,
    ) -> Self::CompleteFuture;

    /// Drops `token`'s claim so a retry can run (the handler failed, panicked or was
    /// cancelled, or its response is not kept).
    fn release(&self, scope: Digest, token: Token);

    /// Extends `token`'s claim to `lease` from now.
    fn renew(&self, scope: Digest, token: Token, lease: Duration);
}
