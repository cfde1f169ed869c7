//! `TimeoutHandle`: new settings for a running timeout layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use weir_core::protocol::Auto;

use crate::settings::TimeoutSettings;
use crate::shared::{Current, Live, Parts};

/// Changes a running timeout layer's settings: from
/// [`TimeoutBuilder::build_with_handle`](crate::TimeoutBuilder::build_with_handle). Cheap to clone, usable from any thread.
///
/// `D` is the layer's policy type: [`Duration`] or [`RouteTimeouts`](crate::RouteTimeouts)
/// (`TimeoutConfig`'s), or a closure type (which new settings can only give again as it is);
/// `P` its protocol (new settings come as a builder of the same protocol). See the crate's
/// *Changing settings at run time*.
pub struct TimeoutHandle<D = Duration, P = Auto> {
    live: Arc<Live<D>>,
    _protocol: PhantomData<P>,
}

impl<D, P> Clone for TimeoutHandle<D, P> {
    fn clone(&self) -> Self {
        Self {
            live: Arc::clone(&self.live),
            _protocol: PhantomData,
        }
    }
}

impl<D, P> TimeoutHandle<D, P> {
    pub(crate) const fn new(live: Arc<Live<D>>) -> Self {
        Self {
            live,
            _protocol: PhantomData,
        }
    }

    /// How many times new settings were applied.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.live.version.load(Ordering::Acquire)
    }
}

impl<D, P> fmt::Debug for TimeoutHandle<D, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutHandle")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

// What `Reconfigure` (in `reconfigure`, above the builder) reaches of the handle: the policy and
// plain settings, not the builder, so this module imports nothing above it.
impl<D: Clone, P> TimeoutHandle<D, P> {
    /// The settings in force, as given.
    pub(crate) fn given(&self) -> (Option<D>, TimeoutSettings) {
        let given = self
            .live
            .given
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (given.0.clone(), given.1.clone())
    }

    /// Applies settings already checked by the builder's rules, as one version.
    pub(crate) fn apply_checked(&self, policy: Option<D>, mut plain: TimeoutSettings) {
        let mut given = self
            .live
            .given
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plain.name = given.1.name.clone();
        let (incoming, propagate, floor, flags) = Parts::<D, ()>::fields(&plain);
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
    }
}
