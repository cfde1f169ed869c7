//! [`ConfigError`]: the one configuration error of every weir builder and configuration file.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A configuration a builder or a configuration file refused: which pattern, which field, which
/// rule.
///
/// Every weir builder's `build()` and every configuration loader returns this one type. It is
/// opaque, as [`Error`](crate::Error) is: ask what went wrong with [`pattern`](Self::pattern),
/// [`field`](Self::field), [`rule`](Self::rule) and the `is_*` predicates, which group rules by
/// the kind of mistake. The message is the pattern, the field in backticks and the rule: ``rate_limit: `burst` must not be zero``.
///
/// ```
/// use weir_core::ConfigError;
///
/// let err = ConfigError::zero("bulkhead", "max_concurrent", "must be at least 1");
/// assert!(err.is_zero());
/// assert_eq!(err.pattern(), "bulkhead");
/// assert_eq!(err.field(), "max_concurrent");
/// assert_eq!(err.to_string(), "bulkhead: `max_concurrent` must be at least 1");
///
/// // A configuration file names where the field sits.
/// let err = err.in_table("api");
/// assert_eq!(err.to_string(), "bulkhead: `api.max_concurrent` must be at least 1");
/// ```
#[derive(Clone)]
pub struct ConfigError {
    pattern: &'static str,
    field: Cow<'static, str>,
    rule: Cow<'static, str>,
    kind: Kind,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// The kind of mistake. Private: callers use the predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zero,
    OutOfRange,
    Conflict,
    Missing,
    Duplicate,
    Unknown,
    Invalid,
    Unavailable,
}

impl ConfigError {
    fn new(
        kind: Kind,
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            pattern,
            field: field.into(),
            rule: rule.into(),
            kind,
            source: None,
        }
    }

    /// A count or a duration that must be more than zero was zero.
    #[must_use]
    pub fn zero(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Zero, pattern, field, rule)
    }

    /// A value was outside its range (too large, too small, not a fraction, not an error
    /// status).
    #[must_use]
    pub fn out_of_range(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::OutOfRange, pattern, field, rule)
    }

    /// Two settings that cannot be combined were both given; `field` is the one named second.
    #[must_use]
    pub fn conflict(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Conflict, pattern, field, rule)
    }

    /// A required setting was not given.
    #[must_use]
    pub fn missing(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Missing, pattern, field, rule)
    }

    /// A name that must be unique was given twice.
    #[must_use]
    pub fn duplicate(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Duplicate, pattern, field, rule)
    }

    /// A setting refers to something that is not defined (a tier, a partition, a check).
    #[must_use]
    pub fn unknown(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Unknown, pattern, field, rule)
    }

    /// A value is malformed or not one this setting accepts (a key the extractor cannot
    /// produce, an unparsable address).
    #[must_use]
    pub fn invalid(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Invalid, pattern, field, rule)
    }

    /// Building needed a resource the system refused (a runtime's threads, a connection);
    /// [`source`](StdError::source) says why.
    #[must_use]
    pub fn unavailable(
        pattern: &'static str,
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        let mut err = Self::new(Kind::Unavailable, pattern, field, rule);
        err.source = Some(Arc::new(source));
        err
    }

    /// The same error, with `table.` put before the field: a configuration file names the table
    /// the field sits in (`api.max_concurrent`, `tier.gold.quota`).
    #[must_use]
    pub fn in_table(mut self, table: &str) -> Self {
        if !table.is_empty() {
            self.field = Cow::Owned(format!("{table}.{}", self.field));
        }
        self
    }

    /// The pattern whose configuration was refused (`"bulkhead"`, `"rate limit"`, `"retry"`).
    #[must_use]
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// The field, as the builder method or the configuration file names it (`max_concurrent`,
    /// `quota.rate`).
    #[must_use]
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule the field broke (`must be at least 1`).
    #[must_use]
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// A count or a duration that must be more than zero was zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.kind == Kind::Zero
    }

    /// A value was outside its range.
    #[must_use]
    pub fn is_out_of_range(&self) -> bool {
        self.kind == Kind::OutOfRange
    }

    /// Two settings that cannot be combined were both given.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.kind == Kind::Conflict
    }

    /// A required setting was not given.
    #[must_use]
    pub fn is_missing(&self) -> bool {
        self.kind == Kind::Missing
    }

    /// A name that must be unique was given twice.
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        self.kind == Kind::Duplicate
    }

    /// A setting refers to something that is not defined.
    #[must_use]
    pub fn is_unknown(&self) -> bool {
        self.kind == Kind::Unknown
    }

    /// A value is malformed or not one this setting accepts.
    #[must_use]
    pub fn is_invalid(&self) -> bool {
        self.kind == Kind::Invalid
    }

    /// Building needed a resource the system refused.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        self.kind == Kind::Unavailable
    }
}

/// Two errors are equal when they name the same pattern, field and kind of mistake; the wording
/// of the rule and the source do not count, so a test can compare against a constructor.
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.field == other.field && self.kind == other.kind
    }
}

impl Eq for ConfigError {}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ConfigError");
        d.field("pattern", &self.pattern)
            .field("field", &self.field)
            .field("kind", &self.kind)
            .field("rule", &self.rule);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}` {}", self.pattern, self.field, self.rule)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_answers_only_its_own_predicate() {
        let all = [
            ConfigError::zero("p", "f", "r"),
            ConfigError::out_of_range("p", "f", "r"),
            ConfigError::conflict("p", "f", "r"),
            ConfigError::missing("p", "f", "r"),
            ConfigError::duplicate("p", "f", "r"),
            ConfigError::unknown("p", "f", "r"),
            ConfigError::invalid("p", "f", "r"),
            ConfigError::unavailable("p", "f", "r", std::io::Error::other("no threads")),
        ];
        for (i, err) in all.iter().enumerate() {
            let answers = [
                err.is_zero(),
                err.is_out_of_range(),
                err.is_conflict(),
                err.is_missing(),
                err.is_duplicate(),
                err.is_unknown(),
                err.is_invalid(),
                err.is_unavailable(),
            ];
            for (j, answer) in answers.into_iter().enumerate() {
                assert_eq!(answer, i == j, "{err:?}: predicate {j}");
            }
        }
    }

    #[test]
    fn the_message_names_pattern_field_rule_and_source() {
        let err = ConfigError::unavailable(
            "isolated bulkhead",
            "worker_threads",
            "could not start its runtime",
            std::io::Error::other("no threads"),
        );
        assert_eq!(
            err.to_string(),
            "isolated bulkhead: `worker_threads` could not start its runtime: no threads"
        );
        assert!(err.source().is_some());
        assert_eq!(
            ConfigError::zero("retry", "max_attempts", "must be at least 1")
                .in_table("client.retry")
                .field(),
            "client.retry.max_attempts"
        );
    }

    #[test]
    fn equality_ignores_the_wording() {
        assert_eq!(
            ConfigError::zero("retry", "max_attempts", "must be at least 1"),
            ConfigError::zero("retry", "max_attempts", "")
        );
        assert_ne!(
            ConfigError::zero("retry", "max_attempts", ""),
            ConfigError::out_of_range("retry", "max_attempts", "")
        );
        assert_ne!(
            ConfigError::zero("retry", "max_attempts", ""),
            ConfigError::zero("retry", "base", "")
        );
    }

    #[test]
    fn send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ConfigError>();
    }
}
