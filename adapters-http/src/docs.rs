//! `GET /docs`: Swagger UI showing this instance's `/openapi.json`, with try-it-out against the same origin.
//! Every asset is embedded in the binary (the UI that `utoipa-swagger-ui` vendors), so the page needs no
//! file beside the binary and no internet access.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use crate::{ApiError, AppState};

/// The document the page shows: this instance's own, so that it matches the instance's configuration.
const DOCUMENT_URL: &str = "/openapi.json";

static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    // "none": no badge from the online validator, which would send the document out of the network.
    Arc::new(Config::from(DOCUMENT_URL).validator_url("none"))
});

/// The page and its assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        // The page loads its assets by relative URLs, which resolve under `/docs/` only.
        .route("/docs", get(|| async { Redirect::to("/docs/") }))
        .route("/docs/", get(|| async { asset("index.html") }))
        // Read from the URI, not `Path`: asset names need no decoding, and nothing here can be refused.
        .route(
            "/docs/{*file}",
            get(|uri: Uri| async move { asset(uri.path().strip_prefix("/docs/").unwrap_or_default()) }),
        )
}

fn asset(file: &str) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(file, Arc::clone(&CONFIG)) {
        Ok(Some(asset)) => Ok(([(CONTENT_TYPE, asset.content_type)], asset.bytes.into_owned()).into_response()),
        Ok(None) => Err(ApiError::NotFound),
        // Only writing the configuration into `swagger-initializer.js` can fail, and only on a bug.
        Err(error) => {
            tracing::error!(%error, file, "the API documentation page could not be built");
            Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}
