//! Observers: how a layer tells the world what it did, at no cost when nobody listens.

use std::fmt;
use std::time::Duration;

use crate::name::Name;

/// An event a weir layer emits: a rejection, a retry, a hedge, a state change.
///
/// Each pattern crate has its own `Event<'a>` type that borrows its data (no allocation to emit)
/// and implements this trait, so the observers written once here ([`Tracing`](crate::observer::Tracing), [`Metrics`](struct@crate::observer::Metrics)) can
/// report any of them.
pub trait Event: fmt::Debug {
    /// The pattern that emitted it, in `snake_case`: `"rate_limit"`, `"circuit_breaker"`, ...
    fn pattern(&self) -> &'static str;

    /// What happened, in `snake_case`: `"rejected"`, `"retry"`, `"state_change"`, ...
    fn kind(&self) -> &'static str;

    /// The configured name of the layer instance that emitted it.
    fn layer(&self) -> &Name;

    /// How much it matters; [`Level::Info`] unless the event says otherwise. The rule every
    /// pattern follows: a rejection (or any other per-request decision) is [`Level::Debug`], a
    /// state transition [`Level::Info`], a misconfiguration [`Level::Warn`].
    fn level(&self) -> Level {
        Level::Info
    }

    /// The event's structured fields: what it decided about the call ([`Fate`]), a bounded
    /// reason, and the durations and numbers a log line or a histogram needs. None by default.
    ///
    /// The [`Tracing`](crate::observer::Tracing) observer writes each field that is set, the
    /// [`Metrics`](struct@crate::observer::Metrics) observer turns them into the counters and histograms
    /// of the naming table (weir-core's README).
    fn fields(&self) -> Fields {
        Fields::NONE
    }
}

/// What an event decided about the call it is about: the `outcome` label of
/// `weir_calls_total`.
///
/// Admitted calls emit no event (an observer never runs on the admitted path); their totals are
/// the handles' counters, which the [exporter](crate::observer::record) reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fate {
    /// Refused without reaching the service (a rate limit, an open circuit, a full bulkhead).
    Rejected,
    /// Failed and sent again.
    Retried,
    /// A second (or later) copy was sent while an earlier one was still out.
    Hedged,
    /// Answered by a fallback source in place of the service.
    FellBack,
    /// Its deadline passed (while the service worked, or before it was called).
    TimedOut,
    /// Refused by a load shedder.
    Shed,
}

impl Fate {
    /// The label value: `"rejected"`, `"retried"`, `"hedged"`, `"fell_back"`, `"timed_out"`,
    /// `"shed"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Retried => "retried",
            Self::Hedged => "hedged",
            Self::FellBack => "fell_back",
            Self::TimedOut => "timed_out",
            Self::Shed => "shed",
        }
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The structured fields of an [`Event`], each `None` unless the event carries it.
///
/// Built with its `const` setters from [`Fields::NONE`]; every string is `'static` and from a
/// bounded set (a reason, a state's name), never a client key, so it can be a metric label.
///
/// ```
/// use std::time::Duration;
/// use weir_core::observer::{Fate, Fields};
///
/// let fields = Fields::NONE
///     .fate(Fate::Retried)
///     .reason("transient")
///     .attempt(2)
///     .delay(Duration::from_millis(40));
/// assert_eq!(fields.fate, Some(Fate::Retried));
/// assert_eq!(fields.delay, Some(Duration::from_millis(40)));
/// assert_eq!(fields.wait, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fields {
    /// What the event decided about the call.
    pub fate: Option<Fate>,
    /// Why, `snake_case`, from a bounded set (`"queue_full"`, `"open"`, `"max_attempts"`).
    pub reason: Option<&'static str>,
    /// When the same request could pass (a rejection's hint).
    pub retry_after: Option<Duration>,
    /// How long the request waited in a queue.
    pub wait: Option<Duration>,
    /// The attempt the event is about (1 for the first call).
    pub attempt: Option<u32>,
    /// The backoff delay before the next attempt.
    pub delay: Option<Duration>,
    /// How long one attempt took, where a layer measures it.
    pub latency: Option<Duration>,
    /// The state left, for a transition.
    pub from: Option<&'static str>,
    /// The state entered, for a transition.
    pub to: Option<&'static str>,
    /// The time the request's deadline had left when the event happened (zero when spent).
    pub budget_left: Option<Duration>,
    /// The load level (or a shed request's priority) that decided a shed.
    pub load_level: Option<&'static str>,
    /// The W3C trace id of the request's `traceparent` header, where the layer read one (only
    /// for an event about the request: a rejection, a retry, a hedge, a fallback, an injected
    /// fault; on an admitted call only where the observer
    /// [wants trace ids](crate::Observer::wants_trace_id)).
    pub trace_id: Option<TraceId>,
}

impl Fields {
    /// No field set.
    pub const NONE: Self = Self {
        fate: None,
        reason: None,
        retry_after: None,
        wait: None,
        attempt: None,
        delay: None,
        latency: None,
        from: None,
        to: None,
        budget_left: None,
        load_level: None,
        trace_id: None,
    };

    /// Sets [`fate`](Self::fate).
    #[must_use]
    pub const fn fate(mut self, fate: Fate) -> Self {
        self.fate = Some(fate);
        self
    }

    /// Sets [`reason`](Self::reason).
    #[must_use]
    pub const fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets [`retry_after`](Self::retry_after) (`None` leaves it unset).
    #[must_use]
    pub const fn retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Sets [`wait`](Self::wait).
    #[must_use]
    pub const fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Sets [`attempt`](Self::attempt).
    #[must_use]
    pub const fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Sets [`delay`](Self::delay).
    #[must_use]
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets [`latency`](Self::latency).
    #[must_use]
    pub const fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Sets [`from`](Self::from) and [`to`](Self::to).
    #[must_use]
    pub const fn transition(mut self, from: &'static str, to: &'static str) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Sets [`budget_left`](Self::budget_left).
    #[must_use]
    pub const fn budget_left(mut self, budget_left: Duration) -> Self {
        self.budget_left = Some(budget_left);
        self
    }

    /// Sets [`load_level`](Self::load_level).
    #[must_use]
    pub const fn load_level(mut self, load_level: &'static str) -> Self {
        self.load_level = Some(load_level);
        self
    }

    /// Sets [`trace_id`](Self::trace_id) (`None` leaves it unset).
    #[must_use]
    pub const fn trace_id(mut self, trace_id: Option<TraceId>) -> Self {
        self.trace_id = trace_id;
        self
    }
}

/// A W3C trace context trace id (16 bytes, written as 32 lowercase hex digits), read from a
/// request's `traceparent` header so a rejection's log line joins the caller's trace.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// The trace id of a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`); `None` for a
    /// malformed value or the all-zero id, which the specification calls invalid.
    #[must_use]
    pub fn parse(traceparent: &[u8]) -> Option<Self> {
        let value = traceparent.trim_ascii();
        // version "-" trace-id "-" parent-id "-" flags; a future version may append fields.
        if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        if value.len() > 55 && (value[..2] == *b"00" || value[55] != b'-') {
            return None;
        }
        if value[..2] == *b"ff" || hex(value[0]).is_none() || hex(value[1]).is_none() {
            return None;
        }
        let mut id = [0_u8; 16];
        for (byte, pair) in id.iter_mut().zip(value[3..35].chunks_exact(2)) {
            *byte = (hex(pair[0])? << 4) | hex(pair[1])?;
        }
        (id != [0; 16]).then_some(Self(id))
    }

    /// The trace id of the `traceparent` header in `headers`, if there is a valid one.
    #[must_use]
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        headers
            .get("traceparent")
            .and_then(|value| Self::parse(value.as_bytes()))
    }

    /// The id's 16 bytes.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

/// A lowercase hex digit's value (the specification forbids upper case).
const fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// How much an event matters, for loggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// A per-request decision: a rejection, a retry, a shed, a timeout, a fallback.
    Debug,
    /// A state transition (a circuit opened or closed, a backend back).
    Info,
    /// Worth acting on: a misconfiguration, a backend unreachable.
    Warn,
}

/// Receives a layer's events.
///
/// Every weir layer takes an observer type parameter that defaults to `()`, whose `on_event` is an
/// inlined no-op, so an unobserved layer pays nothing. Closures taking `&Event` are observers, a
/// pair `(A, B)` calls both, and the [`Tracing`](crate::observer::Tracing) and [`Metrics`](struct@crate::observer::Metrics) observers (behind the features of
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

    /// Whether this observer uses the durations a layer has to measure to report, such as an
    /// attempt's [`latency`](Fields::latency) (retry, hedge): a layer reads the clock for them,
    /// on every attempt including the first one that works, only when its observer says `true`.
    /// `false` by default (for `()`, closures and any observer that does not say), `true` for
    /// the [`Tracing`](crate::observer::Tracing) and [`Metrics`](struct@crate::observer::Metrics)
    /// observers; a pair wants them if either does.
    #[inline(always)]
    fn wants_latency(&self) -> bool {
        false
    }

    /// Whether this observer uses a request's [`TraceId`] where a layer would have to read it
    /// on every request, not only when it emits an event: a layer that no longer holds the
    /// request when it reports (the fallback, whose request has gone to the primary by the time
    /// the primary fails) reads the `traceparent` header at call, in HTTP mode, only when its
    /// observer says `true`. Layers that read the id only when they emit an event read it
    /// whatever this says. `false` by default (for `()`, closures, `Metrics` and any observer
    /// that does not say), `true` for [`Tracing`](crate::observer::Tracing), which logs it; a
    /// pair wants it if either does.
    #[inline(always)]
    fn wants_trace_id(&self) -> bool {
        false
    }
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

    #[inline]
    fn wants_latency(&self) -> bool {
        self.0.wants_latency() || self.1.wants_latency()
    }

    #[inline]
    fn wants_trace_id(&self) -> bool {
        self.0.wants_trace_id() || self.1.wants_trace_id()
    }
}
