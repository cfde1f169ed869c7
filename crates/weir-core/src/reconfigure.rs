//! [`Reconfigure`]: new settings applied to a running layer through its handle.
//!
//! Every stateful handle of the workspace implements it with its pattern's settings type (the
//! same type its builder and its configuration table take). The rules every implementation keeps:
//!
//! - **Validated by the builder's rules**: [`apply`](Reconfigure::apply) checks the new settings
//!   as `build()` would and returns the same [`ConfigError`], naming the field; a refused
//!   setting changes nothing.
//! - **Whole or not at all**: a request reads one version of the settings; none runs under half
//!   of the old and half of the new (the settings sit behind one pointer swapped at once, or in
//!   one atomic word).
//! - **In flight keeps its settings**: a call that started under the old settings finishes under
//!   them; a shrinking pool lets running calls finish and admits no new ones above its new size;
//!   a rate limit's key state carries over.
//! - **No cost on the request's path**: reading the settings takes no lock.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use weir_core::reconfigure::Reconfigure;
//! use weir_core::ConfigError;
//!
//! struct Pool(AtomicUsize);
//!
//! impl Reconfigure for Pool {
//!     type Settings = usize;
//!     fn settings(&self) -> usize {
//!         self.0.load(Ordering::Acquire)
//!     }
//!     fn apply(&self, size: usize) -> Result<(), ConfigError> {
//!         if size == 0 {
//!             return Err(ConfigError::zero("bulkhead", "max_concurrent", "must be at least 1"));
//!         }
//!         self.0.store(size, Ordering::Release);
//!         Ok(())
//!     }
//! }
//!
//! let pool = Pool(AtomicUsize::new(10));
//! assert!(pool.apply(0).is_err());
//! assert_eq!(pool.settings(), 10, "a refused setting changes nothing");
//! pool.apply(20).unwrap();
//! assert_eq!(pool.settings(), 20);
//! ```

use crate::ConfigError;

/// A handle whose layer takes new settings while it runs. See the [module](self) for the rules.
pub trait Reconfigure {
    /// The pattern's settings: the type its builder and configuration table take.
    type Settings;

    /// The settings in force now.
    fn settings(&self) -> Self::Settings;

    /// Validates `settings` by the builder's rules and, if they pass, applies them whole.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] the builder would return; the running settings are unchanged.
    fn apply(&self, settings: Self::Settings) -> Result<(), ConfigError>;
}
