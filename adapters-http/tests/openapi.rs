//! The OpenAPI document (`GET /openapi.json`) held to the router it describes: the same routes, request
//! examples the router accepts, response examples that fit their schemas, the problem types the router
//! really answers, the amounts its schema allows being the ones the router takes, security and refusals
//! that follow the instance's configuration, and a document that an OpenAPI validator accepts.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use adapters_http::{ApiKeys, AppState, HttpSettings, RateLimitSettings, Readiness, openapi_document, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use domain::{LedgerRepository, MockLedgerRepository, RecordAddError, StorageError};
use regex::Regex;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The routes that `adapters_http::router` serves, as (method, path template).
const ROUTES: [(&str, &str); 7] = [
    ("POST", "/users/{uid}/add"),
    ("GET", "/users/{uid}/balance"),
    ("GET", "/users/{uid}/history"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The document of an instance with `settings`.
fn document_for(settings: &HttpSettings) -> Value {
    serde_json::to_value(openapi_document(settings)).expect("the document serializes to JSON")
}

/// The document of an instance with the default settings: no API keys, no rate limit.
fn document() -> Value {
    document_for(&HttpSettings::default())
}

/// Settings with everything that changes the document turned on.
fn guarded_settings() -> HttpSettings {
    HttpSettings {
        api_keys: ApiKeys::new(["secret-key"]),
        metrics_require_key: true,
        // Missing and wrong keys share their address's bucket, so the guarded instance lets two through.
        rate_limit: Some(RateLimitSettings { per_second: 0.001, burst: 2, trust_forwarded_for: false }),
        ..HttpSettings::default()
    }
}

fn app_with(repository: Arc<dyn LedgerRepository>, readiness: Readiness, settings: HttpSettings) -> Router {
    router(AppState::new(Ledger::new(repository), readiness, settings))
}

fn app() -> Router {
    app_with(Arc::new(InMemoryLedger::new()), Readiness::default(), HttpSettings::default())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body is readable").to_vec();
    Reply { status, headers, body }
}

/// Every operation of the document: its method, path template and the operation object.
fn operations(document: &Value) -> Vec<(Method, String, &Value)> {
    let paths = document["paths"].as_object().expect("the document has paths");
    let mut found = Vec::new();
    for (path, item) in paths {
        for method in HTTP_METHODS {
            if let Some(operation) = item.get(method) {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
                found.push((method, path.clone(), operation));
            }
        }
    }
    found
}

/// The operation documented for `method` and `path`.
fn operation<'a>(document: &'a Value, method: &Method, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method.as_str().to_ascii_lowercase()];
    assert!(operation.is_object(), "the document has no {method} {path}");
    operation
}

/// The schema a `$ref` points to, or the schema itself.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").expect("a reference to a component schema");
            let target = &document["components"]["schemas"][name];
            assert!(target.is_object(), "{reference} points to no schema");
            resolve(document, target)
        }
        None => schema,
    }
}

/// The `example` and every `examples` value of a media type, parameter or schema.
fn examples_of(object: &Value) -> Vec<Value> {
    let mut examples: Vec<Value> = object.get("example").into_iter().cloned().collect();
    match object.get("examples") {
        Some(Value::Object(named)) => examples.extend(named.values().map(|example| example["value"].clone())),
        Some(Value::Array(values)) => examples.extend(values.iter().cloned()),
        _ => {}
    }
    examples
}

/// The examples of a schema, with those of each alternative of its `oneOf`.
fn schema_examples(document: &Value, schema: &Value) -> Vec<Value> {
    let schema = resolve(document, schema);
    let mut examples = examples_of(schema);
    for alternative in schema.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
        examples.extend(schema_examples(document, alternative));
    }
    examples
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

/// Where `value` breaks `schema`: the subset of JSON Schema that this document uses, every object closed to
/// fields that its schema does not name.
fn violations(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(document, schema);
    let mut found = Vec::new();
    let mut broken = |why: String| found.push(format!("{at}: {why}"));
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        let fitting = alternatives.iter().filter(|alt| violations(document, alt, value, at).is_empty()).count();
        if fitting != 1 {
            broken(format!("{value} fits {fitting} of the oneOf alternatives, not exactly 1"));
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(kind) => vec![kind.as_str()],
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{at}: a type that is neither a string nor a list"),
        };
        if !kinds.iter().any(|kind| has_type(value, kind)) {
            broken(format!("{value} is not of type {kind}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        broken(format!("{value} is not one of {allowed:?}"));
    }
    if let Some(text) = value.as_str() {
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !Regex::new(pattern).expect("the pattern is a regex").is_match(text)
        {
            broken(format!("{text:?} does not match {pattern}"));
        }
        let length = text.chars().count();
        if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| (length as u64) < min) {
            broken(format!("{text:?} is too short"));
        }
        if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|max| (length as u64) > max) {
            broken(format!("{text:?} is too long"));
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if uuid::Uuid::parse_str(text).is_err() => broken(format!("{text:?} is not a UUID")),
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                broken(format!("{text:?} is not an RFC 3339 date-time"));
            }
            _ => {}
        }
    }
    if let Some(number) = value.as_f64() {
        let bound = |name: &str| schema.get(name).and_then(Value::as_f64);
        if bound("minimum").is_some_and(|min| number < min)
            || bound("maximum").is_some_and(|max| number > max)
            || bound("exclusiveMinimum").is_some_and(|min| number <= min)
            || bound("exclusiveMaximum").is_some_and(|max| number >= max)
        {
            broken(format!("{number} is out of bounds"));
        }
    }
    if let Some(fields) = value.as_object() {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().expect("a field name");
            if !fields.contains_key(name) {
                broken(format!("no {name}"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, field) in fields {
                match properties.get(name) {
                    Some(property) => found.extend(violations(document, property, field, &format!("{at}.{name}"))),
                    None => found.push(format!("{at}: {name} is not a field of the schema")),
                }
            }
        }
    }
    if let (Some(items), Some(elements)) = (schema.get("items"), value.as_array()) {
        for (index, element) in elements.iter().enumerate() {
            found.extend(violations(document, items, element, &format!("{at}[{index}]")));
        }
    }
    found
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let document = document();
    let documented: BTreeSet<(String, String)> =
        operations(&document).into_iter().map(|(method, path, _)| (method.to_string(), path)).collect();
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(documented, served, "the document's operations are the router's routes");

    let app = app();
    for (method, path) in &documented {
        let uri = path.replace("{uid}", "gopal");
        let request = Request::builder().method(method.as_str()).uri(&uri).body(Body::empty()).expect("a request");
        let reply = send(&app, request).await;
        assert!(
            reply.status != StatusCode::NOT_FOUND && reply.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri} is documented but answered {}",
            reply.status
        );
    }
}

#[tokio::test]
async fn get_openapi_json_serves_this_document() {
    let reply = send(&app(), Request::get("/openapi.json").body(Body::empty()).expect("a request")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers["content-type"].to_str().expect("ASCII");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert_eq!(reply.json(), document());
    let guarded = app_with(Arc::new(InMemoryLedger::new()), Readiness::default(), guarded_settings());
    let reply = send(&guarded, Request::get("/openapi.json").body(Body::empty()).expect("a request")).await;
    assert_eq!(reply.status, StatusCode::OK, "the document needs no key");
    assert_eq!(reply.json(), document_for(&guarded_settings()), "the document of the instance's own settings");
    assert_eq!(document()["openapi"], "3.1.0");
    assert_eq!(document()["info"]["title"], "BitBurst");
    assert_eq!(document()["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// The bodies an operation's examples make: each example of its JSON request body, and that body with each
/// field replaced by each example of the field's own schema.
fn request_bodies(document: &Value, operation: &Value) -> Vec<Value> {
    let Some(body) = operation.get("requestBody") else { return Vec::new() };
    let media = &body["content"]["application/json"];
    assert!(media.is_object(), "request bodies are application/json");
    let schema = resolve(document, &media["schema"]);
    let mut bodies = examples_of(media);
    bodies.extend(examples_of(schema));
    let base = bodies.first().cloned().expect("a request body has an example");
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        for example in schema_examples(document, field) {
            let mut with_field = base.clone();
            with_field[name] = example;
            bodies.push(with_field);
        }
    }
    bodies
}

/// An example as a query string value, percent-encoded.
fn query_value(example: &Value) -> String {
    let text = example.as_str().map_or_else(|| example.to_string(), str::to_owned);
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn every_request_example_is_a_request_the_router_accepts() {
    let document = document();
    let mut tried = 0;
    for (method, path, operation) in operations(&document) {
        let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
        let example_of = |parameter: &Value| examples_of(parameter).into_iter().next();
        let mut uri = path.clone();
        let mut headers = Vec::new();
        let mut queries = vec![None];
        for parameter in &parameters {
            let name = parameter["name"].as_str().expect("a parameter has a name");
            if name == "cursor" {
                // No example can be accepted: a cursor is signed for one user and range by the instance's key.
                // `router.rs` follows the `next_cursor` the service issues instead.
                assert!(example_of(parameter).is_none(), "{method} {path}: a cursor example would be refused");
                continue;
            }
            let example = example_of(parameter).unwrap_or_else(|| panic!("{method} {path}: {name} has no example"));
            assert!(
                violations(&document, &parameter["schema"], &example, name).is_empty(),
                "{method} {path}: the example of {name} fits its schema"
            );
            match parameter["in"].as_str() {
                Some("path") => uri = uri.replace(&format!("{{{name}}}"), &query_value(&example)),
                Some("header") => headers.push((name.to_owned(), example.as_str().expect("a string").to_owned())),
                Some("query") => queries.push(Some(format!("{name}={}", query_value(&example)))),
                other => panic!("{method} {path}: {name} is in {other:?}"),
            }
        }
        assert!(!uri.contains('{'), "{method} {path}: every path parameter has an example");
        let bodies = request_bodies(&document, operation);
        let bodies: Vec<Option<Value>> =
            if bodies.is_empty() { vec![None] } else { bodies.into_iter().map(Some).collect() };
        for body in &bodies {
            for query in &queries {
                let target = query.as_ref().map_or_else(|| uri.clone(), |query| format!("{uri}?{query}"));
                let mut request = Request::builder().method(method.clone()).uri(&target);
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                let request = match body {
                    Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())),
                    None => request.body(Body::empty()),
                };
                // A new service each time: the examples share one Idempotency-Key.
                let reply = send(&app(), request.expect("a request")).await;
                let what = format!("{method} {target} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
                assert_eq!(reply.status, StatusCode::OK, "{what}: {}", String::from_utf8_lossy(&reply.body));
                if let Some((_, id)) = headers.iter().find(|(name, _)| name == "x-request-id") {
                    assert_eq!(reply.headers["x-request-id"], id.as_str(), "{what}: the request id is echoed");
                }
                tried += 1;
            }
        }
    }
    assert!(tried >= 7 + 5, "every operation and every add example was tried: {tried}");
}

#[test]
fn every_response_example_fits_its_schema() {
    let document = document();
    let mut checked = 0;
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().expect("an operation has responses");
        for (status, response) in responses {
            let at = format!("{method} {path} {status}");
            assert!(response["headers"]["x-request-id"].is_object(), "{at}: every response has x-request-id");
            for (content_type, media) in response["content"].as_object().into_iter().flatten() {
                let examples = examples_of(media);
                if path == "/openapi.json" && status == "200" {
                    assert!(violations(&document, &media["schema"], &document, &at).is_empty());
                    continue;
                }
                assert!(!examples.is_empty(), "{at} {content_type} has an example");
                for example in examples {
                    if content_type.starts_with("text/plain") {
                        assert!(example.is_string(), "{at}: {example}");
                        continue;
                    }
                    assert!(content_type.ends_with("json"), "{at}: {content_type}");
                    let broken = violations(&document, &media["schema"], &example, &at);
                    assert!(broken.is_empty(), "{broken:#?}");
                    if content_type == "application/problem+json" {
                        assert_eq!(example["status"].to_string(), *status, "{at}: {example}");
                    }
                    checked += 1;
                }
            }
        }
    }
    for (name, schema) in document["components"]["schemas"].as_object().expect("component schemas") {
        for example in schema_examples(&document, schema) {
            let broken = violations(&document, schema, &example, name);
            assert!(broken.is_empty(), "{broken:#?}");
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} examples checked");
}

fn request(method: &Method, uri: &str) -> Request<Body> {
    Request::builder().method(method.clone()).uri(uri).body(Body::empty()).expect("a request")
}

fn add(uid: &str, content_type: &str, body: impl Into<Body>, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("/users/{uid}/add")).header("content-type", content_type);
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(body.into()).expect("a request")
}

fn get(uri: &str) -> Request<Body> {
    request(&Method::GET, uri)
}

/// That the document lists what the router answered to `method path`: the status, and among its examples one
/// with the same problem type and title, and the headers that came with it.
fn assert_documented(document: &Value, method: &Method, path: &str, reply: &Reply) {
    let problem = reply.json();
    let response = &operation(document, method, path)["responses"][reply.status.as_str()];
    assert_documented_response(response, &format!("{method} {path}"), reply, &problem);
}

fn assert_documented_response(response: &Value, at: &str, reply: &Reply, problem: &Value) {
    let at = format!("{at} {} {}", reply.status, problem["type"]);
    assert!(response.is_object(), "{at}: the status is not documented");
    let media = &response["content"]["application/problem+json"];
    assert_eq!(reply.headers["content-type"], "application/problem+json", "{at}");
    let documented = examples_of(media)
        .into_iter()
        .any(|example| example["type"] == problem["type"] && example["title"] == problem["title"]);
    assert!(documented, "{at}: no example has this type and title ({problem})");
    for header in ["retry-after", "allow", "www-authenticate"] {
        if reply.headers.contains_key(header) {
            let names = response["headers"].as_object().expect("headers");
            assert!(names.keys().any(|name| name.eq_ignore_ascii_case(header)), "{at}: {header} is not documented");
        }
    }
}

fn failing_store(error: fn() -> StorageError) -> Arc<dyn LedgerRepository> {
    let mut store = MockLedgerRepository::new();
    store.expect_record_add().returning(move |_| Err(RecordAddError::Storage(error())));
    store.expect_balance().returning(move |_| Err(error()));
    store.expect_history().returning(move |_, _| Err(error()));
    store.expect_check_ready().returning(move || Err(error()));
    Arc::new(store)
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "a table: one problem per row")]
async fn every_problem_the_router_answers_is_documented_for_its_operation() {
    let document = document();
    let json = "application/json";
    let (add_path, balance_path, history_path) = ("/users/{uid}/add", "/users/{uid}/balance", "/users/{uid}/history");
    let app = app();

    let rows: Vec<(&str, Request<Body>)> = vec![
        (add_path, add("vic%20tim", json, r#"{"amount": 1}"#, None)),
        (add_path, add("victim", json, r#"{"amount": 1}"#, Some(""))),
        (add_path, add("victim", json, "{}", None)),
        (add_path, add("victim", "text/plain", r#"{"amount": 1}"#, None)),
        (add_path, add("victim", json, format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(16 * 1024)), None)),
        (add_path, add("victim", json, r#"{"amount": 0.001}"#, None)),
        (balance_path, get("/users/vic%20tim/balance")),
        (history_path, get("/users/vic%20tim/history")),
        (history_path, get("/users/victim/history?page=0")),
        (history_path, get("/users/victim/history?cursor=abc")),
        (history_path, get("/users/victim/history?page=1&cursor=c1-2-f")),
        (history_path, get("/users/victim/history?page=1&page=2")),
    ];
    for (path, request) in rows {
        let method = request.method().clone();
        let reply = send(&app, request).await;
        assert!(reply.status.is_client_error(), "{method} {path}: {}", reply.status);
        assert_documented(&document, &method, path, &reply);
    }

    // Replayed with another amount.
    assert_eq!(send(&app, add("keyed", json, r#"{"amount": 1}"#, Some("k"))).await.status, StatusCode::OK);
    let reused = send(&app, add("keyed", json, r#"{"amount": 2}"#, Some("k"))).await;
    assert_eq!(reused.json()["type"], "/problems/idempotency-key-reused");
    assert_documented(&document, &Method::POST, add_path, &reused);

    // Past the balance limit.
    for _ in 0..1000 {
        assert_eq!(send(&app, add("whale", json, r#"{"amount": 1000000000}"#, None)).await.status, StatusCode::OK);
    }
    let limited = send(&app, add("whale", json, r#"{"amount": 1}"#, None)).await;
    assert_eq!(limited.json()["type"], "/problems/balance-limit");
    assert_documented(&document, &Method::POST, add_path, &limited);

    // Another method on each documented path.
    for (method, path, _) in operations(&document) {
        let other = if method == Method::DELETE { Method::PATCH } else { Method::DELETE };
        let reply = send(&app, request(&other, &path.replace("{uid}", "gopal"))).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
        assert_documented(&document, &method, &path, &reply);
    }

    // An unknown path, which only the reusable NotFound response can describe.
    let unknown = send(&app, get("/nope")).await;
    let not_found = &document["components"]["responses"]["NotFound"];
    assert_documented_response(not_found, "components.responses.NotFound", &unknown, &unknown.json());

    // A store that is down, and one that fails.
    let unavailable = || StorageError::Unavailable("connection refused".into());
    let failed = || StorageError::Failed("relation does not exist".into());
    for (store, expected) in [(failing_store(unavailable), "storage-unavailable"), (failing_store(failed), "internal")]
    {
        let settings = HttpSettings { retry_after: Duration::from_secs(2), ..HttpSettings::default() };
        let app = app_with(store, Readiness::default(), settings);
        for (path, request) in [
            (add_path, add("gopal", json, r#"{"amount": 1}"#, Some("k"))),
            (balance_path, get("/users/gopal/balance")),
            (history_path, get("/users/gopal/history")),
            ("/readyz", get("/readyz")),
        ] {
            let method = request.method().clone();
            let reply = send(&app, request).await;
            assert_eq!(reply.json()["type"], format!("/problems/{expected}"), "{method} {path}");
            assert_documented(&document, &method, path, &reply);
        }
    }

    // A store that lost an add's COMMIT.
    let mut store = MockLedgerRepository::new();
    store.expect_record_add().returning(|_| Err(RecordAddError::OutcomeUnknown("connection lost".into())));
    let app = app_with(Arc::new(store), Readiness::default(), HttpSettings::default());
    let reply = send(&app, add("gopal", json, r#"{"amount": 1}"#, Some("k"))).await;
    assert_eq!(reply.json()["type"], "/problems/outcome-unknown");
    assert_documented(&document, &Method::POST, add_path, &reply);

    // An instance that drains.
    let readiness = Readiness::default();
    readiness.start_draining();
    let draining = app_with(Arc::new(InMemoryLedger::new()), readiness, HttpSettings::default());
    let reply = send(&draining, get("/readyz")).await;
    assert_eq!(reply.json()["type"], "/problems/draining");
    assert_documented(&document, &Method::GET, "/readyz", &reply);

    // API keys and a rate limit, which only the document of an instance that has them lists.
    let document = document_for(&guarded_settings());
    let guarded = app_with(Arc::new(InMemoryLedger::new()), Readiness::default(), guarded_settings());
    let with_key = |uri: &str, key: &str| {
        Request::get(uri).header("authorization", format!("Bearer {key}")).body(Body::empty()).expect("a request")
    };
    let missing = send(&guarded, get("/users/gopal/balance")).await;
    let wrong = send(&guarded, with_key("/users/gopal/balance", "guess")).await;
    for reply in [&missing, &wrong] {
        assert_eq!(reply.json()["type"], "/problems/unauthorized");
        assert_documented(&document, &Method::GET, balance_path, reply);
    }
    let mut last = send(&guarded, with_key("/users/gopal/balance", "secret-key")).await;
    for _ in 0..5 {
        if last.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        last = send(&guarded, with_key("/users/gopal/balance", "secret-key")).await;
    }
    assert_eq!(last.json()["type"], "/problems/rate-limited");
    assert_documented(&document, &Method::GET, balance_path, &last);
    // A guarded /metrics refuses a client without a key, then limits it: its refusals count against it.
    let guarded = app_with(Arc::new(InMemoryLedger::new()), Readiness::default(), guarded_settings());
    let metrics = send(&guarded, get("/metrics")).await;
    assert_eq!(metrics.json()["type"], "/problems/unauthorized");
    assert_documented(&document, &Method::GET, "/metrics", &metrics);
    let mut last = metrics;
    for _ in 0..5 {
        if last.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        last = send(&guarded, get("/metrics")).await;
    }
    assert_eq!(last.json()["type"], "/problems/rate-limited");
    assert_documented(&document, &Method::GET, "/metrics", &last);
}

/// The `outcome-unknown` problem of an add, which only a store failing during COMMIT makes: documented as a
/// 503 with `Retry-After`, beside `storage-unavailable`.
#[test]
fn an_add_documents_an_unknown_outcome() {
    let document = document();
    let response = &operation(&document, &Method::POST, "/users/{uid}/add")["responses"]["503"];
    let examples = examples_of(&response["content"]["application/problem+json"]);
    let types: BTreeSet<String> = examples.iter().map(|example| example["type"].to_string()).collect();
    let expected = ["\"/problems/outcome-unknown\"", "\"/problems/storage-unavailable\""];
    assert_eq!(types, expected.map(str::to_owned).into(), "{response}");
    let unknown = examples.iter().find(|example| example["type"] == "/problems/outcome-unknown").expect("listed");
    assert_eq!((&unknown["title"], &unknown["status"]), (&json!("Outcome unknown"), &json!(503)));
    let retry_after = &response["headers"]["Retry-After"];
    assert!(retry_after.is_object(), "{response}");
    assert!(!retry_after["description"].as_str().unwrap_or_default().contains("only"), "sent with both: {response}");
    let problem_types = &document["components"]["schemas"]["Problem"]["properties"]["type"]["enum"];
    assert!(problem_types.as_array().is_some_and(|types| types.contains(&json!("/problems/outcome-unknown"))));
}

#[test]
fn without_api_keys_nothing_needs_a_key_and_nothing_is_rate_limited() {
    let document = document();
    assert!(document["components"]["securitySchemes"].as_object().is_none_or(serde_json::Map::is_empty));
    assert!(document["security"].is_null());
    for (method, path, operation) in operations(&document) {
        assert!(operation["security"].is_null(), "{method} {path} needs no key");
        for status in ["401", "429"] {
            assert!(operation["responses"][status].is_null(), "{method} {path} never answers {status}");
        }
    }
    assert!(document["info"]["description"].as_str().is_some_and(|text| text.contains("needs no API key")));
}

#[test]
fn with_api_keys_every_users_operation_needs_the_bearer_key_and_may_be_limited() {
    let document = document_for(&guarded_settings());
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    assert_eq!(scheme["bearerFormat"], "opaque API key");
    for (method, path, operation) in operations(&document) {
        let guarded = path.starts_with("/users/") || path == "/metrics";
        let expected = if guarded { json!([{"bearer": []}]) } else { Value::Null };
        assert_eq!(operation["security"], expected, "{method} {path}");
        assert_eq!(
            operation["responses"]["401"]["headers"]["WWW-Authenticate"].is_object(),
            guarded,
            "{method} {path}"
        );
        // Refused keys count against the client, so whatever needs a key may be limited.
        let limited = guarded;
        assert_eq!(operation["responses"]["429"]["headers"]["Retry-After"].is_object(), limited, "{method} {path}");
    }

    // Without `metrics_require_key`, `/metrics` stays open.
    let settings = HttpSettings { metrics_require_key: false, ..guarded_settings() };
    let document = document_for(&settings);
    assert!(operation(&document, &Method::GET, "/metrics")["security"].is_null());
    assert!(operation(&document, &Method::GET, "/users/{uid}/balance")["security"].is_array());
}

/// `CI=true` turns a missing tool into a failure, as everywhere in this workspace.
fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let install = "install it with `pip install openapi-spec-validator` (for the python3 on PATH)";
    let missing = match Command::new("python3").args(["-c", "import openapi_spec_validator"]).output() {
        Err(error) => Some(format!("python3 cannot be run ({error})")),
        Ok(probe) if !probe.status.success() => Some(format!(
            "python3 has no openapi_spec_validator module ({})",
            String::from_utf8_lossy(&probe.stderr).trim().lines().last().unwrap_or_default()
        )),
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(!on_ci(), "the OpenAPI validator is missing: {why}; {install}");
        // Past the test harness's capture, so that a skip shows in `cargo test` output.
        let _ = writeln!(std::io::stderr(), "SKIPPED: the OpenAPI validator is missing: {why}; {install}");
        return;
    }
    for (name, settings) in [("open", HttpSettings::default()), ("guarded", guarded_settings())] {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bitburst-openapi-{name}.json"));
        let text = serde_json::to_string_pretty(&document_for(&settings)).expect("the document serializes");
        std::fs::write(&file, text).expect("the document can be written to a temporary file");
        let output = Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .expect("python3 runs the validator");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "openapi-spec-validator refused {}:\n{said}", file.display());
        assert!(said.trim_end().ends_with("OK"), "{said}");
    }
}
