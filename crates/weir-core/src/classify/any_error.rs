//! `AnyError`, the default classifier, and how every classifier reads an error.

use crate::{Classify, Error, Failure, Outcome};

/// Classifies an error of any type the way every weir classifier does.
///
/// - weir's own rejections (rate limited, circuit open, bulkhead full, overloaded) and an
///   exhausted retry budget are [`Outcome::Ignored`]: they were decided here, say nothing about the
///   service behind the layer, and retrying them at once only adds load;
/// - a weir timeout is a transient failure, except one of the caller's own deadline
///   ([`Error::is_caller_deadline`]: spent before the request was sent, or before the layer's own
///   timeout): that is [`Outcome::Ignored`], never the upstream's failure, and not retried (the
///   caller has no time left);
/// - any other error (a connect error, an I/O error, a status from the service) is a transient
///   failure. Use a closure classifier to be stricter.
pub(super) fn classify_error<E: 'static>(err: &E) -> Outcome {
    match Error::find_in(err) {
        Some(weir) if weir.is_caller_deadline() => Outcome::Ignored,
        Some(weir) if weir.is_timeout() => Outcome::Failure(Failure::transient()),
        Some(_) => Outcome::Ignored,
        None => Outcome::Failure(Failure::transient()),
    }
}

/// The default classifier: every `Ok` is a success and every `Err` a failure.
///
/// Errors are transient (worth retrying), except weir's own rejections, which are ignored: a
/// circuit breaker must not count "rate limited by us" as a failure of the service, and a retry
/// layer must not retry "circuit open". This is the classifier every weir layer uses unless told
/// otherwise; it reads no response.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyError;

impl<Res, E: 'static> Classify<Res, E> for AnyError {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(err) => classify_error(err),
        }
    }
}
