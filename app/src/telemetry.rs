use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Logs on stdout, filtered by `RUST_LOG` (default `info`): text for people, or one JSON object a line
/// with the fields of every enclosing span (so each line of a request carries its request and user id).
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}

/// Seconds buckets for request latency: from 0.5 ms (a memory read) to 10 s (past every timeout).
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process-wide Prometheus recorder that the `metrics` macros of every crate report to, installed by the
/// first call. A process runs one service, except a test process, which may build several: they share the
/// recorder (and so their figures), as the `metrics` macros allow only one.
pub(crate) fn prometheus() -> PrometheusHandle {
    static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder
                        .set_buckets_for_metric(Matcher::Full("bitburst_pg_batch_size".to_owned()), BATCH_SIZE_BUCKETS)
                })
                .expect("the bucket lists are not empty")
                .install_recorder()
                .expect("only this function installs a metrics recorder, once");
            keep_drained(handle.clone(), UPKEEP_EVERY);
            crate::process_metrics::note_start();
            handle
        })
        .clone()
}

/// How often histogram observations are folded into their buckets, scraped or not.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the recorder's histogram observations into their buckets every `every`, on a thread of its own.
/// The recorder keeps every observation until its upkeep runs, and otherwise only a scrape of `/metrics`
/// runs it: without this, a service that nobody scrapes (no Prometheus yet, or one that is down) grows by
/// every request it answers. A thread rather than a task: the recorder belongs to the process and
/// outlives any runtime (a test process builds several).
pub fn keep_drained(handle: PrometheusHandle, every: Duration) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(every);
            handle.run_upkeep();
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread: memory for latency figures is freed only when /metrics is scraped");
    }
}
