//! The problem catalogue: every problem type the API answers, with its status, title and what it means,
//! written once. [`crate::ApiError`] answers with these entries, and the OpenAPI document describes them.

/// A header that comes with some problem types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ProblemHeader {
    Allow,
    RetryAfter,
    WwwAuthenticate,
}

impl ProblemHeader {
    /// The header's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::RetryAfter => "Retry-After",
            Self::WwwAuthenticate => "WWW-Authenticate",
        }
    }
}

/// One problem type that [`crate::ApiError`] answers.
#[derive(Debug)]
pub(crate) struct ProblemType {
    pub(crate) slug: &'static str,
    pub(crate) status: u16,
    pub(crate) title: &'static str,
    /// When it is answered, for the response's description.
    pub(crate) when: &'static str,
    /// An example `detail`, as the service words it.
    pub(crate) detail: &'static str,
    pub(crate) header: Option<ProblemHeader>,
}

impl ProblemType {
    pub(crate) fn type_uri(&self) -> String {
        format!("/problems/{}", self.slug)
    }

    pub(crate) fn example(&self) -> serde_json::Value {
        serde_json::json!({"type": self.type_uri(), "title": self.title, "status": self.status, "detail": self.detail})
    }
}

pub(crate) const INVALID_USER_ID: ProblemType = ProblemType {
    slug: "invalid-user-id",
    status: 400,
    title: "Invalid user id",
    when: "`{uid}` is not 1 to 128 of ASCII letters, digits and `. _ ~ @ + -` (after percent-decoding)",
    detail: "the user id contains ' '; only ASCII letters, digits and . _ ~ @ + - are allowed",
    header: None,
};
pub(crate) const INVALID_IDEMPOTENCY_KEY: ProblemType = ProblemType {
    slug: "invalid-idempotency-key",
    status: 400,
    title: "Invalid Idempotency-Key",
    when: "`Idempotency-Key` is not 1 to 255 printable ASCII characters, or is sent more than once",
    detail: "the Idempotency-Key has 300 characters; at most 255 are allowed",
    header: None,
};
pub(crate) const MALFORMED_BODY: ProblemType = ProblemType {
    slug: "malformed-body",
    status: 400,
    title: "Malformed request body",
    when: "the body is not a JSON object, has no `amount`, has another field, or its `amount` is neither a number \
           nor a string",
    detail: "the body must be a JSON object like {\"amount\": \"12.34\"}: missing field `amount` at line 1 column 2",
    header: None,
};
pub(crate) const INVALID_PAGE: ProblemType = ProblemType {
    slug: "invalid-page",
    status: 400,
    title: "Invalid page",
    when: "`page` is not a whole number from 1",
    detail: "page must be a whole number from 1 to 4294967295, not \"0\"",
    header: None,
};
pub(crate) const INVALID_CURSOR: ProblemType = ProblemType {
    slug: "invalid-cursor",
    status: 400,
    title: "Invalid cursor",
    when: "`cursor` is not one this service issued, or it was issued for another user or another `from`/`to`",
    detail: "the cursor \"abc\" was not issued by this service for this user and time range; use the next_cursor \
             of a history page, with the same from and to",
    header: None,
};
pub(crate) const INVALID_TIME: ProblemType = ProblemType {
    slug: "invalid-time",
    status: 400,
    title: "Invalid time",
    when: "`at`, `from` or `to` is not an RFC 3339 date-time such as `2026-11-29T10:00:00Z`",
    detail: "at must be an RFC 3339 date-time such as 2026-11-29T10:00:00Z, not \"yesterday\"",
    header: None,
};
pub(crate) const INVALID_TIME_RANGE: ProblemType = ProblemType {
    slug: "invalid-time-range",
    status: 400,
    title: "Invalid time range",
    when: "`from` is not before `to`",
    detail: "from (2026-12-01T00:00:00Z) must be before to (2026-11-01T00:00:00Z)",
    header: None,
};
pub(crate) const CONFLICTING_PAGINATION: ProblemType = ProblemType {
    slug: "conflicting-pagination",
    status: 400,
    title: "Both page and cursor given",
    when: "both `page` and `cursor` are given",
    detail: "send either page or cursor, not both",
    header: None,
};
pub(crate) const INVALID_QUERY: ProblemType = ProblemType {
    slug: "invalid-query",
    status: 400,
    title: "Invalid query string",
    when: "the query string cannot be read, e.g. `page` given twice",
    detail: "the query string cannot be read: Failed to deserialize query string: duplicate field `page`",
    header: None,
};
pub(crate) const UNAUTHORIZED: ProblemType = ProblemType {
    slug: "unauthorized",
    status: 401,
    title: "API key required",
    when: "the service is configured with API keys and the request has none, or one that is not valid, as \
           `Authorization: Bearer <key>`",
    detail: "send an API key as Authorization: Bearer <key>",
    header: Some(ProblemHeader::WwwAuthenticate),
};
pub(crate) const NOT_FOUND: ProblemType = ProblemType {
    slug: "not-found",
    status: 404,
    title: "Not found",
    when: "no resource is at the path",
    detail: "no resource is at this path; see the API for /users/{uid}/add, /balance and /history",
    header: None,
};
pub(crate) const METHOD_NOT_ALLOWED: ProblemType = ProblemType {
    slug: "method-not-allowed",
    status: 405,
    title: "Method not allowed",
    when: "the path is served, but not with the method sent; `Allow` lists the methods that are",
    detail: "this method is not allowed here; the Allow header lists the ones that are",
    header: Some(ProblemHeader::Allow),
};
pub(crate) const PAYLOAD_TOO_LARGE: ProblemType = ProblemType {
    slug: "payload-too-large",
    status: 413,
    title: "Request body too large",
    when: "the body is over 16 KiB (16384 bytes)",
    detail: "the request body is larger than 16 KiB (16384 bytes)",
    header: None,
};
pub(crate) const UNSUPPORTED_MEDIA_TYPE: ProblemType = ProblemType {
    slug: "unsupported-media-type",
    status: 415,
    title: "Unsupported media type",
    when: "the body is not sent as `Content-Type: application/json`",
    detail: "send the body as Content-Type: application/json, not text/plain",
    header: None,
};
pub(crate) const INVALID_AMOUNT: ProblemType = ProblemType {
    slug: "invalid-amount",
    status: 422,
    title: "Invalid amount",
    when: "the amount is not greater than 0, has more than 2 decimal places, is above 1000000000.00, or is a string \
           that is not a decimal number; nothing is recorded",
    detail: "the amount has more than 2 decimal places; a cent (0.01) is the smallest unit",
    header: None,
};
pub(crate) const BALANCE_LIMIT: ProblemType = ProblemType {
    slug: "balance-limit",
    status: 422,
    title: "Balance limit exceeded",
    when: "the add would take the balance past 1000000000000.00; nothing is recorded",
    detail: "adding 500.00 to the balance of 999999999999.00 would pass the limit of 1000000000000.00",
    header: None,
};
pub(crate) const IDEMPOTENCY_KEY_REUSED: ProblemType = ProblemType {
    slug: "idempotency-key-reused",
    status: 422,
    title: "Idempotency-Key reused",
    when: "the user's `Idempotency-Key` already recorded another amount; nothing is recorded",
    detail: "this Idempotency-Key already recorded an add of 500.00 for this user; repeat that amount to get its \
             transaction back, or use a new key for a new transfer",
    header: None,
};
pub(crate) const RATE_LIMITED: ProblemType = ProblemType {
    slug: "rate-limited",
    status: 429,
    title: "Too many requests",
    when: "the client sent more requests than its rate allows; `Retry-After` says when to retry",
    detail: "too many requests from this client; retry after the time in Retry-After",
    header: Some(ProblemHeader::RetryAfter),
};
pub(crate) const INTERNAL: ProblemType = ProblemType {
    slug: "internal",
    status: 500,
    title: "Internal error",
    when: "the store answered something it should not have; the failure is logged and the detail is generic",
    detail: "the ledger failed to answer; the failure is logged",
    header: None,
};
pub(crate) const STORAGE_UNAVAILABLE: ProblemType = ProblemType {
    slug: "storage-unavailable",
    status: 503,
    title: "Storage unavailable",
    when: "the store could not be reached in time; nothing was changed (an add was not recorded and will not be), \
           so a retry after `Retry-After` seconds is safe with or without an `Idempotency-Key`",
    detail: "the ledger's store could not be reached in time; nothing was changed, retry later",
    header: Some(ProblemHeader::RetryAfter),
};
pub(crate) const OUTCOME_UNKNOWN: ProblemType = ProblemType {
    slug: "outcome-unknown",
    status: 503,
    title: "Outcome unknown",
    when: "the store failed after the add may have reached it (e.g. the connection broke during COMMIT), so it may \
           or may not be recorded; retry with the same `Idempotency-Key` to learn which (it is recorded once), or, \
           without a key, check the history before sending it again",
    detail: "the add may or may not have been recorded: the store was lost before it confirmed; retry with the same \
             Idempotency-Key to learn which, or without a key check the history before sending it again",
    header: Some(ProblemHeader::RetryAfter),
};
pub(crate) const DRAINING: ProblemType = ProblemType {
    slug: "draining",
    status: 503,
    title: "Instance shutting down",
    when: "the instance is shutting down; send requests to another one",
    detail: "the instance is shutting down; send requests to another one",
    header: None,
};

/// Every problem type, in the order of the `type` enum of the `Problem` schema.
pub(crate) const PROBLEM_TYPES: &[ProblemType] = &[
    INVALID_USER_ID,
    INVALID_IDEMPOTENCY_KEY,
    MALFORMED_BODY,
    INVALID_PAGE,
    INVALID_CURSOR,
    INVALID_TIME,
    INVALID_TIME_RANGE,
    CONFLICTING_PAGINATION,
    INVALID_QUERY,
    UNAUTHORIZED,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INVALID_AMOUNT,
    BALANCE_LIMIT,
    IDEMPOTENCY_KEY_REUSED,
    RATE_LIMITED,
    INTERNAL,
    STORAGE_UNAVAILABLE,
    OUTCOME_UNKNOWN,
    DRAINING,
];
