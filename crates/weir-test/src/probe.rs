//! `Probe`: a counting service whose readiness and futures the test controls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tower_service::Service;

use crate::strict::UNREADY_CALL;

/// A service that counts what a layer does to it, through a [`ProbeHandle`].
///
/// - **Counters**: clones, `poll_ready` calls, calls, futures in flight (and the most at once),
///   completed futures, cancelled futures (dropped before they completed), live instances.
/// - **Readiness** is strict, as in [`StrictService`](crate::StrictService): a call on an
///   instance whose last `poll_ready` did not return `Ready(Ok(()))` panics, readiness is consumed
///   by `call`, and a clone starts not ready. [`ProbeHandle::set_ready`]`(false)` makes
///   `poll_ready` return `Pending` (and wakes the waiting tasks when set back to `true`); an
///   instance that is already ready stays ready, as the `Service` contract requires.
/// - **Futures** wait at a gate: with the gate open (the default of [`Probe::new`]) a future
///   completes on its first poll; with it closed ([`Probe::gated`], [`ProbeHandle::close_gate`])
///   it stays pending until [`ProbeHandle::release`] lets some through or
///   [`ProbeHandle::open_gate`] lets all through.
///
/// The response is computed in `call` by the closure, then held by the future until it passes
/// the gate. The probe needs no runtime and never allocates on its own after the call.
///
/// ```
/// use std::convert::Infallible;
/// use tokio_test::{assert_pending, assert_ready_eq, task};
/// use tower::{Service, ServiceExt};
/// use weir_test::Probe;
///
/// let (mut probe, handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n + 1));
/// let mut ready = task::spawn(probe.ready());
/// assert_ready_eq!(ready.poll().map(|r| r.is_ok()), true);
/// drop(ready);
///
/// let mut fut = task::spawn(probe.call(1));
/// assert_pending!(fut.poll());
/// assert_eq!(handle.in_flight(), 1);
///
/// handle.release(1);
/// assert!(fut.is_woken());
/// assert_ready_eq!(fut.poll(), Ok(2));
/// assert_eq!((handle.in_flight(), handle.completed()), (0, 1));
/// ```
pub struct Probe<F> {
    respond: Arc<F>,
    shared: Arc<Shared>,
    ready: bool,
}

/// Reads the counters of a [`Probe`] and its clones, and controls their readiness and gate.
///
/// Cloning the handle gives another view of the same probe.
#[derive(Clone)]
pub struct ProbeHandle {
    shared: Arc<Shared>,
}

/// The future of a [`Probe`] call: it resolves to the closure's answer once it passes the gate.
///
/// Dropping it before it completes counts as a cancellation.
#[must_use = "futures do nothing unless polled"]
pub struct ProbeFuture<Res, E> {
    result: Option<Result<Res, E>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    clones: AtomicUsize,
    poll_ready_calls: AtomicUsize,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
    live: AtomicUsize,
    control: Mutex<Control>,
}

#[derive(Debug)]
struct Control {
    ready: bool,
    gate_open: bool,
    permits: usize,
    ready_waiters: Vec<Waker>,
    gate_waiters: Vec<Waker>,
}

impl Shared {
    fn new(gate_open: bool) -> Self {
        Self {
            live: AtomicUsize::new(1),
            control: Mutex::new(Control {
                gate_open,
                ..Control::default()
            }),
            ..Self::default()
        }
    }

    /// The control block; a panic elsewhere (a test's assertion) never poisons the probe.
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Default for Control {
    fn default() -> Self {
        Self {
            ready: true,
            gate_open: true,
            permits: 0,
            ready_waiters: Vec::new(),
            gate_waiters: Vec::new(),
        }
    }
}

/// Registers `waker` unless the same task is already registered.
fn register(waiters: &mut Vec<Waker>, waker: &Waker) {
    if !waiters.iter().any(|w| w.will_wake(waker)) {
        waiters.push(waker.clone());
    }
}

fn wake_all(waiters: Vec<Waker>) {
    for waker in waiters {
        waker.wake();
    }
}

impl<F> Probe<F> {
    /// A ready probe with an open gate: every future completes on its first poll.
    pub fn new(respond: F) -> (Self, ProbeHandle) {
        Self::with_gate(respond, true)
    }

    /// A ready probe with a closed gate: every future stays pending until the handle releases it.
    pub fn gated(respond: F) -> (Self, ProbeHandle) {
        Self::with_gate(respond, false)
    }

    fn with_gate(respond: F, gate_open: bool) -> (Self, ProbeHandle) {
        let shared = Arc::new(Shared::new(gate_open));
        let handle = ProbeHandle {
            shared: Arc::clone(&shared),
        };
        let probe = Self {
            respond: Arc::new(respond),
            shared,
            ready: false,
        };
        (probe, handle)
    }

    /// Another handle on this probe's counters and controls.
    #[must_use]
    pub fn handle(&self) -> ProbeHandle {
        ProbeHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Whether this instance was readied and has not been called since.
    #[must_use]
    pub const fn is_ready(&self) -> bool {
        self.ready
    }
}

impl<F> Clone for Probe<F> {
    /// A clone shares the closure, the counters and the controls; it is not ready.
    fn clone(&self) -> Self {
        self.shared.clones.fetch_add(1, Ordering::SeqCst);
        self.shared.live.fetch_add(1, Ordering::SeqCst);
        Self {
            respond: Arc::clone(&self.respond),
            shared: Arc::clone(&self.shared),
            ready: false,
        }
    }
}

impl<F> Drop for Probe<F> {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<F> fmt::Debug for Probe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("ready", &self.ready)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> Service<Req> for Probe<F>
where
    F: Fn(Req) -> Result<Res, E>,
{
    type Response = Res;
    type Error = E;
    type Future = ProbeFuture<Res, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.shared.poll_ready_calls.fetch_add(1, Ordering::SeqCst);
        if self.ready {
            return Poll::Ready(Ok(()));
        }
        let mut control = self.shared.control();
        if control.ready {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            register(&mut control.ready_waiters, cx.waker());
            Poll::Pending
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        assert!(
            self.ready,
            "Probe::call {UNREADY_CALL}: poll_ready must return Ready(Ok) on this very instance \
             before each call (readiness is consumed by call, and a clone is not ready)"
        );
        self.ready = false;
        let shared = &self.shared;
        shared.calls.fetch_add(1, Ordering::SeqCst);
        let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        ProbeFuture {
            result: Some((self.respond)(req)),
            shared: Arc::clone(shared),
        }
    }
}

impl ProbeHandle {
    /// Clones made of the probe and of its clones.
    #[must_use]
    pub fn clones(&self) -> usize {
        Shared::count(&self.shared.clones)
    }

    /// Probe instances alive now: the original plus its clones, minus those dropped.
    #[must_use]
    pub fn live(&self) -> usize {
        Shared::count(&self.shared.live)
    }

    /// `poll_ready` calls on every instance, whatever they returned.
    #[must_use]
    pub fn poll_ready_calls(&self) -> usize {
        Shared::count(&self.shared.poll_ready_calls)
    }

    /// Calls on every instance.
    #[must_use]
    pub fn calls(&self) -> usize {
        Shared::count(&self.shared.calls)
    }

    /// Futures neither completed nor dropped yet.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        Shared::count(&self.shared.in_flight)
    }

    /// The most futures that were in flight at once.
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        Shared::count(&self.shared.max_in_flight)
    }

    /// Futures that returned their response.
    #[must_use]
    pub fn completed(&self) -> usize {
        Shared::count(&self.shared.completed)
    }

    /// Futures dropped before they completed.
    #[must_use]
    pub fn cancelled(&self) -> usize {
        Shared::count(&self.shared.cancelled)
    }

    /// Whether a `poll_ready` on an instance that is not ready yet would return `Ready`.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.control().ready
    }

    /// Makes `poll_ready` return `Pending` (`false`) or `Ready(Ok(()))` (`true`) on every
    /// instance that is not ready yet; setting it to `true` wakes the tasks waiting for it.
    pub fn set_ready(&self, ready: bool) {
        let waiters = {
            let mut control = self.shared.control();
            control.ready = ready;
            if ready {
                std::mem::take(&mut control.ready_waiters)
            } else {
                Vec::new()
            }
        };
        wake_all(waiters);
    }

    /// Opens the gate: every waiting and future call completes when polled.
    pub fn open_gate(&self) {
        let waiters = {
            let mut control = self.shared.control();
            control.gate_open = true;
            std::mem::take(&mut control.gate_waiters)
        };
        wake_all(waiters);
    }

    /// Closes the gate: futures polled from now on wait for [`release`](Self::release) or
    /// [`open_gate`](Self::open_gate). Permits not yet used are kept.
    pub fn close_gate(&self) {
        self.shared.control().gate_open = false;
    }

    /// Lets `n` more futures through a closed gate, whichever are polled first, and wakes the
    /// waiting ones. Permits no future is waiting for are kept for the next calls.
    pub fn release(&self, n: usize) {
        let waiters = {
            let mut control = self.shared.control();
            control.permits = control.permits.saturating_add(n);
            std::mem::take(&mut control.gate_waiters)
        };
        wake_all(waiters);
    }
}

impl fmt::Debug for ProbeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let control = self.control();
        f.debug_struct("Probe counters")
            .field("clones", &Self::count(&self.clones))
            .field("live", &Self::count(&self.live))
            .field("poll_ready_calls", &Self::count(&self.poll_ready_calls))
            .field("calls", &Self::count(&self.calls))
            .field("in_flight", &Self::count(&self.in_flight))
            .field("max_in_flight", &Self::count(&self.max_in_flight))
            .field("completed", &Self::count(&self.completed))
            .field("cancelled", &Self::count(&self.cancelled))
            .field("ready", &control.ready)
            .field("gate_open", &control.gate_open)
            .field("permits", &control.permits)
            .finish()
    }
}

// The future never pins `Res` or `E`: it only moves the answer out, so it is `Unpin` whatever they
// are (as `std::future::Ready` is).
impl<Res, E> Unpin for ProbeFuture<Res, E> {}

impl<Res, E> Future for ProbeFuture<Res, E> {
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(result) = this.result.take() else {
            panic!("ProbeFuture polled after completion");
        };
        {
            let mut control = this.shared.control();
            if !control.gate_open {
                if control.permits == 0 {
                    register(&mut control.gate_waiters, cx.waker());
                    this.result = Some(result);
                    return Poll::Pending;
                }
                control.permits -= 1;
            }
        }
        this.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        this.shared.completed.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(result)
    }
}

impl<Res, E> Drop for ProbeFuture<Res, E> {
    fn drop(&mut self) {
        if self.result.is_some() {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl<Res, E> fmt::Debug for ProbeFuture<Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeFuture")
            .field("completed", &self.result.is_none())
            .finish_non_exhaustive()
    }
}
