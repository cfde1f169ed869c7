//! What a rate limiter shows a status page or a metrics exporter: `impl Inspect` for its
//! handle (in-memory store), and its `reset` action; and for a handle on another store that
//! shows itself ([`InspectStore`]).

use weir_core::inspect::{ActionError, Inspect, Snapshot};

use crate::handle::RateLimitHandle;
use crate::state::Algorithm;
use crate::store::{InspectStore, MemoryStore};

impl<X, A, T, C, O, P> Inspect for RateLimitHandle<X, MemoryStore<A>, T, C, O, P>
where
    X: Send + Sync + 'static,
    A: Algorithm,
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
    O: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    /// A global limiter: gauge `remaining` (units left now for a one-unit request, the least
    /// over its quotas). A keyed one: gauge `keys` (keys with a state of their own). Both:
    /// counters `rejected` (refused since the layer was built; in shadow mode, would have
    /// been) and `evicted` (idle keys forgotten).
    fn snapshot(&self) -> Snapshot {
        let shown = Snapshot::new(PATTERN_NAME, self.layer_name().clone());
        let shown = if self.is_global() {
            shown.gauge("remaining", self.shared_remaining() as f64)
        } else {
            shown.gauge("keys", self.keys() as f64)
        };
        shown
            .counter("rejected", self.refused())
            .counter("evicted", self.evicted())
    }

    /// `reset` (argument: a client key, as text), keyed limiters only.
    fn actions(&self) -> &'static [&'static str] {
        if self.is_global() { &[] } else { &["reset"] }
    }

    /// `reset` forgets the key written as its argument, so its next request starts with every
    /// quota full. The text is tried as the key of the usual extractors: a string (a closure
    /// returning `String`), a header value (`Header`), an IP address (`PeerIp`; an IPv6 client
    /// is keyed by its prefix, so give the prefix's address, `2001:db8::`).
    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        if action != "reset" || self.is_global() {
            return Err(ActionError::Unknown(action.to_owned()));
        }
        let key = argument.ok_or_else(|| ActionError::Invalid("`reset` needs a key".into()))?;
        if self.reset_text(key) {
            Ok(())
        } else {
            Err(ActionError::Invalid(format!("no state for key `{key}`")))
        }
    }
}

/// A limiter on another store (weir-redis's `RedisStore`): counter `rejected` (as above) and
/// what the store adds ([`InspectStore::inspect`]); no admin action (the store's are async:
/// `reset_async`).
impl<X, St, T, C, O, P> Inspect for RateLimitHandle<X, St, T, C, O, P>
where
    St: InspectStore,
    X: Send + Sync + 'static,
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
    O: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    fn snapshot(&self) -> Snapshot {
        let shown = Snapshot::new(PATTERN_NAME, self.layer_name().clone())
            .counter("rejected", self.refused());
        self.limiter.store.inspect(shown)
    }
}

/// The pattern name in a snapshot (`snake_case`; a `ConfigError` names it `"rate limit"`).
const PATTERN_NAME: &str = "rate_limit";
