//! What the service counts, for Prometheus. Names and labels are the contract of the dashboards:
//! `bitburst_http_requests_total{method,route,status}`, `bitburst_http_request_duration_seconds{method,
//! route}`, `bitburst_adds_total{outcome}`, `bitburst_add_refusals_total{reason}` and
//! `bitburst_store_errors_total{kind}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Renders the current figures in the Prometheus text format; supplied by the binary, which owns the
/// recorder and knows the store's gauges.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The middleware: counts every request by route template (never the raw path, whose user ids would
/// make one series per user) and status, and times it.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("bitburst_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("bitburst_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

pub fn add_recorded(replayed: bool) {
    let outcome = if replayed { "replayed" } else { "applied" };
    metrics::counter!("bitburst_adds_total", "outcome" => outcome).increment(1);
}

pub fn add_refused(reason: &'static str) {
    metrics::counter!("bitburst_add_refusals_total", "reason" => reason).increment(1);
}

pub fn store_error(kind: &'static str) {
    metrics::counter!("bitburst_store_errors_total", "kind" => kind).increment(1);
}
