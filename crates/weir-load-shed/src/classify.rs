//! How a request gets its priority.

use crate::state::Priority;

/// Gives each request its [`Priority`]. Closures `Fn(&Req) -> Priority` are classifiers;
/// [`Uniform`] (the default) gives every request [`Priority::Normal`].
pub trait Prioritize<Req> {
    /// The priority of `req`.
    fn priority(&self, req: &Req) -> Priority;
}

/// Every request is [`Priority::Normal`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Uniform;

impl<Req> Prioritize<Req> for Uniform {
    #[inline]
    fn priority(&self, _req: &Req) -> Priority {
        Priority::Normal
    }
}

impl<F, Req> Prioritize<Req> for F
where
    F: Fn(&Req) -> Priority,
{
    #[inline]
    fn priority(&self, req: &Req) -> Priority {
        self(req)
    }
}
