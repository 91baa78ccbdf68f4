//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
//!
//! It is generated from the code: the operations from the `#[utoipa::path]` annotations of the handlers,
//! the response bodies from the `ToSchema` derives of `representation`, and the error responses from the
//! problem catalogue ([`crate::catalogue`]), one entry per problem type that [`crate::ApiError`] answers. What depends on
//! how an instance is configured (API keys, rate limit) is added per instance by [`instance`], so that the
//! document describes exactly what that instance requires and answers.
//! `tests/openapi.rs` holds the document to the router: the same routes, request examples the router
//! accepts, and the problem types and titles the router really sends.

mod instance;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::{ObjectBuilder, RefOr, Required, Response, Type};
use utoipa::{Modify, OpenApi};

use crate::catalogue::NOT_FOUND;
use crate::operation_docs::{OperationProblems, ProblemSchema, problem_response};
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
