use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    AmountError, BalanceLimitExceeded, IdempotencyKeyError, InvalidTimeRange, PageNumberError, StorageCause,
    StorageError, UserIdError, error_chain,
};
use serde::Serialize;

use crate::catalogue::{self, ProblemType};
use crate::cursor::InvalidCursor;
use crate::metrics;

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
    #[error("the request body is larger than {} KiB ({} bytes)", crate::MAX_BODY_BYTES / 1024, crate::MAX_BODY_BYTES)]
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
    InvalidCursor(#[from] InvalidCursor),
    #[error("{parameter} must be an RFC 3339 date-time such as 2026-11-29T10:00:00Z, not {text:?}")]
    InvalidTime { parameter: &'static str, text: String },
    #[error("{0}")]
    InvalidTimeRange(#[from] InvalidTimeRange),
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
    #[error("the ledger's store could not be reached in time; nothing was changed, retry later")]
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
            StorageError::Unavailable(_) => Self::StorageUnavailable { cause: Some(error), retry_after },
            StorageError::Failed(_) => Self::Internal(error),
        }
    }

    /// Counts the refusals and store failures that dashboards follow; every error is answered once, here.
    fn count(&self) {
        match self {
            Self::BalanceLimit(_) => metrics::add_refused("balance_limit"),
            Self::IdempotencyKeyReused { .. } => metrics::add_refused("idempotency_key_reused"),
            Self::StorageUnavailable { cause: Some(_), .. } => metrics::store_error("unavailable"),
            Self::StorageUnavailable { cause: None, .. } => metrics::store_error("timeout"),
            Self::OutcomeUnknown { .. } => metrics::store_error("outcome_unknown"),
            Self::Internal(_) => metrics::store_error("failed"),
            _ => {}
        }
    }

    /// The entry of the problem catalogue this error is answered with.
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            Self::InvalidUserId(_) | Self::UndecodableUserId => &catalogue::INVALID_USER_ID,
            Self::InvalidIdempotencyKey(_) | Self::RepeatedIdempotencyKey => &catalogue::INVALID_IDEMPOTENCY_KEY,
            Self::MalformedBody(_) => &catalogue::MALFORMED_BODY,
            Self::UnsupportedMediaType(_) => &catalogue::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => &catalogue::PAYLOAD_TOO_LARGE,
            Self::InvalidAmount(_) => &catalogue::INVALID_AMOUNT,
            Self::BalanceLimit(_) => &catalogue::BALANCE_LIMIT,
            Self::IdempotencyKeyReused { .. } => &catalogue::IDEMPOTENCY_KEY_REUSED,
            Self::InvalidPage(_) => &catalogue::INVALID_PAGE,
            Self::InvalidCursor(_) => &catalogue::INVALID_CURSOR,
            Self::InvalidTime { .. } => &catalogue::INVALID_TIME,
            Self::InvalidTimeRange(_) => &catalogue::INVALID_TIME_RANGE,
            Self::ConflictingPagination => &catalogue::CONFLICTING_PAGINATION,
            Self::InvalidQuery(_) => &catalogue::INVALID_QUERY,
            Self::NotFound => &catalogue::NOT_FOUND,
            Self::MethodNotAllowed => &catalogue::METHOD_NOT_ALLOWED,
            Self::Draining => &catalogue::DRAINING,
            Self::MissingApiKey | Self::InvalidApiKey => &catalogue::UNAUTHORIZED,
            Self::RateLimited { .. } => &catalogue::RATE_LIMITED,
            Self::StorageUnavailable { .. } => &catalogue::STORAGE_UNAVAILABLE,
            Self::OutcomeUnknown { .. } => &catalogue::OUTCOME_UNKNOWN,
            Self::Internal(_) => &catalogue::INTERNAL,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.count();
        let problem_type = self.problem_type();
        let status = StatusCode::from_u16(problem_type.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
        let problem = Problem {
            kind: problem_type.type_uri(),
            title: problem_type.title,
            status: status.as_u16(),
            detail: self.to_string(),
        };
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
