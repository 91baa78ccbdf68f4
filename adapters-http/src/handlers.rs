use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use domain::{AddOutcome, HistoryQuery, HistoryRequest, NewAdd, PageNumber, RecordAddError, StorageError};

use crate::extract::{AddAmount, BalanceAt, HistoryArgs, IdempotencyKeyHeader, UserPath};
use crate::representation::{BalanceBody, HistoryBody, StatusBody, TransactionBody};
use crate::{ApiError, AppState, metrics};

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

impl IntoApiError for RecordAddError {
    fn into_api_error(self, retry_after: Duration) -> ApiError {
        match self {
            RecordAddError::BalanceLimit(exceeded) => ApiError::BalanceLimit(exceeded),
            RecordAddError::KeyReused { original_amount } => ApiError::IdempotencyKeyReused { original_amount },
            RecordAddError::Storage(storage) => ApiError::from_storage(storage, retry_after),
            RecordAddError::OutcomeUnknown(cause) => ApiError::OutcomeUnknown { cause: Some(cause), retry_after },
        }
    }
}

/// Runs a use case for at most `limit`; past it, the caller is answered what `past_limit` says.
async fn within<T, E: IntoApiError>(
    state: &AppState,
    limit: Duration,
    past_limit: fn(Duration) -> ApiError,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    let retry_after = state.settings.retry_after;
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(|error| error.into_api_error(retry_after)),
        Err(_elapsed) => Err(past_limit(retry_after)),
    }
}

/// Runs a read within the configured store timeout; past it, the caller is told to retry.
async fn within_store_timeout<T, E: IntoApiError>(
    state: &AppState,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    let unavailable = |retry_after| ApiError::StorageUnavailable { cause: None, retry_after };
    within(state, state.settings.store_timeout, unavailable, call).await
}

/// Runs an add to its real outcome. The store bounds its own waits and says whether an add it could not
/// finish was recorded; this backstop only answers for a store that never returns (a connection silently
/// gone), and since the add may have reached it, the answer is that its outcome is unknown.
async fn to_its_outcome(state: &AppState, add: NewAdd) -> Result<AddOutcome, ApiError> {
    let unknown = |retry_after| ApiError::OutcomeUnknown { cause: None, retry_after };
    within(state, state.settings.add_timeout, unknown, state.ledger.add(add)).await
}

/// Adds money to a user's balance, once per `Idempotency-Key`.
///
/// Answers the recorded transaction. A repeat with the same user, key and amount (later, concurrently, or on
/// another instance) adds nothing and answers the same transaction with `Idempotent-Replayed: true`.
#[utoipa::path(
    post,
    path = "/users/{uid}/add",
    operation_id = "add",
    tag = "ledger",
    params(crate::operation_docs::UserIdParam, crate::operation_docs::IdempotencyKeyParam),
    request_body(
        content = crate::operation_docs::AddRequestSchema,
        content_type = "application/json",
        description = "The amount to add; at most 16 KiB.",
        examples(
            ("number" = (summary = "A JSON number", value = json!({"amount": 500}))),
            ("decimal" = (summary = "A JSON number with decimals", value = json!({"amount": 12.5}))),
            ("string" = (summary = "A decimal string", value = json!({"amount": "12.34"}))),
        ),
    ),
    responses(
        (
            status = 200,
            description = "The recorded transaction: new, or the original one when the key is replayed.",
            body = TransactionBody,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answer replays a transaction \
                recorded earlier with the same key and amount; absent otherwise.")),
            example = json!({
                "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a",
                "user_id": "gopal",
                "sequence": 1,
                "amount": "500.00",
                "balance_after": "500.00",
                "created_at": "2026-11-29T10:00:00.123456Z",
                "hash": "0a2483e750cdf009ebbf32562432b4e95e7102c1ad480e00370858c02f41de82"
            }),
        ),
        crate::operation_docs::AddProblems,
    ),
)]
pub async fn add(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
    IdempotencyKeyHeader(idempotency_key): IdempotencyKeyHeader,
    AddAmount(amount): AddAmount,
) -> Result<Response, ApiError> {
    let outcome = to_its_outcome(&state, NewAdd { user_id, amount, idempotency_key }).await?;
    metrics::add_recorded(outcome.is_replayed());
    let mut response = Json(TransactionBody::from(outcome.transaction())).into_response();
    if outcome.is_replayed() {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A user's balance, now or (with `at`) as it stood at a time; `0.00` for a user with no transactions.
#[utoipa::path(
    get,
    path = "/users/{uid}/balance",
    operation_id = "balance",
    tag = "ledger",
    params(crate::operation_docs::UserIdParam, crate::operation_docs::BalanceParams),
    responses(
        (
            status = 200,
            description = "The balance; with `at`, the balance as it stood then, and `as_of`.",
            body = BalanceBody,
            examples(
                ("now" = (summary = "The balance now", value = json!(
                    {"user_id": "gopal", "balance": "500.00", "currency": "USD"}
                ))),
                ("at a time" = (summary = "The balance at a time (`?at=2026-11-30T00:00:00Z`)", value = json!(
                    {"user_id": "gopal", "balance": "120.00", "currency": "USD", "as_of": "2026-11-30T00:00:00Z"}
                ))),
            ),
        ),
        crate::operation_docs::BalanceProblems,
    ),
)]
pub async fn balance(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
    BalanceAt(at): BalanceAt,
) -> Result<Json<BalanceBody>, ApiError> {
    let balance = match at {
        Some(at) => within_store_timeout(&state, state.ledger.balance_at(&user_id, at)).await?,
        None => within_store_timeout(&state, state.ledger.balance(&user_id)).await?,
    };
    Ok(Json(BalanceBody::new(&user_id, balance, at)))
}

/// A user's transactions, newest first, 10 a page: by `page` number or by `cursor`, all of them or those
/// recorded from `from` until `to`.
#[utoipa::path(
    get,
    path = "/users/{uid}/history",
    operation_id = "history",
    tag = "ledger",
    params(crate::operation_docs::UserIdParam, crate::operation_docs::HistoryParams),
    responses(
        (
            status = 200,
            description = "A page of history; an empty list past the end or for a user with no transactions. \
                `next_page` and `next_cursor` are `null` on the last page.",
            body = HistoryBody,
            examples(
                ("more pages" = (summary = "A page with more after it", value = json!({
                    "user_id": "gopal",
                    "page": 1,
                    "per_page": 10,
                    "transactions": [{
                        "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a",
                        "user_id": "gopal",
                        "sequence": 10,
                        "amount": "500.00",
                        "balance_after": "5000.00",
                        "created_at": "2026-11-29T10:00:00.123456Z",
                        "hash": "6b1a6e0f4b8a2f7c3d5e9a1b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d"
                    }],
                    "next_page": 2,
                    "next_cursor": "000000020000000000000009c4f2a8e1b7d3069f5a1c2e4b6d8f0a13"
                }))),
                ("last page" = (summary = "The last page", value = json!({
                    "user_id": "gopal",
                    "page": 2,
                    "per_page": 10,
                    "transactions": [],
                    "next_page": null,
                    "next_cursor": null
                }))),
            ),
        ),
        crate::operation_docs::HistoryProblems,
    ),
)]
pub async fn history(
    State(state): State<AppState>,
    UserPath(user_id): UserPath,
    args: HistoryArgs,
) -> Result<Json<HistoryBody>, ApiError> {
    let cursors = &state.settings.cursor_key;
    let request = match (&args.cursor, args.page) {
        (Some(cursor), _) => HistoryRequest::After(cursors.open(cursor, &user_id, &args.range)?),
        (None, page) => HistoryRequest::Page(page.unwrap_or(PageNumber::FIRST)),
    };
    let query = HistoryQuery { range: args.range, request };
    let view = within_store_timeout(&state, state.ledger.history(&user_id, query)).await?;
    let next_cursor = view.next.map(|next| cursors.issue(next.cursor, &user_id, &args.range));
    Ok(Json(HistoryBody::new(&user_id, &view, next_cursor)))
}

/// Liveness: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process runs.", body = StatusBody, example = json!({"status": "ok"})),
        crate::operation_docs::OperationProblems,
    ),
)]
pub async fn healthz() -> Json<StatusBody> {
    Json(StatusBody { status: "ok" })
}

/// Readiness: 200 when the store answers and the instance is not shutting down, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic.", body = StatusBody, example = json!({"status": "ready"})),
        crate::operation_docs::ReadyProblems,
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    if state.readiness.is_draining() {
        return Err(ApiError::Draining);
    }
    within_store_timeout(&state, state.ledger.check_ready()).await?;
    Ok(Json(StatusBody { status: "ready" }))
}

pub async fn prometheus_metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.as_ref().map(|render| render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The document of this instance: what needs a key and what may be refused follow its settings.
pub async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi_document(&state.settings))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
