//! The pure table of claims and stored responses behind the memory store: no tokio, no
//! `Service`; every method takes `now`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// A 160-bit digest: the scope of a key (the client key and the `Idempotency-Key`), or the
/// fingerprint of a request (method, path and query, body).
///
/// SHA-1, chosen for being stable on every instance and build (a fleet compares digests through
/// Redis) and already in the workspace. Its known weakness, crafted collisions, gives nothing
/// away here: a fingerprint is compared only within one client's own key, so a client that
/// crafts two colliding bodies only gets its own first response back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub(crate) [u8; 20]);

impl Digest {
    /// The digest's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// A digest of these bytes, as a store reads one back.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The digest in lowercase hex (40 characters), as the Redis store writes it.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut hex = String::with_capacity(40);
        for b in self.0 {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..12])
    }
}

/// Who holds a claim: given by the store with [`Claim::Claimed`] and handed back to complete,
/// renew or release it, so an instance whose lease expired cannot overwrite its successor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(u128);

impl Token {
    /// A token of this value (unique among the claims a store has given).
    #[must_use]
    pub const fn new(id: u128) -> Self {
        Self(id)
    }

    /// Its value.
    #[must_use]
    pub const fn get(self) -> u128 {
        self.0
    }
}

/// A response kept to be replayed: its status, the headers safe to replay, its whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl StoredResponse {
    /// A stored response (the headers already filtered: see the crate's `# Semantics`).
    #[must_use]
    pub const fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// Its status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// Its headers.
    #[must_use]
    pub const fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Its body.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }

    /// What it costs a store to keep: body, headers, and a fixed overhead per entry.
    #[must_use]
    pub fn cost(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        ENTRY_OVERHEAD + headers + self.body.len()
    }
}

/// What a store answers a request with a key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Claim {
    /// The key is this request's: run the handler, then complete or release the claim.
    Claimed(Token),
    /// The key is done with the same fingerprint: replay this response.
    Replay(Arc<StoredResponse>),
    /// The key is claimed by a request still running with the same fingerprint: 409.
    InFlight,
    /// The key was used for a request with another fingerprint: 422.
    Mismatch,
    /// The key is done with the same fingerprint, but its response was not kept (too large,
    /// trailers): 409.
    NotReplayable,
    /// The store cannot answer and its policy is to fail open: run the handler, keep nothing.
    Bypass,
    /// The store cannot answer (down and failing closed, or full of running claims): 503.
    Unavailable,
}

/// What an entry costs beyond its response (the map slot, the order slot, the digests).
pub(crate) const ENTRY_OVERHEAD: usize = 128;

#[derive(Debug)]
enum Held {
    Running(Token),
    Done(Option<Arc<StoredResponse>>),
}

#[derive(Debug)]
struct Entry {
    fingerprint: Digest,
    held: Held,
    until: Instant,
    seq: u64,
    cost: usize,
}

/// Every key's claim or stored response, bounded in entries and bytes; expired entries are
/// dropped as new ones arrive, then the oldest finished ones while a bound would be broken.
/// Running claims are never evicted: a store full of them answers [`Claim::Unavailable`].
#[derive(Debug)]
pub(crate) struct Table {
    map: HashMap<Digest, Entry>,
    order: BTreeMap<u64, Digest>,
    next_seq: u64,
    next_token: u128,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    pub(crate) evicted: u64,
}

impl Table {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            next_token: 1,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(ENTRY_OVERHEAD),
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) const fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, scope: &Digest) -> Option<Entry> {
        let entry = self.map.remove(scope)?;
        self.order.remove(&entry.seq);
        self.bytes -= entry.cost;
        Some(entry)
    }

    fn insert(
        &mut self,
        scope: Digest,
        fingerprint: Digest,
        held: Held,
        until: Instant,
        cost: usize,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, scope);
        self.bytes += cost;
        self.map.insert(
            scope,
            Entry {
                fingerprint,
                held,
                until,
                seq,
                cost,
            },
        );
    }

    /// Makes room for one more entry of `cost`: expired entries first, then the oldest finished
    /// ones. False when only running claims are left and the bounds would still be broken.
    fn make_room(&mut self, cost: usize, now: Instant) -> bool {
        // The oldest entries are the likeliest to have expired: a look at the front each time.
        while let Some((_, scope)) = self.order.first_key_value() {
            let scope = *scope;
            if self.map.get(&scope).is_some_and(|e| e.until <= now) {
                self.remove(&scope);
            } else {
                break;
            }
        }
        let fits = |t: &Self| t.map.len() < t.max_entries && t.bytes + cost <= t.max_bytes;
        if fits(self) {
            return true;
        }
        // Full: every expired entry goes (a claim of a short lease may sit behind long TTLs),
        // then the oldest finished ones.
        let expired: Vec<Digest> = self
            .map
            .iter()
            .filter(|(_, e)| e.until <= now)
            .map(|(s, _)| *s)
            .collect();
        for scope in &expired {
            self.remove(scope);
        }
        let mut victims = Vec::new();
        let (mut len, mut bytes) = (self.map.len(), self.bytes);
        for scope in self.order.values() {
            if len < self.max_entries && bytes + cost <= self.max_bytes {
                break;
            }
            let entry = &self.map[scope];
            if matches!(entry.held, Held::Done(_)) {
                victims.push(*scope);
                len -= 1;
                bytes -= entry.cost;
            }
        }
        for scope in &victims {
            self.remove(scope);
            self.evicted += 1;
        }
        fits(self)
    }

    /// Answers a request with the key `scope` and the fingerprint `fingerprint`; claims the key
    /// for `lease` when it is free.
    pub(crate) fn claim(
        &mut self,
        scope: Digest,
        fingerprint: Digest,
        now: Instant,
        lease: Duration,
    ) -> Claim {
        if let Some(entry) = self.map.get(&scope) {
            if entry.until > now {
                if entry.fingerprint != fingerprint {
                    return Claim::Mismatch;
                }
                return match &entry.held {
                    Held::Running(_) => Claim::InFlight,
                    Held::Done(Some(response)) => Claim::Replay(Arc::clone(response)),
                    Held::Done(None) => Claim::NotReplayable,
                };
            }
            self.remove(&scope);
        }
        if !self.make_room(ENTRY_OVERHEAD, now) {
            return Claim::Unavailable;
        }
        let token = Token(self.next_token);
        self.next_token += 1;
        self.insert(
            scope,
            fingerprint,
            Held::Running(token),
            now + lease,
            ENTRY_OVERHEAD,
        );
        Claim::Claimed(token)
    }

    /// Finishes `token`'s claim on `scope`: the response is kept (or the key marked done and not
    /// replayable, `None`) for `ttl`. A response too large for the store's bytes is kept as not
    /// replayable. False when the claim is not `token`'s any more (its lease expired and another
    /// request took the key): nothing changes.
    pub(crate) fn complete(
        &mut self,
        scope: Digest,
        token: Token,
        response: Option<Arc<StoredResponse>>,
        now: Instant,
        ttl: Duration,
    ) -> bool {
        let Some(entry) = self.map.get(&scope) else {
            return false;
        };
        if !matches!(entry.held, Held::Running(t) if t == token) {
            return false;
        }
        let entry = self.remove(&scope).expect("present");
        let mut response = response;
        let mut cost = response.as_ref().map_or(ENTRY_OVERHEAD, |r| r.cost());
        if cost > self.max_bytes {
            response = None;
            cost = ENTRY_OVERHEAD;
        }
        if !self.make_room(cost, now) && response.is_some() {
            response = None;
            cost = ENTRY_OVERHEAD;
        }
        // A finished key keeps its place even when the store is full of running claims: the
        // claim it replaces was counted already.
        self.insert(
            scope,
            entry.fingerprint,
            Held::Done(response),
            now + ttl,
            cost,
        );
        true
    }

    /// Drops `token`'s claim on `scope` (the handler failed, panicked or was cancelled), so a
    /// retry can run. False when the claim is not `token`'s.
    pub(crate) fn release(&mut self, scope: Digest, token: Token) -> bool {
        if self
            .map
            .get(&scope)
            .is_some_and(|e| matches!(e.held, Held::Running(t) if t == token))
        {
            self.remove(&scope);
            return true;
        }
        false
    }

    /// Extends `token`'s claim on `scope` to `now + lease`. False when the claim is not
    /// `token`'s any more, or has expired.
    pub(crate) fn renew(
        &mut self,
        scope: Digest,
        token: Token,
        now: Instant,
        lease: Duration,
    ) -> bool {
        match self.map.get_mut(&scope) {
            Some(e) if e.until > now && matches!(e.held, Held::Running(t) if t == token) => {
                e.until = now + lease;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(3_600);

    /// An explicit instant to start from (the pure table never reads a clock itself).
    fn origin() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn d(n: u8) -> Digest {
        Digest([n; 20])
    }

    fn response(len: usize) -> Arc<StoredResponse> {
        Arc::new(StoredResponse::new(
            StatusCode::CREATED,
            HeaderMap::new(),
            Bytes::from(vec![b'x'; len]),
        ))
    }

    #[test]
    fn a_key_runs_once_then_replays_and_refuses_another_fingerprint() {
        let mut t = Table::new(10, 1 << 20);
        let now = origin();
        let Claim::Claimed(token) = t.claim(d(1), d(9), now, LEASE) else {
            panic!("free key")
        };
        assert!(matches!(t.claim(d(1), d(9), now, LEASE), Claim::InFlight));
        assert!(matches!(t.claim(d(1), d(8), now, LEASE), Claim::Mismatch));
        assert!(t.complete(d(1), token, Some(response(3)), now, TTL));
        match t.claim(d(1), d(9), now, LEASE) {
            Claim::Replay(r) => assert_eq!(r.body().len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.claim(d(1), d(8), now, LEASE), Claim::Mismatch));
        // After the TTL the key is free again.
        assert!(matches!(
            t.claim(d(1), d(8), now + TTL, LEASE),
            Claim::Claimed(_)
        ));
    }

    #[test]
    fn a_lease_expires_unless_renewed_and_the_old_holder_cannot_complete() {
        let mut t = Table::new(10, 1 << 20);
        let now = origin();
        let Claim::Claimed(old) = t.claim(d(1), d(9), now, LEASE) else {
            panic!()
        };
        assert!(t.renew(d(1), old, now + LEASE / 2, LEASE));
        assert!(matches!(
            t.claim(d(1), d(9), now + LEASE, LEASE),
            Claim::InFlight
        ));
        let later = now + LEASE / 2 + LEASE;
        let Claim::Claimed(new) = t.claim(d(1), d(9), later, LEASE) else {
            panic!("the lease expired")
        };
        assert!(!t.complete(d(1), old, Some(response(1)), later, TTL));
        assert!(!t.release(d(1), old));
        assert!(t.complete(d(1), new, None, later, TTL));
        assert!(matches!(
            t.claim(d(1), d(9), later, LEASE),
            Claim::NotReplayable
        ));
    }

    #[test]
    fn the_bounds_evict_finished_keys_never_running_ones() {
        let mut t = Table::new(2, 1 << 20);
        let now = origin();
        let Claim::Claimed(a) = t.claim(d(1), d(9), now, LEASE) else {
            panic!()
        };
        assert!(t.complete(d(1), a, Some(response(1)), now, TTL));
        let Claim::Claimed(_) = t.claim(d(2), d(9), now, LEASE) else {
            panic!()
        };
        // Full: the finished key 1 goes, the running key 2 stays.
        assert!(matches!(t.claim(d(3), d(9), now, LEASE), Claim::Claimed(_)));
        assert_eq!(t.evicted, 1);
        assert!(matches!(t.claim(d(2), d(9), now, LEASE), Claim::InFlight));
        // Full of running claims: no room.
        assert!(matches!(
            t.claim(d(4), d(9), now, LEASE),
            Claim::Unavailable
        ));
        // A response larger than the whole store is kept as not replayable.
        let mut small = Table::new(10, 1_000);
        let Claim::Claimed(b) = small.claim(d(5), d(9), now, LEASE) else {
            panic!()
        };
        assert!(small.complete(d(5), b, Some(response(5_000)), now, TTL));
        assert!(matches!(
            small.claim(d(5), d(9), now, LEASE),
            Claim::NotReplayable
        ));
        assert!(small.bytes() <= 1_000);
    }
}
