//! A load shedder's load level as a check (feature `load-shed`).

use std::future::{Future, ready};

use weir_load_shed::{LoadLevel, LoadShedHandle};

use crate::check::HealthCheck;
use crate::status::{Health, Status};

/// A load shedder as a check, through its handle: its load level. Critical (at or near the
/// limit) is degraded, elevated is healthy with a reason; never unhealthy, for the reason
/// [`BulkheadCheck`](crate::BulkheadCheck) gives.
#[derive(Clone, Debug)]
pub struct LoadCheck {
    handle: LoadShedHandle,
}

impl LoadCheck {
    /// The load level of the shedder behind `handle`.
    #[must_use]
    pub const fn new(handle: LoadShedHandle) -> Self {
        Self { handle }
    }

    fn health(&self) -> Health {
        match self.handle.load_level() {
            LoadLevel::Critical => Health::degraded("load critical"),
            LoadLevel::Elevated => Health::new(Status::Healthy, "load elevated"),
            LoadLevel::Normal => Health::healthy(),
        }
    }
}

impl HealthCheck for LoadCheck {
    fn check(&self) -> impl Future<Output = Health> + Send {
        ready(self.health())
    }
}
