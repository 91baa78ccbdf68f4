use std::io::IsTerminal;
use std::sync::OnceLock;

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
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder
                        .set_buckets_for_metric(Matcher::Full("bitburst_pg_batch_size".to_owned()), BATCH_SIZE_BUCKETS)
                })
                .expect("the bucket lists are not empty")
                .install_recorder()
                .expect("only this function installs a metrics recorder, once")
        })
        .clone()
}
