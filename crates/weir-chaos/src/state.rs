//! The pure algorithm: probabilities as thresholds on 64 random bits, which fault a roll picks,
//! the `x-weir-fault` header's grammar, and latency samples. No tokio, no `Service`.

use std::time::Duration;

use weir_core::wire::GrpcCode;

use crate::settings::Latency;

/// A kind of fault the layer injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// An error instead of calling the inner service.
    Error,
    /// An HTTP status (or gRPC code) response instead of calling the inner service (HTTP mode).
    Status,
    /// Latency added to the call.
    Latency,
    /// No answer until the request's deadline (forever without one).
    Stall,
    /// A response body that fails midway (HTTP mode).
    Body,
    /// The custom behaviour, run on the request before the inner service is called.
    Behaviour,
}

impl Fault {
    /// Every fault, in the order of [`index`](Self::index).
    pub const ALL: [Self; 6] = [
        Self::Error,
        Self::Status,
        Self::Latency,
        Self::Stall,
        Self::Body,
        Self::Behaviour,
    ];

    /// The faults that replace or cut the call; they exclude one another. Latency is rolled on
    /// its own and adds to any of them.
    pub(crate) const EXCLUSIVE: [Self; 5] = [
        Self::Error,
        Self::Status,
        Self::Stall,
        Self::Body,
        Self::Behaviour,
    ];

    /// Its position in [`ALL`](Self::ALL).
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its name in `snake_case`, as events and the fault header spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Status => "status",
            Self::Latency => "latency",
            Self::Stall => "stall",
            Self::Body => "body",
            Self::Behaviour => "behaviour",
        }
    }

    const fn bit(self) -> u8 {
        1 << self.index()
    }
}

/// A probability as a threshold on 64 random bits: `0` never, `u64::MAX` always.
pub(crate) fn threshold(probability: f64) -> u64 {
    if probability.is_nan() || probability <= 0.0 {
        0
    } else if probability >= 1.0 {
        u64::MAX
    } else {
        // 2^64 as f64 is exact; the product is below it, so the cast does not saturate.
        (probability * 18_446_744_073_709_551_616.0) as u64
    }
}

/// The probability a threshold stands for.
pub(crate) fn probability(threshold: u64) -> f64 {
    if threshold == u64::MAX {
        1.0
    } else {
        threshold as f64 / 18_446_744_073_709_551_616.0
    }
}

/// Whether 64 random bits `roll` fall under `threshold`.
#[inline]
pub(crate) const fn hit(threshold: u64, roll: u64) -> bool {
    threshold == u64::MAX || roll < threshold
}

/// The exclusive fault one `roll` picks, given the thresholds of [`Fault::EXCLUSIVE`] in order:
/// each fault owns its slice of the 64-bit range, one after the other. If their sum passes 1 (a
/// handle raised them at run time), the earlier faults keep their slices and the later ones
/// shrink.
pub(crate) fn choose(thresholds: [u64; 5], roll: u64) -> Option<Fault> {
    let mut upper: u64 = 0;
    for (fault, t) in Fault::EXCLUSIVE.into_iter().zip(thresholds) {
        if t == 0 {
            continue;
        }
        if t == u64::MAX {
            return Some(fault);
        }
        upper = upper.saturating_add(t);
        if roll < upper || upper == u64::MAX {
            return Some(fault);
        }
    }
    None
}

/// What one request is to suffer: the outcome of the rolls, or of its fault header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Latency to add, if any.
    pub(crate) latency: Option<Duration>,
    /// The exclusive fault, if any.
    pub(crate) fault: Option<Fault>,
    /// A status the header asked for instead of the configured one.
    pub(crate) status: Option<u16>,
    /// A gRPC code the header asked for instead of the configured one.
    pub(crate) grpc: Option<GrpcCode>,
    /// Bytes of a failing body the header asked for instead of the configured number.
    pub(crate) body_after: Option<u64>,
}

impl Plan {
    /// Whether nothing is injected.
    pub(crate) const fn is_clean(&self) -> bool {
        self.latency.is_none() && self.fault.is_none()
    }
}

/// The faults a request's `x-weir-fault` header asks for: comma-separated tokens, each a fault
/// name with an optional `=value`, in any letter case, unknown tokens ignored:
///
/// | token | fault |
/// |---|---|
/// | `error` | an error |
/// | `status`, `status=503` | a status response (the configured status, or this one) |
/// | `grpc=14` | a gRPC response with this code (to a gRPC request) |
/// | `latency`, `latency=250` (ms), `latency=250ms`, `latency=2s` | added latency (drawn, or this much) |
/// | `stall` | a stalled call |
/// | `body`, `body=1024` | a failing body (after the configured bytes, or this many) |
/// | `behaviour` (`behavior`) | the custom behaviour |
///
/// When several exclusive faults are named, the first in the order error, status, stall, body,
/// behaviour wins. `latency` without a value draws from the layer's distribution (with `draw`).
pub(crate) fn parse_header(value: &[u8], draw: impl FnOnce() -> Duration) -> Plan {
    let mut plan = Plan::default();
    let mut named: u8 = 0;
    let mut latency_drawn = false;
    for token in value.split(|&b| b == b',') {
        let token = token.trim_ascii();
        let (name, arg) = match token.iter().position(|&b| b == b'=') {
            Some(i) => (token[..i].trim_ascii(), Some(token[i + 1..].trim_ascii())),
            None => (token, None),
        };
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        if is("error") {
            named |= Fault::Error.bit();
        } else if is("status") {
            named |= Fault::Status.bit();
            if let Some(code) = arg.and_then(parse_u64).filter(|c| (100..=599).contains(c)) {
                plan.status = Some(code as u16);
            }
        } else if is("grpc") {
            named |= Fault::Status.bit();
            plan.grpc = arg
                .and_then(parse_u64)
                .and_then(|c| u8::try_from(c).ok())
                .and_then(GrpcCode::from_u8)
                .filter(|c| *c != GrpcCode::Ok);
        } else if is("latency") || is("delay") {
            match arg.and_then(parse_duration) {
                Some(d) => plan.latency = Some(d),
                None => latency_drawn = true,
            }
        } else if is("stall") {
            named |= Fault::Stall.bit();
        } else if is("body") {
            named |= Fault::Body.bit();
            plan.body_after = arg.and_then(parse_u64);
        } else if is("behaviour") || is("behavior") {
            named |= Fault::Behaviour.bit();
        }
    }
    if latency_drawn && plan.latency.is_none() {
        plan.latency = Some(draw());
    }
    plan.fault = Fault::EXCLUSIVE
        .into_iter()
        .find(|fault| named & fault.bit() != 0);
    plan
}

/// A decimal number of at most 18 digits.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// `250` (milliseconds), `250ms` or `2s`, at most an hour.
fn parse_duration(value: &[u8]) -> Option<Duration> {
    let (digits, unit_ms) = if let Some(d) = value.strip_suffix(b"ms") {
        (d, 1)
    } else if let Some(d) = value.strip_suffix(b"s") {
        (d, 1000)
    } else {
        (value, 1)
    };
    let ms = parse_u64(digits)?.checked_mul(unit_ms)?;
    (ms <= 3_600_000).then(|| Duration::from_millis(ms))
}

/// A uniform number in `[0, 1)` from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

impl Latency {
    /// A delay drawn with 64 random bits.
    pub(crate) fn sample(self, bits: u64) -> Duration {
        match self {
            Self::Fixed(d) => d,
            Self::Uniform { min, max } => {
                let span = max.saturating_sub(min).as_nanos() as f64;
                min + Duration::from_nanos((span * unit(bits)) as u64)
            }
            Self::Exponential { mean, max } => {
                // Inverse transform: -ln(1 - u) * mean, with 1 - u in (0, 1].
                let x = -(1.0 - unit(bits)).ln() * mean.as_secs_f64();
                Duration::try_from_secs_f64(x).map_or(max, |d| d.min(max))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_trip_and_bound_the_extremes() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(-1.0), 0);
        assert_eq!(threshold(f64::NAN), 0);
        assert_eq!(threshold(1.0), u64::MAX);
        assert!((probability(threshold(0.25)) - 0.25).abs() < 1e-12);
        assert!(!hit(0, 0), "probability 0 never hits, even on a zero roll");
        assert!(hit(u64::MAX, u64::MAX), "probability 1 always hits");
        let t = threshold(0.5);
        assert!(hit(t, t - 1) && !hit(t, t));
    }

    #[test]
    fn a_roll_picks_one_exclusive_fault_by_its_slice() {
        let q = threshold(0.25);
        // error 0.25, status 0, stall 0.25, body 0, behaviour 0.
        let t = [q, 0, q, 0, 0];
        assert_eq!(choose(t, 0), Some(Fault::Error));
        assert_eq!(choose(t, q - 1), Some(Fault::Error));
        assert_eq!(choose(t, q), Some(Fault::Stall));
        assert_eq!(choose(t, 2 * q - 1), Some(Fault::Stall));
        assert_eq!(choose(t, 2 * q), None);
        assert_eq!(choose([0; 5], 0), None);
        assert_eq!(choose([0, 0, 0, u64::MAX, 0], u64::MAX), Some(Fault::Body));
        // Over 1 in total: the first keeps its slice, the rest is the second's.
        let h = threshold(0.75);
        assert_eq!(choose([h, h, 0, 0, 0], u64::MAX - 1), Some(Fault::Status));
    }

    #[test]
    fn the_header_names_faults_and_ignores_the_rest() {
        let drawn = || Duration::from_millis(7);
        let plan = parse_header(b"Status=502, latency=250ms, bogus, =, grpc=99", drawn);
        assert_eq!(plan.fault, Some(Fault::Status));
        assert_eq!(plan.status, Some(502));
        assert_eq!(plan.grpc, None, "99 is no gRPC code");
        assert_eq!(plan.latency, Some(Duration::from_millis(250)));

        let plan = parse_header(b"latency", drawn);
        assert_eq!(
            (plan.latency, plan.fault),
            (Some(Duration::from_millis(7)), None)
        );
        let plan = parse_header(b"body=1024,stall", drawn);
        assert_eq!(plan.fault, Some(Fault::Stall), "stall comes before body");
        assert_eq!(plan.body_after, Some(1024));
        assert_eq!(
            parse_header(b"grpc=8", drawn).grpc,
            Some(GrpcCode::ResourceExhausted)
        );
        assert_eq!(
            parse_header(b"delay=2s", drawn).latency,
            Some(Duration::from_secs(2))
        );
        assert!(
            parse_header(b"latency=99999999999999999999", drawn).latency
                == Some(Duration::from_millis(7))
        );
        assert!(parse_header(b"", drawn).is_clean());
        assert!(parse_header(b"status=abc", drawn).status.is_none());
    }

    #[test]
    fn latency_samples_stay_in_their_bounds_and_repeat_with_the_bits() {
        let ms = Duration::from_millis;
        assert_eq!(Latency::fixed(ms(5)).sample(123), ms(5));
        let uniform = Latency::uniform(ms(10), ms(20));
        assert_eq!(uniform.sample(0), ms(10));
        assert!(uniform.sample(u64::MAX) <= ms(20));
        let exp = Latency::exponential_max(ms(10), ms(50));
        assert_eq!(exp.sample(0), Duration::ZERO);
        assert_eq!(exp.sample(u64::MAX), ms(50), "the tail is cut at max");
        let mut rng = weir_core::backoff::FastRandom::seeded(1);
        let n = 20_000;
        let mean = (0..n)
            .map(|_| {
                use weir_core::backoff::Random;
                Latency::exponential(ms(10))
                    .sample(rng.next_u64())
                    .as_secs_f64()
            })
            .sum::<f64>()
            / f64::from(n);
        assert!((mean - 0.010).abs() < 0.001, "mean {mean}");
    }
}
