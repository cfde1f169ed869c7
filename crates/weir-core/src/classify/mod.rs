//! Failure classification: the ready-made classifiers. The trait every weir layer takes,
//! [`Classify`](crate::Classify), and what it returns, [`Outcome`](crate::Outcome) and
//! [`Failure`](crate::Failure), are at the crate root.
//!
//! - [`AnyError`], the default of every layer: every `Ok` is a success, every `Err` a failure
//!   (weir's own rejections ignored);
//! - [`HttpStatus`]: reads HTTP responses (5xx, 408, 429 retryable; other 4xx not failures of the
//!   server);
//! - [`GrpcStatus`]: reads gRPC statuses (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
//!   `DEADLINE_EXCEEDED`, ...), in the headers as a [`Classify`](crate::Classify) and in the
//!   trailers as a [`ClassifyTrailers`].

mod any_error;
mod grpc_status;
mod http_status;
#[cfg(test)]
mod tests;

pub use self::any_error::AnyError;
pub use self::grpc_status::{ClassifyTrailers, GrpcStatus};
pub use self::http_status::HttpStatus;
