//! The state shared by every service an idempotency layer makes, every clone and the handle;
//! and the guard of one request's claim.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use weir_core::{Name, Observer};

use crate::event::Event;
use crate::settings::{IdempotencySettings, Methods};
use crate::state::{Digest, Token};
use crate::store::IdempotencyStore;

/// The counts a handle reads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) executed: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) not_stored: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) mismatched: AtomicU64,
    pub(crate) not_replayable: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) bypassed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

/// Created when the layer is built; shared by every service it makes (axum calls `layer()`
/// once per route: one layer, one store).
pub(crate) struct Shared<St, X, O> {
    pub(crate) name: Name,
    pub(crate) settings: IdempotencySettings,
    /// `settings.methods` as the request path tests them.
    pub(crate) methods: Methods,
    pub(crate) store: St,
    pub(crate) extractor: X,
    pub(crate) observer: O,
    pub(crate) counters: Arc<Counters>,
}

impl<St, X, O> Shared<St, X, O> {
    pub(crate) fn new(
        name: Name,
        settings: IdempotencySettings,
        store: St,
        extractor: X,
        observer: O,
    ) -> Self {
        Self {
            name,
            methods: Methods::new(&settings.methods),
            settings,
            store,
            extractor,
            observer,
            counters: Arc::default(),
        }
    }

    pub(crate) fn emit(&self, event: &Event<'_>)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.observer.on_event(event);
    }
}

impl<St, X, O> fmt::Debug for Shared<St, X, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One request's claim on its key: released on drop (the handler failed, panicked, or the
/// request was cancelled) unless [`disarm`](Self::disarm)ed once the claim was completed.
pub(crate) struct ClaimGuard<St: IdempotencyStore, X, O> {
    shared: Arc<Shared<St, X, O>>,
    pub(crate) scope: Digest,
    pub(crate) token: Token,
    armed: bool,
}

impl<St: IdempotencyStore, X, O> ClaimGuard<St, X, O> {
    pub(crate) const fn new(shared: Arc<Shared<St, X, O>>, scope: Digest, token: Token) -> Self {
        Self {
            shared,
            scope,
            token,
            armed: true,
        }
    }

    pub(crate) const fn disarm(&mut self) {
        self.armed = false;
    }

    pub(crate) fn renew(&self) {
        self.shared
            .store
            .renew(self.scope, self.token, self.shared.settings.lease);
    }
}

impl<St: IdempotencyStore, X, O> Drop for ClaimGuard<St, X, O> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.store.release(self.scope, self.token);
            Counters::add(&self.shared.counters.released);
        }
    }
}

impl<St: IdempotencyStore, X, O> fmt::Debug for ClaimGuard<St, X, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimGuard")
            .field("scope", &self.scope)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}
