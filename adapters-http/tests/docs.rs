//! `GET /docs`: the interactive page of the document, served from assets in the binary, open without an API
//! key, and pointed at the instance's own `/openapi.json`.

use std::sync::Arc;

use adapters_http::{ApiKeys, AppState, HttpSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use regex::Regex;
use tower::ServiceExt;

/// An instance whose `/users/...` operations need an API key.
fn app_with_keys() -> Router {
    let settings = HttpSettings { api_keys: ApiKeys::new(["secret-key"]), ..HttpSettings::default() };
    router(AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), Readiness::default(), settings))
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String, String, String) {
    let response =
        app.clone().oneshot(Request::get(uri).body(Body::empty()).expect("a request")).await.expect("an answer");
    let header = |name: &str| {
        response.headers().get(name).map(|value| value.to_str().expect("ASCII").to_owned()).unwrap_or_default()
    };
    let (content_type, location) = (header("content-type"), header("location"));
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
    (status, content_type, location, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn docs_redirects_to_the_page_under_its_slash() {
    let (status, _, location, _) = get(&app_with_keys(), "/docs").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/docs/"));
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_key() {
    let app = app_with_keys();
    let (status, content_type, _, page) = get(&app, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains(r#"<div id="swagger-ui">"#), "{page}");
    let references = Regex::new(r#"(?:href|src)="([^"]+)""#).expect("a regex");
    let assets: Vec<&str> =
        references.captures_iter(&page).filter_map(|found| found.get(1)).map(|m| m.as_str()).collect();
    assert!(assets.len() >= 5, "the page loads its styles, scripts and icons: {assets:?}");
    for asset in assets {
        assert!(!asset.contains("//"), "the page loads {asset} from elsewhere");
        let (status, _, _, body) = get(&app, &format!("/docs/{}", asset.trim_start_matches("./"))).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(!body.is_empty(), "{asset} has content");
    }
}

#[tokio::test]
async fn the_page_reads_this_instances_document_and_no_online_validator() {
    let app = app_with_keys();
    let (status, content_type, _, script) = get(&app, "/docs/swagger-initializer.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.contains("javascript"), "{content_type}");
    assert!(script.contains(r#""url": "/openapi.json""#), "{script}");
    assert!(script.contains(r#""validatorUrl": "none""#), "{script}");
    let (status, _, _, _) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "the document the page reads needs no key either");
}

#[tokio::test]
async fn an_unknown_asset_is_the_apis_not_found_problem() {
    let (status, content_type, _, body) = get(&app_with_keys(), "/docs/nope.js").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
    assert!(body.contains("/problems/not-found"), "{body}");
}
