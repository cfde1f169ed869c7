//! The handle: the fallback flag, and the counts of fallback answers by source.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use weir_core::Name;

use crate::shared::Control;
use crate::state::Source;

/// Controls a fallback layer's flag and reads its counts; from
/// [`FallbackBuilder::build_with_handle`](crate::FallbackBuilder::build_with_handle) or
/// [`FallbackLayer::handle`](crate::FallbackLayer::handle). Clones control the same layer.
#[derive(Clone, Debug)]
pub struct FallbackHandle {
    control: Arc<Control>,
    name: Name,
}

impl FallbackHandle {
    pub(crate) const fn new(control: Arc<Control>, name: Name) -> Self {
        Self { control, name }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// Raises or lowers the flag: while it is up, every request goes to the fallback sources
    /// before the primary is called (a feature flag, a kill switch for a failing dependency).
    /// The primary is still called for a request no source answers.
    pub fn set_forced(&self, forced: bool) {
        self.control.forced.store(forced, Relaxed);
    }

    /// Whether the flag is up.
    #[must_use]
    pub fn is_forced(&self) -> bool {
        self.control.forced.load(Relaxed)
    }

    /// A snapshot of the counts.
    #[must_use]
    pub fn stats(&self) -> FallbackStats {
        let answered = |source: Source| self.control.answered[source.index()].load(Relaxed);
        FallbackStats {
            value: answered(Source::Value),
            service: answered(Source::Service),
            last_good: answered(Source::LastGood),
            exhausted: self.control.exhausted.load(Relaxed),
            switched: self.control.switched.load(Relaxed),
        }
    }
}

/// A fallback layer's counts at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// Answers from the value source.
    pub value: u64,
    /// Answers from the alternative service.
    pub service: u64,
    /// Answers from the last good answers kept.
    pub last_good: u64,
    /// Fallbacks where every source declined (the caller got the original result).
    pub exhausted: u64,
    /// Requests the flag or the switch sent to the fallback before the primary.
    pub switched: u64,
}

impl FallbackStats {
    /// Fallback answers from every source.
    #[must_use]
    pub const fn answered(&self) -> u64 {
        self.value + self.service + self.last_good
    }
}
