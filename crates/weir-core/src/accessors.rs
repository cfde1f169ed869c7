//! [`inner_accessors!`](crate::inner_accessors): the `get_ref` / `get_mut` / `into_inner` trio
//! every weir service has, written once.

/// Writes a service's `get_ref`, `get_mut` and `into_inner` over its inner-service field, inside
/// an `impl` block, so every weir service has the same three methods with the same docs and the
/// same `const`-ness.
///
/// ```
/// pub struct Wrapper<S> {
///     inner: S,
/// }
///
/// impl<S> Wrapper<S> {
///     weir_core::inner_accessors!(inner: S);
/// }
///
/// let mut w = Wrapper { inner: 7_u8 };
/// *w.get_mut() += 1;
/// assert_eq!(*w.get_ref(), 8);
/// assert_eq!(w.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! inner_accessors {
    ($field:ident : $ty:ty) => {
        /// The inner service.
        #[must_use]
        pub const fn get_ref(&self) -> &$ty {
            &self.$field
        }

        /// The inner service, mutably.
        #[must_use]
        pub const fn get_mut(&mut self) -> &mut $ty {
            &mut self.$field
        }

        /// Consumes `self`, returning the inner service.
        #[must_use]
        pub fn into_inner(self) -> $ty {
            self.$field
        }
    };
}
