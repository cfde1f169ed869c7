//! `Timeout`: the service (poll_ready and call only).

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;
use tower_service::Service;
use weir_core::protocol::{Auto, Protocol, is_grpc};
use weir_core::{
    BoxError, Deadline, Error, Observer, wire::GRPC_TIMEOUT, wire::TIMEOUT_MS,
    wire::decode_grpc_timeout, wire::decode_timeout_ms,
};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::policy::TimeoutPolicy;
use crate::shared::Parts;
use crate::state::{self, Start};

/// Bounds how long the inner service may take; made by [`TimeoutLayer`](crate::TimeoutLayer).
///
/// `poll_ready` is the inner service's. `call` works out the deadline in force (the layer's
/// own timeout, an incoming header in server mode, a deadline already in the request: the
/// earliest wins), stores it in an HTTP request's extensions (in server mode only when the
/// request carried one, unless `expose_deadline(true)`), writes it out in client mode, refuses
/// at once a request that has no time left, and otherwise calls the inner service.
///
/// `D` is the timeout policy ([`TimeoutPolicy`]), `O` the observer and `P` the protocol
/// ([`Auto`], the default: an `http::Request`'s deadline is read and written, a standard
/// library type only timed; [`Plain`](weir_core::protocol::Plain): any type, only timed;
/// [`Http`](weir_core::protocol::Http): `http::Request`s only), chosen on the builder.
#[derive(Clone)]
pub struct Timeout<S, D = Duration, O = (), P = Auto> {
    inner: S,
    config: Parts<D, O>,
    _protocol: PhantomData<P>,
}

impl<S, D, O, P> Timeout<S, D, O, P> {
    pub(crate) const fn new(inner: S, config: Parts<D, O>) -> Self {
        Self {
            inner,
            config,
            _protocol: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, D, O, P, Req> Service<Req> for Timeout<S, D, O, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    D: TimeoutPolicy<Req>,
    O: for<'a> Observer<Event<'a>> + Clone,
    P: Protocol<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, O>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Inlined whole into the caller's `call`: left out of line, an HTTP request was copied into
    // this call's place and out of it, and the future built in a temporary and copied (the
    // figures, and what the inlining costs a client stack, are in benches/README.md,
    // weir-timeout).
    #[inline(always)]
    fn call(&mut self, mut req: Req) -> Self::Future {
        // A layer with a handle: the settings in force now, one version for the whole call.
        self.config.refresh();
        let config = &self.config;
        // Server mode set to refuse a malformed timeout header (#16.2): one flag read otherwise.
        if config.flags.reject_malformed() && P::headers(&req).is_some_and(malformed_timeout) {
            return ResponseFuture::rejected(
                malformed(config),
                config.name.clone(),
                config.observer.clone(),
            );
        }
        // An empty header map holds no malformed header: not handed out of line (a call on
        // every request of a server stack otherwise).
        #[cfg(feature = "tracing")]
        if let (Some(_), false, Some(headers)) = (
            config.incoming,
            config.flags.reject_malformed(),
            P::headers(&req),
        ) && !headers.is_empty()
        {
            log_ignored(headers, &config.name);
        }
        let own = config.policy.as_ref().and_then(|p| p.timeout(&req));
        // Asked of the request's headers, not of `P::HTTP`: the same test, folded the same way
        // for a request with no HTTP parts, but a branch settled at the MIR level left LLVM a
        // smaller `call` that it then laid out worse (7 more instructions per call on
        // `timeout/weir-timeout`, 85 against 91; benches/README.md, #17.2).
        let start = if P::headers(&req).is_some() {
            start_http::<_, _, P, _>(config, &mut req, own)
        } else {
            state::start_relative(own).ok_or_else(|| Deadline::at(Instant::now()))
        };
        let start = match start {
            Ok(start) => start,
            Err(deadline) => {
                return ResponseFuture::rejected(
                    expired(config, deadline),
                    config.name.clone(),
                    config.observer.clone(),
                );
            }
        };
        // Built in one place, not in a branch: see weir-load-shed's `call`.
        ResponseFuture::running(
            self.inner.call(req),
            start,
            config.name.clone(),
            config.observer.clone(),
        )
    }
}

/// The error of a request whose deadline has passed before it was sent, and its event. Out of
/// line, and only the error: the future is built where `call` builds it, so the happy path's
/// future is not assembled in a temporary and copied.
#[cold]
#[inline(never)]
fn expired<D, O>(config: &Parts<D, O>, deadline: Deadline) -> Error
where
    O: for<'a> Observer<Event<'a>>,
{
    config.observer.on_event(&Event::Expired {
        layer: &config.name,
        deadline,
    });
    // Never sent: whatever deadline ran out, the upstream did not fail (#16.1).
    Error::caller_deadline().with_layer(config.name.clone())
}

/// The error of a request refused for a malformed timeout header (#16.2): 400 /
/// `INVALID_ARGUMENT`. Out of line, as [`expired`].
#[cold]
#[inline(never)]
fn malformed<D, O>(config: &Parts<D, O>) -> Error {
    Error::bad_request()
        .with_layer(config.name.clone())
        .with_source("malformed grpc-timeout or x-timeout-ms header")
}

/// Whether `headers` carry a `grpc-timeout` or an `x-timeout-ms` that does not parse. Only read
/// by a layer set to refuse them, or to log them.
#[inline(never)]
fn malformed_timeout(headers: &HeaderMap) -> bool {
    if headers.is_empty() {
        return false;
    }
    headers
        .get(GRPC_TIMEOUT)
        .is_some_and(|v| decode_grpc_timeout(v.as_bytes()).is_err())
        || headers
            .get(TIMEOUT_MS)
            .is_some_and(|v| decode_timeout_ms(v.as_bytes()).is_err())
}

/// Server mode's default (#16.2): a malformed timeout header is ignored, and logged at debug
/// level. The headers are looked at only when that level is enabled.
#[cfg(feature = "tracing")]
#[inline(never)]
fn log_ignored(headers: &HeaderMap, name: &weir_core::Name) {
    if tracing::enabled!(tracing::Level::DEBUG) && malformed_timeout(headers) {
        tracing::debug!(
            layer = %name,
            grpc_timeout = ?headers.get(GRPC_TIMEOUT),
            x_timeout_ms = ?headers.get(TIMEOUT_MS),
            "ignored a malformed incoming timeout header"
        );
    }
}

/// The start of an HTTP request's timer: its deadline is fixed now, stored in its extensions
/// (the earliest wins) and, in client mode, written in its headers. `Err` carries the deadline
/// in force when no time is left.
#[inline(always)]
fn start_http<D, O, P: Protocol<Req>, Req>(
    config: &Parts<D, O>,
    req: &mut Req,
    own: Option<Duration>,
) -> Result<Start, Deadline> {
    // Server mode reads the client's deadline, capped; client mode reads one the request
    // already carries (a caller's own `grpc-timeout`), uncapped.
    // An empty header map holds no deadline: not looked up (two hashed look-ups otherwise).
    let incoming = match (
        P::headers(req),
        config.incoming.or(config.propagate.map(|_| Duration::MAX)),
    ) {
        (Some(headers), Some(cap)) if !headers.is_empty() => Deadline::from_headers(headers, cap),
        _ => None,
    };
    // Server mode's floor (#16.2): a deadline too short to do anything in is refused or raised.
    let incoming = match (incoming, config.floor(), config.incoming) {
        (Some(d), Some((floor, below)), Some(_)) => {
            Some(state::apply_floor(d, Instant::now(), floor, below)?)
        }
        (incoming, ..) => incoming,
    };
    let Some(extensions) = P::extensions_mut(req) else {
        return state::start_relative(own).ok_or_else(|| Deadline::at(Instant::now()));
    };
    let outer = Deadline::get(extensions);
    if !config.flags.expose() && incoming.is_none() && outer.is_none() {
        // Nothing to store and nobody else's deadline (server mode, no deadline sent): as for a
        // request with no HTTP parts, the clock is read only if the call does not answer at
        // once.
        return state::start_relative(own).ok_or_else(|| Deadline::at(Instant::now()));
    }
    let now = Instant::now();
    let own = state::deadline_after(now, own);
    let deadline = state::earliest(own, incoming);
    // The earliest wins, in the extensions too (an outer deadline is never extended).
    let deadline = match deadline {
        Some(d) => Some(d.set_earliest(extensions)),
        None => outer,
    };
    let start = state::start_at(deadline, own, now).ok_or(deadline.unwrap_or(Deadline::at(now)))?;
    if let (Some(allowance), Some(headers)) = (config.propagate, P::headers_mut(req)) {
        match start {
            Start::At(d, _) => {
                if !d.write_headers(headers, is_grpc(headers), allowance) {
                    return Err(d);
                }
            }
            // No deadline in force: a timeout header still there did not parse (#16.6). It is
            // never forwarded as it came.
            Start::Never | Start::After(_) => drop_timeout_headers(headers),
        }
    }
    Ok(start)
}

/// Removes the request's `grpc-timeout` and `x-timeout-ms` (malformed ones: client mode never
/// forwards them). Out of line: only a request with a malformed timeout header and no deadline
/// gets here with anything to remove.
#[cold]
#[inline(never)]
fn drop_timeout_headers(headers: &mut HeaderMap) {
    if !headers.is_empty() {
        headers.remove(GRPC_TIMEOUT);
        headers.remove(TIMEOUT_MS);
    }
}

impl<S: fmt::Debug, D, O, P> fmt::Debug for Timeout<S, D, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}
