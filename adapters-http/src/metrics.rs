//! What the service counts, for Prometheus. Names and labels are the contract of the dashboards:
//! `bitburst_http_requests_total{method,route,status}`, `bitburst_http_request_duration_seconds{method,
//! route}`, `bitburst_adds_total{outcome}`, `bitburst_add_refusals_total{reason}` and
//! `bitburst_store_errors_total{kind}`. Every label takes its values from a closed set, so that no client
//! can add series.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Renders the current figures in the Prometheus text format; supplied by the binary, which owns the
/// recorder and knows the store's gauges.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The middleware: counts every request by method (from a closed set), route template (never the raw
/// path, whose user ids would make one series per user) and status, and times it.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("bitburst_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("bitburst_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// The `method` label: the standard methods by name, any other as `other`. A client may send any token
/// as a method, and every distinct label value is a series of its own, kept until the process ends.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_names_and_others_are_other() {
        for (method, label) in [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::DELETE, "DELETE"),
            (Method::CONNECT, "CONNECT"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "TRACE"),
            (Method::PATCH, "PATCH"),
        ] {
            assert_eq!(method_label(&method), label);
        }
        for invented in ["get", "PROPFIND", "INVENTED1", &"M".repeat(8 * 1024)] {
            let method = Method::from_bytes(invented.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "other", "{}", &invented[..invented.len().min(20)]);
        }
    }
}
