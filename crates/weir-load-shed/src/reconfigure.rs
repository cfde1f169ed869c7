//! [`Reconfigure`] for the load shedder's handle: a new limit, new adaptive bounds and
//! parameters, new shares and load-level thresholds for a running layer (issue #25). The rules
//! are in the crate's README, "Changing settings at run time".

use std::sync::PoisonError;

use weir_core::reconfigure::Reconfigure;
use weir_core::{ConfigError, Observer};

use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::limit::Limit;
use crate::settings::{LoadShedSettings, PATTERN, Shares};
use crate::shared::Shared;
use crate::tuning::{LoadShedTuning, Retune};

impl<L, C, O> Retune for Shared<L, C, O>
where
    L: Limit,
    O: for<'a> Observer<Event<'a>>,
{
    fn tuning(&self) -> LoadShedTuning {
        let tuned = self
            .algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let [sheddable, normal, critical] = tuned.shares;
        let (elevated_at, critical_at) = self.core.levels.get();
        let mut settings = LoadShedSettings {
            share: Shares {
                sheddable,
                normal,
                critical,
            },
            max_ready_wait: self.max_ready_wait.get(),
            retry_after: self.retry_after.get().unwrap_or_default(),
            name: self.name.clone(),
            ..LoadShedSettings::default()
        };
        settings.levels.elevated_at = elevated_at;
        settings.levels.critical_at = critical_at;
        LoadShedTuning::new(settings, tuned.limit.to_config())
    }

    fn retune(&self, tuning: LoadShedTuning) -> Result<(), ConfigError> {
        let LoadShedTuning { settings, limit } = tuning;
        settings.validate()?;
        if settings.name != self.name {
            return Err(ConfigError::conflict(
                PATTERN,
                "name",
                "is fixed when the layer is built: build a new layer to change it",
            ));
        }
        let (from, to) = {
            let mut tuned = self
                .algorithm
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let from = tuned.limit.limit();
            if let Some(limit) = &limit {
                // Refused before anything changes: `retune` leaves the algorithm as it was.
                tuned.limit.retune(limit)?;
            }
            let to = tuned.limit.limit().max(1);
            tuned.shares = settings.share.to_array();
            self.core.set_limit(to, &tuned.shares);
            self.core.levels.set(settings.levels);
            self.retry_after.set(Some(settings.retry_after));
            self.max_ready_wait.set(settings.max_ready_wait);
            (from, to)
        };
        if from != to {
            self.observer.on_event(&Event::LimitChanged {
                layer: &self.name,
                from,
                to,
            });
        }
        Ok(())
    }
}

impl Reconfigure for LoadShedHandle {
    type Settings = LoadShedTuning;

    /// The settings in force: the shares, thresholds and durations as last applied, and the
    /// limit's algorithm with its current estimate.
    fn settings(&self) -> LoadShedTuning {
        self.shared.tuning()
    }

    /// Applies new shares, load-level thresholds, `max_ready_wait`, `retry_after` and (if
    /// given) a new limit, checked by [`LoadShedSettings::validate`]; `name` must be the
    /// layer's own.
    ///
    /// A lower limit lets the calls in flight finish and admits no new one (of a priority)
    /// until the calls in flight are below its new cap; a higher one admits more at once. An
    /// adaptive algorithm keeps what it has learnt: its estimate is clamped into the new
    /// bounds.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] `build()` would return, naming the field; a conflict naming `name`
    /// or `limit` (another algorithm than the running one, unless the layer holds a
    /// [`ConfigLimit`](crate::ConfigLimit)). Nothing changes then.
    fn apply(&self, tuning: LoadShedTuning) -> Result<(), ConfigError> {
        self.shared.retune(tuning)
    }
}
