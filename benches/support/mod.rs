//! Shared by every bench file, which declares it once with `mod support;`.
//!
//! - a counting global allocator, installed here, so each bench binary has exactly one;
//! - [`bare`], the zero-allocation floor every layer is compared with (an `async` block, as a
//!   real handler's future is), and [`bare_ready`], the same answering with `std::future::ready`
//!   (a reference row only: a `Ready` is smaller and simpler than any handler's future, and
//!   flatters a layer that wraps it);
//! - [`Bench`], which runs a service on 1 thread and on 2 threads with criterion and reports its
//!   allocations per call (stderr and `target/weir-bench/<group>.<id>.txt`).
//!
//! Adding a layer to a bench file is one line:
//! `bench.service("weir-timeout", || weir_timeout::TimeoutLayer::new(d).layer(bare()));`

#![allow(
    dead_code,
    reason = "every bench binary includes this module and each uses a subset of it"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use tokio::runtime::{Builder, Runtime};
use tower::{Service, ServiceExt, service_fn};

// ---------------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------------

thread_local! {
    // Per thread, so counting never makes two threads contend on one cache line (a shared
    // atomic would slow every allocating service on 2 threads). `const`-initialised `Cell`s have
    // no destructor and are never lazily registered, so the allocator may touch them at any time.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static ALLOCATED_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting every allocation (and reallocation) and the bytes asked for,
/// per thread.
///
/// Installed once per bench binary, below. Counting costs two thread-local adds per allocation,
/// nothing on a path that does not allocate.
pub(crate) struct CountingAlloc;

fn count(bytes: usize) {
    // `try_with` never panics, even while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get().wrapping_add(1)));
    let _ = ALLOCATED_BYTES.try_with(|n| n.set(n.get().wrapping_add(bytes)));
}

// `unsafe_code` is "deny" (not "forbid") for this package only, so this one impl can be allowed:
// see the comment on `[lints.rust]` in the root Cargo.toml.
#[allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; every method only forwards to System"
)]
// SAFETY: every method forwards its arguments unchanged to `System`, so `System`'s guarantees are
// ours; counting touches only thread-local `Cell`s and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations and bytes allocated so far by the current thread.
pub(crate) fn allocations() -> (usize, usize) {
    (ALLOCATIONS.get(), ALLOCATED_BYTES.get())
}

// ---------------------------------------------------------------------------------------------
// The floor
// ---------------------------------------------------------------------------------------------

/// The request and response of every benchmarked service.
pub(crate) type Req = u64;

/// The zero-allocation floor: a `service_fn` answering from an `async` block, as a real
/// handler's future is (a state machine the layer wraps by value, not `Unpin`, polled through
/// its `Pin`), ready on its first poll.
pub(crate) fn bare()
-> impl Service<Req, Response = Req, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(|req: Req| async move { Ok(req.wrapping_add(1)) })
}

/// The floor as the benches measured it before #18: a `service_fn` answering with
/// `std::future::ready`. Kept for one reference row (`baseline/service_fn-ready`); every layer
/// is measured over [`bare`].
pub(crate) fn bare_ready()
-> impl Service<Req, Response = Req, Error = Infallible, Future = Ready<Result<Req, Infallible>>>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|req: Req| ready(Ok(req.wrapping_add(1))))
}

// ---------------------------------------------------------------------------------------------
// Runtimes and call loops
// ---------------------------------------------------------------------------------------------

/// "1 thread": a `current_thread` runtime.
pub(crate) fn runtime_1_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current_thread runtime")
}

/// "2 threads": a `multi_thread` runtime with 2 workers.
pub(crate) fn runtime_2_threads() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("multi_thread runtime")
}

/// Readies and calls `svc` `calls` times, one call at a time.
pub(crate) async fn drive<S>(svc: &mut S, calls: u64)
where
    S: Service<Req>,
    S::Error: Debug,
{
    for i in 0..calls {
        let ready = svc
            .ready()
            .await
            .expect("benchmarked service failed poll_ready");
        let res = ready
            .call(black_box(i))
            .await
            .expect("benchmarked service failed");
        black_box(res);
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures the wall clock, outside any runtime"
)]
fn now() -> Instant {
    Instant::now()
}

/// Wall time of `iters` calls on one service made by `make`, on `rt` (use
/// [`runtime_1_thread`]); for criterion's `iter_custom`.
pub(crate) fn time_1_thread<S, M>(rt: &Runtime, make: &M, iters: u64) -> Duration
where
    M: Fn() -> S,
    S: Service<Req>,
    S::Error: Debug,
{
    let mut svc = {
        let _runtime = rt.enter();
        make()
    };
    let start = now();
    rt.block_on(drive(&mut svc, iters));
    start.elapsed()
}

/// Wall time of `iters` calls split between two tasks driving concurrently on `rt` (use
/// [`runtime_2_threads`]), each on its own instance from `split`; for criterion's `iter_custom`.
pub(crate) fn time_2_threads<S, P>(rt: &Runtime, split: &P, iters: u64) -> Duration
where
    P: Fn() -> (S, S),
    S: Service<Req> + Send + 'static,
    S::Future: Send,
    S::Error: Debug,
{
    let (a, b) = {
        let _runtime = rt.enter();
        split()
    };
    let half = iters / 2;
    let meet = Arc::new(Rendezvous::default());
    let task = |mut svc: S, calls: u64| {
        let meet = Arc::clone(&meet);
        async move {
            meet.arrive();
            drive(&mut svc, calls).await;
        }
    };
    let (first, second) = (task(a, iters - half), task(b, half));
    let start = now();
    rt.block_on(async move {
        let first = tokio::spawn(first);
        let second = tokio::spawn(second);
        first.await.expect("bench task panicked");
        second.await.expect("bench task panicked");
    });
    start.elapsed()
}

/// Makes the two tasks of [`time_2_threads`] start together, on two workers.
///
/// The first task to arrive blocks its worker (on purpose) until the second one arrives, which
/// another worker must then have picked up: so the two really run in parallel. Without it the
/// scheduler may run both on one worker, and contention (a shared semaphore) shows in one run
/// and not the next. Tokio does not promise that another worker steals a task queued behind a
/// blocked one, so the wait is bounded: after [`RENDEZVOUS_WAIT`] the task goes on alone, which
/// costs one slow sample instead of a hung benchmark.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

const RENDEZVOUS_WAIT: Duration = Duration::from_millis(20);

impl Rendezvous {
    fn arrive(&self) {
        let mut arrived = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        *arrived += 1;
        if *arrived >= 2 {
            self.all_here.notify_all();
            return;
        }
        let _ = self
            .all_here
            .wait_timeout_while(arrived, RENDEZVOUS_WAIT, |arrived| *arrived < 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Allocations per call
// ---------------------------------------------------------------------------------------------

/// Calls made before counting (lazy initialisation is not a per-call cost) and while counting.
const ALLOC_WARMUP_CALLS: u64 = 1_000;
const ALLOC_COUNTED_CALLS: u64 = 10_000;

/// Allocations per call of one service, on one thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllocFigures {
    pub(crate) allocs_per_call: f64,
    pub(crate) bytes_per_call: f64,
}

/// Runs a service made by `make` on `rt` (a `current_thread` runtime: every call runs on this
/// thread, whose counters are read), counts the allocations of [`ALLOC_COUNTED_CALLS`] calls
/// after a warm-up, prints `name: X allocs/call, Y bytes/call` to stderr and, under `cargo bench`,
/// writes the same line to `target/weir-bench/<name>.txt`.
pub(crate) fn measure_allocs<S, M>(name: &str, rt: &Runtime, make: &M) -> AllocFigures
where
    M: Fn() -> S,
    S: Service<Req>,
    S::Error: Debug,
{
    let mut svc = {
        let _runtime = rt.enter();
        make()
    };
    let (allocs, bytes) = rt.block_on(async {
        drive(&mut svc, ALLOC_WARMUP_CALLS).await;
        let before = allocations();
        drive(&mut svc, ALLOC_COUNTED_CALLS).await;
        let after = allocations();
        (
            after.0.wrapping_sub(before.0),
            after.1.wrapping_sub(before.1),
        )
    });
    let calls = ALLOC_COUNTED_CALLS as f64;
    let figures = AllocFigures {
        allocs_per_call: allocs as f64 / calls,
        bytes_per_call: bytes as f64 / calls,
    };
    let line = format!(
        "{name}: {:.2} allocs/call, {:.1} bytes/call",
        figures.allocs_per_call, figures.bytes_per_call
    );
    eprintln!("{line}");
    if measuring() {
        write_figures(name, &line);
    }
    figures
}

/// Whether this is a real `cargo bench` run (cargo passes `--bench`), not `cargo test` or
/// `--test`, whose unoptimised or one-shot figures must not overwrite the ones a README quotes.
/// `WEIR_BENCH_CALLS=N cargo bench --bench B -- ID`: instead of criterion, the service whose
/// `id` or `group/id` is ID makes `N` calls on one thread, for an instruction count that
/// does not depend on the machine's load: run the bench binary under
/// `valgrind --tool=callgrind` with `N` and with `2N`; the difference of the two totals divided
/// by `N` is the instructions per call, set-up excluded (see `benches/README.md`).
pub(crate) fn count_only() -> Option<u64> {
    std::env::var("WEIR_BENCH_CALLS").ok()?.parse().ok()
}

fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// `$CARGO_TARGET_DIR/weir-bench`, or `target/weir-bench` in the workspace.
fn figures_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("weir-bench")
}

fn write_figures(name: &str, line: &str) {
    let dir = figures_dir();
    let file = dir.join(format!("{}.txt", name.replace(['/', '\\', ' '], "_")));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, format!("{line}\n")));
    if let Err(error) = written {
        eprintln!("could not write {}: {error}", file.display());
    }
}

// ---------------------------------------------------------------------------------------------
// One criterion group per bench file
// ---------------------------------------------------------------------------------------------

/// A criterion group whose every service runs as `<group>/<id>/1-thread` and
/// `<group>/<id>/2-threads`, with its allocations per call measured once.
pub(crate) struct Bench<'c> {
    name: String,
    group: BenchmarkGroup<'c, WallTime>,
    rt_1: Runtime,
    rt_2: Runtime,
}

impl<'c> Bench<'c> {
    pub(crate) fn new(c: &'c mut Criterion, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            group: c.benchmark_group(name),
            rt_1: runtime_1_thread(),
            rt_2: runtime_2_threads(),
        }
    }

    /// Benchmarks the service `make` builds. On 2 threads the two tasks drive two clones of one
    /// instance, so state the clones share (a semaphore, a limiter) is contended as in a server.
    pub(crate) fn service<S, M>(&mut self, id: &str, make: M)
    where
        M: Fn() -> S,
        S: Service<Req> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Debug,
    {
        let split = || {
            let svc = make();
            (svc.clone(), svc)
        };
        self.run(id, &make, &split);
    }

    /// As [`service`](Self::service), for a service that is not `Clone` (tower's `RateLimit`):
    /// on 2 threads each task drives its own instance, so nothing is shared.
    pub(crate) fn service_per_task<S, M>(&mut self, id: &str, make: M)
    where
        M: Fn() -> S,
        S: Service<Req> + Send + 'static,
        S::Future: Send,
        S::Error: Debug,
    {
        let split = || (make(), make());
        self.run(id, &make, &split);
    }

    fn run<S, M, P>(&mut self, id: &str, make: &M, split: &P)
    where
        M: Fn() -> S,
        P: Fn() -> (S, S),
        S: Service<Req> + Send + 'static,
        S::Future: Send,
        S::Error: Debug,
    {
        let name = format!("{}.{id}", self.name);
        let (rt_1, rt_2) = (&self.rt_1, &self.rt_2);
        if let Some(calls) = count_only() {
            let path = format!("{}/{id}", self.name);
            let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
            if filter.is_none_or(|f| f == path || f == id) {
                time_1_thread(rt_1, make, calls);
                eprintln!("{path}: {calls} calls driven");
            }
            return;
        }
        // Measured in the first call of the bench routine, so a filtered-out bench measures
        // nothing; outside `iter_custom`, so it never counts as time.
        let mut measured = false;
        self.group
            .bench_function(BenchmarkId::new(id, "1-thread"), |b| {
                if !measured {
                    measure_allocs(&name, rt_1, make);
                    measured = true;
                }
                b.iter_custom(|iters| time_1_thread(rt_1, make, iters));
            });
        self.group
            .bench_function(BenchmarkId::new(id, "2-threads"), |b| {
                b.iter_custom(|iters| time_2_threads(rt_2, split, iters));
            });
    }

    pub(crate) fn finish(self) {
        self.group.finish();
    }
}
