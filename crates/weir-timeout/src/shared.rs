//! [`Parts`]: what every service of one [`TimeoutLayer`](crate::TimeoutLayer) is configured
//! with, made once when the layer is built.

use std::fmt;
use std::time::Duration;

use weir_core::Name;

use crate::settings::TimeoutSettings;
use crate::state::BelowFloor;

/// What every service of a layer is configured with: the policy, the observer, and the
/// settings as `call` reads them (the server-mode flags worked out once, at build).
#[derive(Clone)]
pub(crate) struct Parts<P, O> {
    pub(crate) policy: Option<P>,
    pub(crate) name: Name,
    pub(crate) observer: O,
    pub(crate) incoming: Option<Duration>,
    pub(crate) propagate: Option<Duration>,
    /// Server mode: the shortest incoming deadline honoured as sent, and what to do below it.
    pub(crate) floor: Option<(Duration, BelowFloor)>,
    /// Server mode: a malformed incoming timeout header is refused (400), not ignored.
    pub(crate) reject_malformed: bool,
    /// Whether the deadline is stored in the request's extensions even when the request did not
    /// carry one (see `TimeoutBuilder::expose_deadline`).
    pub(crate) expose: bool,
}

impl<P, O> Parts<P, O> {
    /// The parts of a layer with these settings.
    pub(crate) fn new(policy: Option<P>, observer: O, settings: TimeoutSettings) -> Self {
        Self {
            policy,
            observer,
            reject_malformed: settings.rejects_malformed(),
            expose: settings.exposes(),
            incoming: settings.incoming,
            propagate: settings.propagate,
            floor: settings.incoming_floor,
            name: settings.name,
        }
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
            .field("expose", &self.expose)
            .finish_non_exhaustive()
    }
}
