//! What a layer shows about itself while it runs: [`Inspect`], the one trait every stateful
//! handle implements, the [`Snapshot`] it returns, and the [`Registry`] of named layers a status
//! page or a metrics exporter reads.
//!
//! Nothing here is on a request's path: a snapshot is taken when someone asks (a scrape, a page
//! load, an exporter's tick), from the atomics the layer keeps anyway.
//!
//! ```
//! use weir_core::inspect::{Inspect, Registry, Snapshot};
//! use weir_core::Name;
//!
//! struct Pool;
//!
//! impl Inspect for Pool {
//!     fn snapshot(&self) -> Snapshot {
//!         Snapshot::new("bulkhead", Name::new("db"))
//!             .gauge("in_flight", 3.0)
//!             .gauge("max_concurrent", 10.0)
//!             .counter("rejected", 7)
//!     }
//! }
//!
//! let registry = Registry::new();
//! registry.register(Pool);
//! let all = registry.snapshot();
//! assert_eq!(all[0].layer.as_str(), "db");
//! assert_eq!(all[0].gauge_value("in_flight"), Some(3.0));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::{ConfigError, Name};

/// A layer's state at one moment, as a status page or a metrics exporter shows it.
///
/// `gauges` are levels (in flight, queue depth, permits available, the adaptive limit);
/// `counters` are totals since the layer was built (admitted, rejected, opened). Names are
/// `snake_case` and stable: they become metric names (`weir_<pattern>_<name>`) and JSON keys.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The pattern: `"circuit_breaker"`, `"rate_limit"`, `"bulkhead"`, ...
    pub pattern: &'static str,
    /// The layer's name.
    pub layer: Name,
    /// A named state where the pattern has one (`"closed"`, `"open"`, `"half_open"` for a
    /// breaker; `"normal"`, `"degraded"` for a load level), with its number for gauges.
    pub state: Option<State>,
    /// Levels at this moment.
    pub gauges: Vec<(&'static str, f64)>,
    /// Totals since the layer was built.
    pub counters: Vec<(&'static str, u64)>,
    /// The layer's last state changes, oldest first (a breaker's last 16 transitions); empty
    /// for a layer without states.
    pub recent: Vec<Transition>,
}

/// A named state and the number a gauge exports for it (a breaker: closed 0, open 1,
/// half-open 2, forced open 3, forced closed 4, disabled 5, metrics only 6; each pattern's
/// README lists its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// The state's name, `snake_case`.
    pub name: &'static str,
    /// Its number.
    pub value: u8,
}

impl Snapshot {
    /// An empty snapshot of `pattern`'s layer `layer`.
    #[must_use]
    pub const fn new(pattern: &'static str, layer: Name) -> Self {
        Self {
            pattern,
            layer,
            state: None,
            gauges: Vec::new(),
            counters: Vec::new(),
            recent: Vec::new(),
        }
    }

    /// Adds a named state.
    #[must_use]
    pub const fn state(mut self, name: &'static str, value: u8) -> Self {
        self.state = Some(State { name, value });
        self
    }

    /// Adds a gauge.
    #[must_use]
    pub fn gauge(mut self, name: &'static str, value: f64) -> Self {
        self.gauges.push((name, value));
        self
    }

    /// Adds a counter.
    #[must_use]
    pub fn counter(mut self, name: &'static str, value: u64) -> Self {
        self.counters.push((name, value));
        self
    }

    /// Sets the recent transitions (oldest first).
    #[must_use]
    pub fn recent(mut self, recent: Vec<Transition>) -> Self {
        self.recent = recent;
        self
    }

    /// The value of the gauge `name`, if the snapshot has one.
    #[must_use]
    pub fn gauge_value(&self, name: &str) -> Option<f64> {
        self.gauges
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The value of the counter `name`, if the snapshot has one.
    #[must_use]
    pub fn counter_value(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// One state change: when, from which state to which, and why where the pattern says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// When it happened, on the system clock (a page shows it as a time of day).
    pub at: SystemTime,
    /// The state left ([`State::name`]'s names).
    pub from: &'static str,
    /// The state entered.
    pub to: &'static str,
    /// Why, `snake_case` (`"failure_rate"`, `"manual"`), where the pattern records it.
    pub reason: Option<&'static str>,
}

impl Transition {
    /// A transition from `from` to `to` at `at`.
    #[must_use]
    pub const fn new(at: SystemTime, from: &'static str, to: &'static str) -> Self {
        Self {
            at,
            from,
            to,
            reason: None,
        }
    }

    /// Adds why it happened.
    #[must_use]
    pub const fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// A layer's last few [`Transition`]s, oldest first, bounded: what a handle puts in
/// [`Snapshot::recent`].
///
/// Written only when the layer changes state (rare), so a `Mutex` is fine; never touched on a
/// request that changes nothing.
///
/// ```
/// use weir_core::inspect::Recent;
///
/// let recent = Recent::new(2);
/// recent.push("closed", "open", Some("failure_rate"));
/// recent.push("open", "half_open", None);
/// recent.push("half_open", "closed", None);
/// let last = recent.to_vec();
/// assert_eq!(last.len(), 2);
/// assert_eq!((last[0].from, last[1].to), ("open", "closed"));
/// ```
pub struct Recent {
    capacity: usize,
    list: Mutex<VecDeque<Transition>>,
}

impl Recent {
    /// How many transitions a breaker keeps.
    pub const DEFAULT_CAPACITY: usize = 16;

    /// An empty record keeping the last `capacity` transitions (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            list: Mutex::new(VecDeque::new()),
        }
    }

    /// Records a transition now, forgetting the oldest past the capacity.
    pub fn push(&self, from: &'static str, to: &'static str, reason: Option<&'static str>) {
        let transition = Transition {
            at: SystemTime::now(),
            from,
            to,
            reason,
        };
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() == self.capacity {
            list.pop_front();
        }
        list.push_back(transition);
    }

    /// The transitions kept, oldest first.
    #[must_use]
    pub fn to_vec(&self) -> Vec<Transition> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

impl Default for Recent {
    /// A record of the last [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) transitions.
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for Recent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recent")
            .field("capacity", &self.capacity)
            .field("list", &self.to_vec())
            .finish()
    }
}

/// A handle that can show its layer's state (and, optionally, act on it).
///
/// Implemented by every stateful handle of the workspace (breaker, rate limiter, bulkhead, load
/// shedder, retry budget, ...). `act` is how an admin page forces a breaker open or resets a
/// key's limit; a handle without actions keeps the default, which refuses every action.
pub trait Inspect: Send + Sync + 'static {
    /// The layer's state now.
    fn snapshot(&self) -> Snapshot;

    /// The admin actions this handle accepts (`"force_open"`, `"reset"`, ...), for a page to
    /// offer; none by default.
    fn actions(&self) -> &'static [&'static str] {
        &[]
    }

    /// Performs the admin action `action` (with an argument, such as a client key, where the
    /// action takes one).
    ///
    /// # Errors
    ///
    /// [`ActionError::Unknown`] for an action the handle does not have, or
    /// [`ActionError::Invalid`] for a missing or bad argument.
    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        let _ = argument;
        Err(ActionError::Unknown(action.to_owned()))
    }
}

/// Why an admin action was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionError {
    /// The handle has no action of this name.
    Unknown(String),
    /// The argument is missing or not valid for the action.
    Invalid(String),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(action) => write!(f, "unknown action `{action}`"),
            Self::Invalid(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for ActionError {}

/// The layers an application chose to show: a status page and a metrics exporter read it.
///
/// Opt-in: a layer appears here only when its builder is given the registry (or its handle is
/// registered by hand). Cloning shares the one list. Registering takes a write lock; reading
/// takes a read lock, on a scrape or a page load, never on a request.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Arc<RwLock<Vec<Arc<dyn Inspect>>>>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handle.
    pub fn register(&self, handle: impl Inspect) {
        self.register_arc(Arc::new(handle));
    }

    /// Adds a handle already behind an `Arc`.
    pub fn register_arc(&self, handle: Arc<dyn Inspect>) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
    }

    /// Adds a handle unless a layer of the same pattern and name is registered already: what a
    /// builder's `.registry(&registry)` calls when it builds.
    ///
    /// A layer given no name registers under its pattern's default name (`"circuit_breaker"`,
    /// `"bulkhead"`, ...). Two layers of one pattern under one name would be one row on a
    /// status page, one series in a metrics scrape, and an admin action would reach only the
    /// first, so the second is refused: name your layers when you register more than one of a
    /// pattern.
    ///
    /// # Errors
    ///
    /// [`ConfigError::is_duplicate`], field `name`, when the pattern's layer of that name is
    /// registered already (nothing is added).
    ///
    /// ```
    /// use weir_core::inspect::{Inspect, Registry, Snapshot};
    /// use weir_core::Name;
    ///
    /// struct Pool(&'static str);
    /// impl Inspect for Pool {
    ///     fn snapshot(&self) -> Snapshot {
    ///         Snapshot::new("bulkhead", Name::new(self.0))
    ///     }
    /// }
    ///
    /// let registry = Registry::new();
    /// registry.register_unique(std::sync::Arc::new(Pool("db"))).unwrap();
    /// let err = registry.register_unique(std::sync::Arc::new(Pool("db"))).unwrap_err();
    /// assert!(err.is_duplicate());
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn register_unique(&self, handle: Arc<dyn Inspect>) -> Result<(), ConfigError> {
        let new = handle.snapshot();
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = entries.iter().any(|h| {
            let s = h.snapshot();
            s.pattern == new.pattern && s.layer == new.layer
        });
        if taken {
            return Err(ConfigError::duplicate(
                new.pattern,
                "name",
                format!(
                    "`{}` is registered already: give each layer of a pattern a name of its own",
                    new.layer.as_str()
                ),
            ));
        }
        entries.push(handle);
        Ok(())
    }

    /// Every registered layer's snapshot, in registration order.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Snapshot> {
        self.handles().iter().map(|h| h.snapshot()).collect()
    }

    /// The registered handles, in registration order (for actions).
    #[must_use]
    pub fn handles(&self) -> Vec<Arc<dyn Inspect>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The handle of `pattern`'s layer named `layer`, if one is registered.
    #[must_use]
    pub fn find(&self, pattern: &str, layer: &str) -> Option<Arc<dyn Inspect>> {
        self.handles().into_iter().find(|h| {
            let s = h.snapshot();
            s.pattern == pattern && s.layer.as_str() == layer
        })
    }

    /// How many layers are registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no layer is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("layers", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Breaker(&'static str);

    impl Inspect for Breaker {
        fn snapshot(&self) -> Snapshot {
            Snapshot::new("circuit_breaker", Name::new(self.0)).state("open", 1)
        }
    }

    #[test]
    fn find_by_pattern_and_name_and_refuse_unknown_actions() {
        let registry = Registry::new();
        registry.register(Breaker("db"));
        registry.register(Breaker("cache"));
        assert_eq!(registry.len(), 2);
        let cache = registry
            .find("circuit_breaker", "cache")
            .expect("registered");
        assert_eq!(cache.snapshot().layer.as_str(), "cache");
        assert!(registry.find("bulkhead", "cache").is_none());
        assert_eq!(
            cache.act("force_open", None),
            Err(ActionError::Unknown("force_open".into()))
        );
    }
}
