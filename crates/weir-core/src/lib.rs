#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accessors;
mod backoff;
mod body;
mod classify;
#[cfg(feature = "serde")]
pub mod config;
mod config_error;
mod deadline;
mod degrade;
mod error;
mod grpc;
mod hint;
mod key;
mod keyed;
mod name;
mod observer;
pub mod protocol;
mod ratelimit;
mod response;

pub use crate::backoff::{Backoff, FastRandom, Jitter, Random, SharedRandom};
pub use crate::body::{BodyEnd, EndBody, GuardedBody, OnBodyEnd};
pub use crate::classify::{
    AnyError, Classify, ClassifyTrailers, Failure, GrpcStatus, HttpStatus, Outcome,
};
pub use crate::config_error::ConfigError;
pub use crate::deadline::{
    Deadline, GRPC_TIMEOUT, InvalidTimeout, TIMEOUT_MS, decode_grpc_timeout, decode_timeout_ms,
    encode_grpc_timeout, encode_timeout_ms,
};
pub use crate::degrade::{Degraded, LoadLevel};
pub use crate::error::{BoxError, Error};
pub use crate::grpc::GrpcCode;
pub use crate::hint::{
    MAX_HINT, RateLimitItem, RateLimitPolicyItem, ServerHint, grpc_pushback_millis,
    parse_grpc_pushback, parse_ratelimit, parse_ratelimit_lenient, parse_ratelimit_policy,
    parse_ratelimit_policy_lenient, parse_retry_after, server_hint,
};
#[cfg(feature = "axum")]
pub use crate::key::Route;
pub use crate::key::{
    ApiKey, ApiKeyToken, Authority, Cidr, CidrError, DEFAULT_MAX_KEY_LEN, ForwardedHeader, Global,
    Header, KeyExtractor, KeyExtractorExt, MethodPath, MissingKey, Or, OrKey, Pair, PeerIp,
    Resolved, RouteKey,
};
pub use crate::keyed::{
    ByState, Idleness, KeyedConfig, KeyedMap, LastSeen, Prehashed, PrehashedHasher,
};
pub use crate::name::Name;
#[cfg(feature = "tracing")]
pub use crate::observer::Tracing;
#[cfg(feature = "metrics")]
pub use crate::observer::{EVENTS_TOTAL, Metrics};
pub use crate::observer::{Event, Level, Observer};
pub use crate::ratelimit::HeaderStyle;
pub use crate::ratelimit::RateLimitInfo;
pub use crate::response::{
    ErrorResponse, ErrorResponseLayer, RefusalBody, ResponseBody, ResponseFuture, grpc_code,
    http_status, plain_text_body, problem_json_body,
};
