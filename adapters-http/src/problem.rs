use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    AmountError, BalanceLimitExceeded, HistoryCursorError, IdempotencyKeyError, PageNumberError, StorageCause,
    StorageError, UserIdError, error_chain,
};
use serde::Serialize;

/// Every way a request can fail, each with its status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidUserId(#[from] UserIdError),
    #[error("the user id is not valid percent-encoded UTF-8")]
    UndecodableUserId,
    #[error("{0}")]
    InvalidIdempotencyKey(#[from] IdempotencyKeyError),
    #[error("send at most one Idempotency-Key header")]
    RepeatedIdempotencyKey,
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than 16 KiB (16384 bytes)")]
    PayloadTooLarge,
    #[error("{0}")]
    InvalidAmount(#[from] AmountError),
    #[error("{0}")]
    BalanceLimit(#[from] BalanceLimitExceeded),
    #[error(
        "this Idempotency-Key already recorded an add of {original_amount} for this user; repeat that amount to get its transaction back, or use a new key for a new transfer"
    )]
    IdempotencyKeyReused { original_amount: domain::Amount },
    #[error("{0}")]
    InvalidPage(#[from] PageNumberError),
    #[error("{0}")]
    InvalidCursor(#[from] HistoryCursorError),
    #[error("send either page or cursor, not both")]
    ConflictingPagination,
    #[error("the query string cannot be read: {0}")]
    InvalidQuery(String),
    #[error("no resource is at this path; see the API for /users/{{uid}}/add, /balance and /history")]
    NotFound,
    #[error("this method is not allowed here; the Allow header lists the ones that are")]
    MethodNotAllowed,
    #[error("the instance is shutting down; send requests to another one")]
    Draining,
    #[error("send an API key as Authorization: Bearer <key>")]
    MissingApiKey,
    #[error("the API key is not valid; send one of the configured keys as Authorization: Bearer <key>")]
    InvalidApiKey,
    #[error("too many requests from this client; retry after the time in Retry-After")]
    RateLimited { retry_after: Duration },
    #[error("the ledger's store could not be reached in time; nothing was recorded, retry later")]
    StorageUnavailable { cause: Option<StorageError>, retry_after: Duration },
    #[error(
        "the add may or may not have been recorded: the store was lost before it confirmed; retry with the same Idempotency-Key to learn which, or without a key check the history before sending it again"
    )]
    OutcomeUnknown { cause: Option<StorageCause>, retry_after: Duration },
    #[error("the ledger failed to answer; the failure is logged")]
    Internal(#[source] StorageError),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
}

impl ApiError {
    /// The error for a store failure: unavailable stores are worth a retry, others are not.
    pub fn from_storage(error: StorageError, retry_after: Duration) -> Self {
        match error {
            StorageError::Unavailable(_) => {
                crate::metrics::store_error("unavailable");
                Self::StorageUnavailable { cause: Some(error), retry_after }
            }
            StorageError::Failed(_) => {
                crate::metrics::store_error("failed");
                Self::Internal(error)
            }
        }
    }

    fn status_and_type(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::InvalidUserId(_) | Self::UndecodableUserId => {
                (StatusCode::BAD_REQUEST, "invalid-user-id", "Invalid user id")
            }
            Self::InvalidIdempotencyKey(_) | Self::RepeatedIdempotencyKey => {
                (StatusCode::BAD_REQUEST, "invalid-idempotency-key", "Invalid Idempotency-Key")
            }
            Self::MalformedBody(_) => (StatusCode::BAD_REQUEST, "malformed-body", "Malformed request body"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            Self::InvalidAmount(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-amount", "Invalid amount"),
            Self::BalanceLimit(_) => (StatusCode::UNPROCESSABLE_ENTITY, "balance-limit", "Balance limit exceeded"),
            Self::IdempotencyKeyReused { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused")
            }
            Self::InvalidPage(_) => (StatusCode::BAD_REQUEST, "invalid-page", "Invalid page"),
            Self::InvalidCursor(_) => (StatusCode::BAD_REQUEST, "invalid-cursor", "Invalid cursor"),
            Self::ConflictingPagination => {
                (StatusCode::BAD_REQUEST, "conflicting-pagination", "Both page and cursor given")
            }
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid-query", "Invalid query string"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Self::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining", "Instance shutting down"),
            Self::MissingApiKey | Self::InvalidApiKey => (StatusCode::UNAUTHORIZED, "unauthorized", "API key required"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::StorageUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable", "Storage unavailable")
            }
            Self::OutcomeUnknown { .. } => (StatusCode::SERVICE_UNAVAILABLE, "outcome-unknown", "Outcome unknown"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.status_and_type();
        match &self {
            Self::Internal(cause) => tracing::error!(error = %error_chain(cause), "request failed"),
            Self::StorageUnavailable { cause: Some(cause), .. } => {
                tracing::warn!(error = %error_chain(cause), "store unavailable");
            }
            Self::OutcomeUnknown { cause, .. } => {
                let cause = cause.as_deref().map_or_else(|| "no answer in time".to_owned(), |cause| error_chain(cause));
                tracing::error!(error = %cause, "the outcome of an add is unknown");
            }
            _ => {}
        }
        let problem =
            Problem { kind: format!("/problems/{slug}"), title, status: status.as_u16(), detail: self.to_string() };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            Self::StorageUnavailable { retry_after, .. }
            | Self::OutcomeUnknown { retry_after, .. }
            | Self::RateLimited { retry_after } => {
                // Whole seconds, rounded up: waiting less than asked would only be refused again.
                let seconds = retry_after.as_secs().saturating_add(u64::from(retry_after.subsec_nanos() > 0));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            Self::MissingApiKey => {
                let challenge = HeaderValue::from_static(r#"Bearer realm="bitburst""#);
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            Self::InvalidApiKey => {
                let challenge = HeaderValue::from_static(r#"Bearer realm="bitburst", error="invalid_token""#);
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            _ => {}
        }
        response
    }
}
