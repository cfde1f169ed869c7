use std::time::Duration;

use ::http::StatusCode;

use super::*;
use crate::degrade::Degraded;
use crate::wire::*;
use crate::{BoxError, Classify, Error, Failure, Outcome};

fn http(code: u16, headers: &[(&str, &str)]) -> Result<http::Response<()>, BoxError> {
    let mut builder = http::Response::builder().status(code);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(()).expect("valid response"))
}

#[test]
fn any_error_counts_foreign_errors_and_timeouts_as_transient() {
    let io: Result<(), BoxError> = Err(std::io::Error::other("reset").into());
    assert_eq!(
        AnyError.classify(&io),
        Outcome::Failure(Failure::transient())
    );
    let timeout: Result<(), BoxError> = Err(Error::timeout().into());
    assert!(AnyError.classify(&timeout).is_retryable());
    let ok: Result<(), BoxError> = Ok(());
    assert_eq!(AnyError.classify(&ok), Outcome::Success);
}

#[test]
fn weir_rejections_are_ignored_never_retried() {
    for err in [
        Error::circuit_open(),
        Error::rate_limited(Duration::from_secs(1)),
        Error::bulkhead_full(),
        Error::overloaded(),
        Error::retry_budget_exhausted(),
    ] {
        let result: Result<(), BoxError> = Err(err.into());
        assert_eq!(AnyError.classify(&result), Outcome::Ignored);
        assert_eq!(
            HttpStatus::new().classify(&result.map(|()| http::Response::new(()))),
            Outcome::Ignored
        );
    }
    // Also when the weir error is the service's error type itself.
    let result: Result<(), Error> = Err(Error::circuit_open());
    assert_eq!(AnyError.classify(&result), Outcome::Ignored);
}

/// #16.1: a timeout of the caller's own deadline is not the upstream's failure: every
/// default classifier ignores it (breakers and budgets count it neither way, retry does not
/// retry it), while the layer's own timeout stays a transient failure.
#[test]
fn a_callers_spent_deadline_is_ignored_by_every_default_classifier() {
    let caller: Result<(), BoxError> = Err(Error::caller_deadline().with_layer("edge").into());
    assert_eq!(AnyError.classify(&caller), Outcome::Ignored);
    let caller_http =
        || -> Result<http::Response<()>, BoxError> { Err(Error::caller_deadline().into()) };
    assert_eq!(HttpStatus::new().classify(&caller_http()), Outcome::Ignored);
    assert_eq!(GrpcStatus::new().classify(&caller_http()), Outcome::Ignored);
    let own: Result<(), BoxError> = Err(Error::timeout().into());
    assert!(AnyError.classify(&own).is_retryable());
    assert_eq!(
        AnyError.classify(&own).for_upstream(),
        AnyError.classify(&own)
    );
}

/// #27.2: a 429 is one caller's quota: retried after its Retry-After, never counted against
/// the upstream by default; a user can make it an upstream failure again.
#[test]
fn a_429_is_throttled_retryable_and_not_the_upstreams_failure() {
    let c = HttpStatus::new();
    let outcome = c.classify(&http(429, &[("retry-after", "3")]));
    assert!(outcome.is_retryable());
    assert_eq!(
        outcome.hint(),
        Some(ServerHint::RetryAfter(Duration::from_secs(3)))
    );
    assert_eq!(outcome.for_upstream(), Outcome::Ignored);
    // A 503 still counts.
    assert!(c.classify(&http(503, &[])).for_upstream().is_failure());
    // Opting back in.
    let strict = c.transient(StatusCode::TOO_MANY_REQUESTS);
    assert!(strict.classify(&http(429, &[])).for_upstream().is_failure());
    // And any status can be made a quota signal.
    let quota = c.throttled(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        quota.classify(&http(503, &[])).for_upstream(),
        Outcome::Ignored
    );
}

/// #27.2: `RESOURCE_EXHAUSTED` with a pushback (and a proxy's bare 429) is one caller's
/// quota; without a pushback it stays a failure of the upstream (a server out of memory).
#[test]
fn grpc_resource_exhausted_with_pushback_is_throttled() {
    let c = GrpcStatus::new();
    let pushback = c.classify(&http(
        200,
        &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "500")],
    ));
    assert!(pushback.is_retryable());
    assert_eq!(pushback.for_upstream(), Outcome::Ignored);
    let bare = c.classify(&http(200, &[("grpc-status", "8")]));
    assert!(bare.for_upstream().is_failure());
    let proxy = c.classify(&http(429, &[]));
    assert!(proxy.is_retryable());
    assert_eq!(proxy.for_upstream(), Outcome::Ignored);
    // UNAVAILABLE with a pushback is still the upstream's failure.
    let down = c.classify(&http(
        200,
        &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "500")],
    ));
    assert!(down.for_upstream().is_failure());
    let strict = c.transient(GrpcCode::ResourceExhausted);
    let counted = strict.classify(&http(
        200,
        &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "500")],
    ));
    assert!(counted.for_upstream().is_failure());
}

#[test]
fn http_defaults() {
    let c = HttpStatus::new();
    for code in [500, 502, 503, 504, 599, 408, 429] {
        assert!(c.classify(&http(code, &[])).is_retryable(), "{code}");
    }
    for code in [100, 200, 204, 301, 400, 401, 403, 404, 409, 422] {
        assert_eq!(c.classify(&http(code, &[])), Outcome::Success, "{code}");
    }
}

#[test]
fn http_overrides() {
    let c = HttpStatus::new()
        .permanent(StatusCode::NOT_IMPLEMENTED)
        .transient(StatusCode::CONFLICT)
        .success(StatusCode::SERVICE_UNAVAILABLE)
        .ignore(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        c.classify(&http(501, &[])),
        Outcome::Failure(Failure::permanent())
    );
    assert!(c.classify(&http(409, &[])).is_retryable());
    assert_eq!(c.classify(&http(503, &[])), Outcome::Success);
    assert_eq!(c.classify(&http(429, &[])), Outcome::Ignored);
    // Setting a status again replaces the earlier choice.
    let c = c.transient(StatusCode::TOO_MANY_REQUESTS);
    assert!(c.classify(&http(429, &[])).is_retryable());
}

#[test]
fn http_failures_carry_the_servers_hint() {
    let c = HttpStatus::new();
    let outcome = c.classify(&http(503, &[("retry-after", "7")]));
    assert_eq!(
        outcome.hint(),
        Some(ServerHint::RetryAfter(Duration::from_secs(7)))
    );
    let outcome = c.classify(&http(503, &[("grpc-retry-pushback-ms", "-1")]));
    assert_eq!(outcome.hint(), Some(ServerHint::DoNotRetry));
    assert!(outcome.is_failure());
    assert!(!outcome.is_retryable());
    // A success never reads hints.
    assert_eq!(c.classify(&http(200, &[("retry-after", "7")])).hint(), None);
}

#[test]
fn grpc_defaults() {
    let c = GrpcStatus::new();
    for code in ["14", "8", "4", "10"] {
        assert!(
            c.classify(&http(200, &[("grpc-status", code)]))
                .is_retryable(),
            "{code}"
        );
    }
    for code in ["2", "13", "15"] {
        let outcome = c.classify(&http(200, &[("grpc-status", code)]));
        assert!(outcome.is_failure() && !outcome.is_retryable(), "{code}");
    }
    for code in ["0", "1", "3", "5", "6", "7", "9", "11", "12", "16"] {
        assert!(
            c.classify(&http(200, &[("grpc-status", code)]))
                .is_success(),
            "{code}"
        );
    }
    // No grpc-status in the headers: the status is in the trailers, unseen here.
    assert!(c.classify(&http(200, &[])).is_success());
    // A garbage status is UNKNOWN: a permanent failure.
    let garbage = c.classify(&http(200, &[("grpc-status", "fourteen")]));
    assert_eq!(garbage, Outcome::Failure(Failure::permanent()));
}

/// #16.5: the status in the trailers is the call's status.
#[test]
fn grpc_classifies_the_end_of_the_body_by_its_trailers() {
    use crate::body::BodyEnd;
    let c = GrpcStatus::new();
    let ok = http::HeaderMap::new();
    assert!(c.in_trailers(StatusCode::OK, &ok));
    let mut head = http::HeaderMap::new();
    head.insert("grpc-status", http::HeaderValue::from_static("14"));
    assert!(!c.in_trailers(StatusCode::OK, &head), "trailers-only");
    assert!(!c.in_trailers(StatusCode::SERVICE_UNAVAILABLE, &ok));
    let trailers = |code: &'static str| {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static(code));
        t
    };
    assert!(
        c.classify_end(BodyEnd::Trailers(&trailers("0")))
            .is_success()
    );
    assert!(
        c.classify_end(BodyEnd::Trailers(&trailers("14")))
            .is_retryable()
    );
    assert!(
        c.classify_end(BodyEnd::Trailers(&trailers("5")))
            .is_success()
    );
    assert!(
        c.classify_end(BodyEnd::Trailers(&ok)).is_failure(),
        "no status"
    );
    assert!(c.classify_end(BodyEnd::Eos).is_failure());
    assert!(c.classify_end(BodyEnd::Error).is_retryable());
    let mut pushback = trailers("8");
    pushback.insert(
        "grpc-retry-pushback-ms",
        http::HeaderValue::from_static("100"),
    );
    assert_eq!(
        c.classify_end(BodyEnd::Trailers(&pushback)).for_upstream(),
        Outcome::Ignored
    );
}

#[test]
fn grpc_without_grpc_status_maps_the_http_status() {
    let c = GrpcStatus::new();
    assert!(c.classify(&http(503, &[])).is_retryable());
    assert!(c.classify(&http(429, &[])).is_retryable());
    assert!(c.classify(&http(404, &[])).is_success()); // UNIMPLEMENTED
    assert!(c.classify(&http(500, &[])).is_failure()); // UNKNOWN
}

#[test]
fn grpc_pushback_hint_and_overrides() {
    let c = GrpcStatus::new().ignore(GrpcCode::Aborted);
    let outcome = c.classify(&http(
        200,
        &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "250")],
    ));
    assert_eq!(
        outcome.hint(),
        Some(ServerHint::RetryAfter(Duration::from_millis(250)))
    );
    assert_eq!(
        c.classify(&http(200, &[("grpc-status", "10")])),
        Outcome::Ignored
    );
    let c = c.success(GrpcCode::Unavailable);
    assert!(
        c.classify(&http(200, &[("grpc-status", "14")]))
            .is_success()
    );
}

#[cfg(feature = "tonic")]
#[test]
fn grpc_classifies_tonic_statuses() {
    let c = GrpcStatus::new();
    let unavailable: Result<tonic::Response<()>, tonic::Status> =
        Err(tonic::Status::unavailable("down"));
    assert!(c.classify(&unavailable).is_retryable());
    let not_found: Result<tonic::Response<()>, tonic::Status> = Err(tonic::Status::not_found("x"));
    assert!(c.classify(&not_found).is_success());
    let http_level: Result<http::Response<()>, tonic::Status> = Err(tonic::Status::internal("x"));
    assert!(c.classify(&http_level).is_failure());
}

/// #20.4: a fallback's answer (a 200 marked `Degraded`) is classified by the outcome it
/// records, so the layers outside still see the original failure.
#[test]
fn degraded_answers_carry_the_original_outcome() {
    let degraded = |outcome| -> Result<http::Response<()>, BoxError> {
        let mut response = http::Response::new(());
        response.extensions_mut().insert(Degraded::new(outcome));
        Ok(response)
    };
    let failure = Outcome::Failure(Failure::transient());
    assert_eq!(HttpStatus::new().classify(&degraded(failure)), failure);
    assert_eq!(GrpcStatus::new().classify(&degraded(failure)), failure);
    assert_eq!(
        HttpStatus::new().classify(&degraded(Outcome::Ignored)),
        Outcome::Ignored
    );
    // Unmarked, the same 200 is a success.
    assert!(HttpStatus::new().classify(&http(200, &[])).is_success());
}

#[test]
fn closures_are_classifiers() {
    let c = |r: &Result<u8, ()>| {
        if r.is_ok() {
            Outcome::Success
        } else {
            Outcome::Ignored
        }
    };
    assert_eq!(c.classify(&Err(())), Outcome::Ignored);
    assert_eq!(c.classify(&Ok(1)), Outcome::Success);
}

#[test]
fn debug_lists_the_codes() {
    let text = format!("{:?}", HttpStatus::new());
    assert!(text.contains("408") && text.contains("429") && text.contains("599"));
    assert!(!text.contains("404"));
    let text = format!("{:?}", GrpcStatus::new());
    assert!(text.contains("Unavailable") && !text.contains("NotFound"));
}
