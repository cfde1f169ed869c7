//! The state every service of a layer, every clone and the handle share: the switch and the
//! probabilities (atomics), the seeded random source, the counts, and the typed parts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use http::StatusCode;
use tokio::time::Instant;
use weir_core::backoff::SharedRandom;
use weir_core::observer::TraceId;
use weir_core::wire::GrpcCode;
use weir_core::{Name, Observer};

use crate::event::Event;
use crate::fault::Select;
use crate::protocol::FAULT_HEADER;
use crate::settings::{ChaosSettings, Latency};
use crate::state::{Fault, Plan, choose, hit, parse_header, threshold};

/// What a layer was built with beyond its settings: its mode and whether it has an error and a
/// behaviour to inject. The handle checks new settings against it, as the builder did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Parts {
    pub(crate) http: bool,
    pub(crate) error: bool,
    pub(crate) behaviour: bool,
}

/// The switch, the probabilities and the counts: what the handle reads and writes. Atomics
/// only, so the request path takes no lock.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) enabled: AtomicBool,
    /// Per [`Fault::index`]: the probability as a threshold on 64 random bits.
    pub(crate) thresholds: [AtomicU64; 6],
    /// Per [`Fault::index`]: faults injected.
    pub(crate) injected: [AtomicU64; 6],
    /// The settings the layer was built with (the switch and the probabilities are the atomics
    /// above; the rest cannot change while it runs), for the handle's `Reconfigure`.
    pub(crate) built: ChaosSettings,
    pub(crate) parts: Parts,
}

impl Control {
    fn new(settings: &ChaosSettings, parts: Parts) -> Self {
        let p = |fault: Fault| match fault {
            Fault::Error => settings.error,
            Fault::Status => settings.status,
            Fault::Latency => settings.latency,
            Fault::Stall => settings.stall,
            Fault::Body => settings.body,
            Fault::Behaviour => settings.behaviour,
        };
        Self {
            enabled: AtomicBool::new(settings.enabled),
            thresholds: Fault::ALL.map(|f| AtomicU64::new(threshold(p(f)))),
            injected: Default::default(),
            built: settings.clone(),
            parts,
        }
    }

    /// Whether the layer injects faults at all: the one check of the disabled path (a
    /// relaxed load).
    #[inline(always)]
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    fn threshold(&self, fault: Fault) -> u64 {
        self.thresholds[fault.index()].load(Relaxed)
    }
}

/// Shared by every service a chaos layer makes; created when the layer is built.
pub(crate) struct Shared<E, B, K, O> {
    /// The switch, the probabilities and the counts, in an `Arc` of their own that the handle
    /// holds too: the handle is one type whatever the layer's typed parts, and reaching them
    /// here needs no `Send + Sync + 'static` of those parts (a trait object would). A service
    /// holds the `Arc` of this state only; its disabled path reads the switch through it.
    pub(crate) control: Arc<Control>,
    pub(crate) name: Name,
    rng: SharedRandom,
    latency: Latency,
    pub(crate) status: StatusCode,
    pub(crate) grpc: GrpcCode,
    pub(crate) body_after: u64,
    header: bool,
    route_prefix: Option<Box<str>>,
    /// The window as instants: from, and until (if it ends).
    window: Option<(Instant, Option<Instant>)>,
    pub(crate) error: E,
    pub(crate) behaviour: B,
    keys: K,
    observer: O,
}

impl<E, B, K, O> Shared<E, B, K, O> {
    /// The shared state of valid `settings` (checked by the builder; `new` raises nothing).
    pub(crate) fn new(
        name: Name,
        settings: &ChaosSettings,
        parts: Parts,
        error: E,
        behaviour: B,
        keys: K,
        observer: O,
    ) -> Self {
        let now = Instant::now();
        let window = (settings.window_start > std::time::Duration::ZERO
            || settings.window_end.is_some())
        .then(|| {
            (
                now + settings.window_start,
                settings.window_end.map(|end| now + end),
            )
        });
        Self {
            control: Arc::new(Control::new(settings, parts)),
            name,
            rng: settings
                .seed
                .map_or_else(SharedRandom::new, SharedRandom::seeded),
            latency: settings.latency_distribution,
            status: StatusCode::from_u16(settings.status_code)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            grpc: GrpcCode::from_u8(settings.grpc_code).unwrap_or(GrpcCode::Unavailable),
            body_after: settings.body_after,
            header: settings.header,
            route_prefix: settings.route_prefix.as_deref().map(Into::into),
            window,
            error,
            behaviour,
            keys,
            observer,
        }
    }

    /// What `req` is to suffer (the layer is enabled), and whether its fault header said so.
    pub(crate) fn plan<Req, P>(&self, req: &Req, path: Option<&str>) -> (Plan, bool)
    where
        P: weir_core::protocol::Protocol<Req>,
        K: Select<Req>,
    {
        if let Some((from, until)) = self.window {
            let now = Instant::now();
            if now < from || until.is_some_and(|until| now >= until) {
                return (Plan::default(), false);
            }
        }
        if let Some(prefix) = &self.route_prefix
            && !path.is_some_and(|path| under(path, prefix))
        {
            return (Plan::default(), false);
        }
        if !self.keys.selects(req) {
            return (Plan::default(), false);
        }
        if self.header
            && let Some(value) = P::headers(req).and_then(|h| h.get(FAULT_HEADER))
        {
            let plan = parse_header(value.as_bytes(), || self.latency.sample(self.rng.next()));
            return (plan, true);
        }
        let c = &self.control;
        let mut plan = Plan::default();
        let latency = c.threshold(Fault::Latency);
        if latency != 0 && hit(latency, self.rng.next()) {
            plan.latency = Some(self.latency.sample(self.rng.next()));
        }
        let exclusive = Fault::EXCLUSIVE.map(|f| c.threshold(f));
        if exclusive != [0; 5] {
            plan.fault = choose(exclusive, self.rng.next());
        }
        (plan, false)
    }

    /// Counts a fault injected into a request with `trace_id` and tells the observer.
    pub(crate) fn injected(&self, fault: Fault, by_header: bool, trace_id: Option<TraceId>)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.control.injected[fault.index()].fetch_add(1, Relaxed);
        self.observer.on_event(&Event::Injected {
            layer: &self.name,
            fault,
            by_header,
            trace_id,
        });
    }
}

/// Whether `path` is `prefix` or under it: `/api` covers `/api` and `/api/x`, not `/apix`.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
}

impl<E, B, K: fmt::Debug, O> fmt::Debug for Shared<E, B, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("control", &self.control)
            .field("latency", &self.latency)
            .field("status", &self.status)
            .field("grpc", &self.grpc)
            .field("header", &self.header)
            .field("route_prefix", &self.route_prefix)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn a_prefix_covers_its_segment_only() {
        assert!(under("/api", "/api"));
        assert!(under("/api/users", "/api"));
        assert!(!under("/apix", "/api"));
        assert!(under("/api/x", "/api/"));
        assert!(!under("/", "/api"));
    }
}
