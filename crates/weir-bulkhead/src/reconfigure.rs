//! [`Reconfigure`] for the bulkhead's handle: a new size and queue for a running bulkhead
//! (issue #25). The rules are in the crate's README, "Changing settings at run time".

use std::sync::PoisonError;

use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::handle::BulkheadHandle;
use crate::settings::{BulkheadSettings, PATTERN};
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
