//! What the layer reads of a request beyond weir-core's request side (its path) and how it
//! answers: [`Plain`] passes responses through; [`Http`] wraps the body (to fail it midway) and
//! can answer with a status or a gRPC code. The modes are weir-core's
//! (`weir_core::protocol`); this role is the chaos layer's own, sealed.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use weir_core::protocol::{Http, Plain};
use weir_core::wire::{GRPC_MESSAGE, GRPC_STATUS, GrpcCode};

use crate::body::ChaosBody;

/// The message of every gRPC response the layer injects.
const INJECTED: &str = "injected by weir-chaos";

/// How a chaos layer reads requests and hands responses back: `weir_core::protocol::`[`Plain`]
/// (the default, any request and response type) or [`Http`] (from
/// [`ChaosLayer::http`](crate::ChaosLayer::http), `http::Request` / `http::Response`). Sealed:
/// the builder chooses the mode.
///
/// - [`Plain`]: responses pass through unchanged; no path, no header, no deadline is read, so
///   a route prefix never matches, the fault header is never read and a stall lasts until the
///   caller drops the call.
/// - [`Http`]: the response body becomes a [`ChaosBody`] (passed through unless a body fault
///   cuts it); an injected status is an empty response with that status, or, to a gRPC request,
///   a trailers-only gRPC response with the configured code.
pub trait Protocol<Req, Res>: weir_core::protocol::Protocol<Req> + sealed::Sealed {
    /// The layer's response type.
    type Response;

    /// The request's path, if it is an HTTP request.
    fn path(req: &Req) -> Option<&str>;

    /// The inner service's response, handed back; its body fails after `fail_after` bytes when
    /// that is `Some` (HTTP mode only).
    fn pass(response: Res, fail_after: Option<u64>) -> Self::Response;

    /// An injected answer: `status`, or to a gRPC request (`grpc` is `Some`) a trailers-only
    /// response with that code. `None` in [`Plain`] mode.
    fn status(status: StatusCode, grpc: Option<GrpcCode>) -> Option<Self::Response>;
}

impl<Req, Res> Protocol<Req, Res> for Plain {
    type Response = Res;

    #[inline(always)]
    fn path(_req: &Req) -> Option<&str> {
        None
    }

    #[inline(always)]
    fn pass(response: Res, _fail_after: Option<u64>) -> Res {
        response
    }

    #[inline(always)]
    fn status(_status: StatusCode, _grpc: Option<GrpcCode>) -> Option<Res> {
        None
    }
}

impl<ReqB, ResB> Protocol<http::Request<ReqB>, http::Response<ResB>> for Http {
    type Response = http::Response<ChaosBody<ResB>>;

    #[inline]
    fn path(req: &http::Request<ReqB>) -> Option<&str> {
        Some(req.uri().path())
    }

    #[inline]
    fn pass(response: http::Response<ResB>, fail_after: Option<u64>) -> Self::Response {
        match fail_after {
            None => response.map(ChaosBody::pass),
            Some(after) => response.map(|body| ChaosBody::failing(body, after)),
        }
    }

    fn status(status: StatusCode, grpc: Option<GrpcCode>) -> Option<Self::Response> {
        let mut response = http::Response::new(ChaosBody::empty());
        match grpc {
            None => *response.status_mut() = status,
            Some(code) => {
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert(GRPC_STATUS, HeaderValue::from_static(code.as_str()));
                headers.insert(GRPC_MESSAGE, HeaderValue::from_static(INJECTED));
            }
        }
        Some(response)
    }
}

/// Seals [`Protocol`].
pub(crate) mod sealed {
    /// The seal.
    pub trait Sealed {}
    impl Sealed for weir_core::protocol::Plain {}
    impl Sealed for weir_core::protocol::Http {}
}

/// The header a request may carry to ask for faults, when the layer allows it
/// ([`ChaosBuilder::fault_header`](crate::ChaosBuilder::fault_header); off by default):
/// `x-weir-fault: status=503, latency=200ms`. See the crate docs for its grammar.
pub const FAULT_HEADER: http::HeaderName = http::HeaderName::from_static("x-weir-fault");
