//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
//!
//! It is generated from the code: the operations from the `#[utoipa::path]` annotations of the handlers,
//! the response bodies from the `ToSchema` derives of `representation`, and the error responses from the
//! catalogue in [`problems`], one entry per problem type that [`crate::ApiError`] answers.
//! `tests/openapi.rs` holds the document to the router: the same routes, request examples the router
//! accepts, and the problem types and titles the router really sends.

mod problems;

use std::borrow::Cow;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Required, Response, Schema, Type};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

pub(crate) use self::problems::{
    AddProblems, BalanceProblems, HistoryProblems, MetricsProblems, OperationProblems, ReadyProblems,
};
use self::problems::{NOT_FOUND, ProblemSchema, problem_response};
use crate::handlers;

/// The document, as `GET /openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

const DESCRIPTION: &str = "\
BitBurst keeps user balances in US dollars, adds money to them exactly once per idempotency key, and shows \
each user's balance and transaction history.

This document is generated from the service's code. The contract it follows is the BitBurst HTTP API, \
version 1: [`API.md`](../shared/API.md) beside the service's repository.

- Money is a decimal **string** with exactly two decimals on output (`\"500.00\"`), in USD. On input an \
amount may be a JSON number or a decimal string; it is read exactly, never through a float.
- Every error is `application/problem+json` (RFC 9457) with `type`, `title`, `status` and `detail`; the \
`Problem` schema lists every `type`, and each operation lists the ones it can answer. An unknown path is \
404 `/problems/not-found`; a known path with another method is 405 `/problems/method-not-allowed` with \
an `Allow` header.
- Every response carries an `x-request-id` header: the caller's, if it sent one, else a new one.
- When the service is configured with API keys, the `/users/...` operations need one as \
`Authorization: Bearer <key>`; clients may also be rate limited there (429 with `Retry-After`).";

#[derive(OpenApi)]
#[openapi(
    info(title = "BitBurst", version = env!("CARGO_PKG_VERSION"), description = DESCRIPTION),
    paths(
        handlers::add,
        handlers::balance,
        handlers::history,
        handlers::healthz,
        handlers::readyz,
        metrics,
        openapi_json,
    ),
    components(schemas(ProblemSchema)),
    modifiers(&BearerScheme, &NotFound, &RequestIds),
    tags(
        (name = "ledger", description = "Balances, adds and history of users."),
        (name = "operations", description = "Probes, metrics and this document."),
    ),
)]
struct ApiDoc;

// Documents `GET /metrics` only: the router serves it with `handlers::prometheus_metrics`.
/// The service's metrics, in the Prometheus text format; behind the API key when so configured.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (
            status = 200,
            description = "The service's metrics in the Prometheus text exposition format: requests by route and \
                status, latency histogram, adds applied and replayed, store errors, pool use.",
            content_type = "text/plain; version=0.0.4",
            body = String,
            example = "# TYPE bitburst_http_requests_total counter\n\
                bitburst_http_requests_total{method=\"POST\",route=\"/users/{uid}/add\",status=\"200\"} 42\n",
        ),
        MetricsProblems,
    ),
)]
#[allow(dead_code, reason = "documentation only")]
fn metrics() {}

// Documents `GET /openapi.json` only: the router serves it with `document()`.
/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "This document: the OpenAPI 3.1 description of the API, generated from the code.",
            content_type = "application/json",
            body = Object,
        ),
        OperationProblems,
    ),
)]
#[allow(dead_code, reason = "documentation only")]
fn openapi_json() {}

// Documentation only: `extract::AddAmount` reads the real body from raw JSON, so that the amount's exact
// text is kept.
/// The body of `POST /users/{uid}/add`: a JSON object with `amount` and nothing else (another field is 400
/// `/problems/malformed-body`).
#[derive(ToSchema)]
#[schema(as = AddRequest, example = json!({"amount": "12.34"}))]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct AddRequestSchema {
    /// The amount to add, in US dollars.
    amount: AmountInput,
}

/// An amount on input: a JSON number or a decimal string, read exactly.
pub(crate) struct AmountInput;

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some("A JSON number such as `500` or `12.5`, read from its text (never through a float)."))
            .exclusive_minimum(Some(0))
            .maximum(Some(1_000_000_000))
            .examples([serde_json::json!(500), serde_json::json!(12.5)]);
        let string = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A decimal string such as `\"12.50\"`, in the notation of a JSON number without sign."))
            .pattern(Some(r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"))
            .examples([serde_json::json!("12.50")]);
        OneOfBuilder::new()
            .item(number)
            .item(string)
            .description(Some(
                "Greater than 0, at most 2 decimal places, at most 1000000000.00 (one billion); otherwise 422 \
                 `/problems/invalid-amount` and nothing is recorded.",
            ))
            .into()
    }
}

impl ToSchema for AmountInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AmountInput")
    }
}

/// The `{uid}` of the `/users/{uid}/...` paths.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "documentation only: extract::UserPath reads the path")]
pub(crate) struct UserIdParam {
    /// The user: 1 to 128 ASCII letters, ASCII digits and `. _ ~ @ + -`, after percent-decoding. Anything
    /// else is 400 `/problems/invalid-user-id`.
    #[param(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$", min_length = 1, max_length = 128, example = "gopal")]
    uid: String,
}

/// The optional `Idempotency-Key` header of an add.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "documentation only: extract::IdempotencyKeyHeader reads the header")]
pub(crate) struct IdempotencyKeyParam {
    /// Makes the add happen once: a repeat with the same user, key and amount answers the same transaction
    /// with `Idempotent-Replayed: true`; the same key with another amount is 422
    /// `/problems/idempotency-key-reused`. 1 to 255 printable ASCII characters (space to `~`), sent at most
    /// once; anything else is 400 `/problems/invalid-idempotency-key`. Without it every call is a new
    /// transaction.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[ -~]{1,255}$",
        min_length = 1,
        max_length = 255,
        example = "order-1001",
        nullable = false
    )]
    idempotency_key: Option<String>,
}

/// Which page of history `GET /users/{uid}/history` answers: `page` or `cursor`, not both (400
/// `/problems/conflicting-pagination`); page 1 without either.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only: extract::HistoryQuery reads the query")]
pub(crate) struct HistoryParams {
    /// Offset pages of 10, from 1 (the default); not with `cursor`. Not a whole number from 1: 400
    /// `/problems/invalid-page`. A page past the end is an empty list.
    #[param(minimum = 1, example = 2, nullable = false)]
    page: Option<u32>,
    /// Keyset pages: the `next_cursor` of the previous page; not with `page`. A cursor this service did not
    /// issue: 400 `/problems/invalid-cursor`.
    #[param(example = "c1-2-f", nullable = false)]
    cursor: Option<String>,
}

/// The `bearer` security scheme of the `/users/...` operations.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("opaque API key")
            .description(Some(
                "An API key as `Authorization: Bearer <key>`, needed when the service is configured with keys.",
            ))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert("bearer".to_owned(), SecurityScheme::Http(scheme));
    }
}

/// The answer to an unknown path, which no operation can list: a reusable `NotFound` response.
struct NotFound;

impl Modify for NotFound {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert("NotFound".to_owned(), problem_response(NOT_FOUND.status, &[&NOT_FOUND]).into());
    }
}

/// `x-request-id`, which every request may send and every response carries.
struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        let parameter = ParameterBuilder::new()
            .name("x-request-id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("An id for this request, echoed in the response and logged; one is made without it."))
            .schema(Some(string()))
            .example(Some(serde_json::json!("trace-me-42")))
            .build();
        let header = HeaderBuilder::new()
            .schema(string())
            .description(Some("The request's id: the caller's `x-request-id`, else a new UUID."))
            .build();
        let add_header = |response: &mut RefOr<Response>| {
            if let RefOr::T(response) = response {
                response.headers.insert("x-request-id".to_owned(), header.clone());
            }
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                operation.parameters.get_or_insert_with(Vec::new).push(parameter.clone());
                operation.responses.responses.values_mut().for_each(add_header);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            components.responses.values_mut().for_each(add_header);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
