//! The problem catalogue as the document shows it: the `Problem` schema, and the error responses of each
//! operation, built from the entries of [`crate::catalogue`]. The refusals that only some configurations
//! make (no API key, rate limited) are added per instance by `crate::openapi`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::StatusCode;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Object, ObjectBuilder, Ref, RefOr, Response, Type};
use utoipa::{IntoResponses, ToSchema};

use crate::catalogue::{
    BALANCE_LIMIT, CONFLICTING_PAGINATION, DRAINING, IDEMPOTENCY_KEY_REUSED, INTERNAL, INVALID_AMOUNT, INVALID_CURSOR,
    INVALID_IDEMPOTENCY_KEY, INVALID_PAGE, INVALID_QUERY, INVALID_TIME, INVALID_TIME_RANGE, INVALID_USER_ID,
    MALFORMED_BODY, METHOD_NOT_ALLOWED, OUTCOME_UNKNOWN, PAYLOAD_TOO_LARGE, PROBLEM_TYPES, ProblemHeader, ProblemType,
    STORAGE_UNAVAILABLE, UNSUPPORTED_MEDIA_TYPE,
};

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
pub(crate) struct ProblemSchema {
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

/// How the document describes a problem's header.
trait HeaderDocs {
    fn description(self) -> &'static str;
    fn schema(self) -> Object;
}

impl HeaderDocs for ProblemHeader {
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
pub(crate) fn sole_problem_response(problem: &ProblemType) -> (String, RefOr<Response>) {
    (problem.status.to_string(), problem_response(problem.status, &[problem]).into())
}

pub(crate) fn problem_response(status: u16, problems: &[&ProblemType]) -> Response {
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
    BalanceProblems: [INVALID_USER_ID, INVALID_TIME, INVALID_QUERY, METHOD_NOT_ALLOWED, INTERNAL, STORAGE_UNAVAILABLE];
    /// The errors of `GET /users/{uid}/history`.
    HistoryProblems: [
        INVALID_USER_ID,
        INVALID_PAGE,
        INVALID_CURSOR,
        INVALID_TIME,
        INVALID_TIME_RANGE,
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
