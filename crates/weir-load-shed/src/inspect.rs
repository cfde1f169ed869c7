//! What a load shedder shows a status page or a metrics exporter: `impl Inspect` for its
//! handle.

use weir_core::degrade::LoadLevel;
use weir_core::inspect::{Inspect, Snapshot};

use crate::handle::LoadShedHandle;

/// The pattern name a load shedder's snapshot carries.
const PATTERN: &str = "load_shed";

/// A load level's number in a snapshot: normal 0, elevated 1, critical 2.
const fn level_number(level: LoadLevel) -> u8 {
    match level {
        LoadLevel::Normal => 0,
        LoadLevel::Elevated => 1,
        LoadLevel::Critical => 2,
    }
}

impl Inspect for LoadShedHandle {
    /// The load level as the state (normal 0, elevated 1, critical 2); gauges `in_flight` and
    /// `limit` (fixed, or where the adaptive algorithm has it now); counters `shed` (refused),
    /// `succeeded`, `dropped` (a timeout or an overload refusal from further down) and
    /// `ignored`. No actions.
    fn snapshot(&self) -> Snapshot {
        let stats = self.stats();
        let level = self.load_level();
        Snapshot::new(PATTERN, self.name().clone())
            .state(level.as_str(), level_number(level))
            .gauge("in_flight", stats.in_flight as f64)
            .gauge("limit", stats.limit as f64)
            .counter("shed", stats.shed)
            .counter("succeeded", stats.succeeded)
            .counter("dropped", stats.dropped)
            .counter("ignored", stats.ignored)
    }
}
