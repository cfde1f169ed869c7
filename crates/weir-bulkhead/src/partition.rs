//! Partitioned bulkheads: one bulkhead per key (tenant, downstream) from one layer, named
//! partitions with fixed sizes, and an optional shared pool a full partition may borrow from.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use weir_core::inspect::Registry;
use weir_core::observer::TraceId;
use weir_core::protocol::{Http, Plain};
use weir_core::{
    BoxError, ConfigError, Deadline, Error, KeyExtractor, Name, Observer, key::MissingKey,
    key::Resolved, keyed::KeyedConfig, keyed::KeyedMap,
};

use crate::event::Event;
use crate::future::{ResponseFuture, Wait};
use crate::handle::BulkheadStats;
use crate::permit::{Core, Permit};
use crate::protocol::Protocol;
use crate::settings::{DEFAULT_RETRY_AFTER, MAX_PERMITS, PATTERN, validate_size, validate_wait};
use crate::shared::{AfterWait, Rejecter};
use crate::state::{RejectReason, wait_until};
use crate::tuning::{Policy, Tuning};

/// One partition: its own permits, and its allowance to borrow from the pool.
pub(crate) struct Partition {
    pub(crate) core: Arc<Core>,
    pub(crate) loans: Option<Arc<Core>>,
}

impl Partition {
    fn new(size: usize, pool: Option<&(Arc<Core>, AtomicUsize)>) -> Arc<Self> {
        Arc::new(Self {
            core: Core::new(size),
            loans: pool.map(|(pool, cap)| Core::lender(cap.load(Ordering::SeqCst), pool)),
        })
    }
}

pub(crate) struct Parts<X, K, O> {
    extractor: X,
    missing: MissingKey,
    pub(crate) named: HashMap<K, Arc<Partition>>,
    pub(crate) keyed: KeyedMap<K, Arc<Partition>>,
    pub(crate) keyless: Arc<Partition>,
    bypass: Arc<Core>,
    /// The size of a keyed partition made from now on (a handle may change it: see
    /// `reconfigure.rs`; read under the keyed map's shard lock, where partitions are made).
    pub(crate) per_key: AtomicUsize,
    /// The shared pool and the most one partition may borrow from it (a handle may change both).
    pub(crate) pool: Option<(Arc<Core>, AtomicUsize)>,
    /// The queue's length, the longest wait and the `Retry-After`, read whole.
    pub(crate) tuning: Tuning,
    name: Name,
    /// Rejections over every partition since the layer was built (a forgotten key's stay):
    /// counted on the rejection path only.
    rejected: AtomicU64,
    observer: O,
}

/// Configures a [`PartitionedLayer`]; from [`BulkheadLayer::partitioned`](crate::BulkheadLayer::partitioned).
///
/// Defaults: 10 permits per key, no named partitions, no pool, no queue (a full partition
/// refuses at once), key-less requests share one partition ([`MissingKey::Shared`]), at most
/// 100 000 keys kept, idle keys evicted after 10 minutes (a key with calls in flight or waiting
/// is never evicted).
#[must_use]
pub struct PartitionedBuilder<X, K, O = (), P = Plain> {
    extractor: X,
    pub(crate) settings: PartitionedSettings<K>,
    observer: O,
    _protocol: PhantomData<fn() -> P>,
}

/// The plain settings of a [`PartitionedBuilder`], moved as one when a type parameter changes.
#[derive(Debug)]
pub(crate) struct PartitionedSettings<K> {
    missing: MissingKey,
    pub(crate) named: Vec<(K, usize)>,
    pub(crate) per_key: usize,
    pub(crate) pool: Option<(usize, usize)>,
    pub(crate) max_queue: usize,
    pub(crate) max_wait: Option<Duration>,
    keyed: KeyedConfig,
    name: Name,
    pub(crate) retry_after: Duration,
    registry: Option<Registry>,
}

impl<X, K> PartitionedBuilder<X, K> {
    pub(crate) fn new(extractor: X) -> Self {
        Self {
            extractor,
            settings: PartitionedSettings {
                missing: MissingKey::Shared,
                named: Vec::new(),
                per_key: 10,
                pool: None,
                max_queue: 0,
                max_wait: None,
                keyed: KeyedConfig::new(),
                name: Name::default(),
                retry_after: DEFAULT_RETRY_AFTER,
                registry: None,
            },
            observer: (),
            _protocol: PhantomData,
        }
    }
}

impl<X, K, O, P> PartitionedBuilder<X, K, O, P> {
    /// Names this bulkhead in errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built, under its
    /// [`name`](Self::name) (`"default"` when given none); `build` refuses a name the registry
    /// already holds for a bulkhead ([`ConfigError::is_duplicate`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.settings.registry = Some(registry.clone());
        self
    }

    /// The permits of each key that has no named partition (default 10).
    pub const fn per_key(mut self, size: usize) -> Self {
        self.settings.per_key = size;
        self
    }

    /// A partition of `size` permits for `key` (for example `"payments"`, 20), kept for the
    /// layer's whole life.
    pub fn partition(mut self, key: K, size: usize) -> Self {
        self.settings.named.push((key, size));
        self
    }

    /// A pool of `size` permits shared by all partitions: a full partition borrows from it, at
    /// most `cap` at a time, so one partition can use idle capacity without taking all of it.
    pub const fn borrow(mut self, size: usize, cap: usize) -> Self {
        self.settings.pool = Some((size, cap));
        self
    }

    /// Up to `max_queue` requests may wait, in arrival order, in each partition that is full
    /// (default 0: refuse at once). A waiter waits for its own partition's permits; it does not
    /// borrow from the pool, and while anybody waits in a partition a newcomer to it neither
    /// takes a permit nor borrows (nobody overtakes the line).
    pub const fn max_queue(mut self, max_queue: usize) -> Self {
        self.settings.max_queue = max_queue;
        self
    }

    /// How long a request may wait in its partition's queue (default: until a permit comes,
    /// or, in `Http` mode, until the request's deadline). Needs a queue.
    pub const fn max_wait(mut self, max_wait: Duration) -> Self {
        self.settings.max_wait = Some(max_wait);
        self
    }

    /// What a request without a key does (default: one partition shared by all of them).
    /// [`MissingKey::Reject`] refuses it as `bulkhead_full`.
    pub const fn missing_key(mut self, missing: MissingKey) -> Self {
        self.settings.missing = missing;
        self
    }

    /// How many keys are kept and when idle ones are evicted.
    pub const fn keys(mut self, config: KeyedConfig) -> Self {
        self.settings.keyed = config;
        self
    }

    /// The `Retry-After` every rejection carries (default 1 s).
    pub const fn retry_after(mut self, retry_after: Duration) -> Self {
        self.settings.retry_after = retry_after;
        self
    }

    /// Reports rejections to `observer`; the event names the partition's key.
    pub fn observer<O2>(self, observer: O2) -> PartitionedBuilder<X, K, O2, P>
    where
        O2: for<'a> Observer<Event<'a>>,
    {
        PartitionedBuilder {
            extractor: self.extractor,
            settings: self.settings,
            observer,
            _protocol: PhantomData,
        }
    }

    /// `weir_core::protocol::Http` mode: each permit is held until the response body ends, and
    /// the queue wait is bounded by the request's deadline.
    pub fn http(self) -> PartitionedBuilder<X, K, O, Http> {
        PartitionedBuilder {
            extractor: self.extractor,
            settings: self.settings,
            observer: self.observer,
            _protocol: PhantomData,
        }
    }

    /// Builds the layer: every service it makes and every clone share the partitions.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule: a partition, `per_key` or pool size of
    /// 0 or above [`MAX_PERMITS`], a zero `retry_after`, a zero `max_wait` or one without a
    /// queue; with a [`registry`](Self::registry), a duplicate `name`.
    pub fn build(self) -> Result<PartitionedLayer<X, K, O, P>, ConfigError>
    where
        X: Send + Sync + 'static,
        K: Hash + Eq + Send + Sync + 'static,
        O: Send + Sync + 'static,
    {
        for (_, size) in &self.settings.named {
            validate_size("partition", *size)?;
        }
        validate_size("per_key", self.settings.per_key)?;
        if let Some((size, _)) = self.settings.pool {
            validate_size("borrow", size)?;
        }
        if self.settings.retry_after.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "retry_after",
                "must be more than zero",
            ));
        }
        validate_wait(self.settings.max_queue, self.settings.max_wait)?;
        let per_key = self.settings.per_key;
        let pool = self
            .settings
            .pool
            .map(|(size, cap)| (Core::new(size), AtomicUsize::new(cap)));
        let registry = self.settings.registry;
        let layer = PartitionedLayer {
            shared: Arc::new(Parts {
                extractor: self.extractor,
                missing: self.settings.missing,
                named: self
                    .settings
                    .named
                    .into_iter()
                    .map(|(key, size)| (key, Partition::new(size, pool.as_ref())))
                    .collect(),
                // A partition with calls in flight (or loans out) is never evicted.
                keyed: KeyedMap::new(self.settings.keyed, Partition::new(per_key, pool.as_ref()))
                    .evict_if(idle),
                keyless: Partition::new(per_key, pool.as_ref()),
                bypass: Core::new(MAX_PERMITS),
                per_key: AtomicUsize::new(per_key),
                pool,
                tuning: Tuning::new(
                    Policy {
                        max_queue: self.settings.max_queue,
                        max_wait: self.settings.max_wait,
                        retry_after: self.settings.retry_after,
                    },
                    self.settings.name.clone(),
                    false,
                    false,
                ),
                name: self.settings.name,
                rejected: AtomicU64::new(0),
                observer: self.observer,
            }),
            _protocol: PhantomData,
        };
        if let Some(registry) = registry {
            registry.register_unique(Arc::new(layer.handle()))?;
        }
        Ok(layer)
    }
}

fn idle(partition: &Arc<Partition>, _now: Instant) -> bool {
    let unused = |core: &Core| core.available() == core.max() && core.queued() == 0;
    unused(&partition.core) && partition.loans.as_deref().is_none_or(unused)
}

impl<X, K, O, P> fmt::Debug for PartitionedBuilder<X, K, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedBuilder")
            .field("name", &self.settings.name)
            .field("per_key", &self.settings.per_key)
            .field("named", &self.settings.named.len())
            .field("pool", &self.settings.pool)
            .finish_non_exhaustive()
    }
}

/// One bulkhead per partition key, from one layer: a flood on one tenant or downstream fills its
/// own partition and is refused there, while the others keep their permits.
///
/// A full partition (after borrowing from the pool, if there is one) refuses at once, or, with
/// `max_queue`, lets requests wait in its own FIFO queue, at most `max_wait`.
pub struct PartitionedLayer<X, K, O = (), P = Plain> {
    shared: Arc<Parts<X, K, O>>,
    _protocol: PhantomData<fn() -> P>,
}

impl<X, K, O, P> PartitionedLayer<X, K, O, P>
where
    K: Hash + Eq + Send + Sync,
{
    /// A handle on the partitions this layer (and every service it makes, and every clone)
    /// shares: the same figures as [`stats`](Self::stats) and [`pool_stats`](Self::pool_stats),
    /// from a value that can be kept apart from the layer (a dashboard, a health check).
    #[must_use]
    pub fn handle(&self) -> PartitionedHandle<X, K, O> {
        PartitionedHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The figures of `key`'s partition, if it has one now. A keyed partition is found by
    /// visiting the stored keys (a scan, for dashboards and tests, not for the request path).
    #[must_use]
    pub fn stats(&self, key: &K) -> Option<BulkheadStats> {
        stats_of(&self.shared, key)
    }

    /// The figures of the shared pool, if there is one.
    #[must_use]
    pub fn pool_stats(&self) -> Option<BulkheadStats> {
        pool_stats_of(&self.shared)
    }
}

/// Reads the partitions of a [`PartitionedLayer`]; from [`PartitionedLayer::handle`]. Cheap to
/// clone, usable from any thread.
pub struct PartitionedHandle<X, K, O = ()> {
    pub(crate) shared: Arc<Parts<X, K, O>>,
}

impl<X, K, O> PartitionedHandle<X, K, O>
where
    K: Hash + Eq + Send + Sync,
{
    /// The figures of `key`'s partition, if it has one now (a scan over keyed partitions).
    #[must_use]
    pub fn stats(&self, key: &K) -> Option<BulkheadStats> {
        stats_of(&self.shared, key)
    }

    /// The figures of the shared pool, if there is one.
    #[must_use]
    pub fn pool_stats(&self) -> Option<BulkheadStats> {
        pool_stats_of(&self.shared)
    }
}

/// Totals over every partition of a partitioned bulkhead, at one moment (each read atomically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionedTotals {
    /// Partitions held: the named ones, the keyed ones stored now, and the key-less one.
    pub partitions: usize,
    /// Permits in use over every partition.
    pub in_flight: usize,
    /// Requests waiting over every partition.
    pub queued: usize,
    /// Requests refused since the layer was built (a forgotten key's refusals included).
    pub rejected: u64,
}

/// What a status page reads (see `inspect.rs`).
impl<X, K, O> PartitionedHandle<X, K, O>
where
    K: Hash + Eq + Send + Sync,
{
    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.shared.name
    }

    /// Totals over every partition (a scan over the keyed partitions: for a page or a scrape,
    /// not for the request path).
    #[must_use]
    pub fn totals(&self) -> PartitionedTotals {
        let mut totals = PartitionedTotals {
            partitions: 0,
            in_flight: 0,
            queued: 0,
            rejected: self.shared.rejected.load(Ordering::Relaxed),
        };
        let mut add = |partition: &Partition| {
            let stats = BulkheadStats::of(&partition.core);
            totals.partitions += 1;
            totals.in_flight += stats.in_flight;
            totals.queued += stats.queued;
        };
        self.shared.named.values().for_each(|p| add(p));
        self.shared.keyed.for_each(|_, p| add(p));
        add(&self.shared.keyless);
        totals
    }
}

impl<X, K, O> Clone for PartitionedHandle<X, K, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<X, K, O> fmt::Debug for PartitionedHandle<X, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedHandle")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

fn stats_of<X, K, O>(shared: &Parts<X, K, O>, key: &K) -> Option<BulkheadStats>
where
    K: Hash + Eq + Send + Sync,
{
    {
        if let Some(partition) = shared.named.get(key) {
            return Some(BulkheadStats::of(&partition.core));
        }
        let mut found = None;
        shared.keyed.for_each(|k, partition| {
            if k == key {
                found = Some(BulkheadStats::of(&partition.core));
            }
        });
        found
    }
}

fn pool_stats_of<X, K, O>(shared: &Parts<X, K, O>) -> Option<BulkheadStats> {
    shared
        .pool
        .as_ref()
        .map(|(core, _)| BulkheadStats::of(core))
}

impl<S, X, K, O, P> Layer<S> for PartitionedLayer<X, K, O, P> {
    type Service = Partitioned<S, X, K, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Partitioned {
            inner,
            shared: Arc::clone(&self.shared),
            _protocol: PhantomData,
        }
    }
}

impl<X, K, O, P> Clone for PartitionedLayer<X, K, O, P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _protocol: PhantomData,
        }
    }
}

impl<X, K, O, P> fmt::Debug for PartitionedLayer<X, K, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedLayer")
            .field("name", &self.shared.name)
            .field("per_key", &self.shared.per_key.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The service of a [`PartitionedLayer`].
pub struct Partitioned<S, X, K, O = (), P = Plain> {
    inner: S,
    shared: Arc<Parts<X, K, O>>,
    _protocol: PhantomData<fn() -> P>,
}

impl<S, X, K, O, P> Partitioned<S, X, K, O, P> {
    weir_core::inner_accessors!(inner: S);
}

impl<X, K, O> Parts<X, K, O>
where
    K: fmt::Debug,
    O: for<'a> Observer<Event<'a>>,
{
    fn reject(
        &self,
        partition: &Partition,
        key: Option<&K>,
        reason: RejectReason,
        waited: Option<Duration>,
        trace_id: Option<TraceId>,
    ) -> Error {
        partition.core.count_rejection();
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let stats = BulkheadStats::of(&partition.core);
        self.observer.on_event(&Event::Rejected {
            layer: &self.name,
            partition: key.map(|key| key as &dyn fmt::Debug),
            reason,
            in_flight: stats.in_flight,
            queued: stats.queued,
            waited,
            trace_id,
        });
        Error::bulkhead_full()
            .with_layer(self.name.clone())
            .with_retry_after(self.tuning.policy().retry_after)
    }

    /// A permit of the partition's own, or one borrowed from the pool within the cap; neither
    /// while somebody waits in the partition's queue.
    fn acquire(partition: &Partition) -> Option<Permit> {
        partition.core.try_acquire().or_else(|| {
            if partition.core.queued() != 0 {
                return None;
            }
            partition.loans.as_ref()?.try_borrow()
        })
    }
}

impl<S, X, K, O, P, Req> Service<Req> for Partitioned<S, X, K, O, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    X: KeyExtractor<Req, Key = K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    P: Protocol<Req, S::Response>,
{
    type Response = P::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, O, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        // The request's trace id, read only for a refusal's event.
        let trace_id = || {
            <P as weir_core::protocol::Protocol<Req>>::headers(&req).and_then(TraceId::from_headers)
        };
        let key = shared.extractor.extract(&req);
        let (partition, key) = match shared.missing.resolve(key) {
            Resolved::Key(key) => {
                let partition = match shared.named.get(&key) {
                    Some(partition) => Arc::clone(partition),
                    None => shared.keyed.with(
                        key.clone(),
                        Instant::now(),
                        |key| {
                            (
                                shared.extractor.detach(key),
                                Partition::new(
                                    shared.per_key.load(Ordering::SeqCst),
                                    shared.pool.as_ref(),
                                ),
                            )
                        },
                        Arc::clone,
                    ),
                };
                (partition, Some(key))
            }
            Resolved::Shared => (Arc::clone(&shared.keyless), None),
            Resolved::Bypass => {
                let permit = shared
                    .bypass
                    .try_acquire()
                    .expect("the bypass pool has MAX_PERMITS permits");
                return ResponseFuture::running(self.inner.call(req), permit, true);
            }
            Resolved::Reject => {
                let error = shared.reject(
                    &shared.keyless,
                    None,
                    RejectReason::QueueFull,
                    None,
                    trace_id(),
                );
                return ResponseFuture::rejected(error);
            }
        };
        if let Some(permit) = Parts::<X, K, O>::acquire(&partition) {
            return ResponseFuture::running(self.inner.call(req), permit, true);
        }
        // One version of the queue settings for this request (a handle may change them).
        let policy = shared.tuning.policy();
        if policy.max_queue == 0 {
            let error = shared.reject(
                &partition,
                key.as_ref(),
                RejectReason::QueueFull,
                None,
                trace_id(),
            );
            return ResponseFuture::rejected(error);
        }
        let deadline =
            <P as weir_core::protocol::Protocol<Req>>::deadline(&req).map(Deadline::instant);
        let now = Instant::now();
        let (until, reason) = match wait_until(now, policy.max_wait, deadline) {
            Ok(wait) => wait,
            Err(reason) => {
                return ResponseFuture::rejected(shared.reject(
                    &partition,
                    key.as_ref(),
                    reason,
                    None,
                    trace_id(),
                ));
            }
        };
        let Some(waiter) = partition.core.enqueue(policy.max_queue) else {
            let error = shared.reject(
                &partition,
                key.as_ref(),
                RejectReason::QueueFull,
                None,
                trace_id(),
            );
            return ResponseFuture::rejected(error);
        };
        // A refusal after the wait names the partition: the one allocation of this slow path
        // besides the waiter's own.
        let parts = Arc::clone(&self.shared);
        let rejecter = Rejecter::Partition(Arc::new(move |after, trace_id| match after {
            AfterWait::Refused(reason, waited) => {
                Some(parts.reject(&partition, key.as_ref(), reason, Some(waited), trace_id))
            }
            AfterWait::Admitted(waited) => {
                parts.observer.on_event(&Event::Dequeued {
                    layer: &parts.name,
                    partition: key.as_ref().map(|key| key as &dyn fmt::Debug),
                    waited,
                });
                None
            }
        }));
        // The readied instance goes into the future; an unreadied clone stays behind.
        let clone = self.inner.clone();
        let readied = mem::replace(&mut self.inner, clone);
        let wait = Wait::boxed(waiter, (now, until), reason, readied, req, rejecter);
        ResponseFuture::waiting(wait, true)
    }
}

impl<S: Clone, X, K, O, P> Clone for Partitioned<S, X, K, O, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            _protocol: PhantomData,
        }
    }
}

impl<S: fmt::Debug, X, K, O, P> fmt::Debug for Partitioned<S, X, K, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partitioned")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
