//! `ConfigLimit`: one of the crate's algorithms, chosen at run time (from a file, or by a
//! handle's new settings).

use weir_core::ConfigError;

use super::{Aimd, Fixed, Gradient2, Limit, Sample, Vegas};

/// One of the crate's limit algorithms, chosen at run time: one `match` per call into the
/// algorithm it holds, no boxing. A layer built from a file holds one (built by
/// `LoadShedConfig::builder` or `LimitSpec::build`, feature `serde`), and a running layer's
/// new limit is given as one
/// ([`LoadShedTuning::limit`](crate::LoadShedTuning::limit), see the crate's "Changing
/// settings at run time").
///
/// ```
/// use weir_load_shed::{ConfigLimit, Limit, Vegas};
///
/// let limit = ConfigLimit::Vegas(Vegas::new().initial(40));
/// assert_eq!(limit.limit(), 40);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigLimit {
    /// A fixed limit (`max_in_flight`, or the default).
    Fixed(Fixed),
    /// [`Aimd`].
    Aimd(Aimd),
    /// [`Vegas`].
    Vegas(Vegas),
    /// [`Gradient2`].
    Gradient2(Gradient2),
}

impl Limit for ConfigLimit {
    #[inline]
    fn limit(&self) -> usize {
        match self {
            Self::Fixed(limit) => limit.limit(),
            Self::Aimd(limit) => limit.limit(),
            Self::Vegas(limit) => limit.limit(),
            Self::Gradient2(limit) => limit.limit(),
        }
    }

    #[inline]
    fn update(&mut self, sample: Sample) -> usize {
        match self {
            Self::Fixed(limit) => limit.update(sample),
            Self::Aimd(limit) => limit.update(sample),
            Self::Vegas(limit) => limit.update(sample),
            Self::Gradient2(limit) => limit.update(sample),
        }
    }

    fn to_config(&self) -> Option<ConfigLimit> {
        Some(self.clone())
    }

    /// The same algorithm takes the new parameters as that algorithm does (its estimate
    /// clamped into the new bounds); another algorithm replaces it, starting from the current
    /// limit clamped into its bounds (a fixed limit is the new one's own value).
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let current = self.limit();
        match (&mut *self, to) {
            (Self::Fixed(limit), Self::Fixed(_)) => limit.retune(to),
            (Self::Aimd(limit), Self::Aimd(_)) => limit.retune(to),
            (Self::Vegas(limit), Self::Vegas(_)) => limit.retune(to),
            (Self::Gradient2(limit), Self::Gradient2(_)) => limit.retune(to),
            (_, Self::Fixed(fixed)) => {
                *self = Self::Fixed(*fixed);
                Ok(())
            }
            (_, Self::Aimd(aimd)) => {
                *self = Self::Aimd(aimd.clone().initial(current));
                Ok(())
            }
            (_, Self::Vegas(vegas)) => {
                *self = Self::Vegas(vegas.clone().initial(current));
                Ok(())
            }
            (_, Self::Gradient2(gradient2)) => {
                *self = Self::Gradient2(gradient2.clone().initial(current));
                Ok(())
            }
        }
    }
}
