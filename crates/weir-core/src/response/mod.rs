//! Turning errors into HTTP responses and gRPC statuses, written once for every weir layer:
//! [`ErrorResponseLayer`] answers every error of the service it wraps, so the service never fails
//! and mounts on an axum `Router` with no `HandleErrorLayer`. The status each error maps to is
//! [`http_status`] / [`grpc_code`], one mapping each.
//!
//! With the `axum` feature, [`Error`](crate::Error) is an `IntoResponse` too (the same response
//! as [`ErrorResponseLayer::new`]'s), so a handler can `?` the error of a weir-wrapped client;
//! with the `tonic` feature it converts into a `tonic::Status`.

mod body;
mod future;
#[cfg(feature = "axum")]
mod into_response;
#[cfg(feature = "tonic")]
mod into_status;
mod layer;
mod service;
mod status;
#[cfg(test)]
mod tests;

pub use self::body::{RefusalBody, ResponseBody, plain_text_body, problem_json, problem_json_body};
pub use self::future::ResponseFuture;
pub use self::layer::ErrorResponseLayer;
pub use self::service::ErrorResponse;
pub use self::status::{grpc_code, http_status};
