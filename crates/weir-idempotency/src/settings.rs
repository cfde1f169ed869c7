//! `IdempotencySettings`: the plain settings of an idempotency layer, their defaults and their
//! rules. (The rest of the layer is typed parts: the store, the client key extractor, the
//! observer.)

use std::time::Duration;

use http::Method;
use weir_core::ConfigError;

/// A stored response is replayed for this long after it was stored, by default (24 hours, as
/// Stripe keeps its keys).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// A claim on a key lasts this long unless renewed, by default (30 seconds); the layer renews it
/// every third of it while the handler runs, so only a claim whose instance crashed expires.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// An `Idempotency-Key` longer than this many bytes is refused with a 400, by default (255, as
/// Stripe's).
pub const DEFAULT_MAX_KEY_LEN: usize = 255;
/// A request body longer than this is refused with a 413, by default (2 MiB, axum's own default
/// body limit): the body is read before the handler runs, to fingerprint the request.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// A response body longer than this is passed through and not stored, by default (256 KiB); the
/// key is then done and not replayable.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The `Retry-After` of a 409 answered while the first request with a key still runs, by
/// default (1 second).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The memory store keeps at most this many keys, by default.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The memory store keeps at most this many bytes of keys and responses, by default (64 MiB).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The longest `Idempotency-Key` a layer can be set to accept (`max_key_len`).
pub const MAX_KEY_LEN_LIMIT: usize = 4_096;

/// Where a request must carry an `Idempotency-Key` (a covered method without one gets a 400).
///
/// In a configuration file: `required = "never"`, `required = "always"` or
/// `required = { paths = ["/api/orders"] }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Required {
    /// Nowhere (the default): a request without a key runs as if the layer were not there.
    #[default]
    Never,
    /// On every request of a covered method.
    Always,
    /// On requests whose path starts with one of these prefixes (`"/api/orders"`).
    Paths(Vec<String>),
}

impl Required {
    /// Whether a request must carry a key, its path read only when the answer depends on it
    /// (not for the default, [`Never`](Self::Never): the plain path does not look at the URI).
    #[inline]
    pub(crate) fn requires_any<'a>(&self, path: impl FnOnce() -> &'a str) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Paths(_) => self.requires(path()),
        }
    }

    /// Whether a request to `path` must carry a key.
    #[must_use]
    #[inline]
    pub fn requires(&self, path: &str) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Paths(prefixes) => prefixes.iter().any(|p| path.starts_with(p.as_str())),
        }
    }
}

/// The plain settings of an [`IdempotencyLayer`](crate::IdempotencyLayer); the builder holds
/// one and `build()` checks it ([`validate`](Self::validate)).
///
/// With the `serde` feature, a configuration file's `[idempotency]` table reads into one (every
/// field optional, durations as `"24h"`, methods as names, an unknown field an error), and
/// [`IdempotencyBuilder::settings`](crate::IdempotencyBuilder::settings) takes it, so a file goes
/// through the same checks as code:
///
/// ```toml
/// [idempotency]
/// methods = ["POST", "PATCH"]
/// required = { paths = ["/api/orders"] }
/// ttl = "24h"
/// lease = "30s"
/// max_response_bytes = 262144
/// store_server_errors = false
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct IdempotencySettings {
    /// The methods the layer applies to (default `POST` and `PATCH`); every other request runs
    /// as if the layer were not there.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "methods"))]
    pub methods: Vec<Method>,
    /// Where a key is required (default: nowhere).
    pub required: Required,
    /// How long a stored response is replayed (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub ttl: Duration,
    /// How long a claim lasts unless renewed (more than zero, at most `ttl`).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub lease: Duration,
    /// The longest key accepted, in bytes (1 to [`MAX_KEY_LEN_LIMIT`]).
    pub max_key_len: usize,
    /// The longest request body accepted with a key, in bytes (at least 1).
    pub max_request_bytes: usize,
    /// The longest response body stored, in bytes (at least 1).
    pub max_response_bytes: usize,
    /// The `Retry-After` of a 409 (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub retry_after: Duration,
    /// Whether 4xx responses are stored and replayed (default `true`; `408`, `425` and `429`
    /// never are: they ask the client to try again).
    pub store_client_errors: bool,
    /// Whether 5xx responses are stored and replayed (default `false`: a failed attempt
    /// releases its key, so a retry can run).
    pub store_server_errors: bool,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            methods: vec![Method::POST, Method::PATCH],
            required: Required::Never,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retry_after: DEFAULT_RETRY_AFTER,
            store_client_errors: true,
            store_server_errors: false,
        }
    }
}

impl IdempotencySettings {
    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const P: &str = "idempotency";
        if self.methods.is_empty() {
            return Err(ConfigError::missing(P, "methods", "at least one method"));
        }
        if self.ttl.is_zero() {
            return Err(ConfigError::zero(P, "ttl", "must be more than zero"));
        }
        if self.lease.is_zero() {
            return Err(ConfigError::zero(P, "lease", "must be more than zero"));
        }
        if self.lease > self.ttl {
            return Err(ConfigError::conflict(P, "lease", "must be at most `ttl`"));
        }
        if self.max_key_len == 0 {
            return Err(ConfigError::zero(P, "max_key_len", "must be at least 1"));
        }
        if self.max_key_len > MAX_KEY_LEN_LIMIT {
            return Err(ConfigError::out_of_range(
                P,
                "max_key_len",
                "must be at most 4096",
            ));
        }
        if self.max_request_bytes == 0 {
            return Err(ConfigError::zero(
                P,
                "max_request_bytes",
                "must be at least 1",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::zero(
                P,
                "max_response_bytes",
                "must be at least 1",
            ));
        }
        if self.retry_after.is_zero() {
            return Err(ConfigError::zero(
                P,
                "retry_after",
                "must be more than zero",
            ));
        }
        Ok(())
    }

    /// Whether a response of `status` is stored and replayed.
    #[must_use]
    pub fn stores(&self, status: http::StatusCode) -> bool {
        match status.as_u16() {
            408 | 425 | 429 => false,
            400..=499 => self.store_client_errors,
            500..=599 => self.store_server_errors,
            _ => true,
        }
    }
}

/// The covered methods as the request path tests them: one bit per standard method (a `match`
/// on the method's variant and a mask, no loop), and the extension methods (`PURGE`, ...) the
/// settings name, compared one by one only for a request of an extension method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Methods {
    standard: u16,
    extensions: Box<[Method]>,
}

impl Methods {
    pub(crate) fn new(methods: &[Method]) -> Self {
        let mut set = Self::default();
        let mut extensions = Vec::new();
        for method in methods {
            match Self::bit(method) {
                0 => extensions.push(method.clone()),
                bit => set.standard |= bit,
            }
        }
        set.extensions = extensions.into_boxed_slice();
        set
    }

    /// The method's bit, 0 for an extension method.
    #[inline(always)]
    const fn bit(method: &Method) -> u16 {
        match *method {
            Method::GET => 1,
            Method::POST => 1 << 1,
            Method::PUT => 1 << 2,
            Method::DELETE => 1 << 3,
            Method::HEAD => 1 << 4,
            Method::OPTIONS => 1 << 5,
            Method::CONNECT => 1 << 6,
            Method::PATCH => 1 << 7,
            Method::TRACE => 1 << 8,
            _ => 0,
        }
    }

    /// Whether a request of `method` is covered.
    #[inline(always)]
    pub(crate) fn covers(&self, method: &Method) -> bool {
        match Self::bit(method) {
            0 => self.covers_extension(method),
            bit => self.standard & bit != 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn covers_extension(&self, method: &Method) -> bool {
        self.extensions.iter().any(|m| m == method)
    }
}

/// A duration written as weir's configuration files write them (`"30s"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

/// Methods by name (`"POST"`); a name that is not a method token is an error.
#[cfg(feature = "serde")]
fn methods<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Method>, D::Error> {
    let names = <Vec<String> as serde::Deserialize>::deserialize(deserializer)?;
    names
        .iter()
        .map(|name| {
            Method::from_bytes(name.as_bytes()).map_err(|_| {
                serde::de::Error::custom(format!("methods: `{name}` is not an HTTP method"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_rule_names_its_field() {
        assert!(IdempotencySettings::default().validate().is_ok());
        let broken = |change: fn(&mut IdempotencySettings)| {
            let mut s = IdempotencySettings::default();
            change(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(broken(|s| s.ttl = Duration::ZERO).field(), "ttl");
        assert_eq!(broken(|s| s.methods.clear()).field(), "methods");
        let err = broken(|s| s.lease = s.ttl + Duration::from_secs(1));
        assert!(err.is_conflict() && err.field() == "lease", "{err}");
        let err = broken(|s| s.max_key_len = 10_000);
        assert!(
            err.is_out_of_range() && err.field() == "max_key_len",
            "{err}"
        );
        assert_eq!(
            broken(|s| s.max_response_bytes = 0).field(),
            "max_response_bytes"
        );
    }

    #[test]
    fn the_store_policy_keeps_2xx_and_4xx_but_not_5xx_nor_retry_later() {
        let s = IdempotencySettings::default();
        assert!(s.stores(http::StatusCode::CREATED));
        assert!(s.stores(http::StatusCode::BAD_REQUEST));
        assert!(!s.stores(http::StatusCode::TOO_MANY_REQUESTS));
        assert!(!s.stores(http::StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!s.stores(http::StatusCode::SERVICE_UNAVAILABLE));
    }

    #[test]
    fn the_method_set_covers_exactly_the_methods_named() {
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
            Method::CONNECT,
            Method::PATCH,
            Method::TRACE,
        ];
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let other = Method::from_bytes(b"LOCK").unwrap();
        // Each standard method alone: its own bit, no other's.
        for (i, chosen) in standard.iter().enumerate() {
            let set = Methods::new(std::slice::from_ref(chosen));
            for (j, method) in standard.iter().enumerate() {
                assert_eq!(set.covers(method), i == j, "{chosen} covers {method}?");
            }
            assert!(!set.covers(&purge));
        }
        let set = Methods::new(&[Method::POST, purge.clone(), Method::PATCH]);
        assert!(set.covers(&Method::POST) && set.covers(&Method::PATCH) && set.covers(&purge));
        assert!(!set.covers(&Method::GET) && !set.covers(&Method::PUT) && !set.covers(&other));
    }
}

#[cfg(all(test, feature = "serde"))]
mod config_tests {
    use super::*;

    /// A file with an `[idempotency]` table, as weir's other layers read theirs.
    #[derive(serde::Deserialize)]
    struct File {
        idempotency: IdempotencySettings,
    }

    fn read(toml: &str) -> Result<IdempotencySettings, toml::de::Error> {
        toml::from_str::<File>(toml).map(|file| file.idempotency)
    }

    #[test]
    fn an_idempotency_table_reads_the_settings() {
        let settings = read(
            r#"
            [idempotency]
            methods = ["POST", "PUT"]
            required = { paths = ["/api/orders"] }
            ttl = "1h"
            lease = "10s"
            retry_after = "2s"
            max_key_len = 64
            max_response_bytes = 4096
            store_client_errors = false
            "#,
        )
        .unwrap();
        assert_eq!(settings.methods, [Method::POST, Method::PUT]);
        assert_eq!(
            settings.required,
            Required::Paths(vec!["/api/orders".into()])
        );
        assert_eq!(settings.ttl, Duration::from_secs(3600));
        assert_eq!(settings.lease, Duration::from_secs(10));
        assert_eq!(settings.retry_after, Duration::from_secs(2));
        assert_eq!(settings.max_key_len, 64);
        assert_eq!(settings.max_response_bytes, 4096);
        assert!(!settings.store_client_errors);
        // Absent fields keep their defaults.
        assert_eq!(settings.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert!(!settings.store_server_errors);
        assert!(settings.validate().is_ok());

        let empty = read("[idempotency]").unwrap();
        assert_eq!(empty, IdempotencySettings::default());
        assert_eq!(
            read("[idempotency]\nrequired = \"always\"")
                .unwrap()
                .required,
            Required::Always
        );
    }

    /// A file goes through the same rules as code: the error names the field and the rule.
    #[test]
    fn a_broken_table_is_a_config_error_naming_field_and_rule() {
        let err = read("[idempotency]\nlease = \"2d\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.is_conflict() && err.field() == "lease", "{err}");
        assert!(err.to_string().contains("must be at most `ttl`"), "{err}");
        let err = read("[idempotency]\nmethods = []")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "methods");
        let err = read("[idempotency]\nmax_key_len = 5000")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.is_out_of_range() && err.field() == "max_key_len",
            "{err}"
        );
        assert!(err.to_string().contains("must be at most 4096"), "{err}");
        let err = read("[idempotency]\nttl = \"0s\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "ttl");

        // What serde refuses names the field too.
        let err = read("[idempotency]\nmethods = [\"NOT A METHOD\"]").unwrap_err();
        assert!(err.to_string().contains("is not an HTTP method"), "{err}");
        let err = read("[idempotency]\nttl = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("ttl"), "{err}");
        let err = read("[idempotency]\nttll = \"1h\"").unwrap_err();
        assert!(err.to_string().contains("ttll"), "{err}");
    }
}
