#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accessors;
pub mod backoff;
pub mod body;
pub mod classify;
#[cfg(feature = "serde")]
pub mod config;
mod config_error;
mod deadline;
pub mod degrade;
mod error;
pub mod inspect;
pub mod key;
pub mod keyed;
pub mod lanes;
mod name;
pub mod observer;
mod outcome;
pub mod protocol;
pub mod reconfigure;
pub mod response;
pub mod wire;

pub use crate::config_error::ConfigError;
pub use crate::deadline::Deadline;
pub use crate::error::{BoxError, Error};
pub use crate::key::extractor::KeyExtractor;
pub use crate::name::Name;
pub use crate::observer::vocab::{Event, Level, Observer};
pub use crate::outcome::{Classify, Failure, Outcome};

// The names weir-core had at its root before #17.7, kept (hidden) until every crate of the
// workspace uses the module paths above; removed in the same release.
#[doc(hidden)]
pub use crate::backoff::{Backoff, FastRandom, Jitter, Random, SharedRandom};
#[doc(hidden)]
pub use crate::body::{BodyEnd, EndBody, GuardedBody, OnBodyEnd};
#[doc(hidden)]
pub use crate::classify::{AnyError, ClassifyTrailers, GrpcStatus, HttpStatus};
#[doc(hidden)]
pub use crate::degrade::{Degraded, LoadLevel};
#[doc(hidden)]
#[cfg(feature = "axum")]
pub use crate::key::Route;
#[doc(hidden)]
pub use crate::key::{
    ApiKey, ApiKeyToken, Authority, Cidr, CidrError, DEFAULT_MAX_KEY_LEN, ForwardedHeader, Global,
    Header, KeyExtractorExt, MethodPath, MissingKey, Or, OrKey, Pair, PeerIp, Resolved, RouteKey,
};
#[doc(hidden)]
pub use crate::keyed::{
    ByState, Idleness, KeyedConfig, KeyedMap, LastSeen, Prehashed, PrehashedHasher,
};
#[doc(hidden)]
#[cfg(feature = "tracing")]
pub use crate::observer::Tracing;
#[doc(hidden)]
#[cfg(feature = "metrics")]
pub use crate::observer::{EVENTS_TOTAL, Metrics};
#[doc(hidden)]
pub use crate::response::{
    ErrorResponse, ErrorResponseLayer, RefusalBody, ResponseBody, ResponseFuture, grpc_code,
    http_status, plain_text_body, problem_json_body,
};
#[doc(hidden)]
pub use crate::wire::{
    GRPC_TIMEOUT, GrpcCode, HeaderStyle, InvalidTimeout, MAX_HINT, RateLimitInfo, RateLimitItem,
    RateLimitPolicyItem, ServerHint, TIMEOUT_MS, decode_grpc_timeout, decode_timeout_ms,
    encode_grpc_timeout, encode_timeout_ms, grpc_pushback_millis, parse_grpc_pushback,
    parse_ratelimit, parse_ratelimit_lenient, parse_ratelimit_policy,
    parse_ratelimit_policy_lenient, parse_retry_after, server_hint,
};
