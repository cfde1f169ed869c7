//! The typed parts of the faults: what an injected error is ([`MakeError`]), what the custom
//! behaviour does ([`Behaviour`]), and which clients are chosen ([`Select`]).

use std::fmt;

use weir_core::KeyExtractor;

/// Makes the error an error fault injects, as the inner service's error type `E`.
///
/// Implemented by [`NoError`] (no error fault: the default) and by every `Fn() -> X` where
/// `E: From<X>`: `|| weir_core::Error::overloaded()` for a `BoxError` service (a weir `Error`
/// kind, found again with `weir_core::Error::find`), `|| MyError::Reset` for your own type.
pub trait MakeError<E> {
    /// The error, or `None` when no error fault is configured.
    fn make(&self) -> Option<E>;

    /// Whether an error fault is configured at all.
    fn is_set(&self) -> bool {
        true
    }
}

/// No error fault configured (the default): an error probability above zero is then a
/// configuration error, as there is no error to inject.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoError;

impl<E> MakeError<E> for NoError {
    #[inline(always)]
    fn make(&self) -> Option<E> {
        None
    }

    fn is_set(&self) -> bool {
        false
    }
}

impl<F, X, E> MakeError<E> for F
where
    F: Fn() -> X,
    E: From<X>,
{
    #[inline]
    fn make(&self) -> Option<E> {
        Some(E::from(self()))
    }
}

/// The custom behaviour fault (Polly's "behaviour" chaos strategy): run on the request before
/// the inner service is called, which then is called as usual with the request as the
/// behaviour left it. A side effect (close a connection pool, flip a feature flag, drop a
/// cache) or a change to the request (strip a header, corrupt a field).
///
/// Implemented by [`NoBehaviour`] (the default) and every `Fn(&mut Req)`.
pub trait Behaviour<Req> {
    /// Runs the behaviour on `req`.
    fn run(&self, req: &mut Req);

    /// Whether a behaviour is configured at all.
    fn is_set(&self) -> bool {
        true
    }
}

/// No custom behaviour configured (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBehaviour;

impl<Req> Behaviour<Req> for NoBehaviour {
    #[inline(always)]
    fn run(&self, _req: &mut Req) {}

    fn is_set(&self) -> bool {
        false
    }
}

impl<F, Req> Behaviour<Req> for F
where
    F: Fn(&mut Req),
{
    #[inline]
    fn run(&self, req: &mut Req) {
        self(req);
    }
}

/// Which clients faults may hit: [`AnyClient`] (the default) or [`OnlyKeys`] (the clients whose
/// key, by a [`KeyExtractor`], is one of a list).
pub trait Select<Req> {
    /// Whether `req` may get faults.
    fn selects(&self, req: &Req) -> bool;
}

/// Every client (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyClient;

impl<Req> Select<Req> for AnyClient {
    #[inline(always)]
    fn selects(&self, _req: &Req) -> bool {
        true
    }
}

/// Only the clients whose key is in a list: a canary tenant, a test API key, one peer. From
/// [`ChaosBuilder::only_keys`](crate::ChaosBuilder::only_keys). A request without a key is not
/// selected.
#[derive(Clone)]
pub struct OnlyKeys<K, X> {
    extractor: K,
    keys: Vec<X>,
}

impl<K, X> OnlyKeys<K, X> {
    pub(crate) const fn new(extractor: K, keys: Vec<X>) -> Self {
        Self { extractor, keys }
    }
}

impl<K, X, Req> Select<Req> for OnlyKeys<K, X>
where
    K: KeyExtractor<Req, Key = X>,
    X: PartialEq,
{
    #[inline]
    fn selects(&self, req: &Req) -> bool {
        self.extractor
            .extract(req)
            .is_some_and(|key| self.keys.contains(&key))
    }
}

impl<K: fmt::Debug, X: fmt::Debug> fmt::Debug for OnlyKeys<K, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnlyKeys")
            .field("extractor", &self.extractor)
            .field("keys", &self.keys)
            .finish()
    }
}
