//! The problem types of the document: one entry per type that [`crate::ApiError`] answers, the `Problem`
//! schema, and the error responses of each operation, built from those entries. The refusals that only some
//! configurations make (no API key, rate limited) are added per instance by `super::instance`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::StatusCode;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Object, ObjectBuilder, Ref, RefOr, Response, Type};
use utoipa::{IntoResponses, ToSchema};

/// An RFC 9457 problem document: every error of this API is one, as `application/problem+json`.
#[derive(ToSchema)]
#[schema(
    as = Problem,
    example = json!({
        "type": "/problems/invalid-amount",
        "title": "Invalid amount",
        "status": 422,
        "detail": "the amount has more than 2 decimal places; a cent (0.01) is the smallest unit"
    })
)]
#[allow(dead_code, reason = "documentation only: problem::Problem is what is serialized")]
pub(super) struct ProblemSchema {
    // Described, with every value, by `problem_type_schema`.
    #[serde(rename = "type")]
    #[schema(schema_with = problem_type_schema)]
    kind: String,
    /// A short summary of the type, the same for every problem of that type.
    title: String,
    /// The HTTP status of the response.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What a person should change, for this occurrence.
    detail: String,
}

fn problem_type_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(PROBLEM_TYPES.iter().map(ProblemType::type_uri)))
        .description(Some(
            "What went wrong, a stable slug; branch on it, not on `title` or `detail`. A later version may add \
             types: treat one you do not know by its `status`.",
        ))
        .build()
}

/// A header that comes with some problem types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ProblemHeader {
    Allow,
    RetryAfter,
    WwwAuthenticate,
}

impl ProblemHeader {
    fn name(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::RetryAfter => "Retry-After",
            Self::WwwAuthenticate => "WWW-Authenticate",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Allow => "The methods this path is served with, e.g. `GET,HEAD`.",
            Self::RetryAfter => "Whole seconds to wait before retrying (at least 1).",
            Self::WwwAuthenticate => {
                "The bearer challenge: `Bearer realm=\"bitburst\"`, with `error=\"invalid_token\"` for a key that is \
                 not valid."
            }
        }
    }

    fn schema(self) -> Object {
        match self {
            Self::RetryAfter => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build(),
            Self::Allow | Self::WwwAuthenticate => ObjectBuilder::new().schema_type(Type::String).build(),
        }
    }
}

/// One problem type that [`crate::ApiError`] answers.
#[derive(Debug)]
pub(super) struct ProblemType {
    slug: &'static str,
    pub(super) status: u16,
    title: &'static str,
    /// When it is answered, for the response's description.
    when: &'static str,
    /// An example `detail`, as the service words it.
    detail: &'static str,
    header: Option<ProblemHeader>,
}

impl ProblemType {
    fn type_uri(&self) -> String {
        format!("/problems/{}", self.slug)
    }

    fn example(&self) -> serde_json::Value {
        serde_json::json!({"type": self.type_uri(), "title": self.title, "status": self.status, "detail": self.detail})
    }
}

const INVALID_USER_ID: ProblemType = ProblemType {
    slug: "invalid-user-id",
    status: 400,
    title: "Invalid user id",
    when: "`{uid}` is not 1 to 128 of ASCII letters, digits and `. _ ~ @ + -` (after percent-decoding)",
    detail: "the user id contains ' '; only ASCII letters, digits and . _ ~ @ + - are allowed",
    header: None,
};
const INVALID_IDEMPOTENCY_KEY: ProblemType = ProblemType {
    slug: "invalid-idempotency-key",
    status: 400,
    title: "Invalid Idempotency-Key",
    when: "`Idempotency-Key` is not 1 to 255 printable ASCII characters, or is sent more than once",
    detail: "the Idempotency-Key has 300 characters; at most 255 are allowed",
    header: None,
};
const MALFORMED_BODY: ProblemType = ProblemType {
    slug: "malformed-body",
    status: 400,
    title: "Malformed request body",
    when: "the body is not a JSON object, has no `amount`, has another field, or its `amount` is neither a number \
           nor a string",
    detail: "the body must be a JSON object like {\"amount\": \"12.34\"}: missing field `amount` at line 1 column 2",
    header: None,
};
const INVALID_PAGE: ProblemType = ProblemType {
    slug: "invalid-page",
    status: 400,
    title: "Invalid page",
    when: "`page` is not a whole number from 1",
    detail: "page must be a whole number from 1 to 4294967295, not \"0\"",
    header: None,
};
const INVALID_CURSOR: ProblemType = ProblemType {
    slug: "invalid-cursor",
    status: 400,
    title: "Invalid cursor",
    when: "`cursor` is not one this service issued",
    detail: "the cursor \"abc\" was not issued by this service; use the next_cursor of a history page",
    header: None,
};
const CONFLICTING_PAGINATION: ProblemType = ProblemType {
    slug: "conflicting-pagination",
    status: 400,
    title: "Both page and cursor given",
    when: "both `page` and `cursor` are given",
    detail: "send either page or cursor, not both",
    header: None,
};
const INVALID_QUERY: ProblemType = ProblemType {
    slug: "invalid-query",
    status: 400,
    title: "Invalid query string",
    when: "the query string cannot be read, e.g. `page` given twice",
    detail: "the query string cannot be read: Failed to deserialize query string: duplicate field `page`",
    header: None,
};
pub(super) const UNAUTHORIZED: ProblemType = ProblemType {
    slug: "unauthorized",
    status: 401,
    title: "API key required",
    when: "the service is configured with API keys and the request has none, or one that is not valid, as \
           `Authorization: Bearer <key>`",
    detail: "send an API key as Authorization: Bearer <key>",
    header: Some(ProblemHeader::WwwAuthenticate),
};
pub(super) const NOT_FOUND: ProblemType = ProblemType {
    slug: "not-found",
    status: 404,
    title: "Not found",
    when: "no resource is at the path",
    detail: "no resource is at this path; see the API for /users/{uid}/add, /balance and /history",
    header: None,
};
const METHOD_NOT_ALLOWED: ProblemType = ProblemType {
    slug: "method-not-allowed",
    status: 405,
    title: "Method not allowed",
    when: "the path is served, but not with the method sent; `Allow` lists the methods that are",
    detail: "this method is not allowed here; the Allow header lists the ones that are",
    header: Some(ProblemHeader::Allow),
};
const PAYLOAD_TOO_LARGE: ProblemType = ProblemType {
    slug: "payload-too-large",
    status: 413,
    title: "Request body too large",
    when: "the body is over 16 KiB (16384 bytes)",
    detail: "the request body is larger than 16 KiB (16384 bytes)",
    header: None,
};
const UNSUPPORTED_MEDIA_TYPE: ProblemType = ProblemType {
    slug: "unsupported-media-type",
    status: 415,
    title: "Unsupported media type",
    when: "the body is not sent as `Content-Type: application/json`",
    detail: "send the body as Content-Type: application/json, not text/plain",
    header: None,
};
const INVALID_AMOUNT: ProblemType = ProblemType {
    slug: "invalid-amount",
    status: 422,
    title: "Invalid amount",
    when: "the amount is not greater than 0, has more than 2 decimal places, is above 1000000000.00, or is a string \
           that is not a decimal number; nothing is recorded",
    detail: "the amount has more than 2 decimal places; a cent (0.01) is the smallest unit",
    header: None,
};
const BALANCE_LIMIT: ProblemType = ProblemType {
    slug: "balance-limit",
    status: 422,
    title: "Balance limit exceeded",
    when: "the add would take the balance past 1000000000000.00; nothing is recorded",
    detail: "adding 500.00 to the balance of 999999999999.00 would pass the limit of 1000000000000.00",
    header: None,
};
const IDEMPOTENCY_KEY_REUSED: ProblemType = ProblemType {
    slug: "idempotency-key-reused",
    status: 422,
    title: "Idempotency-Key reused",
    when: "the user's `Idempotency-Key` already recorded another amount; nothing is recorded",
    detail: "this Idempotency-Key already recorded an add of 500.00 for this user; repeat that amount to get its \
             transaction back, or use a new key for a new transfer",
    header: None,
};
pub(super) const RATE_LIMITED: ProblemType = ProblemType {
    slug: "rate-limited",
    status: 429,
    title: "Too many requests",
    when: "the client sent more requests than its rate allows; `Retry-After` says when to retry",
    detail: "too many requests from this client; retry after the time in Retry-After",
    header: Some(ProblemHeader::RetryAfter),
};
const INTERNAL: ProblemType = ProblemType {
    slug: "internal",
    status: 500,
    title: "Internal error",
    when: "the store answered something it should not have; the failure is logged and the detail is generic",
    detail: "the ledger failed to answer; the failure is logged",
    header: None,
};
const STORAGE_UNAVAILABLE: ProblemType = ProblemType {
    slug: "storage-unavailable",
    status: 503,
    title: "Storage unavailable",
    when: "the store could not be reached in time; retry after `Retry-After` seconds (an add with the same \
           `Idempotency-Key`: it is recorded once)",
    detail: "the ledger's store could not be reached in time; retry later, with the same Idempotency-Key for an add",
    header: Some(ProblemHeader::RetryAfter),
};
const OUTCOME_UNKNOWN: ProblemType = ProblemType {
    slug: "outcome-unknown",
    status: 503,
    title: "Outcome unknown",
    when: "the store failed after the add may have reached it (e.g. the connection broke during COMMIT), so it may \
           or may not be recorded; retry with the same `Idempotency-Key` to learn which (it is recorded once), or, \
           without a key, check the history before sending it again",
    detail: "the add may or may not have been recorded; retry with the same Idempotency-Key to learn which, or check \
             the history before sending it again without one",
    header: Some(ProblemHeader::RetryAfter),
};
const DRAINING: ProblemType = ProblemType {
    slug: "draining",
    status: 503,
    title: "Instance shutting down",
    when: "the instance is shutting down; send requests to another one",
    detail: "the instance is shutting down; send requests to another one",
    header: None,
};

/// Every problem type, in the order of the `type` enum of the `Problem` schema.
const PROBLEM_TYPES: &[ProblemType] = &[
    INVALID_USER_ID,
    INVALID_IDEMPOTENCY_KEY,
    MALFORMED_BODY,
    INVALID_PAGE,
    INVALID_CURSOR,
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

/// The error responses of `problems`, one a status, each listing its problem types with an example apiece.
fn problem_responses(problems: &[&ProblemType]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&ProblemType>> = BTreeMap::new();
    for problem in problems {
        by_status.entry(problem.status).or_default().push(problem);
    }
    by_status
        .into_iter()
        .map(|(status, problems)| (status.to_string(), problem_response(status, &problems).into()))
        .collect()
}

/// The error response of `problem` alone, for a status at which an operation answers no other problem.
pub(super) fn sole_problem_response(problem: &ProblemType) -> (String, RefOr<Response>) {
    (problem.status.to_string(), problem_response(problem.status, &[problem]).into())
}

pub(super) fn problem_response(status: u16, problems: &[&ProblemType]) -> Response {
    let reason = StatusCode::from_u16(status).ok().and_then(|code| code.canonical_reason()).unwrap_or("Error");
    let mut description = format!("{reason}, as a problem document whose `type` says why:\n");
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem")));
    for problem in problems {
        let _ = write!(description, "\n- `{}` ({}): {}.", problem.type_uri(), problem.title, problem.when);
        let example = ExampleBuilder::new().summary(problem.title).value(Some(problem.example()));
        content = content.examples_from_iter([(problem.slug, example)]);
    }
    let mut response =
        ResponseBuilder::new().description(description).content("application/problem+json", content.build());
    let mut headers: BTreeMap<ProblemHeader, Vec<&ProblemType>> = BTreeMap::new();
    for problem in problems {
        if let Some(header) = problem.header {
            headers.entry(header).or_default().push(problem);
        }
    }
    for (header, with) in headers {
        let mut description = header.description().to_owned();
        if with.len() < problems.len() {
            let types: Vec<String> = with.iter().map(|problem| format!("`{}`", problem.type_uri())).collect();
            let _ = write!(description, " Sent with {} only.", types.join(", "));
        }
        response = response
            .header(header.name(), HeaderBuilder::new().schema(header.schema()).description(Some(description)).build());
    }
    response.build()
}

/// Declares a set of problem types as the error responses of an operation.
macro_rules! problems_of {
    ($($(#[$doc:meta])* $name:ident: [$($problem:ident),+ $(,)?];)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                problem_responses(&[$(&$problem),+])
            }
        }
    )+};
}

problems_of! {
    /// The errors of `POST /users/{uid}/add`.
    AddProblems: [
        INVALID_USER_ID,
        INVALID_IDEMPOTENCY_KEY,
        MALFORMED_BODY,
        METHOD_NOT_ALLOWED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        INVALID_AMOUNT,
        BALANCE_LIMIT,
        IDEMPOTENCY_KEY_REUSED,
        INTERNAL,
        STORAGE_UNAVAILABLE,
        OUTCOME_UNKNOWN,
    ];
    /// The errors of `GET /users/{uid}/balance`.
    BalanceProblems: [INVALID_USER_ID, METHOD_NOT_ALLOWED, INTERNAL, STORAGE_UNAVAILABLE];
    /// The errors of `GET /users/{uid}/history`.
    HistoryProblems: [
        INVALID_USER_ID,
        INVALID_PAGE,
        INVALID_CURSOR,
        CONFLICTING_PAGINATION,
        INVALID_QUERY,
        METHOD_NOT_ALLOWED,
        INTERNAL,
        STORAGE_UNAVAILABLE,
    ];
    /// The errors of `GET /readyz`: 503 while the store does not answer or the instance drains.
    ReadyProblems: [METHOD_NOT_ALLOWED, INTERNAL, STORAGE_UNAVAILABLE, DRAINING];
    /// The errors of an operation that only a wrong method can make fail.
    OperationProblems: [METHOD_NOT_ALLOWED];
}
