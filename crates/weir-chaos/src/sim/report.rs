//! What a simulation saw: outcomes per tick, latencies, the upstream's load, the stack's events
//! and queue waits; as a table, CSV and an SVG chart.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;
use weir_core::BoxError;

use super::observe::{Seen, Transition};

/// How a simulated request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A 2xx response.
    Success,
    /// Any other response (the modelled upstream's 503s).
    UpstreamFailure,
    /// A weir timeout or a spent deadline.
    Timeout,
    /// A weir circuit breaker refused it.
    CircuitOpen,
    /// Another weir rejection: a rate limit, a full bulkhead, load shedding, a spent retry
    /// budget.
    Rejected,
    /// Any other error.
    Error,
    /// Still unanswered when the drain time ran out.
    Unfinished,
}

impl Outcome {
    /// Every outcome, in the order of the report's columns.
    pub const ALL: [Self; 7] = [
        Self::Success,
        Self::UpstreamFailure,
        Self::Timeout,
        Self::CircuitOpen,
        Self::Rejected,
        Self::Error,
        Self::Unfinished,
    ];

    /// Its column name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::UpstreamFailure => "upstream_failure",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
            Self::Rejected => "rejected",
            Self::Error => "error",
            Self::Unfinished => "unfinished",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }

    /// The outcome of a stack's answer.
    pub(crate) fn of<B>(result: &Result<http::Response<B>, BoxError>) -> Self {
        match result {
            Ok(res) if res.status().is_success() => Self::Success,
            Ok(_) => Self::UpstreamFailure,
            Err(e) => match weir_core::Error::find(&**e) {
                Some(w) if w.is_timeout() || w.is_caller_deadline() => Self::Timeout,
                Some(w) if w.is_circuit_open() => Self::CircuitOpen,
                Some(w) if w.is_rejection() => Self::Rejected,
                _ => Self::Error,
            },
        }
    }
}

/// One tick of the report: the requests sent in it, by how they ended, their latencies, and the
/// calls the upstream received in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tick {
    /// When the tick starts, from the start of the run.
    pub start: Duration,
    /// Requests sent in the tick, per [`Outcome::ALL`].
    pub outcomes: [u64; 7],
    /// Calls the upstream received in the tick.
    pub upstream_calls: u64,
    /// The median latency of the tick's answered requests.
    pub p50: Duration,
    /// The 99th percentile latency of the tick's answered requests.
    pub p99: Duration,
    /// State changes the stack's layers reported in the tick (through a
    /// [`SimObserver`](super::SimObserver)).
    pub state_changes: u64,
    /// Queue waits that began in the tick, as the stack's layers reported them (through a
    /// [`SimObserver`](super::SimObserver)): one per queued request per queue (a request
    /// retried through a queue twice waits twice).
    pub queued: u64,
    /// The median of those waits.
    pub wait_p50: Duration,
    /// The 99th percentile of those waits.
    pub wait_p99: Duration,
}

impl Tick {
    /// Requests sent in the tick.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Requests of this outcome.
    #[must_use]
    pub const fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome.index()]
    }
}

/// Collects answers as the run goes.
pub(crate) struct Recorder {
    start: Instant,
    tick: Duration,
    sent: u64,
    resent: u64,
    answered: u64,
    /// Callers still at work: a request in flight, or a caller waiting to send one again.
    pending: u64,
    /// Per tick: outcomes and latencies (microseconds) of the requests sent in it.
    ticks: Vec<([u64; 7], Vec<u64>)>,
}

impl Recorder {
    pub(crate) const fn new(start: Instant, tick: Duration) -> Self {
        Self {
            start,
            tick,
            sent: 0,
            resent: 0,
            answered: 0,
            pending: 0,
            ticks: Vec::new(),
        }
    }

    fn index(&self, at: Instant) -> usize {
        (at.saturating_duration_since(self.start).as_nanos() / self.tick.as_nanos().max(1)) as usize
    }

    /// A caller starts.
    pub(crate) const fn begin(&mut self) {
        self.pending += 1;
    }

    /// A caller is done: answered, and not sending again.
    pub(crate) const fn end(&mut self) {
        self.pending -= 1;
    }

    /// Callers not done.
    pub(crate) const fn pending(&self) -> u64 {
        self.pending
    }

    /// A request is sent; `resent` when its caller sends it again.
    pub(crate) const fn sent(&mut self, resent: bool) {
        self.sent += 1;
        if resent {
            self.resent += 1;
        }
    }

    pub(crate) fn answered(&mut self, sent: Instant, now: Instant, outcome: Outcome) {
        self.answered += 1;
        let i = self.index(sent);
        if self.ticks.len() <= i {
            self.ticks.resize_with(i + 1, Default::default);
        }
        let (outcomes, latencies) = &mut self.ticks[i];
        outcomes[outcome.index()] += 1;
        latencies.push(now.saturating_duration_since(sent).as_micros() as u64);
    }

    pub(crate) fn report(
        &self,
        duration: Duration,
        upstream: UpstreamLoad<'_>,
        seen: Seen,
    ) -> Report {
        let n = (duration.as_nanos().div_ceil(self.tick.as_nanos().max(1))) as usize;
        let n = n
            .max(self.ticks.len())
            .max(upstream.calls.len())
            .max(seen.changes_per_tick.len())
            .max(seen.waits_per_tick.len());
        let mut all = Vec::new();
        let mut all_waits = Vec::new();
        let mut ticks = Vec::with_capacity(n);
        for i in 0..n {
            let (outcomes, latencies) = self.ticks.get(i).cloned().unwrap_or_default();
            let mut sorted = latencies;
            sorted.sort_unstable();
            all.extend_from_slice(&sorted);
            let mut waits = seen.waits_per_tick.get(i).cloned().unwrap_or_default();
            waits.sort_unstable();
            all_waits.extend_from_slice(&waits);
            ticks.push(Tick {
                start: self.tick * i as u32,
                outcomes,
                upstream_calls: upstream.calls.get(i).copied().unwrap_or(0),
                p50: percentile(&sorted, 0.50),
                p99: percentile(&sorted, 0.99),
                state_changes: seen.changes_per_tick.get(i).copied().unwrap_or(0),
                queued: waits.len() as u64,
                wait_p50: percentile(&waits, 0.50),
                wait_p99: percentile(&waits, 0.99),
            });
        }
        // Requests never answered count in the last tick as unfinished.
        let unfinished = self.sent - self.answered;
        if let Some(last) = ticks.last_mut() {
            last.outcomes[Outcome::Unfinished.index()] += unfinished;
        }
        all.sort_unstable();
        all_waits.sort_unstable();
        let mut totals = [0; 7];
        for tick in &ticks {
            for (total, count) in totals.iter_mut().zip(tick.outcomes) {
                *total += count;
            }
        }
        Report {
            tick: self.tick,
            ticks,
            totals,
            resent: self.resent,
            upstream_calls: upstream.total,
            max_upstream_in_flight: upstream.max_in_flight,
            percentiles: QUANTILES.map(|q| percentile(&all, q)),
            queued: all_waits.len() as u64,
            queue_waits: QUANTILES.map(|q| percentile(&all_waits, q)),
            events: seen
                .counts
                .into_iter()
                .map(|((p, k), n)| (p, k, n))
                .collect(),
            transitions: seen.transitions,
        }
    }
}

/// What the modelled upstream counted.
pub(crate) struct UpstreamLoad<'a> {
    /// Calls per tick.
    pub(crate) calls: &'a [u64],
    /// Calls in all.
    pub(crate) total: u64,
    /// The most calls in flight at once.
    pub(crate) max_in_flight: usize,
}

/// The quantiles a report keeps: p50, p90, p99, p99.9, max.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// The index of `q` in [`QUANTILES`].
fn quantile(q: f64) -> Option<usize> {
    QUANTILES.iter().position(|&x| (x - q).abs() < 1e-12)
}

/// The `q` quantile of sorted microseconds (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_micros(sorted[rank - 1])
}

/// What a simulation saw. Two runs of the same simulation and stack give equal reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    tick: Duration,
    ticks: Vec<Tick>,
    totals: [u64; 7],
    resent: u64,
    upstream_calls: u64,
    max_upstream_in_flight: usize,
    /// p50, p90, p99, p99.9, max.
    percentiles: [Duration; 5],
    /// Queue waits the stack's layers reported.
    queued: u64,
    /// Their p50, p90, p99, p99.9, max.
    queue_waits: [Duration; 5],
    /// The stack's events by pattern and kind.
    events: Vec<(&'static str, &'static str, u64)>,
    transitions: Vec<Transition>,
}

impl Report {
    /// Every tick.
    #[must_use]
    pub fn ticks(&self) -> &[Tick] {
        &self.ticks
    }

    /// Requests sent.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.totals.iter().sum()
    }

    /// Requests of this outcome.
    #[must_use]
    pub const fn total(&self, outcome: Outcome) -> u64 {
        self.totals[outcome.index()]
    }

    /// Requests that were their callers' resends ([`Arrivals::RetryStorm`](super::Arrivals::RetryStorm)),
    /// among [`requests`](Self::requests).
    #[must_use]
    pub const fn resent(&self) -> u64 {
        self.resent
    }

    /// The events the stack's layers reported to the [`SimObserver`](super::SimObserver), as
    /// `(pattern, kind, count)` (`("retry", "retry", 1234)`, `("circuit_breaker", "rejected",
    /// 56)`), sorted; empty when the stack was not given the observer.
    #[must_use]
    pub fn events(&self) -> &[(&'static str, &'static str, u64)] {
        &self.events
    }

    /// How many events of this pattern and kind the stack's layers reported.
    #[must_use]
    pub fn event_count(&self, pattern: &str, kind: &str) -> u64 {
        self.events
            .iter()
            .filter(|(p, k, _)| *p == pattern && *k == kind)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// The state changes the stack's layers reported (a breaker opening, half-opening,
    /// closing), in order, with their virtual times; the first 10 000 of them.
    #[must_use]
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The share of requests that succeeded.
    #[must_use]
    pub fn success_rate(&self) -> f64 {
        self.total(Outcome::Success) as f64 / self.requests().max(1) as f64
    }

    /// Calls the upstream received.
    #[must_use]
    pub const fn upstream_calls(&self) -> u64 {
        self.upstream_calls
    }

    /// Upstream calls per request: 1 without retries or hedges, more with them, less when a
    /// breaker or a limit keeps requests from it.
    #[must_use]
    pub fn amplification(&self) -> f64 {
        self.upstream_calls as f64 / self.requests().max(1) as f64
    }

    /// The most calls the upstream had in flight at once.
    #[must_use]
    pub const fn max_upstream_in_flight(&self) -> usize {
        self.max_upstream_in_flight
    }

    /// The latency of every answered request at quantile `q`: `0.5`, `0.9`, `0.99`, `0.999` or
    /// `1.0` (the max); `None` for another.
    #[must_use]
    pub fn latency(&self, q: f64) -> Option<Duration> {
        quantile(q).map(|i| self.percentiles[i])
    }

    /// How many queue waits the stack's layers reported to the
    /// [`SimObserver`](super::SimObserver): every event carrying a
    /// [`wait`](weir_core::observer::Fields::wait) (a bulkhead's queued request getting its
    /// permit, or refused after waiting); 0 when the stack was not given the observer or never
    /// queued.
    #[must_use]
    pub const fn queued(&self) -> u64 {
        self.queued
    }

    /// The queue wait at quantile `q` of those [`queued`](Self::queued): `0.5`, `0.9`, `0.99`,
    /// `0.999` or `1.0` (the max); `None` for another; zero when nothing queued.
    #[must_use]
    pub fn queue_wait(&self, q: f64) -> Option<Duration> {
        quantile(q).map(|i| self.queue_waits[i])
    }

    /// The peak upstream calls in one tick over the peak requests in one tick.
    #[must_use]
    pub fn peak_amplification(&self) -> f64 {
        let calls = self
            .ticks
            .iter()
            .map(|t| t.upstream_calls)
            .max()
            .unwrap_or(0);
        let requests = self.ticks.iter().map(Tick::requests).max().unwrap_or(0);
        calls as f64 / requests.max(1) as f64
    }

    /// A text table: the totals (and the queue waits, when any), then the ticks grouped into at
    /// most `rows` rows (per row the worst tick's p50 and p99 latency and p99 queue wait), then
    /// the stack's events and its first state changes.
    #[must_use]
    pub fn table(&self, rows: usize) -> String {
        let mut out = String::new();
        let [p50, p90, p99, p999, max] = self.percentiles;
        let _ = writeln!(
            out,
            "requests {} (resent by callers {})  success {:.2}%  upstream calls {} (x{:.2}, peak tick x{:.2}, at most {} in flight)  latency p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?}",
            self.requests(),
            self.resent,
            100.0 * self.success_rate(),
            self.upstream_calls,
            self.amplification(),
            self.peak_amplification(),
            self.max_upstream_in_flight,
            p50,
            p90,
            p99,
            p999,
            max,
        );
        if self.queued > 0 {
            let [p50, p90, p99, p999, max] = self.queue_waits;
            let _ = writeln!(
                out,
                "queue waits {}  p50 {p50:?} p90 {p90:?} p99 {p99:?} p99.9 {p999:?} max {max:?}",
                self.queued,
            );
        }
        let _ = write!(out, "{:>7} {:>7} {:>8}", "from", "to", "requests");
        for outcome in Outcome::ALL {
            let _ = write!(out, " {:>16}", outcome.as_str());
        }
        let _ = writeln!(
            out,
            " {:>14} {:>9} {:>9} {:>7} {:>12}",
            "upstream_calls", "p50_ms", "p99_ms", "queued", "wait_p99_ms"
        );
        let group = self.ticks.len().div_ceil(rows.max(1)).max(1);
        for chunk in self.ticks.chunks(group) {
            let from = chunk[0].start;
            let to = chunk[chunk.len() - 1].start + self.tick;
            let mut outcomes = [0; 7];
            for t in chunk {
                for (o, c) in outcomes.iter_mut().zip(t.outcomes) {
                    *o += c;
                }
            }
            let requests: u64 = outcomes.iter().sum();
            let calls: u64 = chunk.iter().map(|t| t.upstream_calls).sum();
            // The worst tick of the group.
            let p50 = chunk.iter().map(|t| t.p50).max().unwrap_or_default();
            let p99 = chunk.iter().map(|t| t.p99).max().unwrap_or_default();
            let queued: u64 = chunk.iter().map(|t| t.queued).sum();
            let wait_p99 = chunk.iter().map(|t| t.wait_p99).max().unwrap_or_default();
            let _ = write!(
                out,
                "{:>6}s {:>6}s {requests:>8}",
                from.as_secs(),
                to.as_secs()
            );
            for c in outcomes {
                let _ = write!(out, " {c:>16}");
            }
            let _ = writeln!(
                out,
                " {calls:>14} {:>9.1} {:>9.1} {queued:>7} {:>12.1}",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                wait_p99.as_secs_f64() * 1e3
            );
        }
        if !self.events.is_empty() {
            out.push_str("events:");
            for (pattern, kind, n) in &self.events {
                let _ = write!(out, " {pattern}.{kind} {n}");
            }
            out.push('\n');
        }
        const SHOWN: usize = 12;
        for t in self.transitions.iter().take(SHOWN) {
            let _ = writeln!(
                out,
                "{:>9.3}s {} {}: {}",
                t.at.as_secs_f64(),
                t.pattern,
                t.layer,
                t.detail
            );
        }
        let changes: u64 = self.ticks.iter().map(|t| t.state_changes).sum();
        if changes > SHOWN as u64 {
            let _ = writeln!(out, "... {changes} state changes in all");
        }
        out
    }

    /// CSV, one row per tick: `start_s`, every outcome, `upstream_calls`, `p50_ms`, `p99_ms`,
    /// `state_changes`, `queued`, `wait_p50_ms`, `wait_p99_ms`.
    #[must_use]
    pub fn csv(&self) -> String {
        let mut out = String::from("start_s");
        for outcome in Outcome::ALL {
            out.push(',');
            out.push_str(outcome.as_str());
        }
        out.push_str(
            ",upstream_calls,p50_ms,p99_ms,state_changes,queued,wait_p50_ms,wait_p99_ms\n",
        );
        for t in &self.ticks {
            let _ = write!(out, "{}", t.start.as_secs_f64());
            for c in t.outcomes {
                let _ = write!(out, ",{c}");
            }
            let _ = writeln!(
                out,
                ",{},{:.3},{:.3},{},{},{:.3},{:.3}",
                t.upstream_calls,
                t.p50.as_secs_f64() * 1e3,
                t.p99.as_secs_f64() * 1e3,
                t.state_changes,
                t.queued,
                t.wait_p50.as_secs_f64() * 1e3,
                t.wait_p99.as_secs_f64() * 1e3
            );
        }
        out
    }

    /// An SVG chart (written by hand, no plotting crate): requests, successes, failures and
    /// upstream calls per tick on top; p50 and p99 latency per tick below, with the p99 queue
    /// wait per tick when the stack reported any; a dashed purple line
    /// through both at each tick where the stack reported a state change (a breaker opening or
    /// closing). `title` goes on top.
    #[must_use]
    pub fn svg(&self, title: &str) -> String {
        const W: f64 = 960.0;
        const LEFT: f64 = 70.0;
        const RIGHT: f64 = 20.0;
        let plot_w = W - LEFT - RIGHT;
        let n = self.ticks.len().max(1);
        let x = |i: usize| LEFT + plot_w * i as f64 / (n.max(2) - 1) as f64;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="560" viewBox="0 0 {W} 560" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(out, r#"<rect width="{W}" height="560" fill="white"/>"#);
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
            escape(title)
        );
        // Top panel: counts per tick.
        let failed = |t: &Tick| t.requests() - t.count(Outcome::Success);
        let series: [(&str, &str, Vec<f64>); 4] = [
            (
                "requests",
                "#888888",
                self.ticks.iter().map(|t| t.requests() as f64).collect(),
            ),
            (
                "success",
                "#2a9d3a",
                self.ticks
                    .iter()
                    .map(|t| t.count(Outcome::Success) as f64)
                    .collect(),
            ),
            (
                "failed",
                "#d62828",
                self.ticks.iter().map(|t| failed(t) as f64).collect(),
            ),
            (
                "upstream calls",
                "#1f5fbf",
                self.ticks.iter().map(|t| t.upstream_calls as f64).collect(),
            ),
        ];
        let unit = format!("per {:?}", self.tick);
        panel(&mut out, 40.0, 250.0, &unit, &series, &x);
        let mut latency: Vec<(&str, &str, Vec<f64>)> = vec![
            (
                "p50 ms",
                "#2a9d8f",
                self.ticks
                    .iter()
                    .map(|t| t.p50.as_secs_f64() * 1e3)
                    .collect(),
            ),
            (
                "p99 ms",
                "#e76f51",
                self.ticks
                    .iter()
                    .map(|t| t.p99.as_secs_f64() * 1e3)
                    .collect(),
            ),
        ];
        if self.queued > 0 {
            latency.push((
                "queue wait p99 ms",
                "#b8860b",
                self.ticks
                    .iter()
                    .map(|t| t.wait_p99.as_secs_f64() * 1e3)
                    .collect(),
            ));
        }
        panel(&mut out, 330.0, 180.0, "latency ms", &latency, &x);
        // State changes.
        for (i, t) in self.ticks.iter().enumerate() {
            if t.state_changes > 0 {
                let _ = writeln!(
                    out,
                    r##"<line x1="{0:.1}" y1="40" x2="{0:.1}" y2="510" stroke="#7b2cbf" stroke-dasharray="4 3"><title>{1} state change(s) at {2:?}</title></line>"##,
                    x(i),
                    t.state_changes,
                    t.start
                );
            }
        }
        // Time axis.
        let end = self.tick * n as u32;
        for k in 0..=4 {
            let i = (n - 1) * k / 4;
            let t = end.as_secs_f64() * k as f64 / 4.0;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="545" text-anchor="middle">{t:.0}s</text>"#,
                x(i)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

/// One panel of lines, from `top` for `height`, with its legend and its max on the y axis.
fn panel(
    out: &mut String,
    top: f64,
    height: f64,
    unit: &str,
    series: &[(&str, &str, Vec<f64>)],
    x: &dyn Fn(usize) -> f64,
) {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let bottom = top + height;
    let _ = writeln!(
        out,
        r##"<rect x="70" y="{top}" width="870" height="{height}" fill="none" stroke="#cccccc"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="64" y="{:.1}" text-anchor="end">{max:.0}</text><text x="64" y="{bottom:.1}" text-anchor="end">0</text><text x="64" y="{:.1}" text-anchor="end" fill="#555555">{}</text>"##,
        top + 10.0,
        top + height / 2.0,
        escape(unit)
    );
    for (k, (name, color, values)) in series.iter().enumerate() {
        let mut points = String::new();
        for (i, v) in values.iter().enumerate() {
            let _ = write!(points, "{:.1},{:.1} ", x(i), bottom - height * v / max);
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.trim_end()
        );
        let lx = 80.0 + 130.0 * k as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            top + 12.0,
            lx + 16.0,
            top + 17.0,
            escape(name)
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
