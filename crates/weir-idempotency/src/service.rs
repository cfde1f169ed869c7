//! `Idempotency`: the service.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;
use weir_core::key::StableKey;
use weir_core::observer::TraceId;
use weir_core::wire::IDEMPOTENCY_KEY;
use weir_core::{KeyExtractor, Observer};

use crate::body::{BodyMode, Wrapped};
use crate::event::Event;
use crate::future::{ResponseFuture, problem};
use crate::key::{read_key, scope};
use crate::shared::{Counters, Shared};
use crate::store::IdempotencyStore;

const MISSING: &str = "this endpoint requires an Idempotency-Key header";

/// Makes a request with an `Idempotency-Key` run once: repeats get the stored response; made
/// by [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// - `poll_ready` readies the inner service.
/// - `call` on a method the layer does not cover, or on a request without a key (where none is
///   required), calls the inner service at once: one comparison of the method, one header
///   lookup, nothing kept. A request with a key moves the readied inner service into the future
///   (a clone stays here), which reads and fingerprints the body, asks the store, and either
///   runs the handler or answers for it.
/// - Dropping the future releases the key's claim.
/// - The responses' body type is `M`'s ([`BodyMode`]): an [`IdempotencyBody`] around the
///   handler's ([`Wrapped`], the default), or the handler's own
///   ([`HandlerBody`](crate::HandlerBody)).
///
/// [`IdempotencyBody`]: crate::IdempotencyBody
pub struct Idempotency<S, St, X, O = (), M = Wrapped> {
    inner: S,
    shared: Arc<Shared<St, X, O>>,
    mode: PhantomData<fn() -> M>,
}

impl<S, St, X, O, M> Idempotency<S, St, X, O, M> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<St, X, O>>) -> Self {
        Self {
            inner,
            shared,
            mode: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, ReqB, ResB, St, X, O, M> Service<Request<ReqB>> for Idempotency<S, St, X, O, M>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: Body<Data = Bytes> + From<Bytes>,
    ResB: Body<Data = Bytes>,
    St: IdempotencyStore,
    X: KeyExtractor<Request<ReqB>>,
    X::Key: StableKey,
    O: for<'a> Observer<Event<'a>>,
    M: BodyMode<ResB>,
{
    type Response = Response<M::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, ResB, St, X, O, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Always inlined: the plain path is a few comparisons and the inner call, and inlined into
    // the caller its request and future are not passed through one more frame.
    #[inline(always)]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The plain path, small enough to be inlined into the caller (so the request is moved
        // no more than without the layer): a method the layer does not cover, or a request
        // without a key where none is required, goes to the inner service as it is.
        let shared = &*self.shared;
        if !shared.methods.covers(req.method())
            || (!req.headers().contains_key(&IDEMPOTENCY_KEY)
                && !shared.settings.required.requires_any(|| req.uri().path()))
        {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        self.call_keyed(req)
    }
}

impl<S, St, X, O, M> Idempotency<S, St, X, O, M> {
    /// A covered request with a key (or without one where one is required): out of line, so
    /// `call`'s plain path stays small.
    #[inline(never)]
    fn call_keyed<ReqB, ResB>(
        &mut self,
        req: Request<ReqB>,
    ) -> ResponseFuture<S, ReqB, ResB, St, X, O, M>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
        ReqB: Body<Data = Bytes> + From<Bytes>,
        ResB: Body<Data = Bytes>,
        St: IdempotencyStore,
        X: KeyExtractor<Request<ReqB>>,
        X::Key: StableKey,
        O: for<'a> Observer<Event<'a>>,
        M: BodyMode<ResB>,
    {
        let shared = &self.shared;
        let scope = match read_key(req.headers(), shared.settings.max_key_len) {
            Ok(Some(key)) => scope(shared.extractor.extract(&req).as_ref(), key),
            Ok(None) => return refuse(shared, MISSING, req.headers()),
            Err(bad) => return refuse(shared, bad.detail(), req.headers()),
        };
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::reading(inner, parts, body, scope, Arc::clone(shared))
    }
}

/// A 400 answered before anything ran.
#[cold]
fn refuse<S, ReqB, ResB, St, X, O, M>(
    shared: &Shared<St, X, O>,
    reason: &'static str,
    headers: &http::HeaderMap,
) -> ResponseFuture<S, ReqB, ResB, St, X, O, M>
where
    S: Service<Request<ReqB>>,
    ResB: Body,
    St: IdempotencyStore,
    O: for<'a> Observer<Event<'a>>,
    M: BodyMode<ResB>,
{
    Counters::add(&shared.counters.refused);
    shared.emit(&Event::Refused {
        layer: &shared.name,
        status: StatusCode::BAD_REQUEST,
        reason,
        trace_id: TraceId::from_headers(headers),
    });
    ResponseFuture::answer(problem::<ResB, M>(StatusCode::BAD_REQUEST, reason, None))
}

impl<S: Clone, St, X, O, M> Clone for Idempotency<S, St, X, O, M> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, St, X, O, M> fmt::Debug for Idempotency<S, St, X, O, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
