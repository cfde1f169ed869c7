//! `IdempotentReplay`: the retry replay of the client presets and of
//! `ServiceBuilderExt::retries`, which never sends a non-idempotent HTTP request twice.

use std::future::{Ready, ready};

use weir_core::Deadline;
use weir_retry::{HttpReplay, Replay};
use weir_timeout::Carrier;

/// Replays a request by cloning it, as [`CloneRequest`](weir_retry::CloneRequest) does, but
/// applies HTTP's idempotency rules to an `http::Request`: GET, HEAD, OPTIONS, PUT, DELETE and
/// TRACE are retried; POST and PATCH only with an `Idempotency-Key` header (or after
/// [`retry_non_idempotent`](Self::retry_non_idempotent)); CONNECT never. A request that is not
/// HTTP (no HTTP parts, see [`Carrier`]) is always retried. An HTTP request's
/// [`Deadline`] (in its extensions) bounds the retries.
///
/// The replay of [`ClientStack::builder`](crate::ClientStack::builder)'s default stack and of
/// [`ServiceBuilderExt::retries`](crate::ServiceBuilderExt::retries): a stack that sees
/// `http::Request`s applies the idempotency rules whichever way it was built.
///
/// ```
/// use http::Request;
/// use weir::IdempotentReplay;
///
/// let replay = IdempotentReplay::new();
/// let post = Request::post("http://shop/orders").body(()).unwrap();
/// assert!(!replay.may_retry(&post));
/// let keyed = Request::post("http://shop/orders")
///     .header("idempotency-key", "order-7")
///     .body(())
///     .unwrap();
/// assert!(replay.may_retry(&keyed));
/// assert!(replay.may_retry(&42_u32)); // not HTTP: always
/// assert!(replay.retry_non_idempotent(true).may_retry(&post));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct IdempotentReplay {
    non_idempotent: bool,
}

impl IdempotentReplay {
    /// HTTP's idempotency rules for HTTP requests; every other request retried.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            non_idempotent: false,
        }
    }

    /// `true` retries POST and PATCH (every HTTP method but CONNECT) even without an
    /// `Idempotency-Key`. Only when the server tolerates duplicates: a POST whose attempt timed
    /// out may have been done.
    #[must_use]
    pub const fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.non_idempotent = yes;
        self
    }

    /// Whether `request` may be sent more than once.
    #[must_use]
    #[inline]
    pub fn may_retry<Req: Carrier>(&self, request: &Req) -> bool {
        match request.method() {
            None => true,
            Some(method) => self.may_retry_http(method, request.headers()),
        }
    }

    /// HTTP's rules, out of line: a request that is not HTTP never reaches them, and the code
    /// inlined in its `call` stays as small as `CloneRequest`'s.
    #[inline(never)]
    fn may_retry_http(self, method: &http::Method, headers: Option<&http::HeaderMap>) -> bool {
        headers.is_some_and(|headers| {
            HttpReplay::new()
                .non_idempotent(self.non_idempotent)
                .is_retryable(method, headers)
        })
    }

    #[inline]
    fn split<Req: Clone + Carrier>(&self, request: Req) -> (Req, Option<Req>) {
        if self.may_retry(&request) {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }
}

impl<Req: Clone + Carrier> Replay<Req> for IdempotentReplay {
    type Request = Req;
    type Copy = Req;
    type Prepare = Ready<(Req, Option<Req>)>;

    #[inline]
    fn prepare(&self, request: Req) -> Self::Prepare {
        ready(self.split(request))
    }

    #[inline]
    fn prepare_now(&self, request: Req) -> Result<(Req, Option<Req>), Self::Prepare> {
        Ok(self.split(request))
    }

    #[inline]
    fn replay(&self, copy: &Req) -> Req {
        copy.clone()
    }

    #[inline]
    fn deadline(&self, request: &Req) -> Option<Deadline> {
        request.extensions().and_then(Deadline::get)
    }
}
