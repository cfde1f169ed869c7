//! Observers: how a layer tells the world what it did, at no cost when nobody listens.

use std::fmt;

use crate::name::Name;

/// An event a weir layer emits: a rejection, a retry, a hedge, a state change.
///
/// Each pattern crate has its own `Event<'a>` type that borrows its data (no allocation to emit)
/// and implements this trait, so the observers written once here ([`Tracing`](crate::observer::Tracing), [`Metrics`](crate::observer::Metrics)) can
/// report any of them.
pub trait Event: fmt::Debug {
    /// The pattern that emitted it, in `snake_case`: `"rate_limit"`, `"circuit_breaker"`, ...
    fn pattern(&self) -> &'static str;

    /// What happened, in `snake_case`: `"rejected"`, `"retry"`, `"state_change"`, ...
    fn kind(&self) -> &'static str;

    /// The configured name of the layer instance that emitted it.
    fn layer(&self) -> &Name;

    /// How much it matters; [`Level::Info`] unless the event says otherwise.
    fn level(&self) -> Level {
        Level::Info
    }
}

/// How much an event matters, for loggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Routine detail (a retry scheduled).
    Debug,
    /// Worth knowing (a request rejected).
    Info,
    /// Worth acting on (a circuit opened, a backend unreachable).
    Warn,
}

/// Receives a layer's events.
///
/// Every weir layer takes an observer type parameter that defaults to `()`, whose `on_event` is an
/// inlined no-op, so an unobserved layer pays nothing. Closures taking `&Event` are observers, a
/// pair `(A, B)` calls both, and the [`Tracing`](crate::observer::Tracing) and [`Metrics`](crate::observer::Metrics) observers (behind the features of
/// the same names) report every event of every pattern the same way.
///
/// Events are emitted only on rejections, retries, hedges and state changes, never per admitted
/// request, and the observer runs inline on the request path: keep it quick.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weir_core::{Event, Name, Observer};
///
/// #[derive(Debug)]
/// struct Rejected<'a> { layer: &'a Name }
///
/// impl Event for Rejected<'_> {
///     fn pattern(&self) -> &'static str { "rate_limit" }
///     fn kind(&self) -> &'static str { "rejected" }
///     fn layer(&self) -> &Name { self.layer }
/// }
///
/// let rejections = AtomicUsize::new(0);
/// let observer = |_: &Rejected<'_>| {
///     rejections.fetch_add(1, Ordering::Relaxed);
/// };
/// let layer = Name::new("edge");
/// observer.on_event(&Rejected { layer: &layer });
/// ().on_event(&Rejected { layer: &layer }); // the default: nothing happens
/// assert_eq!(rejections.load(Ordering::Relaxed), 1);
/// ```
pub trait Observer<Ev: ?Sized> {
    /// Called with each event.
    fn on_event(&self, event: &Ev);
}

impl<Ev: ?Sized> Observer<Ev> for () {
    #[inline(always)]
    fn on_event(&self, _event: &Ev) {}
}

impl<F, Ev: ?Sized> Observer<Ev> for F
where
    F: Fn(&Ev),
{
    #[inline]
    fn on_event(&self, event: &Ev) {
        self(event);
    }
}

impl<A, B, Ev: ?Sized> Observer<Ev> for (A, B)
where
    A: Observer<Ev>,
    B: Observer<Ev>,
{
    #[inline]
    fn on_event(&self, event: &Ev) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}
