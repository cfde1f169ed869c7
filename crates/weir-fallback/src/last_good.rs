//! The last good answer (stale-if-error, RFC 5861): successful HTTP responses kept per key,
//! bounded in entries and bytes, served with `Age` when the primary fails.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AGE, CACHE_CONTROL};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use weir_core::{KeyExtractor, Outcome};

use crate::protocol::{Protocol, mark, sealed, trace};
use crate::settings::LastGoodSettings;
use crate::state::{Source, age_seconds, servable_age};

/// Keeps the last good answer of each key and serves it when the primary fails: the
/// `last_good` source, for HTTP. From [`LastGood::new`]`(extractor)`, given to
/// [`FallbackBuilder::last_good`](crate::FallbackBuilder::last_good).
///
/// - **What is kept**: `200 OK` answers to `GET` and `HEAD` requests whose key the extractor
///   finds (the key is the method and the extractor's key: `weir_core::key::MethodPath`, axum's
///   `Route`, a header pair, a closure), unless they say `Cache-Control: no-store`, and only when
///   the whole body fits in `max_entry_bytes`. The body is copied as it streams to the caller (no
///   added latency) and the entry stored when it ends cleanly; a body that fails or is dropped
///   early stores nothing. A newer answer that cannot be kept (past the limit, `no-store`, not a
///   `200`) retires the older one of its key: it is no longer the last good answer. Other requests pay one extractor call and
///   nothing else.
/// - **Bounds**: at most `max_entries` entries and `max_bytes` bytes (bodies, headers and a fixed
///   overhead per entry); past either, the oldest entries are evicted first, so a flood of
///   distinct keys only cycles the store. Entries past `max_stale` are never served and are
///   dropped as new ones arrive.
/// - **Served**: with an `Age` header (whole seconds since it was stored), the
///   [`FALLBACK_HEADER`](crate::FALLBACK_HEADER) `last_good` and a `weir_core::degrade::Degraded`
///   extension.
///
/// Clones share the store: keep one to read [`len`](Self::len) and [`bytes`](Self::bytes). Set
/// the bounds before cloning: each bound setter makes a new, empty store. Headers that describe
/// the connection rather than the answer (`Connection`, `Transfer-Encoding`, `Keep-Alive`, ...)
/// are not kept.
pub struct LastGood<X> {
    extractor: Arc<X>,
    store: Arc<Store>,
}

/// The key of an entry: the request's method and the extractor's key.
type Key<X, ReqB> = (Method, <X as KeyExtractor<http::Request<ReqB>>>::Key);

/// What an entry costs beyond its body and headers (the map slot, the order slot, the key).
const ENTRY_OVERHEAD: usize = 128;

impl<X> LastGood<X> {
    /// Keeps the last good answer per method and `extractor` key; at most 1 024 entries and
    /// 16 MiB, 256 KiB per body, served up to 5 minutes after it was stored.
    pub fn new(extractor: X) -> Self {
        Self {
            extractor: Arc::new(extractor),
            store: Arc::new(Store::new(LastGoodSettings::default())),
        }
    }

    /// Every bound at once (from a configuration file); a new, empty store. `build()` checks
    /// them ([`LastGoodSettings::validate`]).
    #[must_use]
    pub fn settings(self, settings: LastGoodSettings) -> Self {
        self.with_bounds(|b| *b = settings)
    }

    fn with_bounds(self, change: impl FnOnce(&mut LastGoodSettings)) -> Self {
        let mut bounds = self.store.bounds;
        change(&mut bounds);
        Self {
            extractor: self.extractor,
            store: Arc::new(Store::new(bounds)),
        }
    }

    /// At most `n` entries (at least 1: `build()` refuses 0).
    #[must_use]
    pub fn max_entries(self, n: usize) -> Self {
        self.with_bounds(|b| b.max_entries = n)
    }

    /// At most `n` bytes over every entry (`build()` refuses 0); lowers `max_entry_bytes` to
    /// `n` if it is above.
    #[must_use]
    pub fn max_bytes(self, n: usize) -> Self {
        self.with_bounds(|b| {
            b.max_bytes = n;
            b.max_entry_bytes = b.max_entry_bytes.min(n);
        })
    }

    /// A response whose body is larger than `n` bytes is not kept (at most `max_bytes`).
    #[must_use]
    pub fn max_entry_bytes(self, n: usize) -> Self {
        self.with_bounds(|b| b.max_entry_bytes = n)
    }

    /// An entry is served up to `d` after it was stored, never later (`build()` refuses zero).
    #[must_use]
    pub fn max_stale(self, d: Duration) -> Self {
        self.with_bounds(|b| b.max_stale = d)
    }

    /// Entries kept now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.store.lock().map.len()
    }

    /// No entry is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the entries account for now (at most `max_bytes`).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.store.lock().bytes
    }

    /// Entries evicted so far to stay within the bounds (not counting expired ones).
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.store.evicted.load(Relaxed)
    }

    pub(crate) fn bounds(&self) -> &LastGoodSettings {
        &self.store.bounds
    }
}

impl<X> Clone for LastGood<X> {
    fn clone(&self) -> Self {
        Self {
            extractor: Arc::clone(&self.extractor),
            store: Arc::clone(&self.store),
        }
    }
}

impl<X> fmt::Debug for LastGood<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastGood")
            .field("bounds", &self.store.bounds)
            .finish_non_exhaustive()
    }
}

/// The entries, behind one short-held `std::sync::Mutex`: taken to store an answer of a kept
/// route when its body ends, and to look one up when the primary failed; never on other
/// requests, never across an `.await`.
struct Store {
    bounds: LastGoodSettings,
    inner: Mutex<Entries>,
    /// Keys are hashed with a random seed, so no client can aim its keys at one bucket.
    hasher: RandomState,
    evicted: AtomicU64,
}

/// The entries and their order.
struct Entries {
    map: HashMap<StoredKey, Entry>,
    /// Insertion order: sequence number to key, oldest first.
    order: BTreeMap<u64, StoredKey>,
    next: u64,
    bytes: usize,
}

/// A key as stored: the method and the extractor's key, behind a trait object. The extractor's
/// key type depends on the request's body type (`KeyExtractor<http::Request<B>>`), which the
/// store, made before any service exists, cannot name; entries are few and touched only off the
/// happy path, so one dynamic call to hash and compare is fine. The hash is computed once, when
/// the key is made.
#[derive(Clone)]
struct StoredKey {
    hash: u64,
    key: Arc<dyn DynKey>,
}

impl StoredKey {
    fn new<K: Hash + Eq + Send + Sync + 'static>(key: K, hasher: &RandomState) -> Self {
        Self {
            hash: hasher.hash_one(&key),
            key: Arc::new(key),
        }
    }
}

trait DynKey: Send + Sync {
    fn eq_key(&self, other: &dyn Any) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<K: Eq + Send + Sync + 'static> DynKey for K {
    fn eq_key(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<K>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key.eq_key(other.key.as_any())
    }
}

impl Eq for StoredKey {}

struct Entry {
    stored_at: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    seq: u64,
    cost: usize,
}

impl Store {
    fn new(bounds: LastGoodSettings) -> Self {
        Self {
            bounds,
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                order: BTreeMap::new(),
                next: 0,
                bytes: 0,
            }),
            hasher: RandomState::new(),
            evicted: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the entries consistent enough to go on with.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, key: StoredKey, status: StatusCode, headers: HeaderMap, body: Bytes) {
        let now = Instant::now();
        let header_bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        let cost = ENTRY_OVERHEAD + header_bytes + body.len();
        let mut entries = self.lock();
        let entries = &mut *entries;
        // The older answer goes even when the new one is too large to keep: it is no longer
        // the last good answer.
        if let Some(old) = entries.map.remove(&key) {
            entries.order.remove(&old.seq);
            entries.bytes -= old.cost;
        }
        if cost > self.bounds.max_bytes {
            return;
        }
        // Expired entries first (oldest first, so the front is where they are), then the oldest
        // live ones while a bound would be broken.
        while let Some((&seq, oldest)) = entries.order.first_key_value() {
            let stored_at = entries.map.get(oldest).map(|e| e.stored_at);
            let expired =
                stored_at.is_some_and(|at| servable_age(now - at, self.bounds.max_stale).is_none());
            let full = entries.map.len() >= self.bounds.max_entries
                || entries.bytes + cost > self.bounds.max_bytes;
            if !expired && !full {
                break;
            }
            let oldest = entries.order.remove(&seq).expect("present");
            if let Some(old) = entries.map.remove(&oldest) {
                entries.bytes -= old.cost;
            }
            if !expired {
                self.evicted.fetch_add(1, Relaxed);
            }
        }
        let seq = entries.next;
        entries.next += 1;
        entries.order.insert(seq, key.clone());
        entries.bytes += cost;
        entries.map.insert(
            key,
            Entry {
                stored_at: now,
                status,
                headers,
                body,
                seq,
                cost,
            },
        );
    }

    /// Drops the entry for `key`: a newer good answer was too large to keep.
    fn forget(&self, key: &StoredKey) {
        let mut entries = self.lock();
        if let Some(old) = entries.map.remove(key) {
            entries.order.remove(&old.seq);
            entries.bytes -= old.cost;
        }
    }

    /// The entry for `key` as a response, if it is fresh enough: its status, its headers, `Age`.
    fn get(&self, key: &StoredKey) -> Option<(http::response::Parts, Bytes)> {
        let entries = self.lock();
        let entry = entries.map.get(key)?;
        let age = servable_age(Instant::now() - entry.stored_at, self.bounds.max_stale)?;
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = entry.status;
        parts.headers = entry.headers.clone();
        let body = entry.body.clone();
        drop(entries);
        parts
            .headers
            .insert(AGE, HeaderValue::from(age_seconds(age)));
        Some((parts, body))
    }
}

impl<X> sealed::Sealed for LastGood<X> {}

impl<X, ReqB, B> Protocol<http::Request<ReqB>, http::Response<B>> for LastGood<X>
where
    X: KeyExtractor<http::Request<ReqB>> + Send + Sync + 'static,
    B: Body<Data = Bytes>,
{
    type Response = http::Response<LastGoodBody<B>>;
    type Key = Key<X, ReqB>;
    type Trace = Option<weir_core::observer::TraceId>;

    #[inline]
    fn key(&self, req: &http::Request<ReqB>) -> Option<Self::Key> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        Some((method.clone(), self.extractor.extract(req)?))
    }

    #[inline]
    fn trace(
        &self,
        req: &http::Request<ReqB>,
        wanted: bool,
    ) -> Option<weir_core::observer::TraceId> {
        trace(req, wanted)
    }

    fn trace_id(
        trace: &Option<weir_core::observer::TraceId>,
    ) -> Option<weir_core::observer::TraceId> {
        *trace
    }

    fn success(&self, response: http::Response<B>, key: Option<Self::Key>) -> Self::Response {
        let Some((method, key)) = key else {
            return response.map(LastGoodBody::live);
        };
        if !keeps(&response, self.store.bounds.max_entry_bytes) {
            // A newer answer that cannot be kept (too large, `no-store`, not a `200`): the
            // older one is no longer the last good answer of its key.
            self.store
                .forget(&StoredKey::new((method, key), &self.store.hasher));
            return response.map(LastGoodBody::live);
        }
        // A kept route: the key is detached from the request's buffers (it outlives the
        // request) and the head copied, once per answer of a kept route, never on other routes.
        let key = StoredKey::new((method, self.extractor.detach(key)), &self.store.hasher);
        let (parts, body) = response.into_parts();
        let mut headers = parts.headers.clone();
        weir_core::wire::strip_hop_by_hop(&mut headers);
        let recorder = Recorder {
            store: Arc::clone(&self.store),
            key,
            status: parts.status,
            headers,
            chunks: Vec::new(),
            len: 0,
            max: self.store.bounds.max_entry_bytes,
        };
        let mut body = LastGoodBody::recording(body, recorder);
        body.finish_if_ended();
        http::Response::from_parts(parts, body)
    }

    #[inline]
    fn pass(&self, response: http::Response<B>) -> Self::Response {
        response.map(LastGoodBody::live)
    }

    fn answer(
        &self,
        response: http::Response<B>,
        source: Source,
        outcome: Outcome,
    ) -> Self::Response {
        mark(response.map(LastGoodBody::live), source, outcome)
    }

    fn last_good(&self, key: &Self::Key, outcome: Outcome) -> Option<Self::Response> {
        // Looked up only when the primary failed; the lookup key is built from the request's
        // key (a clone of reference-counted parts, one small allocation for the trait object).
        let lookup = StoredKey::new(key.clone(), &self.store.hasher);
        let (parts, body) = self.store.get(&lookup)?;
        let response = http::Response::from_parts(parts, LastGoodBody::stored(body));
        Some(mark(response, Source::LastGood, outcome))
    }
}

/// Whether a successful response is kept: `200 OK`, not `no-store`, and a body known not to
/// exceed `max` (a body of unknown length is copied as it streams and dropped if it grows past).
fn keeps<B: Body>(response: &http::Response<B>, max: usize) -> bool {
    if response.status() != StatusCode::OK {
        return false;
    }
    let no_store = response.headers().get_all(CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|directive| directive.trim_ascii().eq_ignore_ascii_case(b"no-store"))
    });
    !no_store && response.body().size_hint().lower() <= max as u64
}

/// A copy of a kept route's response, filled as its body streams.
struct Recorder {
    store: Arc<Store>,
    key: StoredKey,
    status: StatusCode,
    headers: HeaderMap,
    chunks: Vec<Bytes>,
    len: usize,
    max: usize,
}

impl Recorder {
    /// Adds a chunk; `false` when the body has grown past the limit (the recording is dropped,
    /// and with it the older answer of its key, no longer the last good one).
    fn push(&mut self, chunk: &Bytes) -> bool {
        self.len += chunk.len();
        if self.len > self.max {
            self.store.forget(&self.key);
            return false;
        }
        self.chunks.push(chunk.clone());
        true
    }

    fn finish(self) {
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.into_iter().next().expect("one chunk"),
            _ => {
                let mut all = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    all.extend_from_slice(chunk);
                }
                all.freeze()
            }
        };
        self.store.insert(self.key, self.status, self.headers, body);
    }
}

pin_project! {
    /// The response body of a fallback layer with a [`LastGood`] source: the primary's body
    /// (copied as it streams, for a kept route), or a kept answer's bytes.
    pub struct LastGoodBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Live {
            #[pin]
            body: B,
            recorder: Option<Box<Recorder>>,
        },
        Stored {
            data: Option<Bytes>,
        },
    }
}

impl<B: Body> LastGoodBody<B> {
    const fn live(body: B) -> Self {
        Self {
            kind: Kind::Live {
                body,
                recorder: None,
            },
        }
    }

    // Boxed: a recorder is made only for a kept route's answer, and keeps the body of every
    // other response as small as the inner one plus a pointer.
    fn recording(body: B, recorder: Recorder) -> Self {
        Self {
            kind: Kind::Live {
                body,
                recorder: Some(Box::new(recorder)),
            },
        }
    }

    const fn stored(data: Bytes) -> Self {
        Self {
            kind: Kind::Stored { data: Some(data) },
        }
    }

    /// Stores the recording at once if the body is already over (an empty body may never be
    /// polled).
    fn finish_if_ended(&mut self) {
        if let Kind::Live { body, recorder } = &mut self.kind
            && body.is_end_stream()
            && let Some(recorder) = recorder.take()
        {
            recorder.finish();
        }
    }
}

impl<B> Body for LastGoodBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Live { mut body, recorder } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                match &frame {
                    Some(Ok(frame)) => {
                        if let (Some(data), Some(r)) = (frame.data_ref(), recorder.as_mut())
                            && !r.push(data)
                        {
                            *recorder = None;
                        }
                    }
                    Some(Err(_)) => *recorder = None,
                    None => {
                        if let Some(r) = recorder.take() {
                            r.finish();
                        }
                    }
                }
                // A body that knows it is over may not be polled again (hyper stops at
                // `is_end_stream`): the recording is stored now.
                if recorder.is_some()
                    && body.as_ref().get_ref().is_end_stream()
                    && let Some(r) = recorder.take()
                {
                    r.finish();
                }
                Poll::Ready(frame)
            }
            KindProj::Stored { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Live { body, .. } => body.is_end_stream(),
            Kind::Stored { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Live { body, .. } => body.size_hint(),
            Kind::Stored { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for LastGoodBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Live { .. } => "live",
            Kind::Stored { .. } => "stored",
        };
        f.debug_struct("LastGoodBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// #20.3: whatever is stored, in whatever order, the store keeps within its entry and
        /// byte bounds, its byte count is the sum of its entries' costs, and the answer stored
        /// last is kept whenever it fits at all.
        #[test]
        fn the_store_keeps_its_bounds(
            max_entries in 1usize..20,
            max_bytes in 200usize..4_000,
            inserts in proptest::collection::vec((0u16..50, 0usize..1_500), 1..200),
        ) {
            let store = Store::new(LastGoodSettings {
                max_entries,
                max_bytes,
                max_entry_bytes: max_bytes,
                max_stale: Duration::from_secs(60),
            });
            for (key, len) in inserts {
                let stored = StoredKey::new(key, &store.hasher);
                let body = Bytes::from(vec![b'x'; len]);
                store.insert(stored.clone(), StatusCode::OK, HeaderMap::new(), body);
                let entries = store.lock();
                prop_assert!(entries.map.len() <= max_entries);
                prop_assert!(entries.bytes <= max_bytes);
                prop_assert_eq!(entries.bytes, entries.map.values().map(|e| e.cost).sum::<usize>());
                prop_assert_eq!(entries.order.len(), entries.map.len());
                let fits = ENTRY_OVERHEAD + len <= max_bytes;
                prop_assert_eq!(entries.map.contains_key(&stored), fits);
                drop(entries);
                if fits {
                    let (_, body) = store.get(&stored).expect("fresh");
                    prop_assert_eq!(body.len(), len);
                }
            }
        }
    }
}
