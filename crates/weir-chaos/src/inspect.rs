//! What a chaos layer shows a status page or a metrics exporter: `impl Inspect` for its handle,
//! and its switch as admin actions.

use weir_core::inspect::{ActionError, Inspect, Snapshot};

use crate::handle::ChaosHandle;
use crate::state::Fault;

/// The pattern name a chaos layer's snapshot carries.
const PATTERN: &str = "chaos";

/// A fault's counter in a snapshot.
const fn counter_name(fault: Fault) -> &'static str {
    match fault {
        Fault::Error => "injected_error",
        Fault::Status => "injected_status",
        Fault::Latency => "injected_latency",
        Fault::Stall => "injected_stall",
        Fault::Body => "injected_body",
        Fault::Behaviour => "injected_behaviour",
    }
}

impl Inspect for ChaosHandle {
    /// The switch as the state (`disabled` 0, `enabled` 1); counters `injected_<fault>` for
    /// each fault (`error`, `status`, `latency`, `stall`, `body`, `behaviour`).
    fn snapshot(&self) -> Snapshot {
        let (state, number) = if self.is_enabled() {
            ("enabled", 1)
        } else {
            ("disabled", 0)
        };
        Fault::ALL.iter().fold(
            Snapshot::new(PATTERN, self.name().clone()).state(state, number),
            |shown, &fault| shown.counter(counter_name(fault), self.injected(fault)),
        )
    }

    /// `enable` and `disable`, without an argument.
    fn actions(&self) -> &'static [&'static str] {
        &["enable", "disable"]
    }

    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        let enable = match action {
            "enable" => true,
            "disable" => false,
            _ => return Err(ActionError::Unknown(action.to_owned())),
        };
        if argument.is_some() {
            return Err(ActionError::Invalid(format!(
                "`{action}` takes no argument"
            )));
        }
        if enable {
            self.enable();
        } else {
            self.disable();
        }
        Ok(())
    }
}
