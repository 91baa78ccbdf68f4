//! Memory for latency figures stays bounded with nobody scraping `/metrics`. The Prometheus recorder keeps
//! every histogram observation (about 8 bytes each) until its upkeep runs; here a recorder of the test's
//! own takes ten million observations while only `bitburst::keep_drained` runs its upkeep, and the
//! process's resident memory (Linux's `/proc/self/status`) must not grow by anything near their size.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

const OBSERVATIONS: u32 = 10_000_000;
/// What the observations take when nothing drains them: at least 8 bytes each.
const UNDRAINED_BYTES: u64 = 8 * OBSERVATIONS as u64;

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn histogram_observations_do_not_pile_up_when_nothing_scrapes() {
    let Some(before) = resident_bytes() else {
        eprintln!("SKIPPED: no /proc/self/status on this system");
        return;
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    bitburst::keep_drained(recorder.handle(), Duration::from_millis(20));
    metrics::with_local_recorder(&recorder, || {
        let latency = metrics::histogram!("bitburst_http_request_duration_seconds");
        for observation in 0..OBSERVATIONS {
            latency.record(f64::from(observation % 1000) / 1e6);
        }
    });
    let after = resident_bytes().expect("read before, readable after");
    let grown = after.saturating_sub(before);
    assert!(
        grown < UNDRAINED_BYTES / 4,
        "resident memory grew by {grown} bytes over {OBSERVATIONS} observations (undrained they take {UNDRAINED_BYTES})"
    );
}
