//! [`Reconfigure`] for the bulkhead's handle: a new size and queue for a running bulkhead
//! (issue #25). The rules are in the crate's README, "Changing settings at run time".

use std::hash::Hash;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::handle::BulkheadHandle;
use crate::partition::{Partition, PartitionedBuilder, PartitionedHandle};
use crate::settings::{BulkheadSettings, PATTERN, validate_size, validate_wait};
use crate::tuning::{Policy, Tuning};

/// The refusal of a change to a setting that is fixed when the layer is built.
pub(crate) fn fixed(field: &'static str) -> ConfigError {
    ConfigError::conflict(
        PATTERN,
        field,
        "is fixed when the layer is built: build a new layer to change it",
    )
}

/// Refuses `settings` if they change what a running bulkhead cannot: its name, its mode
/// (`backpressure`) or when an HTTP permit is released (`release_at_head`).
fn check_fixed(tuning: &Tuning, settings: &BulkheadSettings) -> Result<(), ConfigError> {
    if settings.name != tuning.name {
        return Err(fixed("name"));
    }
    if settings.backpressure != tuning.backpressure {
        return Err(fixed("backpressure"));
    }
    if settings.release_at_head != tuning.release_at_head {
        return Err(fixed("release_at_head"));
    }
    Ok(())
}

impl Reconfigure for BulkheadHandle {
    type Settings = BulkheadSettings;

    /// The settings in force: the size and the queue as last applied, the rest as built.
    fn settings(&self) -> BulkheadSettings {
        let policy = self.tuning.policy();
        BulkheadSettings {
            max_concurrent: self.core.max(),
            max_queue: policy.max_queue,
            max_wait: policy.max_wait,
            retry_after: policy.retry_after,
            backpressure: self.tuning.backpressure,
            release_at_head: self.tuning.release_at_head,
            name: self.tuning.name.clone(),
        }
    }

    /// Applies a new `max_concurrent`, `max_queue`, `max_wait` and `retry_after`, checked by
    /// [`BulkheadSettings::validate`]; `name`, `backpressure` and `release_at_head` must be the
    /// ones the layer was built with.
    ///
    /// A shrink lets the calls running finish and admits no new one above the new size (the
    /// permits held above it are retired as they come back, not handed to waiters); a growth
    /// hands the new room to the waiters at once. A shorter queue refuses new arrivals above its
    /// new length and keeps the requests already waiting.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] `build()` would return, naming the field, or a conflict naming a
    /// field that is fixed when the layer is built. Nothing changes then.
    fn apply(&self, settings: BulkheadSettings) -> Result<(), ConfigError> {
        settings.validate()?;
        check_fixed(&self.tuning, &settings)?;
        let _one_at_a_time = self
            .tuning
            .apply_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.tuning.set_policy(Policy {
            max_queue: settings.max_queue,
            max_wait: settings.max_wait,
            retry_after: settings.retry_after,
        });
        self.core.resize(settings.max_concurrent);
        Ok(())
    }
}

/// What a running partitioned bulkhead's handle reads and takes ([`Reconfigure`] for
/// [`PartitionedHandle`]): the sizes of its partitions and pool, and its queue settings.
///
/// ```
/// use weir_bulkhead::BulkheadLayer;
/// use weir_core::reconfigure::Reconfigure;
///
/// let layer = BulkheadLayer::partitioned(|tenant: &&str| Some(tenant.to_string()))
///     .partition("payments".to_string(), 20)
///     .per_key(5)
///     .borrow(10, 4)
///     .build()
///     .unwrap();
/// let handle = layer.handle();
/// let mut tuning = handle.settings();
/// tuning.partitions = vec![("payments".to_string(), 40)];
/// tuning.per_key = 8;
/// tuning.borrow = Some((16, 6));
/// handle.apply(tuning).unwrap();
/// assert_eq!(handle.stats(&"payments".to_string()).unwrap().max_concurrent, 40);
/// assert_eq!(handle.pool_stats().unwrap().max_concurrent, 16);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionedTuning<K> {
    /// Named partitions and their sizes (in no particular order): every partition the layer
    /// was built with, and no other (adding or removing one needs a new layer: `apply` refuses
    /// it, naming `partition`).
    pub partitions: Vec<(K, usize)>,
    /// The size of every keyed partition (those stored now, the key-less one and those made
    /// later).
    pub per_key: usize,
    /// The shared pool's size and the most one partition may borrow from it; `None` exactly
    /// when the layer was built without a pool.
    pub borrow: Option<(usize, usize)>,
    /// How many requests may wait in each full partition.
    pub max_queue: usize,
    /// The longest a queued request waits.
    pub max_wait: Option<Duration>,
    /// The `Retry-After` every rejection carries.
    pub retry_after: Duration,
}

/// A [`PartitionedTuning`] from its parts (the builder's `tuning()`).
pub(crate) const fn partitioned_tuning<K>(
    partitions: Vec<(K, usize)>,
    per_key: usize,
    borrow: Option<(usize, usize)>,
    policy: Policy,
) -> PartitionedTuning<K> {
    PartitionedTuning {
        partitions,
        per_key,
        borrow,
        max_queue: policy.max_queue,
        max_wait: policy.max_wait,
        retry_after: policy.retry_after,
    }
}

impl<X, K, O> Reconfigure for PartitionedHandle<X, K, O>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    type Settings = PartitionedTuning<K>;

    fn settings(&self) -> PartitionedTuning<K> {
        let parts = &self.shared;
        let policy = parts.tuning.policy();
        PartitionedTuning {
            partitions: parts
                .named
                .iter()
                .map(|(key, partition)| (key.clone(), partition.core.max()))
                .collect(),
            per_key: parts.per_key.load(SeqCst),
            borrow: parts
                .pool
                .as_ref()
                .map(|(pool, cap)| (pool.max(), cap.load(SeqCst))),
            max_queue: policy.max_queue,
            max_wait: policy.max_wait,
            retry_after: policy.retry_after,
        }
    }

    /// Applies new partition, `per_key` and pool sizes, a new loan cap and new queue settings,
    /// checked by the builder's rules. Each partition (and the pool) shrinks or grows as a
    /// bulkhead does (see [`BulkheadHandle`]'s `apply`); a new loan cap takes effect for every
    /// partition's next loan.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] `build()` would return, naming the field (`partition`, `per_key`,
    /// `borrow`, `retry_after`, `max_wait`); `partition` ([`is_unknown`](ConfigError::is_unknown))
    /// for a key the layer has no named partition for, and a conflict naming `partition` when a
    /// partition the layer has is left out (partitions are added and removed by building a new
    /// layer); a conflict naming `borrow` for adding or removing the pool. Nothing changes then.
    fn apply(&self, tuning: PartitionedTuning<K>) -> Result<(), ConfigError> {
        let parts = &self.shared;
        for (key, size) in &tuning.partitions {
            validate_size("partition", *size)?;
            if !parts.named.contains_key(key) {
                return Err(ConfigError::unknown(
                    PATTERN,
                    "partition",
                    "names a partition the layer was not built with: build a new layer to add one",
                ));
            }
        }
        // Partitions are added and removed by building a new layer: a running one takes new
        // sizes for the partitions it has, all of them.
        if parts
            .named
            .keys()
            .any(|key| !tuning.partitions.iter().any(|(given, _)| given == key))
        {
            return Err(ConfigError::conflict(
                PATTERN,
                "partition",
                "leaves out a partition the layer was built with: build a new layer to remove one",
            ));
        }
        validate_size("per_key", tuning.per_key)?;
        match (&parts.pool, tuning.borrow) {
            (Some(_), Some((size, _))) => validate_size("borrow", size)?,
            (None, None) => {}
            _ => {
                return Err(ConfigError::conflict(
                    PATTERN,
                    "borrow",
                    "a pool is added or removed by building a new layer",
                ));
            }
        }
        if tuning.retry_after.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "retry_after",
                "must be more than zero",
            ));
        }
        validate_wait(tuning.max_queue, tuning.max_wait)?;

        let _one_at_a_time = parts
            .tuning
            .apply_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        parts.tuning.set_policy(Policy {
            max_queue: tuning.max_queue,
            max_wait: tuning.max_wait,
            retry_after: tuning.retry_after,
        });
        let cap = tuning.borrow.map(|(size, cap)| {
            if let Some((pool, stored)) = &parts.pool {
                pool.resize(size);
                stored.store(cap, SeqCst);
            }
            cap
        });
        let resize = |partition: &Partition, size: usize| {
            partition.core.resize(size);
            if let (Some(loans), Some(cap)) = (&partition.loans, cap) {
                loans.resize(cap);
            }
        };
        for (key, size) in &tuning.partitions {
            // Every named partition is given (checked above); its loan cap follows the pool's.
            if let Some(partition) = parts.named.get(key) {
                resize(partition, *size);
            }
        }
        // Stored before the keyed partitions are visited: a partition made meanwhile reads the
        // new size under its shard's lock, or is visited after it was made.
        parts.per_key.store(tuning.per_key, SeqCst);
        parts
            .keyed
            .for_each(|_, partition| resize(partition, tuning.per_key));
        resize(parts.keyed.overflow(), tuning.per_key);
        resize(&parts.keyless, tuning.per_key);
        Ok(())
    }
}

impl<X, K: Clone, O, P> PartitionedBuilder<X, K, O, P> {
    /// These settings as a running layer's handle takes them
    /// ([`Reconfigure::apply`](weir_core::reconfigure::Reconfigure::apply) on a
    /// [`PartitionedHandle`]): for example a configuration file read again,
    /// `config.builder()?.tuning()`. Not validated here: `apply` checks them.
    #[must_use]
    pub fn tuning(&self) -> PartitionedTuning<K> {
        let settings = &self.settings;
        partitioned_tuning(
            settings.named.clone(),
            settings.per_key,
            settings.pool,
            crate::tuning::Policy {
                max_queue: settings.max_queue,
                max_wait: settings.max_wait,
                retry_after: settings.retry_after,
            },
        )
    }
}
