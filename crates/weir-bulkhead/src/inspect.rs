//! What a bulkhead shows a status page or a metrics exporter: `impl Inspect` for its handles.

use std::hash::Hash;

use weir_core::inspect::{Inspect, Snapshot};

use crate::handle::BulkheadHandle;
use crate::partition::PartitionedHandle;
use crate::settings::PATTERN;

impl Inspect for BulkheadHandle {
    /// Gauges `in_flight`, `available`, `max_concurrent` and `queued`; counter `rejected`. No
    /// state and no actions.
    fn snapshot(&self) -> Snapshot {
        let stats = self.stats();
        Snapshot::new(PATTERN, self.name().clone())
            .gauge("in_flight", stats.in_flight as f64)
            .gauge("available", stats.available as f64)
            .gauge("max_concurrent", stats.max_concurrent as f64)
            .gauge("queued", stats.queued as f64)
            .counter("rejected", stats.rejected)
    }
}

impl<X, K, O> Inspect for PartitionedHandle<X, K, O>
where
    X: Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    /// Gauges `partitions` (named and keyed partitions held), and over every partition
    /// `in_flight`, `queued`; with a pool, `pool_in_flight` and `pool_available`; counter
    /// `rejected` over every partition since the layer was built.
    fn snapshot(&self) -> Snapshot {
        let totals = self.totals();
        let mut shown = Snapshot::new(PATTERN, self.name().clone())
            .gauge("partitions", totals.partitions as f64)
            .gauge("in_flight", totals.in_flight as f64)
            .gauge("queued", totals.queued as f64);
        if let Some(pool) = self.pool_stats() {
            shown = shown
                .gauge("pool_in_flight", pool.in_flight as f64)
                .gauge("pool_available", pool.available as f64);
        }
        shown.counter("rejected", totals.rejected)
    }
}
