//! [`RateLimitSettings`]: the rate limiter's quotas and tiers, the part of its settings a
//! running layer takes at run time ([`Reconfigure`](weir_core::reconfigure::Reconfigure) on
//! [`RateLimitHandle`](crate::RateLimitHandle)). Its mode and key bounds are still set on the
//! [`RateLimitBuilder`](crate::RateLimitBuilder) field by field.

use weir_core::{ConfigError, Name};

use crate::quota::Quota;
use crate::store::Tier;

/// The pattern name of the rate limiter's [`ConfigError`](weir_core::ConfigError)s.
pub(crate) const PATTERN: &str = "rate limit";

/// A rate limiter's quotas: the default tier's stacked quotas and each named tier's, the
/// settings [`RateLimitHandle::apply`](crate::RateLimitHandle) replaces whole while the layer
/// runs (and [`settings`](crate::RateLimitHandle) reads back).
///
/// ```
/// use weir_rate_limit::{Quota, RateLimitSettings};
///
/// let settings = RateLimitSettings::new()
///     .quota(Quota::per_second(10))
///     .tier("premium", [Quota::per_second(100)]);
/// assert_eq!(settings.quotas(), [Quota::per_second(10)]);
/// assert_eq!(settings.tiers().next().map(|(name, _)| name), Some("premium"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct RateLimitSettings {
    quotas: Vec<Quota>,
    tiers: Vec<(Name, Vec<Quota>)>,
}

impl RateLimitSettings {
    /// No quota yet (refused by `apply` until the default tier has one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a quota to the default tier (several stack, as
    /// [`RateLimitBuilder::quota`](crate::RateLimitBuilder::quota)).
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Adds a named tier with its stacked quotas (as
    /// [`RateLimitBuilder::tier`](crate::RateLimitBuilder::tier)).
    pub fn tier(mut self, name: impl Into<Name>, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.tiers.push((name.into(), quotas.into_iter().collect()));
        self
    }

    /// The default tier's quotas, in the order they were added.
    #[must_use]
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// The named tiers and their quotas, in the order they were added.
    pub fn tiers(&self) -> impl Iterator<Item = (&str, &[Quota])> {
        self.tiers.iter().map(|(n, q)| (n.as_str(), q.as_slice()))
    }

    /// The settings of a built table (the default tier first).
    pub(crate) fn of(table: &[Tier]) -> Self {
        let mut tiers = table.iter();
        let quotas = tiers
            .next()
            .map(|t| t.quotas().to_vec())
            .unwrap_or_default();
        Self {
            quotas,
            tiers: tiers
                .map(|t| (t.name_ref().clone(), t.quotas().to_vec()))
                .collect(),
        }
    }

    /// The table these settings build, by the builder's rules.
    pub(crate) fn table(self) -> Result<Box<[Tier]>, ConfigError> {
        table(None, self.quotas, self.tiers)
    }
}

/// The builder's rules on quotas and tiers: a zero given to a preset (`zero`), a default tier
/// with no quota, an empty tier, a tier named twice.
pub(crate) fn table(
    zero: Option<&'static str>,
    quotas: Vec<Quota>,
    named: Vec<(Name, Vec<Quota>)>,
) -> Result<Box<[Tier]>, ConfigError> {
    if let Some(preset) = zero {
        return Err(ConfigError::zero(PATTERN, preset, "must be at least 1"));
    }
    if quotas.is_empty() {
        return Err(ConfigError::missing(
            PATTERN,
            "quota",
            "the default tier needs at least one quota",
        ));
    }
    let mut tiers = Vec::with_capacity(named.len() + 1);
    tiers.push(Tier::new(Name::default(), quotas));
    for (name, quotas) in named {
        if quotas.is_empty() {
            return Err(ConfigError::missing(
                PATTERN,
                "tier",
                format!("`{name}` needs at least one quota"),
            ));
        }
        if tiers.iter().any(|t: &Tier| t.name() == name.as_str()) {
            return Err(ConfigError::duplicate(
                PATTERN,
                "tier",
                format!("`{name}` is given twice; tier names must be unique"),
            ));
        }
        tiers.push(Tier::new(name, quotas));
    }
    Ok(tiers.into_boxed_slice())
}

/// What a running limiter cannot take: another set of tiers (their names, in order) or
/// another number of quotas in a tier (each key keeps one state per quota). Either needs a
/// restart.
pub(crate) fn same_shape(running: &[Tier], new: &[Tier]) -> Result<(), ConfigError> {
    let names = |t: &[Tier]| t.iter().map(|t| t.name().to_owned()).collect::<Vec<_>>();
    if names(running) != names(new) {
        return Err(ConfigError::conflict(
            PATTERN,
            "tier",
            format!(
                "the tiers {:?} cannot become {:?} while the layer runs: adding, removing or \
                 renaming a tier needs a restart",
                names(running),
                names(new)
            ),
        ));
    }
    for (old, tier) in running.iter().zip(new) {
        if old.quotas().len() != tier.quotas().len() {
            let field = if tier.name() == "default" {
                "quota".to_owned()
            } else {
                format!("tier.{}", tier.name())
            };
            return Err(ConfigError::conflict(
                PATTERN,
                field,
                format!(
                    "{} quotas cannot become {} while the layer runs (each key keeps one state \
                     per quota): a change in the number of quotas needs a restart",
                    old.quotas().len(),
                    tier.quotas().len()
                ),
            ));
        }
    }
    Ok(())
}
