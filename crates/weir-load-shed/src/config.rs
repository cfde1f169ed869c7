//! `LoadShedConfig`: a load shedder's settings read from a configuration file (feature
//! `serde`), and `ConfigLimit`, the limit algorithm a file chooses.

use weir_core::config::ConfigDuration;

use crate::builder::{ConfigError, DEFAULT_MAX_IN_FLIGHT, LoadShedBuilder};
use crate::classify::Uniform;
use crate::layer::LoadShedLayer;
use crate::limit::{Aimd, Fixed, Gradient2, Limit, Sample, Vegas};
use crate::protocol::{Http, Plain};
use crate::state::Priority;

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
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LoadShedConfig {
    /// A fixed limit of calls in flight (at least 1); exclusive with `limit`.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// An adaptive limit algorithm and its parameters; exclusive with `max_in_flight`.
    #[serde(default)]
    pub limit: Option<LimitSpec>,
    /// The share of the limit each priority may use.
    #[serde(default)]
    pub share: Option<ShareSpec>,
    /// The utilisations from which the load level is elevated and critical.
    #[serde(default)]
    pub levels: Option<LevelsSpec>,
    /// Queue-time shedding: the longest the layer waits for the inner service to be ready
    /// before it refuses the next call.
    #[serde(default)]
    pub max_ready_wait: Option<ConfigDuration>,
    /// The `Retry-After` every refusal carries.
    #[serde(default)]
    pub retry_after: Option<ConfigDuration>,
    /// The layer's name in errors and events.
    #[serde(default)]
    pub name: Option<String>,
}

/// The share of the limit each [`Priority`] may use, each in `(0, 1]` and rising from
/// sheddable to critical; an absent one keeps its default (50 %, 100 %, 100 %).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ShareSpec {
    /// [`Priority::Sheddable`]'s share.
    #[serde(default)]
    pub sheddable: Option<f64>,
    /// [`Priority::Normal`]'s share.
    #[serde(default)]
    pub normal: Option<f64>,
    /// [`Priority::Critical`]'s share.
    #[serde(default)]
    pub critical: Option<f64>,
}

/// The load levels: `0 < elevated_at <= critical_at <= 1`, both required.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LevelsSpec {
    /// The utilisation (in flight / limit) from which the level is elevated.
    pub elevated_at: f64,
    /// The utilisation from which it is critical.
    pub critical_at: f64,
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

/// The limit algorithm of a layer built from a file: one `match` per call into the algorithm
/// it holds, no boxing. Built by [`LoadShedConfig::builder`] or [`LimitSpec::build`].
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
}

/// `Err(InvalidSetting)` unless `ok`.
const fn check(ok: bool, field: &'static str, rule: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidSetting { field, rule })
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
    /// [`ConfigError::InvalidSetting`] naming the parameter (`limit.vegas.smoothing`) that is
    /// out of range (see the type's documentation).
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
    /// [`ConfigError::InvalidSetting`] for `max_in_flight` of 0, `max_in_flight` together with
    /// `limit`, or a limit parameter out of range; the builder's own rules (shares, levels,
    /// durations) are reported by `build()`. Each message names the field.
    pub fn builder(&self) -> Result<LoadShedBuilder<ConfigLimit, Uniform, (), Plain>, ConfigError> {
        let limit = match (self.max_in_flight, &self.limit) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::InvalidSetting {
                    field: "max_in_flight",
                    rule: "cannot be combined with `limit` (a fixed limit is `max_in_flight` alone)",
                });
            }
            (Some(max), None) => {
                check(max >= 1, "max_in_flight", "must be at least 1")?;
                ConfigLimit::Fixed(Fixed::new(max))
            }
            (None, Some(spec)) => spec.build()?,
            (None, None) => ConfigLimit::Fixed(Fixed::new(DEFAULT_MAX_IN_FLIGHT)),
        };
        let mut builder = LoadShedLayer::builder().limit(limit);
        if let Some(share) = self.share {
            for (priority, value) in [
                (Priority::Sheddable, share.sheddable),
                (Priority::Normal, share.normal),
                (Priority::Critical, share.critical),
            ] {
                if let Some(value) = value {
                    builder = builder.share(priority, value);
                }
            }
        }
        if let Some(levels) = self.levels {
            builder = builder.levels(levels.elevated_at, levels.critical_at);
        }
        if let Some(max) = self.max_ready_wait {
            builder = builder.max_ready_wait(max.get());
        }
        if let Some(retry_after) = self.retry_after {
            builder = builder.retry_after(retry_after.get());
        }
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        Ok(builder)
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

    /// Builds the layer ([`Plain`] mode, every request [`Priority::Normal`]):
    /// [`builder`](Self::builder), then [`LoadShedBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build(&self) -> Result<LoadShedLayer<ConfigLimit>, ConfigError> {
        self.builder()?.build()
    }

    /// Builds the [`Http`]-mode layer (every request [`Priority::Normal`]):
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
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use tower::{Layer, Service, ServiceExt, service_fn};
    use weir_core::{BoxError, Error};
    use weir_test::Probe;

    use super::*;
    use crate::state::LoadLevel;

    fn parse(text: &str) -> LoadShedConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn weir_error(err: &BoxError) -> &Error {
        Error::find(&**err).expect("a weir error")
    }

    const FULL: &str = r#"
        name = "api"
        max_ready_wait = "50ms"
        retry_after = "3s"
        share = { sheddable = 0.25, normal = 0.5, critical = 1.0 }
        levels = { elevated_at = 0.5, critical_at = 0.75 }

        [limit.aimd]
        initial = 10
        bounds = [5, 50]
        backoff = 0.5
        timeout = "100ms"
    "#;

    #[test]
    fn a_full_file_reads_every_field() {
        let config = parse(FULL);
        assert_eq!(config.name.as_deref(), Some("api"));
        assert_eq!(
            config.max_ready_wait,
            Some(Duration::from_millis(50).into())
        );
        assert_eq!(config.retry_after, Some(Duration::from_secs(3).into()));
        let share = config.share.unwrap();
        assert_eq!(
            (share.sheddable, share.normal, share.critical),
            (Some(0.25), Some(0.5), Some(1.0))
        );
        let levels = config.levels.unwrap();
        assert_eq!((levels.elevated_at, levels.critical_at), (0.5, 0.75));
        assert_eq!(
            config.limit.unwrap().build().unwrap(),
            ConfigLimit::Aimd(
                Aimd::new()
                    .bounds(5, 50)
                    .initial(10)
                    .backoff(0.5)
                    .timeout(Duration::from_millis(100))
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_builds_a_layer_with_every_setting() {
        let (layer, handle) = parse(FULL)
            .builder()
            .unwrap()
            .priority(|p: &Priority| *p)
            .build_with_handle()
            .unwrap();
        assert_eq!(handle.limit(), 10, "limit.aimd.initial");

        let mut svc = layer.layer(service_fn(|_: Priority| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(())
        }));
        let mut running = Vec::new();
        let mut admit = async |svc: &mut _, p| {
            let svc: &mut crate::LoadShed<_, _, _, _, _> = svc;
            let call = svc.ready().await.unwrap().call(p);
            running.push(tokio::spawn(call));
            tokio::task::yield_now().await;
        };
        // share: sheddable 25 % of 10 (3 calls), normal 50 % (5), critical 100 % (10).
        for _ in 0..3 {
            admit(&mut svc, Priority::Sheddable).await;
        }
        let err = svc.ready().await.unwrap().call(Priority::Sheddable).await;
        let err = err.unwrap_err();
        let err = weir_error(&err);
        assert!(err.is_overloaded());
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(3)),
            "retry_after"
        );
        assert_eq!(err.layer(), Some("api"), "name");
        assert_eq!(handle.load_level(), LoadLevel::Normal, "3 of 10");

        for _ in 0..2 {
            admit(&mut svc, Priority::Normal).await;
        }
        assert_eq!(handle.load_level(), LoadLevel::Elevated, "levels: 5 of 10");
        let err = svc.ready().await.unwrap().call(Priority::Normal).await;
        assert!(weir_error(&err.unwrap_err()).is_overloaded());
        for _ in 0..3 {
            admit(&mut svc, Priority::Critical).await;
        }
        assert_eq!(handle.load_level(), LoadLevel::Critical, "levels: 8 of 10");
        assert_eq!(handle.stats().in_flight, 8);
        assert_eq!(handle.stats().shed, 2);

        // Every call succeeds after 1 s, over AIMD's 100 ms timeout: to AIMD each is a drop,
        // which halves the limit (backoff 0.5), down to the floor of 5 (bounds).
        for call in running {
            call.await.unwrap().unwrap();
        }
        assert_eq!(handle.stats().succeeded, 8);
        assert_eq!(handle.limit(), 5);

        // max_ready_wait: an inner service unready for 50 ms makes the next call be refused.
        let (probe, control) = Probe::new(|p: Priority| Ok::<_, Infallible>(p));
        control.set_ready(false);
        let mut svc = layer.layer(probe);
        let started = tokio::time::Instant::now();
        svc.ready().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        let err = svc.call(Priority::Critical).await.unwrap_err();
        assert!(weir_error(&err).is_overloaded());
        assert_eq!(control.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_from_a_file_admits_exactly_that_many() {
        let layer = parse("max_in_flight = 2").build().unwrap();
        let handle = layer.handle();
        assert_eq!(handle.limit(), 2);
        let mut svc = layer.layer(service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(())
        }));
        // Default normal share: all of the limit (#27.4).
        let a = tokio::spawn(svc.ready().await.unwrap().call(()));
        let b = tokio::spawn(svc.ready().await.unwrap().call(()));
        tokio::task::yield_now().await;
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert!(weir_error(&err).is_overloaded());
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        // A fixed limit does not move, however slow the calls were.
        assert_eq!(handle.limit(), 2);
        assert_eq!(handle.stats().succeeded, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn http_mode_keeps_the_call_in_flight_until_the_body_ends() {
        let layer = parse("max_in_flight = 3").build_http().unwrap();
        let handle = layer.handle();
        let svc = layer.layer(service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(String::from("body")))
        }));
        let response = svc.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(handle.stats().in_flight, 1, "the body holds the slot");
        drop(response);
        assert_eq!(handle.stats().in_flight, 0);
        assert_eq!(handle.stats().succeeded, 1);
    }

    #[test]
    fn vegas_and_gradient2_read_every_parameter() {
        let vegas = parse(
            "limit = { vegas = { initial = 40, bounds = [10, 400], smoothing = 0.5, probe_every = 99 } }",
        );
        assert_eq!(
            vegas.limit.unwrap().build().unwrap(),
            ConfigLimit::Vegas(
                Vegas::new()
                    .bounds(10, 400)
                    .initial(40)
                    .smoothing(0.5)
                    .probe_every(99)
            )
        );
        let gradient = parse(
            "[limit.gradient2]\ninitial = 30\nbounds = [25, 300]\nsmoothing = 0.4\ntolerance = 2.0\nqueue = 7\nshort_window = 3\nlong_window = 50\n",
        );
        assert_eq!(
            gradient.limit.unwrap().build().unwrap(),
            ConfigLimit::Gradient2(
                Gradient2::new()
                    .bounds(25, 300)
                    .initial(30)
                    .smoothing(0.4)
                    .tolerance(2.0)
                    .queue(7)
                    .short_window(3)
                    .long_window(50)
            )
        );
        // An empty table is the algorithm's defaults.
        assert_eq!(
            parse("limit = { vegas = {} }")
                .limit
                .unwrap()
                .build()
                .unwrap(),
            ConfigLimit::Vegas(Vegas::new())
        );
    }

    #[test]
    fn the_dispatch_enum_moves_exactly_as_the_algorithm_it_holds() {
        let samples = (0..2_000_u64).map(|i| {
            let rtt = Duration::from_millis(10 + (i * 7) % 40);
            if i % 97 == 0 {
                Sample::dropped(rtt, 20)
            } else {
                Sample::success(rtt, 15 + (i % 10) as usize)
            }
        });
        let mut vegas = Vegas::new();
        let mut gradient = Gradient2::new().short_window(2);
        let mut aimd = Aimd::new();
        let mut as_config = [
            ConfigLimit::Vegas(vegas.clone()),
            ConfigLimit::Gradient2(gradient.clone()),
            ConfigLimit::Aimd(aimd.clone()),
        ];
        let mut moved = [false; 3];
        for sample in samples {
            let direct = [
                vegas.update(sample),
                gradient.update(sample),
                aimd.update(sample),
            ];
            for (i, limit) in as_config.iter_mut().enumerate() {
                assert_eq!(limit.update(sample), direct[i]);
                assert_eq!(limit.limit(), direct[i]);
                moved[i] |= direct[i] != 20;
            }
        }
        assert_eq!(
            moved, [true; 3],
            "every algorithm moved: the comparison means something"
        );
        let mut fixed = ConfigLimit::Fixed(Fixed::new(7));
        assert_eq!(fixed.update(Sample::dropped(Duration::ZERO, 7)), 7);
    }

    #[test]
    fn an_empty_table_builds_the_builder_defaults() {
        let config = parse("");
        assert_eq!(config, LoadShedConfig::default());
        let from_file = config.build().unwrap();
        let from_code = LoadShedLayer::builder().build().unwrap();
        // The layer's Debug shows the name, the limit, the caps of each priority and the levels.
        assert_eq!(format!("{from_file:?}"), format!("{from_code:?}"));
        assert_eq!(from_file.handle().limit(), DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(from_file.handle().stats(), from_code.handle().stats());
    }

    #[test]
    fn unknown_fields_and_algorithms_are_refused_by_name() {
        let read_err = |text: &str| {
            toml::from_str::<LoadShedConfig>(text)
                .unwrap_err()
                .to_string()
        };
        let text = read_err("max_in_flight = 5\npriority = \"critical\"\n");
        assert!(text.contains("unknown field `priority`"), "{text}");
        let text = read_err("limit = { aimd = { ratio = 0.5 } }");
        assert!(text.contains("unknown field `ratio`"), "{text}");
        let text = read_err("limit = { bbr = {} }");
        assert!(text.contains("unknown variant `bbr`"), "{text}");
        assert!(text.contains("gradient2"), "the choices are listed: {text}");
        let text = read_err("share = { background = 0.1 }");
        assert!(text.contains("unknown field `background`"), "{text}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let build_err = |text: &str| parse(text).build().unwrap_err().to_string();
        let read_err = |text: &str| {
            toml::from_str::<LoadShedConfig>(text)
                .unwrap_err()
                .to_string()
        };

        assert_eq!(
            build_err("max_in_flight = 0"),
            "load shed: `max_in_flight` must be at least 1"
        );
        assert!(
            build_err("max_in_flight = 5\nlimit = { vegas = {} }")
                .starts_with("load shed: `max_in_flight` cannot be combined with `limit`")
        );
        assert_eq!(
            build_err("share = { sheddable = 1.5 }"),
            "load shed: the `share` of sheddable requests must be above 0 and at most 1"
        );
        assert!(
            build_err("levels = { elevated_at = 0.9, critical_at = 0.5 }").contains("`levels`")
        );
        assert!(build_err(r#"retry_after = "0s""#).contains("`retry_after`"));
        assert!(build_err(r#"max_ready_wait = "0ms""#).contains("`max_ready_wait`"));

        for (text, message) in [
            (
                "limit = { aimd = { backoff = 1.2 } }",
                "load shed: `limit.aimd.backoff` must be between 0.5 and 0.99",
            ),
            (
                "limit = { aimd = { timeout = \"0s\" } }",
                "load shed: `limit.aimd.timeout` must be more than zero",
            ),
            (
                "limit = { aimd = { bounds = [0, 10] } }",
                "load shed: `limit.aimd.bounds` must be [min, max] with 1 <= min <= max",
            ),
            (
                "limit = { vegas = { bounds = [50, 10] } }",
                "load shed: `limit.vegas.bounds` must be [min, max] with 1 <= min <= max",
            ),
            (
                "limit = { vegas = { smoothing = 0.0 } }",
                "load shed: `limit.vegas.smoothing` must be between 0.01 and 1",
            ),
            (
                "limit = { vegas = { probe_every = 0 } }",
                "load shed: `limit.vegas.probe_every` must be at least 1",
            ),
            (
                "limit = { gradient2 = { tolerance = 0.5 } }",
                "load shed: `limit.gradient2.tolerance` must be at least 1",
            ),
            (
                "limit = { gradient2 = { long_window = 0 } }",
                "load shed: `limit.gradient2.long_window` must be at least 1",
            ),
            (
                "limit = { gradient2 = { short_window = 0 } }",
                "load shed: `limit.gradient2.short_window` must be at least 1",
            ),
        ] {
            assert_eq!(build_err(text), message, "{text}");
        }
        // Outside the default bounds of Gradient2 (20..=200), and outside given bounds.
        assert!(
            build_err("limit = { gradient2 = { initial = 5 } }")
                .starts_with("load shed: `limit.gradient2.initial` must lie within `bounds`")
        );
        assert!(
            build_err("limit = { aimd = { initial = 60, bounds = [5, 50] } }")
                .starts_with("load shed: `limit.aimd.initial` must lie within `bounds`")
        );

        let text = read_err(r#"max_ready_wait = "soon""#);
        assert!(text.contains("max_ready_wait"), "{text}");
        assert!(text.contains(r#"invalid duration "soon""#), "{text}");
        let text = read_err("levels = { elevated_at = 0.5 }");
        assert!(text.contains("missing field `critical_at`"), "{text}");
        let text = read_err("max_in_flight = -1");
        assert!(text.contains("max_in_flight"), "{text}");
    }
}
