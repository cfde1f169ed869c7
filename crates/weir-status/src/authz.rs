//! The admin actions' authorization: what the user's hook answers.

/// What an authorization hook answers for an admin action request (see
/// [`StatusService::authorize`](crate::StatusService::authorize)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authz {
    /// Perform the action.
    Allow,
    /// The request carries no (valid) credentials: `401 Unauthorized`, nothing changes.
    Unauthorized,
    /// The credentials are valid but may not do this: `403 Forbidden`, nothing changes.
    Forbidden,
}

impl From<bool> for Authz {
    /// `true` allows; `false` is [`Authz::Forbidden`].
    fn from(allowed: bool) -> Self {
        if allowed {
            Self::Allow
        } else {
            Self::Forbidden
        }
    }
}
