//! The end of a run: a table per operation for people, and one JSON line for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::args::Operation;
use crate::resolve::Resolution;
use crate::stats::{OperationStats, RunStats};
use crate::verify::Findings;

/// What verification found, with the counts of the answers themselves.
#[derive(Debug, Clone)]
pub struct Verification {
    pub adds_acknowledged: u64,
    pub replays: u64,
    pub resolution: Resolution,
    pub findings: Findings,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.findings.clean() && self.resolution.unresolved == 0
    }

    /// The one line that says whether the ledger holds exactly what was acknowledged.
    pub fn summary_line(&self) -> String {
        let findings = &self.findings;
        format!(
            "verify: users={} adds_acknowledged={} distinct_transactions={} replays={} retried={} ambiguous={} \
             unresolved={} lost={} doubled={} unexpected={} balance_mismatches={} chain_breaks={} unverifiable={} => {}",
            findings.users,
            self.adds_acknowledged,
            findings.distinct_transactions,
            self.replays,
            self.resolution.retried,
            findings.ambiguous,
            self.resolution.unresolved,
            findings.lost,
            findings.doubled,
            findings.unexpected,
            findings.balance_mismatches,
            findings.chain_breaks,
            findings.unverifiable,
            if self.passed() { "OK" } else { "FAILED" },
        )
    }

    fn to_json(&self) -> Value {
        let findings = &self.findings;
        json!({
            "ok": self.passed(),
            "users": findings.users,
            "adds_acknowledged": self.adds_acknowledged,
            "distinct_transactions": findings.distinct_transactions,
            "replays": self.replays,
            "retried": self.resolution.retried,
            "resends": self.resolution.resends,
            "ambiguous": findings.ambiguous,
            "unresolved": self.resolution.unresolved,
            "lost": findings.lost,
            "doubled": findings.doubled,
            "unexpected": findings.unexpected,
            "balance_mismatches": findings.balance_mismatches,
            "chain_breaks": findings.chain_breaks,
            "unverifiable": findings.unverifiable,
        })
    }
}

/// Everything the report says about a run.
#[derive(Debug)]
pub struct RunReport<'a> {
    pub run_id: &'a str,
    pub targets: Vec<String>,
    pub connections: u32,
    pub elapsed: Duration,
    pub stats: &'a RunStats,
    pub verification: Option<&'a Verification>,
}

impl RunReport<'_> {
    pub fn table(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let mut out = format!(
            "loadgen: run {} against {} with {} connections for {seconds:.1} s\n\
             {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            self.run_id,
            self.targets.join(","),
            self.connections,
            "operation",
            "count",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
        );
        for operation in Operation::ALL {
            let stats = self.stats.operation(operation);
            if stats.successes() + stats.failure_count() == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<9} {:>10} {:>10.1} {:>10} {:>10} {:>10} {:>10} {:>8}",
                operation.name(),
                stats.successes(),
                per_second(stats.successes(), seconds),
                millis(stats.latency_at(0.5)),
                millis(stats.latency_at(0.99)),
                millis(stats.latency_at(0.999)),
                millis(stats.max_latency()),
                stats.failure_count(),
            );
        }
        let _ = writeln!(
            out,
            "{:<9} {:>10} {:>10.1} {:>54}",
            "total",
            self.stats.successes(),
            per_second(self.stats.successes(), seconds),
            self.stats.failures(),
        );
        for operation in Operation::ALL {
            let failures = self.stats.operation(operation).failures();
            if !failures.is_empty() {
                let kinds: Vec<String> = failures.iter().map(|(kind, count)| format!("{kind}={count}")).collect();
                let _ = writeln!(out, "errors of {}: {}", operation.name(), kinds.join(" "));
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        let seconds = self.elapsed.as_secs_f64();
        let operations: serde_json::Map<String, Value> = Operation::ALL
            .into_iter()
            .map(|operation| (operation.name().to_owned(), operation_json(self.stats.operation(operation), seconds)))
            .collect();
        json!({
            "run_id": self.run_id,
            "targets": self.targets,
            "connections": self.connections,
            "elapsed_secs": seconds,
            "requests": self.stats.successes(),
            "errors": self.stats.failures(),
            "requests_per_second": per_second(self.stats.successes(), seconds),
            "operations": operations,
            "verify": self.verification.map(Verification::to_json),
        })
    }
}

fn operation_json(stats: &OperationStats, seconds: f64) -> Value {
    json!({
        "count": stats.successes(),
        "requests_per_second": per_second(stats.successes(), seconds),
        "p50_us": stats.latency_at(0.5),
        "p99_us": stats.latency_at(0.99),
        "p999_us": stats.latency_at(0.999),
        "max_us": stats.max_latency(),
        "errors": stats.failures(),
    })
}

#[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^53")]
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

fn millis(micros: u64) -> String {
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_print_in_milliseconds_with_microsecond_digits() {
        assert_eq!(millis(0), "0.000");
        assert_eq!(millis(1_234), "1.234");
        assert_eq!(millis(12_000_050), "12000.050");
    }

    #[test]
    fn json_summary_names_every_operation() {
        let mut stats = RunStats::default();
        stats.operation_mut(Operation::Add).record_success(Duration::from_millis(2));
        let report = RunReport {
            run_id: "r",
            targets: vec!["http://x".to_owned()],
            connections: 1,
            elapsed: Duration::from_secs(2),
            stats: &stats,
            verification: None,
        };
        let json = report.json();
        assert_eq!(json["operations"]["add"]["count"], 1);
        assert_eq!(json["operations"]["add"]["requests_per_second"], 0.5);
        assert_eq!(json["operations"]["history"]["count"], 0);
        assert!(json["verify"].is_null());
    }
}
