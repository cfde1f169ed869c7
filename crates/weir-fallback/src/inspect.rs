//! What a fallback layer shows a status page or a metrics exporter: `impl Inspect` for its
//! handle, and the flag as admin actions.

use weir_core::inspect::{ActionError, Inspect, Snapshot};

use crate::handle::FallbackHandle;

/// The pattern name a fallback layer's snapshot carries.
const PATTERN: &str = "fallback";

impl Inspect for FallbackHandle {
    /// The flag as the state (`normal` 0, `forced` 1: every request to the fallback first);
    /// counters `value`, `service` and `last_good` (answers from each source), `exhausted`
    /// (every source declined) and `switched` (requests the flag or the switch sent to the
    /// fallback first).
    fn snapshot(&self) -> Snapshot {
        let stats = self.stats();
        let (state, number) = if self.is_forced() {
            ("forced", 1)
        } else {
            ("normal", 0)
        };
        Snapshot::new(PATTERN, self.name().clone())
            .state(state, number)
            .counter("value", stats.value)
            .counter("service", stats.service)
            .counter("last_good", stats.last_good)
            .counter("exhausted", stats.exhausted)
            .counter("switched", stats.switched)
    }

    /// `force` (raise the flag) and `release` (lower it), without an argument.
    fn actions(&self) -> &'static [&'static str] {
        &["force", "release"]
    }

    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        let forced = match action {
            "force" => true,
            "release" => false,
            _ => return Err(ActionError::Unknown(action.to_owned())),
        };
        if argument.is_some() {
            return Err(ActionError::Invalid(format!(
                "`{action}` takes no argument"
            )));
        }
        self.set_forced(forced);
        Ok(())
    }
}
