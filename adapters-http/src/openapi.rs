//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
//!
//! It is generated from the code: the operations from the `#[utoipa::path]` annotations of the handlers,
//! the response bodies from the `ToSchema` derives of `representation`, and the error responses from the
//! catalogue in [`problems`], one entry per problem type that [`crate::ApiError`] answers. What depends on
//! how an instance is configured (API keys, rate limit) is added per instance by [`instance`], so that the
//! document describes exactly what that instance requires and answers.
//! `tests/openapi.rs` holds the document to the router: the same routes, request examples the router
//! accepts, and the problem types and titles the router really sends.

mod instance;
mod problems;

use std::borrow::Cow;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Required, Response, Schema, Type};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

pub(crate) use self::problems::{AddProblems, BalanceProblems, HistoryProblems, OperationProblems, ReadyProblems};
use self::problems::{NOT_FOUND, ProblemSchema, problem_response};
use crate::{HttpSettings, handlers};

/// The document, as `GET /openapi.json` serves it on an instance with `settings`.
pub fn document(settings: &HttpSettings) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    instance::describe(&mut document, settings);
    // Last, so that the responses added for the instance carry the header too.
    RequestIds.modify(&mut document);
    document
}

const DESCRIPTION: &str = "\
BitBurst keeps user balances in US dollars, adds money to them exactly once per idempotency key, and shows \
each user's balance and transaction history.

This document is generated from the service's code, for the instance that serves it: what needs an API key \
and which refusals can happen follow that instance's configuration. `GET /docs` shows it as an interactive \
page.

- Money is a decimal **string** with exactly two decimals on output (`\"500.00\"`), in USD. On input an \
amount may be a JSON number or a decimal string; it is read exactly, never through a float.
- Every error is `application/problem+json` (RFC 9457) with `type`, `title`, `status` and `detail`; the \
`Problem` schema lists every `type`, and each operation lists the ones it can answer. An unknown path is \
404 `/problems/not-found`; a known path with another method is 405 `/problems/method-not-allowed` with \
an `Allow` header.
- Every response carries an `x-request-id` header: the caller's, if it sent one, else a new one.";

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
    modifiers(&NotFound),
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
        OperationProblems,
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

/// The decimal strings that are an amount: digits with an optional fraction (no sign, no exponent), above 0,
/// at most 2 decimals once trailing zeros are dropped, at most 1000000000.00. Leading zeros are allowed.
/// The three branches: 1 to 999999999 with any fraction of at most 2 significant decimals; one billion with
/// a zero fraction; 0.01 to 0.99.
const AMOUNT_STRING_PATTERN: &str =
    r"^(?:0*[1-9][0-9]{0,8}(?:\.[0-9]{1,2}0*)?|0*1000000000(?:\.0+)?|0+\.(?:[1-9][0-9]?|0[1-9])0*)$";

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        // `multipleOf: 0.01` is exact in JSON Schema, which compares the number's value, not a float.
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "A JSON number such as `500` or `12.5`, read from its text (never through a float); an exponent is \
                 allowed (`1.5e2`).",
            ))
            .exclusive_minimum(Some(0))
            .maximum(Some(1_000_000_000))
            .multiple_of(Some(0.01))
            .examples([serde_json::json!(500), serde_json::json!(12.5)]);
        let string = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A decimal string such as `\"12.50\"`: digits with an optional fraction; no sign, no exponent.",
            ))
            .pattern(Some(AMOUNT_STRING_PATTERN))
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
    /// once; spaces and tabs around them are not part of the key (HTTP drops them). Anything else is 400
    /// `/problems/invalid-idempotency-key`. Without it every call is a new transaction.
    // The length is in the pattern, not in `maxLength`, because it counts the key without the spaces and
    // tabs around it, which a sender may add.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[ \t]*[!-~](?:[ -~]{0,253}[!-~])?[ \t]*$",
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
    /// Offset pages of 10, from 1 (the default) to 4294967295; not with `cursor`. Anything else: 400
    /// `/problems/invalid-page`. A page past the end is an empty list.
    // i64, not the u32 it is read as: a u32 is documented as `int32`, which would leave out pages past 2^31.
    #[param(minimum = 1, maximum = 4_294_967_295_i64, example = 2, nullable = false)]
    page: Option<i64>,
    /// Keyset pages: the `next_cursor` of the previous page; not with `page`. A cursor this service did not
    /// issue: 400 `/problems/invalid-cursor`.
    // The pattern is the spelling of the cursors issued (page and position in lowercase hex, no leading zero),
    // so that a tool generating requests from this document sends only cursors this service reads.
    #[param(
        pattern = r"^c1-[1-9a-f][0-9a-f]{0,7}-(?:0|[1-9a-f][0-9a-f]{0,14}|[1-7][0-9a-f]{15})$",
        example = "c1-2-f",
        nullable = false
    )]
    cursor: Option<String>,
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
