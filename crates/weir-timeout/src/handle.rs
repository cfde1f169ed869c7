//! `TimeoutHandle`: new settings for a running timeout layer.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::builder::TimeoutBuilder;
use crate::settings::TimeoutSettings;
use crate::shared::{Flags, Parts};

/// One version of a layer's settings, as `call` reads them.
pub(crate) struct Current<P> {
    pub(crate) version: u32,
    pub(crate) policy: Option<P>,
    pub(crate) incoming: Option<Duration>,
    pub(crate) propagate: Option<Duration>,
    pub(crate) floor: Option<Duration>,
    pub(crate) flags: Flags,
}

/// What the services of a layer with a handle, and the handle, share.
pub(crate) struct Live<P> {
    /// The version in force: a service whose copy is of another version copies
    /// [`current`](Self::current) before its next call.
    pub(crate) version: AtomicU32,
    pub(crate) current: ArcSwap<Current<P>>,
    /// Clones a policy (a function, so that `call` needs no `P: Clone` bound).
    pub(crate) clone_policy: fn(&Option<P>) -> Option<P>,
    /// The settings in force, as given (what `settings()` returns); held while new ones are
    /// applied, so that applications do not interleave.
    given: Mutex<(Option<P>, TimeoutSettings)>,
}

impl<P: Clone> Live<P> {
    /// The shared settings of a layer whose first version is `parts`'s, and the settings given.
    pub(crate) fn new<O>(parts: &Parts<P, O>, settings: TimeoutSettings) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU32::new(0),
            current: ArcSwap::from_pointee(Current {
                version: 0,
                policy: parts.policy.clone(),
                incoming: parts.incoming,
                propagate: parts.propagate,
                floor: parts.floor,
                flags: parts.flags,
            }),
            clone_policy: Option::clone,
            given: Mutex::new((parts.policy.clone(), settings)),
        })
    }
}

/// Changes a running timeout layer's settings: from
/// [`TimeoutBuilder::build_with_handle`]. Cheap to clone, usable from any thread.
///
/// `P` is the layer's policy type: [`Duration`] or [`RouteTimeouts`](crate::RouteTimeouts)
/// (`TimeoutConfig`'s), or a closure type (which new settings can only give again as it is).
/// See the crate's *Changing settings at run time*.
pub struct TimeoutHandle<P = Duration> {
    live: Arc<Live<P>>,
}

impl<P> Clone for TimeoutHandle<P> {
    fn clone(&self) -> Self {
        Self {
            live: Arc::clone(&self.live),
        }
    }
}

impl<P> TimeoutHandle<P> {
    pub(crate) const fn new(live: Arc<Live<P>>) -> Self {
        Self { live }
    }

    /// How many times new settings were applied.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.live.version.load(Ordering::Acquire)
    }
}

impl<P> fmt::Debug for TimeoutHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutHandle")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// New settings while the layer runs: a [`TimeoutBuilder`] with the layer's policy type (its
/// observer is not read), as [`TimeoutLayer::builder`](crate::TimeoutLayer::builder) or
/// `TimeoutConfig::builder` make it.
///
/// ```
/// use std::time::Duration;
/// use weir_core::reconfigure::Reconfigure;
/// use weir_timeout::TimeoutLayer;
///
/// let (_layer, handle) = TimeoutLayer::builder()
///     .timeout(Duration::from_secs(5))
///     .build_with_handle()?;
/// handle.apply(TimeoutLayer::builder().timeout(Duration::from_secs(2)))?;
/// let err = handle.apply(TimeoutLayer::builder().timeout(Duration::ZERO)).unwrap_err();
/// assert_eq!(err.field(), "timeout");
/// assert_eq!(handle.version(), 1, "a refused setting changes nothing");
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
impl<P: Clone> Reconfigure for TimeoutHandle<P> {
    type Settings = TimeoutBuilder<P>;

    /// The settings in force (the name is the layer's).
    fn settings(&self) -> TimeoutBuilder<P> {
        let given = self
            .live
            .given
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        TimeoutBuilder::from_parts(given.0.clone(), given.1.clone())
    }

    /// Validates `settings` as `build()` would and applies them: every call from now on reads
    /// the new timeout (or route table), server-mode cap and floor and client-mode allowance,
    /// all of one version; a call already made keeps the deadline it started with. The name
    /// stays the layer's.
    ///
    /// # Errors
    ///
    /// `build()`'s [`ConfigError`], naming the field; nothing changes then.
    fn apply(&self, settings: TimeoutBuilder<P>) -> Result<(), ConfigError> {
        let (policy, mut plain) = settings.into_checked()?;
        let mut given = self
            .live
            .given
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plain.name = given.1.name.clone();
        let (incoming, propagate, floor, flags) = Parts::<P, ()>::fields(&plain);
        let version = self.live.version.load(Ordering::Acquire).wrapping_add(1);
        self.live.current.store(Arc::new(Current {
            version,
            policy: policy.clone(),
            incoming,
            propagate,
            floor,
            flags,
        }));
        // After the settings: a service that sees the new version finds them.
        self.live.version.store(version, Ordering::Release);
        *given = (policy, plain);
        Ok(())
    }
}
