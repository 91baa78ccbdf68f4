//! Extractors that turn the parts of a request into domain values, failing with the API's own errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use domain::{Amount, AmountError, HistoryCursor, HistoryRequest, IdempotencyKey, PageNumber, UserId};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ApiError;

/// The `{uid}` of the path, percent-decoded and parsed.
#[derive(Debug)]
pub struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(uid) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::UndecodableUserId)?;
        Ok(Self(UserId::parse(&uid)?))
    }
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The optional `Idempotency-Key` header.
#[derive(Debug)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else { return Ok(Self(None)) };
        if values.next().is_some() {
            return Err(ApiError::RepeatedIdempotencyKey);
        }
        Ok(Self(Some(IdempotencyKey::parse(value.as_bytes())?)))
    }
}

/// The body of `POST /users/{uid}/add`. `amount` is kept as raw JSON so that a number is read from its
/// exact text, never through a float.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody<'a> {
    #[serde(borrow)]
    amount: &'a RawValue,
}

/// How long the body of a request may take to arrive, once its headers have.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The amount of an add request, after the media type, size, JSON and amount rules.
#[derive(Debug)]
pub struct AddAmount(pub Amount);

impl<S: Send + Sync> FromRequest<S> for AddAmount {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        // A body that trickles in must not hold a connection (and a graceful shutdown) forever.
        let read =
            tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, state)).await.map_err(|_| {
                ApiError::MalformedBody(format!(
                    "the request body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ))
            })?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedBody(format!("the request body could not be read: {rejection}"))
            }
        })?;
        let malformed = |why: &dyn std::fmt::Display| {
            ApiError::MalformedBody(format!("the body must be a JSON object like {{\"amount\": \"12.34\"}}: {why}"))
        };
        // serde also reads a struct from a JSON array (`[1]`); the contract asks for an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(malformed(&"it is not an object"));
        }
        let body: AddBody<'_> = serde_json::from_slice(&bytes).map_err(|error| malformed(&error))?;
        Ok(Self(parse_amount(body.amount)?))
    }
}

fn parse_amount(raw: &RawValue) -> Result<Amount, ApiError> {
    let text = raw.get();
    let amount = match text.as_bytes().first() {
        Some(b'"') => {
            let decoded: String = serde_json::from_str(text)
                .map_err(|error| ApiError::MalformedBody(format!("the amount string cannot be read: {error}")))?;
            // A string is plain decimal notation; the exponent form is a JSON number's. This keeps the strings
            // accepted to what a pattern in the OpenAPI document can describe exactly.
            if decoded.contains(['e', 'E']) {
                return Err(AmountError::NotANumber(decoded).into());
            }
            Amount::parse(&decoded)?
        }
        Some(b'-' | b'0'..=b'9') => Amount::parse(text)?,
        _ => {
            return Err(ApiError::MalformedBody(format!(
                "amount must be a JSON number such as 500 or a string such as \"12.34\", not {text}"
            )));
        }
    };
    Ok(amount)
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = |what: &str| {
        ApiError::UnsupportedMediaType(format!("send the body as Content-Type: application/json, not {what}"))
    };
    let Some(content_type) = headers.get(CONTENT_TYPE) else { return Err(refuse("without a Content-Type")) };
    let text = content_type.to_str().map_err(|_| refuse("an unreadable Content-Type"))?;
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" { Ok(()) } else { Err(refuse(text)) }
}

#[derive(Debug, Deserialize)]
struct HistoryParams {
    page: Option<String>,
    cursor: Option<String>,
}

/// Which history page `?page=N` or `?cursor=C` asks for; page 1 without either.
#[derive(Debug)]
pub struct HistoryQuery(pub HistoryRequest);

impl<S: Send + Sync> FromRequestParts<S> for HistoryQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HistoryParams>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
        let request = match (params.page, params.cursor) {
            (Some(_), Some(_)) => return Err(ApiError::ConflictingPagination),
            (Some(page), None) => HistoryRequest::Page(PageNumber::parse(&page)?),
            (None, Some(cursor)) => HistoryRequest::After(HistoryCursor::parse(&cursor)?),
            (None, None) => HistoryRequest::Page(PageNumber::FIRST),
        };
        Ok(Self(request))
    }
}
