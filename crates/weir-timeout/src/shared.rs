//! [`Parts`]: what every service of one [`TimeoutLayer`](crate::TimeoutLayer) is configured
//! with, made once when the layer is built.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use weir_core::Name;

use crate::settings::TimeoutSettings;
use crate::state::BelowFloor;

/// What every service of a layer is configured with: the policy, the observer, and the
/// settings as `call` reads them (the server-mode flags worked out once, at build).
///
/// Kept small: a layer above may clone the attempt timeout below it on every call (tower's
/// `Retry`; weir-retry did until #18), and then every field here is copied once a call (the figures are in benches/README.md, stacks). The
/// floor's `BelowFloor` and the two flags share one byte.
#[derive(Clone)]
pub(crate) struct Parts<P, O> {
    pub(crate) policy: Option<P>,
    pub(crate) name: Name,
    pub(crate) observer: O,
    pub(crate) incoming: Option<Duration>,
    pub(crate) propagate: Option<Duration>,
    /// Server mode: the shortest incoming deadline honoured as sent (what to do below it is
    /// in `flags`).
    pub(crate) floor: Option<Duration>,
    pub(crate) flags: Flags,
    /// The version of the settings above (a layer with a handle: see [`live`](Self::live)).
    pub(crate) version: u32,
    /// A layer built with a handle: the settings in force, which `call` copies into the fields
    /// above when their version moved. `None` for every other layer (one test a call).
    pub(crate) live: Option<Arc<Live<P>>>,
}

/// The layer's yes/no settings in one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// Whether the deadline is stored in the request's extensions even when the request did not
    /// carry one (see `TimeoutBuilder::expose_deadline`).
    const EXPOSE: u8 = 1;
    /// Server mode: a malformed incoming timeout header is refused (400), not ignored.
    const REJECT_MALFORMED: u8 = 1 << 1;
    /// Server mode: a deadline below the floor is raised to it ([`BelowFloor::Raise`]), not
    /// refused.
    const RAISE: u8 = 1 << 2;

    /// The flags of a layer that exposes its deadline (or not), and nothing else.
    pub(crate) const fn exposing(expose: bool) -> Self {
        Self(if expose { Self::EXPOSE } else { 0 })
    }

    const fn new(expose: bool, reject_malformed: bool, below: Option<BelowFloor>) -> Self {
        let mut bits = Self::exposing(expose).0;
        if reject_malformed {
            bits |= Self::REJECT_MALFORMED;
        }
        if let Some(BelowFloor::Raise) = below {
            bits |= Self::RAISE;
        }
        Self(bits)
    }

    #[inline]
    pub(crate) const fn expose(self) -> bool {
        self.0 & Self::EXPOSE != 0
    }

    #[inline]
    pub(crate) const fn reject_malformed(self) -> bool {
        self.0 & Self::REJECT_MALFORMED != 0
    }

    #[inline]
    pub(crate) const fn below_floor(self) -> BelowFloor {
        if self.0 & Self::RAISE != 0 {
            BelowFloor::Raise
        } else {
            BelowFloor::Reject
        }
    }
}

impl<P, O> Parts<P, O> {
    /// The parts of a layer with these settings.
    pub(crate) fn new(policy: Option<P>, observer: O, settings: TimeoutSettings) -> Self {
        Self {
            policy,
            observer,
            flags: Flags::new(
                settings.exposes(),
                settings.rejects_malformed(),
                settings.incoming_floor.map(|(_, below)| below),
            ),
            incoming: settings.incoming,
            propagate: settings.propagate,
            floor: settings.incoming_floor.map(|(floor, _)| floor),
            name: settings.name,
            version: 0,
            live: None,
        }
    }

    /// Brings the settings up to the version in force, if a handle changed them. One load and
    /// a comparison a call, for a layer with a handle only.
    #[inline]
    pub(crate) fn refresh(&mut self) {
        if let Some(live) = &self.live
            && live.version.load(Ordering::Acquire) != self.version
        {
            self.update();
        }
    }

    /// Copies the settings in force (one version, whole).
    #[cold]
    #[inline(never)]
    fn update(&mut self) {
        let Some(live) = &self.live else { return };
        let current = live.current.load();
        self.policy = (live.clone_policy)(&current.policy);
        self.incoming = current.incoming;
        self.propagate = current.propagate;
        self.floor = current.floor;
        self.flags = current.flags;
        self.version = current.version;
    }

    /// The server-mode and client-mode fields of `settings` (the name is not among them).
    pub(crate) fn fields(
        settings: &TimeoutSettings,
    ) -> (Option<Duration>, Option<Duration>, Option<Duration>, Flags) {
        (
            settings.incoming,
            settings.propagate,
            settings.incoming_floor.map(|(floor, _)| floor),
            Flags::new(
                settings.exposes(),
                settings.rejects_malformed(),
                settings.incoming_floor.map(|(_, below)| below),
            ),
        )
    }

    /// Server mode's floor and what to do below it.
    #[inline]
    pub(crate) fn floor(&self) -> Option<(Duration, BelowFloor)> {
        self.floor.map(|floor| (floor, self.flags.below_floor()))
    }
}

impl<P, O> fmt::Debug for Parts<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("name", &self.name)
            .field(
                "policy",
                &self.policy.as_ref().map(|_| std::any::type_name::<P>()),
            )
            .field("incoming", &self.incoming)
            .field("propagate", &self.propagate)
            .field("expose", &self.flags.expose())
            .finish_non_exhaustive()
    }
}

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
    pub(crate) given: Mutex<(Option<P>, TimeoutSettings)>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings go into the one flags byte and come out as they went in.
    #[test]
    fn the_flags_keep_every_setting() {
        for expose in [false, true] {
            for reject in [false, true] {
                for below in [None, Some(BelowFloor::Reject), Some(BelowFloor::Raise)] {
                    let flags = Flags::new(expose, reject, below);
                    assert_eq!(flags.expose(), expose);
                    assert_eq!(flags.reject_malformed(), reject);
                    assert_eq!(
                        flags.below_floor(),
                        below.unwrap_or(BelowFloor::Reject),
                        "{below:?}"
                    );
                }
            }
        }
        let settings = TimeoutSettings {
            incoming: Some(Duration::from_secs(30)),
            incoming_floor: Some((Duration::from_millis(50), BelowFloor::Raise)),
            reject_malformed_incoming: true,
            ..TimeoutSettings::default()
        };
        let parts = Parts::<Duration, ()>::new(None, (), settings);
        assert_eq!(
            parts.floor(),
            Some((Duration::from_millis(50), BelowFloor::Raise))
        );
        assert!(parts.flags.reject_malformed());
        assert!(!parts.flags.expose());
    }
}
