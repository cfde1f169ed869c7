//! What a hedge layer shows a status page or a metrics exporter: `impl Inspect` for its
//! handle.

use weir_core::inspect::{Inspect, Snapshot};

use crate::handle::HedgeHandle;

/// The pattern name a hedge layer's snapshot carries.
const PATTERN: &str = "hedge";

impl Inspect for HedgeHandle {
    /// Gauges `budget_available` (whole hedges the budget holds, absent when unlimited) and
    /// `delay_ms` (the percentile trigger's delay, absent with a fixed delay or too few
    /// samples); counters `hedges_sent`, `hedges_won`, `cancelled` and `budget_exhausted`. No
    /// actions.
    fn snapshot(&self) -> Snapshot {
        let mut shown = Snapshot::new(PATTERN, self.name().clone());
        if let Some(available) = self.budget_available() {
            shown = shown.gauge("budget_available", available as f64);
        }
        if let Some(delay) = self.percentile_delay() {
            shown = shown.gauge("delay_ms", delay.as_secs_f64() * 1000.0);
        }
        shown
            .counter("hedges_sent", self.hedges_sent())
            .counter("hedges_won", self.hedges_won())
            .counter("cancelled", self.cancelled())
            .counter("budget_exhausted", self.budget_exhausted())
    }
}
