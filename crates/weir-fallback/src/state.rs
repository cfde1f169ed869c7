//! The pure decisions of the fallback: which sources are tried in which order, and whether a
//! kept answer is still fresh enough to serve. No runtime, no service.

use std::time::Duration;

/// A fallback source: where a fallback answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// A value made by a closure from the failure (and, if asked for, the request's parts).
    Value,
    /// An alternative service: a second upstream, a read replica, a static file service.
    Service,
    /// The last good answer kept for the request's key (stale-if-error).
    LastGood,
}

impl Source {
    /// `"value"`, `"service"` or `"last_good"`: the label in events and in the marker header.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Service => "service",
            Self::LastGood => "last_good",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Value => 0,
            Self::Service => 1,
            Self::LastGood => 2,
        }
    }
}

/// Why the fallback ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The primary service returned an error the classifier calls a failure.
    Error,
    /// The primary service returned a response the classifier calls a failure (a 503, an
    /// `UNAVAILABLE`).
    Response,
    /// The handle's flag sends every request to the fallback (a feature flag, a kill switch).
    Flag,
    /// The switch sent this request to the fallback (the load level, or your own predicate).
    Switch,
}

impl Reason {
    /// `"error"`, `"response"`, `"flag"` or `"switch"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Response => "response",
            Self::Flag => "flag",
            Self::Switch => "switch",
        }
    }

    /// The primary service was not called (the flag or the switch sent the request to the
    /// fallback first).
    #[must_use]
    pub const fn is_switched(self) -> bool {
        matches!(self, Self::Flag | Self::Switch)
    }
}

/// The sources in the order they were configured; each at most once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Order {
    sources: [Option<Source>; 3],
}

impl Order {
    /// Adds `source` at the end, unless it is already in the order (configuring a source again
    /// replaces it in place: its position is where it was first added).
    #[must_use]
    pub(crate) const fn with(mut self, source: Source) -> Self {
        let mut i = 0;
        while i < self.sources.len() {
            match self.sources[i] {
                Some(s) if s.index() == source.index() => return self,
                None => {
                    self.sources[i] = Some(source);
                    return self;
                }
                Some(_) => i += 1,
            }
        }
        self
    }

    /// The source at `position`, if any.
    pub(crate) const fn get(&self, position: usize) -> Option<Source> {
        if position < self.sources.len() {
            self.sources[position]
        } else {
            None
        }
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.sources[0].is_none()
    }
}

/// The age of a kept answer stored `elapsed` ago, if it may still be served with at most
/// `max_stale` of staleness (RFC 5861 `stale-if-error`: past it, the failure is returned instead).
pub(crate) fn servable_age(elapsed: Duration, max_stale: Duration) -> Option<Duration> {
    (elapsed <= max_stale).then_some(elapsed)
}

/// The `Age` header's value for `age`: whole seconds, rounded down (RFC 9111 section 5.1).
pub(crate) const fn age_seconds(age: Duration) -> u64 {
    age.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keeps_the_first_position_of_each_source() {
        let order = Order::default()
            .with(Source::Service)
            .with(Source::Value)
            .with(Source::Service)
            .with(Source::LastGood);
        assert_eq!(order.get(0), Some(Source::Service));
        assert_eq!(order.get(1), Some(Source::Value));
        assert_eq!(order.get(2), Some(Source::LastGood));
        assert_eq!(order.get(3), None);
        assert!(Order::default().is_empty());
    }

    /// #20.3: an answer past its maximum staleness is not served; `Age` is in whole seconds.
    #[test]
    fn staleness_bound_is_inclusive() {
        let max = Duration::from_secs(60);
        assert_eq!(
            servable_age(Duration::from_secs(59), max),
            Some(Duration::from_secs(59))
        );
        assert_eq!(servable_age(max, max), Some(max));
        assert_eq!(servable_age(Duration::from_millis(60_001), max), None);
        assert_eq!(age_seconds(Duration::from_millis(2_999)), 2);
    }
}
