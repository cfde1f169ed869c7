//! What a fallback layer tells its observer.

use std::any::Any;
use std::fmt;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

use crate::state::{Reason, Source};

/// An event a fallback layer emits: a fallback answer given (by source), or every source declined.
/// Borrows its data; never emitted for a call the primary service answered.
///
/// `error` is the primary's original error when [`Reason::Error`] (downcast it with
/// [`error`](Self::error), or find weir's own with [`weir_error`](Self::weir_error)).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A source answered in place of the primary.
    Answered {
        /// The layer's configured name.
        layer: &'a Name,
        /// The source that answered.
        source: Source,
        /// Why the fallback ran.
        reason: Reason,
        /// The primary's error, when `reason` is [`Reason::Error`].
        error: Option<&'a dyn Any>,
        /// The W3C trace id of the request's `traceparent` header: in HTTP mode, read at call
        /// when the observer [wants trace ids](weir_core::Observer::wants_trace_id), else `None`.
        trace_id: Option<TraceId>,
    },
    /// Every source declined: the caller gets the primary's own result (for a switched request,
    /// the primary is then called after all).
    Exhausted {
        /// The layer's configured name.
        layer: &'a Name,
        /// Why the fallback ran.
        reason: Reason,
        /// The primary's error, when `reason` is [`Reason::Error`].
        error: Option<&'a dyn Any>,
        /// The W3C trace id of the request's `traceparent` header, as in `Answered`.
        trace_id: Option<TraceId>,
    },
}

impl<'a> Event<'a> {
    /// The primary's error, if it was a `T` (for example `BoxError`, `hyper::Error`).
    #[must_use]
    pub fn error<T: Any>(&self) -> Option<&'a T> {
        match *self {
            Self::Answered { error, .. } | Self::Exhausted { error, .. } => {
                error.and_then(|e| e.downcast_ref::<T>())
            }
        }
    }

    /// weir's own error in the primary's error, if any (a timeout, an open circuit, a rate
    /// limit, a full bulkhead, an overload), found through a `weir_core::Error` or a `BoxError`.
    #[must_use]
    pub fn weir_error(&self) -> Option<&'a weir_core::Error> {
        if let Some(e) = self.error::<weir_core::Error>() {
            return Some(e);
        }
        self.error::<weir_core::BoxError>()
            .and_then(|e| weir_core::Error::find(&**e))
    }

    /// Why the fallback ran.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        match *self {
            Self::Answered { reason, .. } | Self::Exhausted { reason, .. } => reason,
        }
    }

    /// The W3C trace id of the request's `traceparent` header, when it was read.
    #[must_use]
    pub const fn trace_id(&self) -> Option<TraceId> {
        match *self {
            Self::Answered { trace_id, .. } | Self::Exhausted { trace_id, .. } => trace_id,
        }
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered {
                layer,
                source,
                reason,
                error,
                trace_id,
            } => f
                .debug_struct("Answered")
                .field("layer", layer)
                .field("source", source)
                .field("reason", reason)
                .field("error", &error.is_some())
                .field("trace_id", trace_id)
                .finish(),
            Self::Exhausted {
                layer,
                reason,
                error,
                trace_id,
            } => f
                .debug_struct("Exhausted")
                .field("layer", layer)
                .field("reason", reason)
                .field("error", &error.is_some())
                .field("trace_id", trace_id)
                .finish(),
        }
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "fallback"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Answered { source, .. } => match source {
                Source::Value => "answered_value",
                Source::Service => "answered_service",
                Source::LastGood => "answered_last_good",
            },
            Self::Exhausted { .. } => "exhausted",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Answered { layer, .. } | Self::Exhausted { layer, .. } => layer,
        }
    }

    /// Both `debug`: a fallback and a fallback that found nothing are per-request decisions.
    fn level(&self) -> Level {
        Level::Debug
    }

    /// An answer: fate `fell_back`, why the fallback ran as `reason` (`error`, `response`,
    /// `flag`, `switch`). Every source declining: that `reason`, no fate (the caller gets the
    /// primary's own result). Both: the request's `trace_id` when it was read.
    fn fields(&self) -> Fields {
        let fields = match *self {
            Self::Answered { reason, .. } => {
                Fields::NONE.fate(Fate::FellBack).reason(reason.as_str())
            }
            Self::Exhausted { reason, .. } => Fields::NONE.reason(reason.as_str()),
        };
        fields.trace_id(self.trace_id())
    }
}
