//! `LoadShedConfig`: a load shedder's settings read from a configuration file (feature
//! `serde`), and `ConfigLimit`, the limit algorithm a file chooses.

use std::time::Duration;

use weir_core::config::ConfigDuration;
use weir_core::protocol::{Http, Plain};
use weir_core::{ConfigError, Name};

use crate::builder::LoadShedBuilder;
use crate::classify::Uniform;
use crate::layer::LoadShedLayer;
use crate::limit::{Aimd, ConfigLimit, Fixed, Gradient2, Limit, Vegas};
use crate::settings::{
    self, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY_AFTER, Levels, LoadShedSettings, PATTERN, Shares,
};

/// The settings of a [`LoadShedLayer`] read from a configuration file (TOML, or any serde
/// format). Every field is optional: an empty table gives the builder's defaults (a fixed limit
/// of 100, shares 50 % / 100 % / 100 %, levels 0.7 / 0.9, `Retry-After: 1s`, no queue-time
/// shedding, name `"default"`). An unknown field is an error.
///
/// | field | type | example | builder method |
/// |---|---|---|---|
/// | `max_in_flight` | integer, at least 1 | `200` | [`max_in_flight`](LoadShedBuilder::max_in_flight) (a fixed limit) |
/// | `limit` | table, one of `aimd`, `vegas`, `gradient2` ([`LimitSpec`]) | `{ gradient2 = { bounds = [20, 500] } }` | [`limit`](LoadShedBuilder::limit) (an adaptive limit) |
/// | `share` | table, `sheddable` / `normal` / `critical`, each in `(0, 1]` | `{ sheddable = 0.4 }` | [`share`](LoadShedBuilder::share) |
/// | `levels` | table, `elevated_at` and `critical_at` | `{ elevated_at = 0.6, critical_at = 0.85 }` | [`levels`](LoadShedBuilder::levels) |
/// | `max_ready_wait` | duration | `"50ms"` | [`max_ready_wait`](LoadShedBuilder::max_ready_wait) (queue-time shedding) |
/// | `retry_after` | duration | `"2s"` | [`retry_after`](LoadShedBuilder::retry_after) |
/// | `name` | string | `"api"` | [`name`](LoadShedBuilder::name) |
///
/// `max_in_flight` and `limit` are exclusive. Durations are strings, a whole number and a unit
/// (`"250ms"`, `"10s"`).
///
/// **One type for every file.** The limit a file chooses is a [`ConfigLimit`], an enum that
/// dispatches to [`Fixed`], [`Aimd`], [`Vegas`] or [`Gradient2`] with one `match` per call. Its
/// limit counts as adaptive, so even a fixed limit read from a file costs a clock reading per
/// call and a short lock per finished call that `LoadShedLayer::new(n)` does not pay; where
/// that matters, build the fixed layer in code.
///
/// **What stays in code**: the priority classifier ([`priority`](LoadShedBuilder::priority)),
/// the observer, and [`Http`] mode (it changes the response type): call them on the builder
/// [`builder`](Self::builder) returns, or use [`http_builder`](Self::http_builder) /
/// [`build_http`](Self::build_http).
///
/// ```
/// use weir_load_shed::{LoadShedConfig, Priority};
///
/// let config: LoadShedConfig = toml::from_str(r#"
///     name = "api"
///     max_ready_wait = "50ms"
///     share = { sheddable = 0.4 }
///
///     [limit.gradient2]
///     initial = 50
///     bounds = [20, 500]
/// "#).unwrap();
/// let (layer, handle) = config
///     .builder()
///     .unwrap()
///     .priority(|path: &&str| if path.starts_with("/admin") { Priority::Critical } else { Priority::Normal })
///     .build_with_handle()
///     .unwrap();
/// assert_eq!(handle.limit(), 50);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(from = "Table")]
#[non_exhaustive]
pub struct LoadShedConfig {
    /// A fixed limit (at least 1); exclusive with `limit`.
    pub max_in_flight: Option<usize>,
    /// An adaptive limit; exclusive with `max_in_flight`.
    pub limit: Option<LimitSpec>,
    /// Every other setting, at the top level of the table (`share`, `levels`,
    /// `max_ready_wait`, `retry_after`, `name`).
    pub settings: LoadShedSettings,
}

/// The table as a file writes it: the limit's two fields beside the settings' own, in one
/// table. (serde cannot refuse unknown fields through a `flatten`ed struct, so the settings'
/// fields are named here once more, with the settings' own types and defaults.)
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    limit: Option<LimitSpec>,
    #[serde(default)]
    share: Shares,
    #[serde(default)]
    levels: Levels,
    #[serde(default, deserialize_with = "settings::optional_duration")]
    max_ready_wait: Option<Duration>,
    #[serde(
        default = "default_retry_after",
        deserialize_with = "settings::duration"
    )]
    retry_after: Duration,
    #[serde(default, deserialize_with = "settings::name")]
    name: Name,
}

const fn default_retry_after() -> Duration {
    DEFAULT_RETRY_AFTER
}

impl From<Table> for LoadShedConfig {
    fn from(table: Table) -> Self {
        Self {
            max_in_flight: table.max_in_flight,
            limit: table.limit,
            settings: LoadShedSettings {
                share: table.share,
                levels: table.levels,
                max_ready_wait: table.max_ready_wait,
                retry_after: table.retry_after,
                name: table.name,
            },
        }
    }
}

/// An adaptive limit chosen in a configuration file, with its parameters; every parameter is
/// optional and an absent one keeps the algorithm's default.
///
/// | TOML | algorithm |
/// |---|---|
/// | `limit = { aimd = { initial = 20, bounds = [20, 200], backoff = 0.9, timeout = "5s" } }` | [`Aimd`] |
/// | `limit = { vegas = { initial = 20, bounds = [1, 1000], smoothing = 1.0, probe_every = 600 } }` | [`Vegas`] |
/// | `limit = { gradient2 = { initial = 20, bounds = [20, 200], smoothing = 0.2, tolerance = 1.5, queue = 4, short_window = 10, long_window = 600 } }` | [`Gradient2`] |
///
/// (`limit = { vegas = {} }` is Vegas with its defaults.) Where the algorithm would clamp a
/// value silently, the file is refused instead, naming the parameter: `bounds` is
/// `[min, max]` with `1 <= min <= max`, `initial` lies within the bounds (the algorithm's
/// default bounds when `bounds` is absent), `backoff` is in `[0.5, 0.99]`, `smoothing` in
/// `[0.01, 1]`, `tolerance` at least 1, `probe_every` and the windows at least 1.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum LimitSpec {
    /// [`Aimd`]: additive increase, multiplicative decrease on drops and slow calls.
    Aimd(AimdSpec),
    /// [`Vegas`]: grows while the estimated queue is short.
    Vegas(VegasSpec),
    /// [`Gradient2`]: follows the ratio of the long-term to the short-term RTT.
    Gradient2(Gradient2Spec),
}

/// The parameters of [`LimitSpec::Aimd`] (see [`Aimd`]'s methods).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AimdSpec {
    /// The limit to start from ([`Aimd::initial`]).
    #[serde(default)]
    pub initial: Option<usize>,
    /// `[min, max]` ([`Aimd::bounds`]).
    #[serde(default)]
    pub bounds: Option<(usize, usize)>,
    /// The factor a drop multiplies the limit by ([`Aimd::backoff`]).
    #[serde(default)]
    pub backoff: Option<f64>,
    /// A call slower than this counts as a drop ([`Aimd::timeout`]).
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
}

/// The parameters of [`LimitSpec::Vegas`] (see [`Vegas`]'s methods).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VegasSpec {
    /// The limit to start from ([`Vegas::initial`]).
    #[serde(default)]
    pub initial: Option<usize>,
    /// `[min, max]` ([`Vegas::bounds`]).
    #[serde(default)]
    pub bounds: Option<(usize, usize)>,
    /// How much of each new estimate is taken ([`Vegas::smoothing`]).
    #[serde(default)]
    pub smoothing: Option<f64>,
    /// Re-measure the no-load RTT every this many samples ([`Vegas::probe_every`]).
    #[serde(default)]
    pub probe_every: Option<u64>,
}

/// The parameters of [`LimitSpec::Gradient2`] (see [`Gradient2`]'s methods).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Gradient2Spec {
    /// The limit to start from ([`Gradient2::initial`]).
    #[serde(default)]
    pub initial: Option<usize>,
    /// `[min, max]` ([`Gradient2::bounds`]).
    #[serde(default)]
    pub bounds: Option<(usize, usize)>,
    /// How much of each new estimate is taken ([`Gradient2::smoothing`]).
    #[serde(default)]
    pub smoothing: Option<f64>,
    /// How much slower the short-term RTT may be before the limit shrinks
    /// ([`Gradient2::tolerance`]).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Calls allowed to queue on top of the limit while nothing queues ([`Gradient2::queue`]).
    #[serde(default)]
    pub queue: Option<usize>,
    /// Samples in the short-term average ([`Gradient2::short_window`]).
    #[serde(default)]
    pub short_window: Option<u32>,
    /// Samples the long-term average spans ([`Gradient2::long_window`]).
    #[serde(default)]
    pub long_window: Option<u32>,
}

/// `Err(out_of_range)` unless `ok`.
fn check(ok: bool, field: &'static str, rule: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::out_of_range(PATTERN, field, rule))
    }
}

/// The rules every algorithm's `bounds`, `initial` and `smoothing` share; `fields` are their
/// paths in the file.
struct Common {
    bounds: &'static str,
    initial: &'static str,
    smoothing: &'static str,
}

impl Common {
    fn bounds(&self, bounds: Option<(usize, usize)>) -> Result<(), ConfigError> {
        bounds.map_or(Ok(()), |(min, max)| {
            check(
                min >= 1 && min <= max,
                self.bounds,
                "must be [min, max] with 1 <= min <= max",
            )
        })
    }

    /// `limit` is the algorithm after `initial` was applied: it moved if `initial` lay outside
    /// the bounds.
    fn initial<L: Limit>(&self, initial: Option<usize>, limit: &L) -> Result<(), ConfigError> {
        initial.map_or(Ok(()), |initial| {
            check(
                limit.limit() == initial,
                self.initial,
                "must lie within `bounds` (the algorithm's default bounds when `bounds` is absent)",
            )
        })
    }

    fn smoothing(&self, smoothing: Option<f64>) -> Result<(), ConfigError> {
        smoothing.map_or(Ok(()), |s| {
            check(
                (0.01..=1.0).contains(&s),
                self.smoothing,
                "must be between 0.01 and 1",
            )
        })
    }
}

impl LimitSpec {
    /// The algorithm with these parameters on top of its defaults.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] ([`is_out_of_range`](ConfigError::is_out_of_range)) naming the
    /// parameter (`limit.vegas.smoothing`) that is out of range (see the type's documentation).
    pub fn build(&self) -> Result<ConfigLimit, ConfigError> {
        match self {
            Self::Aimd(spec) => {
                let common = Common {
                    bounds: "limit.aimd.bounds",
                    initial: "limit.aimd.initial",
                    smoothing: "",
                };
                common.bounds(spec.bounds)?;
                let mut limit = Aimd::new();
                if let Some((min, max)) = spec.bounds {
                    limit = limit.bounds(min, max);
                }
                if let Some(initial) = spec.initial {
                    limit = limit.initial(initial);
                }
                common.initial(spec.initial, &limit)?;
                if let Some(backoff) = spec.backoff {
                    check(
                        (0.5..=0.99).contains(&backoff),
                        "limit.aimd.backoff",
                        "must be between 0.5 and 0.99",
                    )?;
                    limit = limit.backoff(backoff);
                }
                if let Some(timeout) = spec.timeout {
                    check(
                        !timeout.get().is_zero(),
                        "limit.aimd.timeout",
                        "must be more than zero",
                    )?;
                    limit = limit.timeout(timeout.get());
                }
                Ok(ConfigLimit::Aimd(limit))
            }
            Self::Vegas(spec) => {
                let common = Common {
                    bounds: "limit.vegas.bounds",
                    initial: "limit.vegas.initial",
                    smoothing: "limit.vegas.smoothing",
                };
                common.bounds(spec.bounds)?;
                let mut limit = Vegas::new();
                if let Some((min, max)) = spec.bounds {
                    limit = limit.bounds(min, max);
                }
                if let Some(initial) = spec.initial {
                    limit = limit.initial(initial);
                }
                common.initial(spec.initial, &limit)?;
                common.smoothing(spec.smoothing)?;
                if let Some(smoothing) = spec.smoothing {
                    limit = limit.smoothing(smoothing);
                }
                if let Some(samples) = spec.probe_every {
                    check(
                        samples >= 1,
                        "limit.vegas.probe_every",
                        "must be at least 1",
                    )?;
                    limit = limit.probe_every(samples);
                }
                Ok(ConfigLimit::Vegas(limit))
            }
            Self::Gradient2(spec) => {
                let common = Common {
                    bounds: "limit.gradient2.bounds",
                    initial: "limit.gradient2.initial",
                    smoothing: "limit.gradient2.smoothing",
                };
                common.bounds(spec.bounds)?;
                let mut limit = Gradient2::new();
                if let Some((min, max)) = spec.bounds {
                    limit = limit.bounds(min, max);
                }
                if let Some(initial) = spec.initial {
                    limit = limit.initial(initial);
                }
                common.initial(spec.initial, &limit)?;
                common.smoothing(spec.smoothing)?;
                if let Some(smoothing) = spec.smoothing {
                    limit = limit.smoothing(smoothing);
                }
                if let Some(tolerance) = spec.tolerance {
                    check(
                        tolerance >= 1.0,
                        "limit.gradient2.tolerance",
                        "must be at least 1",
                    )?;
                    limit = limit.tolerance(tolerance);
                }
                if let Some(queue) = spec.queue {
                    limit = limit.queue(queue);
                }
                if let Some(samples) = spec.short_window {
                    check(
                        samples >= 1,
                        "limit.gradient2.short_window",
                        "must be at least 1",
                    )?;
                    limit = limit.short_window(samples);
                }
                if let Some(samples) = spec.long_window {
                    check(
                        samples >= 1,
                        "limit.gradient2.long_window",
                        "must be at least 1",
                    )?;
                    limit = limit.long_window(samples);
                }
                Ok(ConfigLimit::Gradient2(limit))
            }
        }
    }
}

impl LoadShedConfig {
    /// A [`LoadShedBuilder`] with these settings on top of the builder's defaults; chain
    /// [`priority`](LoadShedBuilder::priority), [`observer`](LoadShedBuilder::observer) or
    /// [`http`](LoadShedBuilder::http) before `build()`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `max_in_flight` of 0, `max_in_flight` together with `limit`
    /// ([`is_conflict`](ConfigError::is_conflict)), or a limit parameter out of range; the
    /// settings' rules (shares, levels, durations) are reported by `build()`. Each message
    /// names the field.
    pub fn builder(&self) -> Result<LoadShedBuilder<ConfigLimit, Uniform, (), Plain>, ConfigError> {
        let limit = match (self.max_in_flight, &self.limit) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::conflict(
                    PATTERN,
                    "max_in_flight",
                    "cannot be combined with `limit` (a fixed limit is `max_in_flight` alone)",
                ));
            }
            (Some(max), None) => {
                if max == 0 {
                    return Err(ConfigError::zero(
                        PATTERN,
                        "max_in_flight",
                        "must be at least 1",
                    ));
                }
                ConfigLimit::Fixed(Fixed::new(max))
            }
            (None, Some(spec)) => spec.build()?,
            (None, None) => ConfigLimit::Fixed(Fixed::new(DEFAULT_MAX_IN_FLIGHT)),
        };
        Ok(LoadShedLayer::builder()
            .limit(limit)
            .settings(self.settings.clone()))
    }

    /// [`builder`](Self::builder) in [`Http`] mode: each call stays in flight until its
    /// response body ends.
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder).
    pub fn http_builder(
        &self,
    ) -> Result<LoadShedBuilder<ConfigLimit, Uniform, (), Http>, ConfigError> {
        Ok(self.builder()?.http())
    }

    /// Builds the layer ([`Plain`] mode, every request [`Priority::Normal`](crate::Priority::Normal)):
    /// [`builder`](Self::builder), then [`LoadShedBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build(&self) -> Result<LoadShedLayer<ConfigLimit>, ConfigError> {
        self.builder()?.build()
    }

    /// Builds the [`Http`]-mode layer (every request [`Priority::Normal`](crate::Priority::Normal)):
    /// [`http_builder`](Self::http_builder), then [`LoadShedBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build_http(&self) -> Result<LoadShedLayer<ConfigLimit, Uniform, (), Http>, ConfigError> {
        self.http_builder()?.build()
    }
}

#[cfg(test)]
mod tests;
