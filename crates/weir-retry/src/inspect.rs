//! What a retry layer shows a status page or a metrics exporter: `impl Inspect` for its
//! handle.

use weir_core::inspect::{Inspect, Snapshot};

use crate::handle::RetryHandle;

/// The pattern name a retry layer's snapshot carries.
const PATTERN: &str = "retry";

impl Inspect for RetryHandle {
    /// Gauge `budget_available` (retries the budget would allow now; absent when unlimited);
    /// counters `retries` (made), `gave_up` (retryable failures returned without a retry) and
    /// `budget_exhausted` (retries the budget refused: the layer throttled). No actions.
    fn snapshot(&self) -> Snapshot {
        let mut shown = Snapshot::new(PATTERN, self.name().clone());
        if let Some(available) = self.available() {
            shown = shown.gauge("budget_available", available as f64);
        }
        shown
            .counter("retries", self.retries())
            .counter("gave_up", self.gave_up())
            .counter("budget_exhausted", self.budget_exhausted())
    }
}
