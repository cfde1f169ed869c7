//! What the hedge layer tells its observer.

use weir_core::observer::{Fate, Fields};
use weir_core::{Level, Name};

/// An event of a hedge layer. Borrowed, and emitted only when a hedge is sent, wins, is refused
/// by the budget, or attempts are cancelled: never for a request whose primary answered alone.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A hedge was sent.
    HedgeSent {
        /// The layer's name.
        layer: &'a Name,
        /// Its attempt number (2 for the first hedge; the primary is 1).
        attempt: u32,
        /// Why now.
        reason: Reason,
    },
    /// A hedge's answer was taken (the primary's was not).
    HedgeWon {
        /// The layer's name.
        layer: &'a Name,
        /// The winning attempt (2 or more).
        attempt: u32,
    },
    /// Attempts still in flight were cancelled (their futures dropped) because another attempt
    /// answered, or one failed fatally.
    Cancelled {
        /// The layer's name.
        layer: &'a Name,
        /// How many were dropped.
        attempts: u32,
    },
    /// A hedge was due but the hedge budget had nothing left: no more hedges for this request.
    BudgetExhausted {
        /// The layer's name.
        layer: &'a Name,
    },
}

/// Why a hedge was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The hedging delay passed with no answer (zero in parallel mode).
    Delay,
    /// An attempt failed with a non-fatal failure: the next hedge goes at once (gRFC A6).
    Failure,
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "hedge"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::HedgeSent { .. } => "hedge_sent",
            Self::HedgeWon { .. } => "hedge_won",
            Self::Cancelled { .. } => "cancelled",
            Self::BudgetExhausted { .. } => "budget_exhausted",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::HedgeSent { layer, .. }
            | Self::HedgeWon { layer, .. }
            | Self::Cancelled { layer, .. }
            | Self::BudgetExhausted { layer } => layer,
        }
    }

    fn level(&self) -> Level {
        Level::Debug
    }

    /// A hedge sent: fate `hedged`, `reason` (`delay` or `failure`), its `attempt`. A win: the
    /// winning `attempt`. The budget refusing: reason `budget_exhausted`.
    fn fields(&self) -> Fields {
        match *self {
            Self::HedgeSent {
                attempt, reason, ..
            } => Fields::NONE
                .fate(Fate::Hedged)
                .reason(match reason {
                    Reason::Delay => "delay",
                    Reason::Failure => "failure",
                })
                .attempt(attempt),
            Self::HedgeWon { attempt, .. } => Fields::NONE.attempt(attempt),
            Self::Cancelled { .. } => Fields::NONE,
            Self::BudgetExhausted { .. } => Fields::NONE.reason("budget_exhausted"),
        }
    }
}
