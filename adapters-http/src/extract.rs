//! Extractors that turn the parts of a request into domain values, failing with the API's own errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use chrono::{DateTime, Utc};
use domain::{Amount, AmountError, IdempotencyKey, PageNumber, TimeRange, UserId};
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
    from: Option<String>,
    to: Option<String>,
}

/// What `GET /users/{uid}/history` asks for: `?page=N` or `?cursor=C` (page 1 without either), within
/// `?from=` and `?to=`. The cursor is checked by the handler, which knows the user and the key.
#[derive(Debug)]
pub struct HistoryArgs {
    pub page: Option<PageNumber>,
    pub cursor: Option<String>,
    pub range: TimeRange,
}

impl<S: Send + Sync> FromRequestParts<S> for HistoryArgs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params: HistoryParams = query_params(parts, state).await?;
        if params.page.is_some() && params.cursor.is_some() {
            return Err(ApiError::ConflictingPagination);
        }
        let page = params.page.as_deref().map(PageNumber::parse).transpose()?;
        let from = params.from.as_deref().map(|text| parse_time("from", text)).transpose()?;
        let to = params.to.as_deref().map(|text| parse_time("to", text)).transpose()?;
        Ok(Self { page, cursor: params.cursor, range: TimeRange::new(from, to)? })
    }
}

/// A request's query string as `T`, or 400 `invalid-query` saying what did not fit.
async fn query_params<T: serde::de::DeserializeOwned + Send, S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<T, ApiError> {
    let Query(params) = Query::<T>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    Ok(params)
}

#[derive(Debug, Deserialize)]
struct BalanceParams {
    at: Option<String>,
}

/// The optional `?at=` of `GET /users/{uid}/balance`.
#[derive(Debug)]
pub struct BalanceAt(pub Option<DateTime<Utc>>);

impl<S: Send + Sync> FromRequestParts<S> for BalanceAt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params: BalanceParams = query_params(parts, state).await?;
        Ok(Self(params.at.as_deref().map(|text| parse_time("at", text)).transpose()?))
    }
}

/// An RFC 3339 date-time, in any offset, as UTC. A query string decodes an unescaped `+` to a space, so a
/// space where an offset's sign belongs is read as the `+` the caller meant (RFC 3339 has no other use
/// for a space there).
fn parse_time(parameter: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let invalid = || ApiError::InvalidTime { parameter, text: text.to_owned() };
    let parsed = DateTime::parse_from_rfc3339(text).or_else(|error| {
        let sign_at = text.len().checked_sub(6).ok_or(error)?;
        if text.as_bytes()[sign_at] != b' ' {
            return Err(error);
        }
        DateTime::parse_from_rfc3339(&format!("{}+{}", &text[..sign_at], &text[sign_at + 1..]))
    });
    parsed.map(|time| time.to_utc()).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_in_any_offset() {
        let utc = |text: &str| DateTime::parse_from_rfc3339(text).expect("valid").to_utc();
        assert_eq!(parse_time("at", "2026-11-29T10:00:00Z").ok(), Some(utc("2026-11-29T10:00:00Z")));
        assert_eq!(parse_time("at", "2026-11-29T11:00:00+01:00").ok(), Some(utc("2026-11-29T10:00:00Z")));
        assert_eq!(
            parse_time("at", "2026-11-29T11:00:00 01:00").ok(),
            Some(utc("2026-11-29T10:00:00Z")),
            "a decoded +"
        );
        assert_eq!(parse_time("at", "2026-11-29t10:00:00.5z").ok(), Some(utc("2026-11-29T10:00:00.5Z")));
        for bad in
            ["", "yesterday", "2026-11-29", "2026-11-29T10:00:00", "1764410400", "2026-13-01T00:00:00Z", " 01:00"]
        {
            assert!(matches!(parse_time("at", bad), Err(ApiError::InvalidTime { parameter: "at", .. })), "{bad:?}");
        }
    }
}
