//! What a breaker shows a status page or a metrics exporter: `impl Inspect` for both handles,
//! and their admin actions.

use weir_core::inspect::{ActionError, Inspect, Snapshot as Shown};

use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle};
use crate::state::State;

/// The pattern name a breaker's snapshot carries.
const PATTERN: &str = "circuit_breaker";

/// A state's number in a snapshot (and a metrics gauge): closed 0, open 1, half-open 2, forced
/// open 3, forced closed 4, disabled 5, metrics only 6. Stable: dashboards compare against it.
#[must_use]
pub(crate) const fn state_number(state: State) -> u8 {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::ForcedClosed => 4,
        State::Disabled => 5,
        State::MetricsOnly => 6,
    }
}

/// Refuses an argument given to an action that takes none.
fn no_argument(action: &str, argument: Option<&str>) -> Result<(), ActionError> {
    match argument {
        None => Ok(()),
        Some(_) => Err(ActionError::Invalid(format!(
            "`{action}` takes no argument"
        ))),
    }
}

impl Inspect for CircuitBreakerHandle {
    /// State (numbered as in the README), gauges `failure_rate` and `slow_call_rate` (percent,
    /// only once the window holds the minimum number of calls), `calls`, `failures`,
    /// `slow_calls` (in the window) and `consecutive_failures`; counters `opened` and
    /// `rejected`; the last 16 transitions.
    fn snapshot(&self) -> Shown {
        let now = self.snapshot();
        let state = now.state();
        let mut shown =
            Shown::new(PATTERN, self.name().clone()).state(state.as_str(), state_number(state));
        if let Some(rate) = now.failure_rate() {
            shown = shown.gauge("failure_rate", rate);
        }
        if let Some(rate) = now.slow_call_rate() {
            shown = shown.gauge("slow_call_rate", rate);
        }
        shown
            .gauge("calls", now.calls() as f64)
            .gauge("failures", now.failures() as f64)
            .gauge("slow_calls", now.slow_calls() as f64)
            .gauge(
                "consecutive_failures",
                f64::from(now.consecutive_failures()),
            )
            .counter("opened", now.opened())
            .counter("rejected", now.rejected())
            .recent(self.recent())
    }

    /// `force_open`, `force_closed` and `reset`, none with an argument.
    fn actions(&self) -> &'static [&'static str] {
        &["force_open", "force_closed", "reset"]
    }

    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        let act: fn(&Self) = match action {
            "force_open" => Self::force_open,
            "force_closed" => Self::force_closed,
            "reset" => Self::reset,
            _ => return Err(ActionError::Unknown(action.to_owned())),
        };
        no_argument(action, argument)?;
        act(self);
        Ok(())
    }
}

impl Inspect for KeyedCircuitBreakerHandle {
    /// No state of its own (each key has one): gauges `keys` (breakers held), `open` (keys
    /// open or forced open) and `half_open`; counters `opened` and `rejected` over every key,
    /// the key-less breaker included, since the layer was built (a forgotten key's counts
    /// stay); the last 16 transitions of any key.
    fn snapshot(&self) -> Shown {
        let (mut open, mut half_open) = (0_u64, 0_u64);
        self.for_each(|_, snapshot| match snapshot.state() {
            State::Open | State::ForcedOpen => open += 1,
            State::HalfOpen => half_open += 1,
            _ => {}
        });
        let (rejected, opened) = self.totals();
        Shown::new(PATTERN, self.name().clone())
            .gauge("keys", self.len() as f64)
            .gauge("open", open as f64)
            .gauge("half_open", half_open as f64)
            .counter("opened", opened)
            .counter("rejected", rejected)
            .recent(self.recent())
    }

    /// `reset` (argument: the key, as its `Debug` text without quotes) and `reset_all`.
    fn actions(&self) -> &'static [&'static str] {
        &["reset", "reset_all"]
    }

    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        match action {
            "reset" => {
                let key =
                    argument.ok_or_else(|| ActionError::Invalid("`reset` needs a key".into()))?;
                if self.reset_key(key) {
                    Ok(())
                } else {
                    Err(ActionError::Invalid(format!("no breaker for key `{key}`")))
                }
            }
            "reset_all" => {
                no_argument(action, argument)?;
                self.reset_all();
                Ok(())
            }
            _ => Err(ActionError::Unknown(action.to_owned())),
        }
    }
}
