//! Which probes a check answers.

use std::borrow::Cow;
use std::fmt;

/// A probe a check belongs to. A check may carry several tags; a probe runs the checks with its
/// tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// Liveness: is the process stuck beyond repair (restart it)? Keep these few and local.
    Live,
    /// Readiness: should this instance get traffic now?
    Ready,
    /// Startup: has the instance finished starting?
    Startup,
    /// A tag of your own (a deep check run on demand, for example).
    Custom(Cow<'static, str>),
}

impl Tag {
    /// A tag of your own.
    #[must_use]
    pub fn custom(name: impl Into<Cow<'static, str>>) -> Self {
        Self::Custom(name.into())
    }

    /// The tag's name: `live`, `ready`, `startup` or the custom name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Live => "live",
            Self::Ready => "ready",
            Self::Startup => "startup",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
