//! Calls received per 100 ms, served at `GET /_sandbox/calls` when the sandbox is started with
//! `--count-calls`: what a test reads to check how fast the gateways called Crisp, across every
//! replica, in any window.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};

/// The width of one bucket; any 1-second window is ten consecutive buckets.
pub const BUCKET_MS: u64 = 100;
/// Buckets kept: the last ten minutes.
const KEPT: usize = 6000;

#[derive(Default)]
pub struct Counts(Mutex<BTreeMap<u64, u64>>);

impl Counts {
    /// Counts one call, in the bucket of the wall-clock time it arrived.
    pub fn record(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut buckets = self.0.lock();
        *buckets.entry(now / BUCKET_MS * BUCKET_MS).or_insert(0) += 1;
        while buckets.len() > KEPT {
            buckets.pop_first();
        }
    }

    /// `{"bucket_ms":100,"counts":[[start_unix_ms, calls], …]}`, oldest first; empty buckets
    /// are left out.
    pub fn report(&self) -> Value {
        let counts: Vec<[u64; 2]> = self.0.lock().iter().map(|(at, n)| [*at, *n]).collect();
        json!({ "bucket_ms": BUCKET_MS, "counts": counts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_bucket() {
        let counts = Counts::default();
        for _ in 0..3 {
            counts.record();
        }
        let report = counts.report();
        let total: u64 = report["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|pair| pair[1].as_u64().expect("count"))
            .sum();
        assert_eq!(total, 3);
        assert_eq!(report["bucket_ms"], 100);
    }
}
