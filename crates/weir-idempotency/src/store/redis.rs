//! [`RedisStore`]: claims and responses in Redis, so one key holds across every instance.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use weir_core::ConfigError;

use crate::state::{Claim, Digest, StoredResponse, Token};
use crate::store::{IdempotencyStore, MemoryStore};

/// Claims a key if it is free; else says what it holds. KEYS[1]: the key's hash. ARGV: the
/// fingerprint, the claim's token, the lease in ms. Every key has a TTL: the lease while
/// running, the TTL once done.
const CLAIM: &str = r"
local e = redis.call('HMGET', KEYS[1], 's', 'f', 'c', 'h', 'b')
if not e[1] then
  redis.call('HSET', KEYS[1], 's', 'r', 'f', ARGV[1], 'o', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
if e[2] ~= ARGV[1] then return {'mismatch'} end
if e[1] == 'r' then return {'in_flight'} end
if e[1] == 'n' then return {'not_replayable'} end
return {'replay', e[3], e[4], e[5]}
";

/// Completes a claim if it is still the token's. ARGV: the token, the TTL in ms, `d` (kept:
/// status, headers, body follow) or `n` (done, not replayable).
const COMPLETE: &str = r"
local e = redis.call('HMGET', KEYS[1], 's', 'o')
if e[1] ~= 'r' or e[2] ~= ARGV[1] then return 0 end
if ARGV[3] == 'd' then
  redis.call('HSET', KEYS[1], 's', 'd', 'c', ARGV[4], 'h', ARGV[5], 'b', ARGV[6])
else
  redis.call('HSET', KEYS[1], 's', 'n')
end
redis.call('HDEL', KEYS[1], 'o')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Releases (ARGV[2] = `0`) or renews for ARGV[2] ms a claim that is still the token's.
const RELEASE_OR_RENEW: &str = r"
local e = redis.call('HMGET', KEYS[1], 's', 'o')
if e[1] ~= 'r' or e[2] ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// What a [`RedisStore`] answers when Redis does not answer within its timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Run the handler without idempotency: nothing is claimed or kept during the outage
    /// (availability first; a retried request may run twice).
    FailOpen,
    /// The default: answer 503 with `Retry-After` (a request that must not run twice waits for
    /// Redis).
    #[default]
    FailClosed,
    /// Claim and keep in this instance's [`MemoryStore`]: a repeat that reaches this instance
    /// is still answered, one that reaches another instance may run again.
    Local,
}

impl FailurePolicy {
    /// The policy in `snake_case`, as weir-redis names it.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Local => "local",
        }
    }
}

/// The default prefix of every key the store writes.
const DEFAULT_PREFIX: &str = "weir:idem";
/// The default bound on one Redis round trip (connecting included).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Claims and stored responses in Redis (redis-rs's `ConnectionManager`, as weir-redis uses
/// it), so one key holds across every instance of a fleet; with the `redis` feature.
///
/// - **Atomic**: one Lua script claims (or answers replay, 409, 422), one completes; each
///   checks the claim's token, so an instance whose lease expired cannot overwrite its
///   successor's response.
/// - **Keys**: one hash per key, `<prefix>:{<scope digest>}`: the client key and the
///   `Idempotency-Key` reach Redis only as a fixed-size digest, and the braces are a Cluster
///   hash tag (every entry of a key on one slot). Every key has a TTL: the lease while the
///   handler runs (renewed by the layer), the TTL once done.
/// - **Outages**: a round trip bounded by `timeout` (500 ms); past it, the
///   [`FailurePolicy`] answers (default [`FailClosed`](FailurePolicy::FailClosed)). A
///   completion that fails leaves the claim to expire with its lease; a release or renewal is
///   sent in the background (it needs a Tokio runtime) and may be lost likewise.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: ConnectionManagerConfig,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    local: MemoryStore,
    instance: u64,
    next: AtomicU64,
    claim: Script,
    complete: Script,
    release_or_renew: Script,
    errors: AtomicU64,
}

/// Configures a [`RedisStore`]; from [`RedisStore::builder`].
#[must_use]
#[derive(Debug)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    local: Option<MemoryStore>,
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            policy: FailurePolicy::default(),
            local: None,
        }
    }

    /// Redis round trips that failed or timed out (each answered by the policy).
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Relaxed)
    }

    /// The policy.
    #[must_use]
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.policy
    }

    /// The Redis key of a scope: `<prefix>:{<hex digest>}`, the only key the store writes for
    /// it (the braces are a Redis Cluster hash tag: every script runs on that key's one slot).
    #[must_use]
    pub fn key_name(&self, scope: &Digest) -> String {
        self.inner.key(scope)
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `weir:idem`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a round trip (connecting included) may take before the policy answers
    /// (default 500 ms; more than zero).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to answer while Redis does not (default [`FailurePolicy::FailClosed`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The memory store of [`FailurePolicy::Local`] (default: [`MemoryStore::default`]).
    pub fn local_store(mut self, store: MemoryStore) -> Self {
        self.local = Some(store);
        self
    }

    /// Builds the store; it connects on first use, so it can be built while Redis is down.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a URL redis-rs cannot read, a zero timeout or an empty prefix.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let client = Client::open(self.url.as_str()).map_err(|_| {
            ConfigError::invalid("idempotency", "redis.url", "must be a redis:// URL")
        })?;
        if self.timeout.is_zero() {
            return Err(ConfigError::zero(
                "idempotency",
                "redis.timeout",
                "must be more than zero",
            ));
        }
        if self.prefix.is_empty() {
            return Err(ConfigError::missing(
                "idempotency",
                "redis.prefix",
                "must not be empty",
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        // Random per process: a claim's token is unique across a fleet.
        let instance = RandomState::new().build_hasher().finish() ^ u64::from(std::process::id());
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                config,
                conn: tokio::sync::OnceCell::new(),
                prefix: self.prefix,
                timeout: self.timeout,
                policy: self.policy,
                local: self.local.unwrap_or_default(),
                instance,
                next: AtomicU64::new(1),
                claim: Script::new(CLAIM),
                complete: Script::new(COMPLETE),
                release_or_renew: Script::new(RELEASE_OR_RENEW),
                errors: AtomicU64::new(0),
            }),
        })
    }
}

/// Tokens of Redis claims have their top bit set; the memory store's never do (its counter
/// stays far below 2^64), so a token says which store holds its claim.
const REDIS_BIT: u128 = 1 << 127;

fn is_local(token: Token) -> bool {
    token.get() & REDIS_BIT == 0
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Headers as `name: value` lines (a header value never holds a line break).
fn encode_headers(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

fn decode_headers(bytes: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii_start());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

impl Inner {
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
    }

    fn token(&self) -> Token {
        let n = self.next.fetch_add(1, Relaxed);
        Token::new(REDIS_BIT | (u128::from(self.instance) << 64) | u128::from(n))
    }

    fn key(&self, scope: &Digest) -> String {
        format!("{}:{{{}}}", self.prefix, scope.to_hex())
    }

    async fn claim(&self, scope: Digest, fingerprint: Digest, lease: Duration) -> Claim {
        let token = self.token();
        let round_trip = async {
            let mut conn = self.connection().await?;
            self.claim
                .key(self.key(&scope))
                .arg(fingerprint.to_hex())
                .arg(token.get().to_string())
                .arg(millis(lease))
                .invoke_async::<Vec<Vec<u8>>>(&mut conn)
                .await
        };
        let reply = match tokio::time::timeout(self.timeout, round_trip).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) | Err(_) => {
                self.errors.fetch_add(1, Relaxed);
                return match self.policy {
                    FailurePolicy::FailOpen => Claim::Bypass,
                    FailurePolicy::FailClosed => Claim::Unavailable,
                    FailurePolicy::Local => self.local.claim(scope, fingerprint, lease).await,
                };
            }
        };
        match reply.first().map(Vec::as_slice) {
            Some(b"claimed") => Claim::Claimed(token),
            Some(b"mismatch") => Claim::Mismatch,
            Some(b"in_flight") => Claim::InFlight,
            Some(b"not_replayable") => Claim::NotReplayable,
            Some(b"replay") if reply.len() == 4 => {
                let status = std::str::from_utf8(&reply[1])
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
                    .and_then(|s| StatusCode::from_u16(s).ok());
                match status {
                    Some(status) => Claim::Replay(Arc::new(StoredResponse::new(
                        status,
                        decode_headers(&reply[2]),
                        Bytes::from(reply[3].clone()),
                    ))),
                    None => Claim::NotReplayable,
                }
            }
            // A reply no script of this version writes (another version's entry).
            _ => Claim::NotReplayable,
        }
    }

    async fn complete(
        &self,
        scope: Digest,
        token: Token,
        response: Option<Arc<StoredResponse>>,
        ttl: Duration,
    ) {
        let round_trip = async {
            let mut conn = self.connection().await?;
            let mut invocation = self.complete.key(self.key(&scope));
            invocation.arg(token.get().to_string()).arg(millis(ttl));
            match &response {
                Some(r) => invocation
                    .arg("d")
                    .arg(r.status().as_u16())
                    .arg(encode_headers(r.headers()))
                    .arg(r.body().as_ref()),
                None => invocation.arg("n"),
            };
            invocation.invoke_async::<i64>(&mut conn).await
        };
        if !matches!(
            tokio::time::timeout(self.timeout, round_trip).await,
            Ok(Ok(_))
        ) {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    async fn release_or_renew(&self, scope: Digest, token: Token, lease: Option<Duration>) {
        let round_trip = async {
            let mut conn = self.connection().await?;
            self.release_or_renew
                .key(self.key(&scope))
                .arg(token.get().to_string())
                .arg(lease.map_or(0, millis))
                .invoke_async::<i64>(&mut conn)
                .await
        };
        if !matches!(
            tokio::time::timeout(self.timeout, round_trip).await,
            Ok(Ok(_))
        ) {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// Sends a release or a renewal in the background (called where the layer cannot wait).
    fn send(self: &Arc<Self>, scope: Digest, token: Token, lease: Option<Duration>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(self);
            runtime.spawn(async move { inner.release_or_renew(scope, token, lease).await });
        }
    }
}

/// The future of a [`RedisStore`] operation (boxed: it runs redis-rs's futures, which have no
/// name; a request with a key allocates anyway).
pub struct RedisFuture<T>(Pin<Box<dyn Future<Output = T> + Send>>);

impl<T> Future for RedisFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.0.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for RedisFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFuture").finish_non_exhaustive()
    }
}

impl IdempotencyStore for RedisStore {
    type ClaimFuture = RedisFuture<Claim>;
    type CompleteFuture = RedisFuture<()>;

    fn claim(&self, scope: Digest, fingerprint: Digest, lease: Duration) -> Self::ClaimFuture {
        let inner = Arc::clone(&self.inner);
        RedisFuture(Box::pin(async move {
            inner.claim(scope, fingerprint, lease).await
        }))
    }

    fn complete(
        &self,
        scope: Digest,
        token: Token,
        response: Option<Arc<StoredResponse>>,
        ttl: Duration,
    ) -> Self::CompleteFuture {
        if is_local(token) {
            let done = self.inner.local.complete(scope, token, response, ttl);
            return RedisFuture(Box::pin(done));
        }
        let inner = Arc::clone(&self.inner);
        RedisFuture(Box::pin(async move {
            inner.complete(scope, token, response, ttl).await;
        }))
    }

    fn release(&self, scope: Digest, token: Token) {
        if is_local(token) {
            self.inner.local.release(scope, token);
        } else {
            self.inner.send(scope, token, None);
        }
    }

    fn renew(&self, scope: Digest, token: Token, lease: Duration) {
        if is_local(token) {
            self.inner.local.renew(scope, token, lease);
        } else {
            self.inner.send(scope, token, Some(lease));
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("policy", &self.inner.policy)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_survive_the_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-a", HeaderValue::from_static("1: two"));
        headers.append("x-a", HeaderValue::from_static("3"));
        assert_eq!(decode_headers(&encode_headers(&headers)), headers);
    }

    /// The Redis key of a known client and key is a known string: the scope digest is fixed
    /// (see `key::scope`), so two instances and two versions meet on one key. Its only braces
    /// are the Cluster hash tag, the whole digest, and every script touches that one key
    /// (`KEYS[1]`), so a claim, completion, release or renewal is on one slot.
    #[test]
    fn the_key_layout_is_fixed_and_one_hash_tag_per_key() {
        let store = RedisStore::builder("redis://127.0.0.1:1").build().unwrap();
        let alice = crate::key::scope(Some(&"alice"), b"order-42");
        let name = store.key_name(&alice);
        assert_eq!(name, "weir:idem:{bcc401874a272a2102c44ccad9601c34d2f3eea7}");
        let tag = &name[name.find('{').unwrap() + 1..name.find('}').unwrap()];
        assert_eq!(tag, alice.to_hex());
        assert_eq!(name.matches('{').count(), 1);
        for script in [CLAIM, COMPLETE, RELEASE_OR_RENEW] {
            assert!(script.contains("KEYS[1]") && !script.contains("KEYS[2]"));
        }
        let bob = crate::key::scope(Some(&"bob"), b"order-42");
        assert_ne!(
            store.key_name(&bob),
            name,
            "one client's key is not another's"
        );
        let prefixed = RedisStore::builder("redis://127.0.0.1:1")
            .prefix("shop:idem")
            .build()
            .unwrap();
        assert_eq!(
            prefixed.key_name(&alice),
            "shop:idem:{bcc401874a272a2102c44ccad9601c34d2f3eea7}"
        );
    }

    #[test]
    fn tokens_say_which_store_holds_the_claim() {
        let store = RedisStore::builder("redis://127.0.0.1:1").build().unwrap();
        assert!(!is_local(store.inner.token()));
        assert!(is_local(Token::new(1)));
        let err = RedisStore::builder("not a url").build().unwrap_err();
        assert_eq!(err.field(), "redis.url");
    }
}
