//! Measurements: a latency histogram and failure counts per operation, kept by each worker without
//! sharing and merged at the end, plus two shared counters for the progress line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::api::Failure;
use crate::args::Operation;

/// Latencies above this are recorded as this; a request waits at most its timeout anyway.
const HIGHEST_LATENCY_MICROS: u64 = 3_600_000_000;

/// Three significant figures: p99 of 1.234 ms is told apart from 1.235 ms.
const SIGNIFICANT_FIGURES: u8 = 3;

/// One operation's successes (latency of each, in microseconds) and failures (by kind).
#[derive(Debug, Clone, Default)]
pub struct OperationStats {
    /// Made on the first success, so that a worker spends no memory on operations outside the mix.
    latency_micros: Option<Histogram<u64>>,
    failures: BTreeMap<String, u64>,
}

impl OperationStats {
    /// Only 2xx answers with a readable body are successes; their latency is what the report shows.
    pub fn record_success(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram().saturating_record(micros.max(1));
    }

    pub fn record_failure(&mut self, failure: &Failure) {
        *self.failures.entry(failure.kind()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &OperationStats) {
        if let Some(theirs) = &other.latency_micros {
            self.histogram().add(theirs).expect("histograms with the same bounds always add up");
        }
        for (kind, count) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += count;
        }
    }

    pub fn successes(&self) -> u64 {
        self.latency_micros.as_ref().map_or(0, Histogram::len)
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn failures(&self) -> &BTreeMap<String, u64> {
        &self.failures
    }

    /// The latency at `quantile` (0..=1) in microseconds; 0 without successes.
    pub fn latency_at(&self, quantile: f64) -> u64 {
        self.latency_micros.as_ref().map_or(0, |histogram| histogram.value_at_quantile(quantile))
    }

    pub fn max_latency(&self) -> u64 {
        self.latency_micros.as_ref().map_or(0, Histogram::max)
    }

    fn histogram(&mut self) -> &mut Histogram<u64> {
        self.latency_micros.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, HIGHEST_LATENCY_MICROS, SIGNIFICANT_FIGURES)
                .expect("constant bounds: 1 <= low, high >= 2 * low, 3 significant figures")
        })
    }
}

/// The measurements of one worker, or of the whole run once merged.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    by_operation: [OperationStats; Operation::ALL.len()],
}

impl RunStats {
    pub fn operation(&self, operation: Operation) -> &OperationStats {
        &self.by_operation[operation as usize]
    }

    pub fn operation_mut(&mut self, operation: Operation) -> &mut OperationStats {
        &mut self.by_operation[operation as usize]
    }

    pub fn merge(&mut self, other: &RunStats) {
        for (mine, theirs) in self.by_operation.iter_mut().zip(&other.by_operation) {
            mine.merge(theirs);
        }
    }

    pub fn successes(&self) -> u64 {
        self.by_operation.iter().map(OperationStats::successes).sum()
    }

    pub fn failures(&self) -> u64 {
        self.by_operation.iter().map(OperationStats::failure_count).sum()
    }
}

/// Counters every worker bumps after each request, read by the progress line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub completed: AtomicU64,
    pub failed: AtomicU64,
}

impl LiveCounters {
    pub fn record(&self, succeeded: bool) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints `elapsed, requests so far, current req/s, errors` to stderr every `every`, until aborted.
pub async fn report_progress(live: Arc<LiveCounters>, every: Duration, started: Instant) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut previous = (Instant::now(), 0_u64);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let completed = live.completed.load(Ordering::Relaxed);
        let interval = now.duration_since(previous.0).as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "a request count far below 2^53")]
        let rate = (completed - previous.1) as f64 / interval.max(f64::EPSILON);
        eprintln!(
            "loadgen: {:>6.1}s  requests={completed}  rate={rate:.0}/s  errors={}",
            now.duration_since(started).as_secs_f64(),
            live.failed.load(Ordering::Relaxed),
        );
        previous = (now, completed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_add_counts_and_keep_quantiles() {
        let mut first = RunStats::default();
        let mut second = RunStats::default();
        for micros in 1..=100 {
            first.operation_mut(Operation::Add).record_success(Duration::from_micros(micros * 10));
        }
        second.operation_mut(Operation::Add).record_success(Duration::from_secs(2));
        second.operation_mut(Operation::Add).record_failure(&Failure::Timeout);
        second.operation_mut(Operation::Balance).record_failure(&Failure::Timeout);
        first.merge(&second);
        let add = first.operation(Operation::Add);
        assert_eq!(add.successes(), 101);
        assert_eq!(add.failures().get("timeout"), Some(&1));
        // The 51st of 101 values: 510 µs.
        assert!((505..=515).contains(&add.latency_at(0.5)), "{}", add.latency_at(0.5));
        assert!((1_999_000..=2_001_000).contains(&add.max_latency()));
        assert_eq!(first.successes(), 101);
        assert_eq!(first.failures(), 2);
        assert_eq!(first.operation(Operation::History).latency_at(0.99), 0);
    }
}
