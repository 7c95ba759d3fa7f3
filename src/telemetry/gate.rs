//! Rate limits for the log lines a flood repeats: refused-request access lines, failed
//! requests, dropped audit rows. Past each kind's budget lines are counted, not written, and a
//! summary line a second says how many were suppressed, by status. Shed requests get no line of
//! their own at all: only a count, reported once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kernel::bucket::TokenBucket;

/// Lines of one kind written at once before the rate applies.
const BURST: f64 = 100.0;
/// Lines of one kind written per second past the burst.
const RATE: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The access line of a request answered with a 4xx or 5xx.
    RefusedRequest,
    /// The ERROR line of a request that failed on the gateway's or Crisp's side.
    FailedRequest,
    /// The debug line saying why a request was refused.
    Refusal,
    /// The audit buffer was full.
    AuditDropped,
}

const KINDS: [Kind; 4] = [
    Kind::RefusedRequest,
    Kind::FailedRequest,
    Kind::Refusal,
    Kind::AuditDropped,
];

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn describe(self) -> &'static str {
        match self {
            Self::RefusedRequest => "refused-request",
            Self::FailedRequest => "failed-request",
            Self::Refusal => "refusal",
            Self::AuditDropped => "audit-dropped",
        }
    }
}

struct Budget {
    bucket: Option<TokenBucket>,
    /// Suppressed lines since the last summary, by status (0 when there is none).
    dropped: Vec<(u16, u64)>,
    since: Option<Instant>,
}

static BUDGETS: [Mutex<Budget>; KINDS.len()] = [const {
    Mutex::new(Budget {
        bucket: None,
        dropped: Vec::new(),
        since: None,
    })
}; KINDS.len()];

/// Requests shed at capacity since the last summary.
static SHED: AtomicU64 = AtomicU64::new(0);

/// Counts a request shed at capacity. A flood past `max_concurrency` is exactly when a line
/// per request would cost the most, so the count is all it gets; `summarize` reports it.
pub fn shed() {
    SHED.fetch_add(1, Ordering::Relaxed);
}

/// Whether a line of this kind may be written now; if not, it is counted for the summary.
pub fn allow(kind: Kind, status: u16) -> bool {
    let now = Instant::now();
    let mut budget = BUDGETS[kind.index()].lock();
    if budget
        .bucket
        .get_or_insert_with(|| TokenBucket::new(RATE, BURST))
        .try_take(now)
        .is_ok()
    {
        return true;
    }
    budget.since.get_or_insert(now);
    let dropped = &mut budget.dropped;
    match dropped.iter().position(|(s, _)| *s == status) {
        Some(i) => dropped[i].1 += 1,
        // Statuses are few; the bound only guards against a bug.
        None if dropped.len() < 32 => dropped.push((status, 1)),
        None => dropped[0].1 += 1,
    }
    false
}

/// Writes one summary line per kind that suppressed lines since the last call.
pub fn summarize() {
    let shed = SHED.swap(0, Ordering::Relaxed);
    if shed > 0 {
        tracing::warn!(
            shed,
            "shed {shed} requests in the last second: the gateway is at capacity (max_concurrency)"
        );
    }
    for kind in KINDS {
        let (dropped, since) = {
            let mut budget = BUDGETS[kind.index()].lock();
            (std::mem::take(&mut budget.dropped), budget.since.take())
        };
        if dropped.is_empty() {
            continue;
        }
        let total: u64 = dropped.iter().map(|(_, n)| n).sum();
        let by_status = dropped
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let seconds = since.map_or(1.0, |t| t.elapsed().as_secs_f64().max(1.0));
        tracing::warn!(
            kind = kind.describe(),
            suppressed = total,
            "suppressed {total} {} lines in the last {seconds:.0} s ({by_status})",
            kind.describe()
        );
    }
}

/// Summarizes every second until the process ends.
pub fn spawn_summaries() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            summarize();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_not_written() {
        let allowed = (0..1_000)
            .filter(|_| allow(Kind::AuditDropped, 503))
            .count();
        assert!(
            (100..200).contains(&allowed),
            "the burst, and a little refill: {allowed}"
        );
        let dropped = BUDGETS[Kind::AuditDropped.index()].lock().dropped.clone();
        assert_eq!(dropped, [(503, 1_000 - allowed as u64)]);
        summarize();
        assert!(
            BUDGETS[Kind::AuditDropped.index()]
                .lock()
                .dropped
                .is_empty()
        );
    }
}
