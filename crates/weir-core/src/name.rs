//! Cheap, cloneable names for layer instances and policies.

use std::fmt;
use std::sync::Arc;

/// The name of a layer instance or a policy: `"edge"`, `"payments"`, `"daily"`.
///
/// Set once when a layer is built and cloned into errors and events; cloning never allocates
/// (a static string is copied, an owned one is reference-counted).
///
/// Names compare, order and hash by their text, however they were made.
#[derive(Clone)]
pub struct Name(Repr);

/// Two variants, not a third for "unnamed": a name is cloned into every call's future, and a
/// third variant made that clone (and the stacks around it) measurably dearer. An unnamed name
/// is the empty static string, read as `"default"`.
#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

/// What an unnamed name reads as.
const UNNAMED: &str = "default";

impl Name {
    /// A name from a string literal, usable in `const` context.
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self(Repr::Static(name))
    }

    /// The name of a layer that was given none, usable in `const` context: the same as
    /// [`Name::default`].
    #[must_use]
    pub const fn unnamed() -> Self {
        Self(Repr::Static(""))
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static("") => UNNAMED,
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// Whether this is the name of a layer that was given none ([`Name::default`], or an
    /// empty name); an error from such a layer names no layer
    /// ([`Error::layer`](crate::Error::layer) is `None`).
    #[must_use]
    pub fn is_unnamed(&self) -> bool {
        match &self.0 {
            Repr::Static(s) => s.is_empty(),
            Repr::Shared(s) => s.is_empty(),
        }
    }

    /// The name as a `metrics` label value, without copying the text.
    #[cfg(feature = "metrics")]
    pub(crate) fn to_shared_string(&self) -> metrics::SharedString {
        match &self.0 {
            Repr::Static("") => metrics::SharedString::const_str(UNNAMED),
            Repr::Static(s) => metrics::SharedString::const_str(s),
            Repr::Shared(s) => metrics::SharedString::from_shared(s.clone()),
        }
    }
}

impl Default for Name {
    /// The name of an unnamed layer or policy: it reads `"default"` in events and metrics
    /// labels, but an error from an unnamed layer names no layer (see [`Name::is_unnamed`]).
    fn default() -> Self {
        Self::unnamed()
    }
}

impl From<&'static str> for Name {
    fn from(name: &'static str) -> Self {
        Self::new(name)
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Self(Repr::Shared(name.into()))
    }
}

impl From<Arc<str>> for Name {
    fn from(name: Arc<str>) -> Self {
        Self(Repr::Shared(name))
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_owned_names_compare_by_text() {
        assert_eq!(Name::new("edge"), Name::from(String::from("edge")));
        assert_eq!(Name::default().as_str(), "default");
        assert_eq!(Name::default(), Name::new("default"));
        assert!(Name::default().is_unnamed() && !Name::new("default").is_unnamed());
        assert_eq!(
            format!("{:?} {}", Name::new("a"), Name::new("b")),
            "\"a\" b"
        );
    }
}
