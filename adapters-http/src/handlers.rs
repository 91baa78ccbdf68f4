use std::future::Future;
use std::time::Duration;

use application::{AddError, AddMoney};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use domain::StorageError;

use crate::extract::{AddAmount, HistoryQuery, IdempotencyKeyHeader, UserPath};
use crate::representation::{BalanceBody, HistoryBody, StatusBody, TransactionBody};
use crate::{ApiError, AppState};

const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A failure of a use case, turned into the API's error once the retry delay is known.
trait IntoApiError {
    fn into_api_error(self, retry_after: Duration) -> ApiError;
}

impl IntoApiError for StorageError {
    fn into_api_error(self, retry_after: Duration) -> ApiError {
        ApiError::from_storage(self, retry_after)
    }
}

impl IntoApiError for AddError {
    fn into_api_error(self, retry_after: Duration) -> ApiError {
        match self {
            AddError::BalanceLimit(exceeded) => ApiError::BalanceLimit(exceeded),
            AddError::KeyReused { original_amount } => ApiError::IdempotencyKeyReused { original_amount },
            AddError::Storage(storage) => ApiError::from_storage(storage, retry_after),
        }
    }
}

/// Runs a use case within the configured store timeout; past it, the caller is told to retry.
async fn within_store_timeout<T, E: IntoApiError>(
    state: &AppState,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    let retry_after = state.settings.retry_after;
    match tokio::time::timeout(state.settings.store_timeout, call).await {
        Ok(result) => result.map_err(|error| error.into_api_error(retry_after)),
        Err(_elapsed) => Err(ApiError::StorageUnavailable { cause: None, retry_after }),
    }
}

pub async fn add(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
    IdempotencyKeyHeader(idempotency_key): IdempotencyKeyHeader,
    AddAmount(amount): AddAmount,
) -> Result<Response, ApiError> {
    let request = AddMoney { user_id, amount, idempotency_key };
    let receipt = within_store_timeout(&state, state.ledger.add(request)).await?;
    let mut response = Json(TransactionBody::from(&receipt.transaction)).into_response();
    if receipt.replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

pub async fn balance(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
) -> Result<Json<BalanceBody>, ApiError> {
    let balance = within_store_timeout(&state, state.ledger.balance(&user_id)).await?;
    Ok(Json(BalanceBody::new(&user_id, balance)))
}

pub async fn history(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
    HistoryQuery(request): HistoryQuery,
) -> Result<Json<HistoryBody>, ApiError> {
    let view = within_store_timeout(&state, state.ledger.history(&user_id, request)).await?;
    Ok(Json(HistoryBody::new(&user_id, &view)))
}

pub async fn healthz() -> Json<StatusBody> {
    Json(StatusBody { status: "ok" })
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    if state.readiness.is_draining() {
        return Err(ApiError::Draining);
    }
    within_store_timeout(&state, state.ledger.check_ready()).await?;
    Ok(Json(StatusBody { status: "ready" }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
