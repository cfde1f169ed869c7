//! The handle: the switch, the probabilities and the counts, at run time.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use weir_core::reconfigure::Reconfigure;
use weir_core::{ConfigError, Name};

use crate::settings::ChaosSettings;
use crate::shared::Control;
use crate::state::{Fault, probability, threshold};

/// Turns a chaos layer on and off and changes its probabilities at run time, without a rebuild;
/// reads its counts. From [`ChaosBuilder::build_with_handle`](crate::ChaosBuilder::build_with_handle)
/// or [`ChaosLayer::handle`](crate::ChaosLayer::handle). Clones control the same layer.
///
/// Every method is one atomic operation: the request path takes no lock, and a change is seen
/// by the next request.
#[derive(Clone, Debug)]
pub struct ChaosHandle {
    control: Arc<Control>,
    name: Name,
}

impl ChaosHandle {
    pub(crate) const fn new(control: Arc<Control>, name: Name) -> Self {
        Self { control, name }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// Starts injecting faults (with the probabilities as they are).
    pub fn enable(&self) {
        self.control.enabled.store(true, Relaxed);
    }

    /// Stops injecting faults: every request goes to the inner service untouched, at the cost
    /// of one atomic load. Calls already stalled or held stay so.
    pub fn disable(&self) {
        self.control.enabled.store(false, Relaxed);
    }

    /// Whether faults are injected.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.control.enabled.load(Relaxed)
    }

    /// Sets a fault's probability (clamped to `0.0..=1.0`; NaN is 0). A status or body fault
    /// does nothing in plain mode, nor an error or behaviour fault the builder was given no
    /// error or behaviour for. If the exclusive faults (all but latency) add up past 1, the
    /// earlier ones in the order error, status, stall, body, behaviour keep their share.
    pub fn set_probability(&self, fault: Fault, probability: f64) {
        self.control.thresholds[fault.index()].store(threshold(probability), Relaxed);
    }

    /// A fault's probability.
    #[must_use]
    pub fn probability(&self, fault: Fault) -> f64 {
        probability(self.control.thresholds[fault.index()].load(Relaxed))
    }

    /// Faults of this kind injected so far.
    #[must_use]
    pub fn injected(&self, fault: Fault) -> u64 {
        self.control.injected[fault.index()].load(Relaxed)
    }

    /// Faults of every kind injected so far (a request with added latency and an error counts
    /// twice).
    #[must_use]
    pub fn injected_total(&self) -> u64 {
        Fault::ALL.iter().map(|&f| self.injected(f)).sum()
    }
}

/// The switch and the probabilities, applied at run time: from a configuration reload (weir's
/// reloaders, `weir::reloader` with a [`ChaosConfig`](crate::ChaosConfig)) or in code.
///
/// [`apply`](Reconfigure::apply) checks the new settings by the builder's rules (the same
/// [`ConfigError`]s, naming the field), refuses a change of what a running layer cannot take
/// (a conflict naming it: `seed`, `status_code`, `grpc_code`, `latency_distribution`,
/// `body_after`, `header`, `route_prefix`, `window_start`, `window_end`), then stores the
/// probabilities and the switch. Each probability is its own atomic: a request rolled while
/// they are stored may see some new and some old ones (never a sum past 1 it cannot handle:
/// see [`set_probability`](ChaosHandle::set_probability)); a layer being switched off is
/// switched off first, one being switched on last.
impl Reconfigure for ChaosHandle {
    type Settings = ChaosSettings;

    /// The settings the layer was built with, with the switch and the probabilities in force.
    fn settings(&self) -> ChaosSettings {
        let mut settings = self.control.built.clone();
        settings.enabled = self.is_enabled();
        settings.error = self.probability(Fault::Error);
        settings.status = self.probability(Fault::Status);
        settings.latency = self.probability(Fault::Latency);
        settings.stall = self.probability(Fault::Stall);
        settings.body = self.probability(Fault::Body);
        settings.behaviour = self.probability(Fault::Behaviour);
        settings
    }

    fn apply(&self, settings: ChaosSettings) -> Result<(), ConfigError> {
        let control = &*self.control;
        settings.validate()?;
        let parts = control.parts;
        settings.check_parts(parts.http, parts.error, parts.behaviour)?;
        if let Some(field) = control.built.fixed_change(&settings) {
            return Err(ConfigError::conflict(
                "chaos",
                field,
                "cannot change while the layer runs: it needs a restart",
            ));
        }
        if !settings.enabled {
            self.disable();
        }
        for (fault, p) in [
            (Fault::Error, settings.error),
            (Fault::Status, settings.status),
            (Fault::Latency, settings.latency),
            (Fault::Stall, settings.stall),
            (Fault::Body, settings.body),
            (Fault::Behaviour, settings.behaviour),
        ] {
            self.set_probability(fault, p);
        }
        if settings.enabled {
            self.enable();
        }
        Ok(())
    }
}
