//! `ResponseFuture`: reads and fingerprints the request, asks the store, runs the handler or
//! answers for it, and keeps the response.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderValue, RETRY_AFTER, SET_COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use weir_core::observer::TraceId;
use weir_core::wire::IDEMPOTENT_REPLAYED;
use weir_core::{Observer, response::problem_json};

use crate::body::{BodyMode, Wrapped};
use crate::event::Event;
use crate::key::Fingerprint;
use crate::shared::{ClaimGuard, Counters, Shared};
use crate::state::{Claim, Digest, StoredResponse};
use crate::store::IdempotencyStore;

const MISMATCH: &str = "this Idempotency-Key was used with another request (method, path or body)";
const IN_FLIGHT: &str = "a request with this Idempotency-Key is still in progress";
const NOT_REPLAYABLE: &str =
    "a request with this Idempotency-Key was done, and its response cannot be replayed";
const UNAVAILABLE: &str = "the idempotency store is unavailable";
pub(crate) const UNREADABLE: &str = "the request body could not be read";
pub(crate) const TOO_LARGE: &str = "the request body is too large for an idempotent request";
const BODY_FAILED: &str = "the response body could not be read";

/// The request body read so far: one chunk kept as it came (no copy for a body of one chunk),
/// or every chunk copied into one buffer (the chunks dropped as they are copied, so the body is
/// held once).
#[derive(Debug)]
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn push(&mut self, chunk: Bytes) {
        *self = match mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(chunk),
            Self::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + chunk.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
            Self::Many(mut all) => {
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, ReqB, ResB: Body, R, CF, CpF, G> {
        Passthrough {
            #[pin]
            fut: F,
        },
        Answer {
            response: Option<Response<R>>,
        },
        Reading {
            inner: Option<S>,
            parts: Option<http::request::Parts>,
            #[pin]
            body: ReqB,
            fingerprint: Fingerprint,
            collected: Collected,
            len: usize,
            scope: Digest,
        },
        Claiming {
            #[pin]
            fut: CF,
            inner: Option<S>,
            req: Option<(http::request::Parts, Bytes)>,
            scope: Digest,
        },
        Running {
            #[pin]
            fut: F,
            guard: Option<G>,
            // Boxed: only a request holding a claim (a covered method with a key) renews its lease;
            // requests without a key never reach this state, so their future stays small.
            renew: Pin<Box<Sleep>>,
        },
        Recording {
            parts: Option<http::response::Parts>,
            body: Option<Pin<Box<ResB>>>,
            chunks: Vec<Bytes>,
            len: usize,
            guard: Option<G>,
        },
        Completing {
            #[pin]
            fut: CpF,
            response: Option<Response<R>>,
            guard: Option<G>,
        },
    }
}

pin_project! {
    /// The future of an [`Idempotency`](crate::Idempotency) service.
    ///
    /// A request the layer does not cover (another method, no key) is the inner service's
    /// future and nothing else, so the plain path moves no more than the handler's own future;
    /// everything a request with a key needs (its body, fingerprint, claim, the response being
    /// kept) lives in one allocation, made only for such a request (which allocates anyway).
    pub struct ResponseFuture<S, ReqB, ResB, St, X, O, M = Wrapped>
    where
        S: Service<Request<ReqB>>,
        ResB: Body,
        St: IdempotencyStore,
        M: BodyMode<ResB>,
    {
        #[pin]
        kind: Kind<S::Future, KeyedBox<Keyed<S, ReqB, ResB, St, X, O, M>>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, K> {
        Plain {
            #[pin]
            fut: F,
        },
        Keyed {
            keyed: K,
        },
    }
}

/// The box of a keyed request's state, dropped out of line: the future's drop glue is then a
/// test of the variant and, for a plain request, the handler's future's drop, small enough to
/// be inlined where the caller drops the future.
struct KeyedBox<K>(Option<Pin<Box<K>>>);

impl<K> KeyedBox<K> {
    fn get(&mut self) -> Pin<&mut K> {
        self.0
            .as_mut()
            .expect("a keyed future holds its box")
            .as_mut()
    }
}

impl<K> Drop for KeyedBox<K> {
    #[inline]
    fn drop(&mut self) {
        if let Some(keyed) = self.0.take() {
            drop_keyed(keyed);
        }
    }
}

/// Drops a keyed request's state (its claim's guard releases the key).
#[inline(never)]
fn drop_keyed<K>(keyed: Pin<Box<K>>) {
    drop(keyed);
}

pin_project! {
    /// The state of a request with a key (or of an answer of the layer's own), boxed.
    struct Keyed<S, ReqB, ResB, St, X, O, M>
    where
        S: Service<Request<ReqB>>,
        ResB: Body,
        St: IdempotencyStore,
        M: BodyMode<ResB>,
    {
        #[pin]
        state: State<
            S,
            S::Future,
            ReqB,
            ResB,
            M::Body,
            St::ClaimFuture,
            St::CompleteFuture,
            ClaimGuard<St, X, O>,
        >,
        shared: Option<Arc<Shared<St, X, O>>>,
    }
}

impl<S, ReqB, ResB, St, X, O, M> ResponseFuture<S, ReqB, ResB, St, X, O, M>
where
    S: Service<Request<ReqB>>,
    ResB: Body,
    St: IdempotencyStore,
    M: BodyMode<ResB>,
{
    #[inline]
    pub(crate) const fn passthrough(fut: S::Future) -> Self {
        Self {
            kind: Kind::Plain { fut },
        }
    }

    fn keyed(keyed: Keyed<S, ReqB, ResB, St, X, O, M>) -> Self {
        Self {
            // Boxed: only a request that carries an `Idempotency-Key` on a covered method (it
            // talks to the store and allocates anyway); a plain request's future stays the
            // handler's own in the `Plain` variant, with no allocation.
            kind: Kind::Keyed {
                keyed: KeyedBox(Some(Box::pin(keyed))),
            },
        }
    }

    pub(crate) fn answer(response: Response<M::Body>) -> Self {
        Self::keyed(Keyed {
            state: State::Answer {
                response: Some(response),
            },
            shared: None,
        })
    }

    pub(crate) fn reading(
        inner: S,
        parts: http::request::Parts,
        body: ReqB,
        scope: Digest,
        shared: Arc<Shared<St, X, O>>,
    ) -> Self {
        let fingerprint = Fingerprint::start(&parts);
        Self::keyed(Keyed {
            state: State::Reading {
                inner: Some(inner),
                parts: Some(parts),
                body,
                fingerprint,
                collected: Collected::Empty,
                len: 0,
                scope,
            },
            shared: Some(shared),
        })
    }
}

/// A problem+json answer of the layer's own, with `Retry-After` when given.
pub(crate) fn problem<B: Body, M: BodyMode<B>>(
    status: StatusCode,
    detail: &str,
    retry_after: Option<Duration>,
) -> Response<M::Body> {
    let (content_type, body) = problem_json(status, detail, retry_after);
    let mut response = Response::new(M::whole(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// The replay of a stored response, marked `Idempotent-Replayed: true`.
fn replay<B: Body, M: BodyMode<B>>(stored: &StoredResponse) -> Response<M::Body> {
    let mut response = Response::new(M::whole(stored.body().clone()));
    *response.status_mut() = stored.status();
    *response.headers_mut() = stored.headers().clone();
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The headers of a response that are safe to replay: not those of one connection (RFC 9110
/// section 7.6.1, and those `Connection` names), not `Date` (a replay is answered now), not
/// `Content-Length` (the replay's body says it), not `Set-Cookie` (credentials are not kept in
/// a store, least of all a shared one).
fn replayable_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    weir_core::wire::strip_hop_by_hop(&mut kept);
    for name in [DATE, CONTENT_LENGTH, SET_COOKIE] {
        kept.remove(name);
    }
    kept
}

impl<S, ReqB, ResB, St, X, O, M> Future for ResponseFuture<S, ReqB, ResB, St, X, O, M>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes> + From<Bytes>,
    ResB: Body<Data = Bytes>,
    St: IdempotencyStore,
    O: for<'a> Observer<Event<'a>>,
    M: BodyMode<ResB>,
{
    type Output = Result<Response<M::Body>, S::Error>;

    // Always inlined: the plain path is the handler's poll and the response handed on.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Plain { fut } => {
                let response = ready!(fut.poll(cx))?;
                Poll::Ready(Ok(response.map(M::handler)))
            }
            KindProj::Keyed { keyed } => keyed.get().poll(cx),
        }
    }
}

impl<S, ReqB, ResB, St, X, O, M> Future for Keyed<S, ReqB, ResB, St, X, O, M>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes> + From<Bytes>,
    ResB: Body<Data = Bytes>,
    St: IdempotencyStore,
    O: for<'a> Observer<Event<'a>>,
    M: BodyMode<ResB>,
{
    type Output = Result<Response<M::Body>, S::Error>;

    // Out of line: a keyed request's poll is large, and inlined into `ResponseFuture::poll` it
    // would keep the plain path's poll from being inlined into the caller's.
    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passthrough { fut } => {
                    let response = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(response.map(M::handler)));
                }
                StateProj::Answer { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Reading {
                    inner,
                    parts,
                    mut body,
                    fingerprint,
                    collected,
                    len,
                    scope,
                } => {
                    let shared = this
                        .shared
                        .as_ref()
                        .expect("a keyed request has its shared state");
                    // The body is read whole before the handler runs (the fingerprint needs
                    // all of it); each chunk is hashed as it arrives.
                    let refused = loop {
                        if body.is_end_stream() {
                            break None;
                        }
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break None,
                            Some(Err(_)) => break Some((StatusCode::BAD_REQUEST, UNREADABLE)),
                            Some(Ok(frame)) => {
                                // Trailers are not part of the fingerprint; the handler gets
                                // the body without them.
                                if let Ok(data) = frame.into_data() {
                                    *len += data.len();
                                    if *len > shared.settings.max_request_bytes {
                                        break Some((StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
                                    }
                                    fingerprint.update(&data);
                                    collected.push(data);
                                }
                            }
                        }
                    };
                    if let Some((status, reason)) = refused {
                        Counters::add(&shared.counters.refused);
                        shared.emit(&Event::Refused {
                            layer: &shared.name,
                            status,
                            reason,
                            trace_id: parts
                                .as_ref()
                                .and_then(|parts| TraceId::from_headers(&parts.headers)),
                        });
                        let answer = problem::<ResB, M>(status, reason, None);
                        this.state.set(State::Answer {
                            response: Some(answer),
                        });
                        continue;
                    }
                    let digest = fingerprint.finish();
                    let bytes = mem::replace(collected, Collected::Empty).into_bytes();
                    let parts = parts.take().expect("read once");
                    let inner = inner.take();
                    let scope = *scope;
                    let fut = shared.store.claim(scope, digest, shared.settings.lease);
                    this.state.set(State::Claiming {
                        fut,
                        inner,
                        req: Some((parts, bytes)),
                        scope,
                    });
                }
                StateProj::Claiming {
                    fut,
                    inner,
                    req,
                    scope,
                } => {
                    let claim = ready!(fut.poll(cx));
                    let shared = this
                        .shared
                        .as_ref()
                        .expect("a keyed request has its shared state");
                    let layer = &shared.name;
                    let counters = &shared.counters;
                    // Read only for an event (never for a request that simply runs).
                    let trace_id = || {
                        req.as_ref()
                            .and_then(|(parts, _)| TraceId::from_headers(&parts.headers))
                    };
                    let answer = match claim {
                        Claim::Claimed(token) => {
                            Counters::add(&counters.executed);
                            let guard = ClaimGuard::new(Arc::clone(shared), *scope, token);
                            let (parts, bytes) = req.take().expect("claimed once");
                            let mut inner = inner.take().expect("called once");
                            let fut = inner.call(Request::from_parts(parts, ReqB::from(bytes)));
                            let every = shared.settings.lease / 3;
                            this.state.set(State::Running {
                                fut,
                                guard: Some(guard),
                                // Boxed: the lease's renewal timer, on a keyed request
                                // holding a claim only, never on the plain path.
                                renew: Box::pin(tokio::time::sleep(every)),
                            });
                            continue;
                        }
                        Claim::Bypass => {
                            Counters::add(&counters.bypassed);
                            shared.emit(&Event::Bypassed {
                                layer,
                                trace_id: trace_id(),
                            });
                            let (parts, bytes) = req.take().expect("claimed once");
                            let mut inner = inner.take().expect("called once");
                            let fut = inner.call(Request::from_parts(parts, ReqB::from(bytes)));
                            this.state.set(State::Passthrough { fut });
                            continue;
                        }
                        Claim::Replay(stored) => {
                            Counters::add(&counters.replayed);
                            shared.emit(&Event::Replayed {
                                layer,
                                status: stored.status(),
                                trace_id: trace_id(),
                            });
                            replay::<ResB, M>(&stored)
                        }
                        Claim::InFlight => {
                            Counters::add(&counters.in_flight);
                            shared.emit(&Event::InFlight {
                                layer,
                                trace_id: trace_id(),
                            });
                            problem::<ResB, M>(
                                StatusCode::CONFLICT,
                                IN_FLIGHT,
                                Some(shared.settings.retry_after),
                            )
                        }
                        Claim::Mismatch => {
                            Counters::add(&counters.mismatched);
                            shared.emit(&Event::Mismatch {
                                layer,
                                trace_id: trace_id(),
                            });
                            problem::<ResB, M>(StatusCode::UNPROCESSABLE_ENTITY, MISMATCH, None)
                        }
                        Claim::NotReplayable => {
                            Counters::add(&counters.not_replayable);
                            shared.emit(&Event::NotReplayable {
                                layer,
                                trace_id: trace_id(),
                            });
                            problem::<ResB, M>(StatusCode::CONFLICT, NOT_REPLAYABLE, None)
                        }
                        Claim::Unavailable => {
                            Counters::add(&counters.unavailable);
                            shared.emit(&Event::Unavailable {
                                layer,
                                trace_id: trace_id(),
                            });
                            problem::<ResB, M>(
                                StatusCode::SERVICE_UNAVAILABLE,
                                UNAVAILABLE,
                                Some(shared.settings.retry_after),
                            )
                        }
                    };
                    return Poll::Ready(Ok(answer));
                }
                StateProj::Running { fut, guard, renew } => {
                    let shared = this
                        .shared
                        .as_ref()
                        .expect("a keyed request has its shared state");
                    let result = match fut.poll(cx) {
                        Poll::Ready(result) => result,
                        Poll::Pending => {
                            // The handler still runs: the claim is renewed every third of its
                            // lease, so only the claim of a crashed instance expires.
                            while renew.as_mut().poll(cx).is_ready() {
                                if let Some(guard) = guard.as_ref() {
                                    guard.renew();
                                }
                                let every = shared.settings.lease / 3;
                                renew.as_mut().reset(Instant::now() + every);
                            }
                            return Poll::Pending;
                        }
                    };
                    let response = match result {
                        Ok(response) => response,
                        // An error of the handler: the claim is released (the guard drops), so a
                        // retry can run.
                        Err(e) => {
                            guard.take();
                            return Poll::Ready(Err(e));
                        }
                    };
                    if !shared.settings.stores(response.status()) {
                        Counters::add(&shared.counters.not_stored);
                        guard.take();
                        return Poll::Ready(Ok(response.map(M::handler)));
                    }
                    let guard = guard.take();
                    let (parts, body) = response.into_parts();
                    let max = shared.settings.max_response_bytes as u64;
                    if !M::STREAMS && body.size_hint().upper().is_none_or(|n| n > max) {
                        // A mode that cannot stream a response it does not keep reads only a
                        // body whose size hint says it fits; any other is passed on untouched,
                        // not kept, and its key is done (as a body over the limit).
                        let guard_ref = guard.as_ref().expect("a running request holds its claim");
                        let fut = shared.store.complete(
                            guard_ref.scope,
                            guard_ref.token,
                            None,
                            shared.settings.ttl,
                        );
                        Counters::add(&shared.counters.not_stored);
                        this.state.set(State::Completing {
                            fut,
                            response: Some(Response::from_parts(parts, M::handler(body))),
                            guard,
                        });
                        continue;
                    }
                    this.state.set(State::Recording {
                        parts: Some(parts),
                        body: Some(Box::pin(body)),
                        chunks: Vec::new(),
                        len: 0,
                        guard,
                    });
                }
                StateProj::Recording {
                    parts,
                    body,
                    chunks,
                    len,
                    guard,
                } => {
                    let shared = this
                        .shared
                        .as_ref()
                        .expect("a keyed request has its shared state");
                    let max = shared.settings.max_response_bytes;
                    let rest = body.as_mut().expect("recorded once");
                    // `None`: the body ended and is kept whole. `Some(frame)`: it cannot be
                    // kept (over the limit, or trailers), the frame read last goes first.
                    let (keep, last) = loop {
                        if rest.is_end_stream() {
                            break (true, None);
                        }
                        match ready!(rest.as_mut().poll_frame(cx)) {
                            None => break (true, None),
                            Some(Err(e)) => {
                                // A body that fails is not kept, and the claim is released.
                                guard.take();
                                if !M::STREAMS {
                                    // A mode that cannot pass the error on in the body answers
                                    // for the handler: the response could not be read.
                                    drop(e);
                                    let answer = problem::<ResB, M>(
                                        StatusCode::INTERNAL_SERVER_ERROR,
                                        BODY_FAILED,
                                        None,
                                    );
                                    return Poll::Ready(Ok(answer));
                                }
                                let frames = chunks.drain(..).map(Frame::data).collect();
                                let parts = parts.take().expect("recorded once");
                                let body = M::prefix(frames, Some(e), None);
                                return Poll::Ready(Ok(Response::from_parts(parts, body)));
                            }
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    *len += data.len();
                                    // A mode that cannot stream reads on to the end (a body
                                    // longer than its size hint said), and does not keep it.
                                    if *len > max && M::STREAMS {
                                        break (false, Some(Frame::data(data)));
                                    }
                                    chunks.push(data);
                                }
                                // Trailers are not kept; a mode that cannot stream drops them.
                                Err(trailers) => break (false, M::STREAMS.then_some(trailers)),
                            },
                        }
                    };
                    let keep = keep && *len <= max;
                    let parts = parts.take().expect("recorded once");
                    let guard_ref = guard.as_ref().expect("a recording holds its claim");
                    let (scope, token) = (guard_ref.scope, guard_ref.token);
                    let (stored, response) = if keep {
                        let whole = match chunks.len() {
                            0 => Bytes::new(),
                            1 => chunks.pop().expect("one chunk"),
                            _ => {
                                let mut all = BytesMut::with_capacity(*len);
                                for chunk in chunks.drain(..) {
                                    all.extend_from_slice(&chunk);
                                }
                                all.freeze()
                            }
                        };
                        let stored = StoredResponse::new(
                            parts.status,
                            replayable_headers(&parts.headers),
                            whole.clone(),
                        );
                        Counters::add(&shared.counters.stored);
                        let response = Response::from_parts(parts, M::whole(whole));
                        (Some(Arc::new(stored)), response)
                    } else {
                        let mut frames: VecDeque<Frame<Bytes>> =
                            chunks.drain(..).map(Frame::data).collect();
                        frames.extend(last);
                        Counters::add(&shared.counters.not_stored);
                        let rest = body.take().filter(|_| M::STREAMS);
                        let body = M::prefix(frames, None, rest);
                        (None, Response::from_parts(parts, body))
                    };
                    let fut = shared
                        .store
                        .complete(scope, token, stored, shared.settings.ttl);
                    let guard = guard.take();
                    this.state.set(State::Completing {
                        fut,
                        response: Some(response),
                        guard,
                    });
                }
                StateProj::Completing {
                    fut,
                    response,
                    guard,
                } => {
                    ready!(fut.poll(cx));
                    if let Some(guard) = guard.as_mut() {
                        guard.disarm();
                    }
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl<S, ReqB, ResB, St, X, O, M> fmt::Debug for ResponseFuture<S, ReqB, ResB, St, X, O, M>
where
    S: Service<Request<ReqB>>,
    ResB: Body,
    St: IdempotencyStore,
    M: BodyMode<ResB>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyed = match &self.kind {
            Kind::Plain { .. } => None,
            Kind::Keyed { keyed } => keyed.0.as_ref().map(|keyed| &keyed.state),
        };
        let state = match keyed {
            None => "passthrough",
            Some(State::Passthrough { .. }) => "passthrough",
            Some(State::Answer { .. }) => "answer",
            Some(State::Reading { .. }) => "reading",
            Some(State::Claiming { .. }) => "claiming",
            Some(State::Running { .. }) => "running",
            Some(State::Recording { .. }) => "recording",
            Some(State::Completing { .. }) => "completing",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
