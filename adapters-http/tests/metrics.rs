//! `/metrics` as a Prometheus scrape sees it, whatever methods clients invent. This binary installs the
//! process-wide recorder, so it holds only tests that tolerate each other's counts.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use adapters_http::{AppState, HttpSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceExt;

/// The recorder of this test binary, with request latency in buckets as the binary has it (one series a
/// bucket, so that the figures here are those of a real scrape).
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("buckets are given")
                .install_recorder()
                .expect("the only recorder of this test binary")
        })
        .clone()
}

fn app() -> Router {
    let handle = recorder();
    let state =
        AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), Readiness::default(), HttpSettings::default())
            .with_metrics(Arc::new(move || handle.render()));
    router(state)
}

async fn status_of(app: &Router, method: Method, path: &str) -> u16 {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("a valid request");
    app.clone().oneshot(request).await.expect("the router answers").status().as_u16()
}

async fn scrape(app: &Router) -> String {
    let response = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).expect("valid")).await;
    let body = response.expect("the router answers").into_body();
    String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.expect("readable").to_vec()).expect("UTF-8")
}

/// The values of the `method` label of the request metrics.
fn methods_in(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| line.starts_with("bitburst_http_"))
        .filter_map(|line| line.split("method=\"").nth(1)?.split('"').next().map(str::to_owned))
        .collect()
}

/// The request series a scrape holds: one sample line each, buckets included.
fn request_series(scrape: &str) -> usize {
    scrape.lines().filter(|line| line.starts_with("bitburst_http_")).count()
}

#[tokio::test]
async fn invented_methods_are_counted_as_other_and_the_scrape_stays_small() {
    let app = app();
    for n in 0..300 {
        let invented = Method::from_bytes(format!("INVENTED{n}").as_bytes()).expect("a token");
        assert_eq!(status_of(&app, invented, "/users/gopal/balance").await, 405);
    }
    for n in 0..200 {
        let huge = Method::from_bytes(format!("{n:04}{}", "M".repeat(8 * 1024 - 4)).as_bytes()).expect("a token");
        assert_eq!(status_of(&app, huge, "/nowhere").await, 404);
    }
    assert_eq!(status_of(&app, Method::GET, "/users/gopal/balance").await, 200);

    let scrape = scrape(&app).await;
    let (series, bytes) = (request_series(&scrape), scrape.len());
    let standard = ["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "other"];
    let unexpected: Vec<String> = methods_in(&scrape)
        .into_iter()
        .filter(|method| !standard.contains(&method.as_str()))
        .take(3)
        .map(|method| method.chars().take(20).collect())
        .collect();
    assert!(unexpected.is_empty(), "methods outside the closed set ({series} series, {bytes} bytes): {unexpected:?}");
    assert!(methods_in(&scrape).contains("other") && methods_in(&scrape).contains("GET"), "{scrape}");
    let other_count: u64 = scrape
        .lines()
        .filter(|line| line.starts_with("bitburst_http_requests_total{") && line.contains("method=\"other\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(other_count, 500, "every invented method is counted, as other");
    assert!(series < 100, "{series} series");
    assert!(bytes < 32 * 1024, "{bytes} bytes");
}
