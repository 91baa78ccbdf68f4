//! What the document says that depends on the configuration of the instance serving it: which operations
//! need an API key, and which may be refused by the rate limit. A document that declared a key where none
//! is needed, or a refusal that cannot happen, would not be exact.

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

use crate::HttpSettings;
use crate::catalogue::{ProblemType, RATE_LIMITED, UNAUTHORIZED};
use crate::operation_docs::sole_problem_response;

/// The name of the security scheme of API keys.
const BEARER: &str = "bearer";

/// Adds to `document` what the instance configured with `settings` requires and answers.
pub(super) fn describe(document: &mut OpenApi, settings: &HttpSettings) {
    let keys = settings.api_keys.is_some();
    // As the router: `/metrics` asks for a key only when keys are configured at all.
    let metrics_key = keys && settings.metrics_require_key;
    let rate_limited = settings.rate_limit.is_some();
    if keys {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("opaque API key")
            .description(Some("One of this instance's API keys, as `Authorization: Bearer <key>`."))
            .build();
        let components = document.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(BEARER.to_owned(), SecurityScheme::Http(scheme));
    }
    for (path, item) in &mut document.paths.paths {
        let ledger = path.starts_with("/users/");
        let needs_key = (ledger && keys) || (path == "/metrics" && metrics_key);
        for operation in super::operations(item) {
            if needs_key {
                operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                add_problem(operation, &UNAUTHORIZED);
            }
            // Requests refused for their key count against the client's address, so a guarded `/metrics`
            // may be limited too.
            if (ledger || needs_key) && rate_limited {
                add_problem(operation, &RATE_LIMITED);
            }
        }
    }
    let description = document.info.description.get_or_insert_with(String::new);
    description.push_str(&configuration_notes(keys, metrics_key, rate_limited));
}

/// `problem` is one that no other problem of the operation shares a status with (401 and 429 here).
fn add_problem(operation: &mut Operation, problem: &ProblemType) {
    let (status, response) = sole_problem_response(problem);
    operation.responses.responses.insert(status, response);
}

/// The last lines of the description: what this instance asks of its clients.
fn configuration_notes(keys: bool, metrics_key: bool, rate_limited: bool) -> String {
    let mut notes = String::new();
    if keys {
        notes.push_str(
            "\n- This instance is configured with API keys: the `/users/...` operations need one as \
             `Authorization: Bearer <key>`, else 401 `/problems/unauthorized`.",
        );
        if metrics_key {
            notes.push_str(" So does `GET /metrics`.");
        }
    } else {
        notes.push_str("\n- This instance needs no API key.");
    }
    if rate_limited {
        notes.push_str(
            "\n- This instance limits how fast each client may send `/users/...` requests: past it, 429 \
             `/problems/rate-limited` with `Retry-After`. Requests refused for a missing or wrong key count \
             against the client's address.",
        );
    }
    notes
}
