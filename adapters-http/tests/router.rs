//! The HTTP contract of `docs/api.md`, driven through the router without a socket.

use std::sync::Arc;
use std::time::Duration;

use adapters_http::{AppState, HttpSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use domain::{
    AddOutcome, Balance, HistoryPage, HistoryQuery, LedgerRepository, MockLedgerRepository, NewAdd, RecordAddError,
    StorageError, UserId,
};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

fn app_over(repository: Arc<dyn LedgerRepository>) -> Router {
    let settings = HttpSettings {
        store_timeout: Duration::from_millis(200),
        add_timeout: Duration::from_millis(400),
        retry_after: Duration::from_secs(2),
        ..HttpSettings::default()
    };
    router(AppState::new(Ledger::new(repository), Readiness::default(), settings))
}

fn app() -> Router {
    app_over(Arc::new(InMemoryLedger::new()))
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body is readable");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("every body is JSON") };
    Reply { status, headers, body }
}

fn post_add(uid: &str, body: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("/users/{uid}/add")).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(body.to_owned())).expect("a valid request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("a valid request")
}

async fn balance_of(app: &Router, uid: &str) -> String {
    let reply = send(app, get(&format!("/users/{uid}/balance"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body["balance"].as_str().expect("balance is a string").to_owned()
}

fn assert_problem(reply: &Reply, status: StatusCode, problem_type: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.body["type"], format!("/problems/{problem_type}"));
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(reply.body["detail"].as_str().is_some_and(|d| d.len() > 10), "detail tells what to change: {}", reply.body);
}

#[tokio::test]
async fn an_add_answers_the_recorded_transaction() {
    let app = app();
    let reply = send(&app, post_add("gopal", r#"{"amount": 500}"#, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(reply.headers.get("idempotent-replayed").is_none());
    let body = &reply.body;
    assert_eq!(body["user_id"], "gopal");
    assert_eq!(body["amount"], "500.00");
    assert_eq!(body["balance_after"], "500.00");
    let id = uuid_of(body);
    assert_eq!(id.get_version_num(), 7);
    let created_at = body["created_at"].as_str().expect("created_at is a string");
    assert_eq!(created_at.len(), "2026-11-29T10:00:00.123456Z".len(), "{created_at}");
    assert!(created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(), "{created_at}");
    assert_eq!(balance_of(&app, "gopal").await, "500.00");
}

fn uuid_of(body: &Value) -> uuid::Uuid {
    body["id"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok()).expect("id is a UUID")
}

#[tokio::test]
async fn amounts_may_be_numbers_or_strings_and_are_exact() {
    let app = app();
    for (body, after) in [
        (r#"{"amount": 12.5}"#, "12.50"),
        (r#"{"amount": "12.34"}"#, "24.84"),
        (r#"{"amount": 0.1}"#, "24.94"),
        (r#"{"amount": 0.2}"#, "25.14"),
        (r#"{"amount": 1e2}"#, "125.14"),
        (r#"{"amount": "1000000000.00"}"#, "1000000125.14"),
    ] {
        let reply = send(&app, post_add("gopal", body, None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.body);
        assert_eq!(reply.body["balance_after"], after, "{body}");
    }
}

#[tokio::test]
async fn an_unknown_user_has_a_zero_balance_in_usd() {
    let reply = send(&app(), get("/users/nobody/balance")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"user_id": "nobody", "balance": "0.00", "currency": "USD"}));
}

#[tokio::test]
async fn a_repeated_key_replays_the_same_transaction_and_adds_once() {
    let app = app();
    let first = send(&app, post_add("gopal", r#"{"amount": "12.34"}"#, Some("order-17"))).await;
    assert_eq!(first.status, StatusCode::OK);
    for _ in 0..3 {
        let again = send(&app, post_add("gopal", r#"{"amount": 12.34}"#, Some("order-17"))).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.body, first.body);
    }
    assert_eq!(balance_of(&app, "gopal").await, "12.34");
}

#[tokio::test]
async fn a_key_reused_with_another_amount_is_refused_and_changes_nothing() {
    let app = app();
    send(&app, post_add("gopal", r#"{"amount": 10}"#, Some("order-17"))).await;
    let reply = send(&app, post_add("gopal", r#"{"amount": 11}"#, Some("order-17"))).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(balance_of(&app, "gopal").await, "10.00");
}

#[tokio::test]
async fn the_same_key_under_two_users_is_two_transactions() {
    let app = app();
    let alice = send(&app, post_add("alice", r#"{"amount": 1}"#, Some("k"))).await;
    let bob = send(&app, post_add("bob", r#"{"amount": 1}"#, Some("k"))).await;
    assert!(bob.headers.get("idempotent-replayed").is_none());
    assert_ne!(alice.body["id"], bob.body["id"]);
}

#[tokio::test]
async fn an_add_past_the_balance_limit_is_refused_and_changes_nothing() {
    let app = app();
    for _ in 0..1000 {
        let reply = send(&app, post_add("whale", r#"{"amount": 1000000000}"#, None)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let reply = send(&app, post_add("whale", r#"{"amount": "0.01"}"#, None)).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "balance-limit");
    assert_eq!(balance_of(&app, "whale").await, "1000000000000.00");
}

/// One bad request, what it must be answered, and the user whose balance must stay zero.
struct BadInput {
    what: &'static str,
    request: Request<Body>,
    status: StatusCode,
    problem_type: &'static str,
}

fn bad(what: &'static str, request: Request<Body>, status: StatusCode, problem_type: &'static str) -> BadInput {
    BadInput { what, request, status, problem_type }
}

fn add_with(content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut builder = Request::post("/users/victim/add");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(Body::from(body)).expect("a valid request")
}

fn add_with_key_bytes(key: &[u8]) -> Request<Body> {
    Request::post("/users/victim/add")
        .header("content-type", "application/json")
        .header("idempotency-key", HeaderValue::from_bytes(key).expect("a header value"))
        .body(Body::from(r#"{"amount": 1}"#))
        .expect("a valid request")
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "a table: one bad input per row")]
async fn every_bad_input_is_a_specific_problem_and_records_nothing() {
    use StatusCode as S;
    let long_uid = "a".repeat(129);
    let oversized = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(16 * 1024));
    let cases = vec![
        bad("uid too long", post_add(&long_uid, r#"{"amount": 1}"#, None), S::BAD_REQUEST, "invalid-user-id"),
        bad("uid with a space", post_add("vic%20tim", r#"{"amount": 1}"#, None), S::BAD_REQUEST, "invalid-user-id"),
        bad("uid with a slash", get("/users/vic%2Ftim/balance"), S::BAD_REQUEST, "invalid-user-id"),
        bad("uid not UTF-8", get("/users/%FF/balance"), S::BAD_REQUEST, "invalid-user-id"),
        bad("uid not ASCII", get("/users/j%C3%BCrgen/history"), S::BAD_REQUEST, "invalid-user-id"),
        bad("empty key", add_with_key_bytes(b""), S::BAD_REQUEST, "invalid-idempotency-key"),
        bad("key of 256", add_with_key_bytes("k".repeat(256).as_bytes()), S::BAD_REQUEST, "invalid-idempotency-key"),
        bad("key not ASCII", add_with_key_bytes(b"caf\xe9"), S::BAD_REQUEST, "invalid-idempotency-key"),
        bad("key with a tab", add_with_key_bytes(b"a\tb"), S::BAD_REQUEST, "invalid-idempotency-key"),
        bad(
            "no content type",
            add_with(None, br#"{"amount": 1}"#.to_vec()),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        bad(
            "text/plain",
            add_with(Some("text/plain"), br#"{"amount": 1}"#.to_vec()),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        bad(
            "a JSON-like vendor type",
            add_with(Some("application/vnd.example+json"), br#"{"amount": 1}"#.to_vec()),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        bad(
            "form body",
            add_with(Some("application/x-www-form-urlencoded"), b"amount=1".to_vec()),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        bad("not JSON", add_with(Some("application/json"), b"amount=1".to_vec()), S::BAD_REQUEST, "malformed-body"),
        bad("empty body", add_with(Some("application/json"), Vec::new()), S::BAD_REQUEST, "malformed-body"),
        bad("missing amount", add_with(Some("application/json"), b"{}".to_vec()), S::BAD_REQUEST, "malformed-body"),
        bad(
            "unknown field",
            add_with(Some("application/json"), br#"{"amount": 1, "currency": "USD"}"#.to_vec()),
            S::BAD_REQUEST,
            "malformed-body",
        ),
        bad(
            "amount twice",
            add_with(Some("application/json"), br#"{"amount": 1, "amount": 2}"#.to_vec()),
            S::BAD_REQUEST,
            "malformed-body",
        ),
        bad(
            "amount a boolean",
            add_with(Some("application/json"), br#"{"amount": true}"#.to_vec()),
            S::BAD_REQUEST,
            "malformed-body",
        ),
        bad(
            "amount null",
            add_with(Some("application/json"), br#"{"amount": null}"#.to_vec()),
            S::BAD_REQUEST,
            "malformed-body",
        ),
        bad(
            "amount an object",
            add_with(Some("application/json"), br#"{"amount": {"value": 1}}"#.to_vec()),
            S::BAD_REQUEST,
            "malformed-body",
        ),
        bad("body an array", add_with(Some("application/json"), b"[1]".to_vec()), S::BAD_REQUEST, "malformed-body"),
        bad("amount zero", post_add("victim", r#"{"amount": 0}"#, None), S::UNPROCESSABLE_ENTITY, "invalid-amount"),
        bad(
            "amount negative",
            post_add("victim", r#"{"amount": -5}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "amount negative string",
            post_add("victim", r#"{"amount": "-5.00"}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "three decimals",
            post_add("victim", r#"{"amount": 12.345}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "three decimals string",
            post_add("victim", r#"{"amount": "0.001"}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "above the most per add",
            post_add("victim", r#"{"amount": 1000000000.01}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "huge exponent",
            post_add("victim", r#"{"amount": 1e400}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad(
            "not a number string",
            post_add("victim", r#"{"amount": "ten"}"#, None),
            S::UNPROCESSABLE_ENTITY,
            "invalid-amount",
        ),
        bad("empty string", post_add("victim", r#"{"amount": ""}"#, None), S::UNPROCESSABLE_ENTITY, "invalid-amount"),
        bad(
            "body over 16 KiB",
            add_with(Some("application/json"), oversized.into_bytes()),
            S::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        bad("page zero", get("/users/victim/history?page=0"), S::BAD_REQUEST, "invalid-page"),
        bad("page negative", get("/users/victim/history?page=-1"), S::BAD_REQUEST, "invalid-page"),
        bad("page fractional", get("/users/victim/history?page=1.5"), S::BAD_REQUEST, "invalid-page"),
        bad("page not a number", get("/users/victim/history?page=two"), S::BAD_REQUEST, "invalid-page"),
        bad("page empty", get("/users/victim/history?page="), S::BAD_REQUEST, "invalid-page"),
        bad(
            "page and cursor",
            get("/users/victim/history?page=1&cursor=c1-2-a"),
            S::BAD_REQUEST,
            "conflicting-pagination",
        ),
        bad("forged cursor", get("/users/victim/history?cursor=abc"), S::BAD_REQUEST, "invalid-cursor"),
        bad(
            "cursor of the old spelling",
            get("/users/victim/history?cursor=c1-2-7fffffffffffffff"),
            S::BAD_REQUEST,
            "invalid-cursor",
        ),
        bad("at not a time", get("/users/victim/balance?at=yesterday"), S::BAD_REQUEST, "invalid-time"),
        bad("at a date only", get("/users/victim/balance?at=2026-11-29"), S::BAD_REQUEST, "invalid-time"),
        bad("at without offset", get("/users/victim/balance?at=2026-11-29T10:00:00"), S::BAD_REQUEST, "invalid-time"),
        bad("from not a time", get("/users/victim/history?from=1764410400"), S::BAD_REQUEST, "invalid-time"),
        bad("to not a time", get("/users/victim/history?to=2026-13-01T00:00:00Z"), S::BAD_REQUEST, "invalid-time"),
        bad(
            "from after to",
            get("/users/victim/history?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"),
            S::BAD_REQUEST,
            "invalid-time-range",
        ),
        bad(
            "from equal to to",
            get("/users/victim/history?from=2026-12-01T01:00:00%2B01:00&to=2026-12-01T00:00:00Z"),
            S::BAD_REQUEST,
            "invalid-time-range",
        ),
        bad("page given twice", get("/users/victim/history?page=1&page=2"), S::BAD_REQUEST, "invalid-query"),
        bad("unknown path", get("/users/victim"), S::NOT_FOUND, "not-found"),
        bad("unknown root", get("/nope"), S::NOT_FOUND, "not-found"),
    ];
    let app = app();
    for case in cases {
        let reply = send(&app, case.request).await;
        assert_eq!(reply.status, case.status, "{}: {}", case.what, reply.body);
        assert_eq!(reply.body["type"], format!("/problems/{}", case.problem_type), "{}", case.what);
        assert_problem(&reply, case.status, case.problem_type);
    }
    assert_eq!(balance_of(&app, "victim").await, "0.00", "no bad request recorded anything");
}

#[tokio::test]
async fn a_body_of_exactly_16_kib_is_accepted() {
    let prefix = r#"{"amount": 1}"#;
    let body = format!("{prefix}{}", " ".repeat(16 * 1024 - prefix.len()));
    assert_eq!(body.len(), 16 * 1024);
    let reply = send(&app(), add_with(Some("application/json; charset=utf-8"), body.into_bytes())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn a_wrong_method_is_405_with_the_allowed_methods() {
    let app = app();
    for (method, path, allowed) in [
        (Method::GET, "/users/gopal/add", "POST"),
        (Method::DELETE, "/users/gopal/balance", "GET,HEAD"),
        (Method::POST, "/users/gopal/history", "GET,HEAD"),
        (Method::PUT, "/healthz", "GET,HEAD"),
    ] {
        let reply =
            send(&app, Request::builder().method(method.clone()).uri(path).body(Body::empty()).expect("valid")).await;
        assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
        assert_eq!(reply.headers["allow"], allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn history_is_newest_first_ten_a_page_by_number_and_by_cursor() {
    let app = app();
    for cents in 1..=25 {
        let reply = send(&app, post_add("gopal", &format!(r#"{{"amount": "0.{cents:02}"}}"#), None)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let amounts = |body: &Value| -> Vec<String> {
        body["transactions"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|t| t["amount"].as_str().expect("amount").to_owned())
            .collect()
    };
    let first = send(&app, get("/users/gopal/history")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        (first.body["user_id"].clone(), first.body["page"].clone(), first.body["per_page"].clone()),
        (json!("gopal"), json!(1), json!(10))
    );
    assert_eq!(amounts(&first.body), (16..=25).rev().map(|c| format!("0.{c:02}")).collect::<Vec<_>>());
    assert_eq!(first.body["next_page"], 2);
    let cursor = first.body["next_cursor"].as_str().expect("a cursor on a page with more after it");
    let second_by_cursor = send(&app, get(&format!("/users/gopal/history?cursor={cursor}"))).await;
    let second_by_page = send(&app, get("/users/gopal/history?page=2")).await;
    assert_eq!(second_by_cursor.body, second_by_page.body);
    assert_eq!(second_by_cursor.body["page"], 2);
    assert_eq!(amounts(&second_by_page.body), (6..=15).rev().map(|c| format!("0.{c:02}")).collect::<Vec<_>>());
    let last = send(&app, get("/users/gopal/history?page=3")).await;
    assert_eq!(amounts(&last.body).len(), 5);
    assert_eq!((last.body["next_page"].clone(), last.body["next_cursor"].clone()), (Value::Null, Value::Null));
    let past_the_end = send(&app, get("/users/gopal/history?page=4")).await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert_eq!(past_the_end.body["transactions"], json!([]));
    let nobody = send(&app, get("/users/nobody/history")).await;
    assert_eq!(nobody.body["transactions"], json!([]));
    assert_eq!(nobody.body["next_page"], Value::Null);
}

#[tokio::test]
async fn a_cursor_works_only_for_the_user_and_range_it_was_issued_for() {
    let app = app();
    for user in ["gopal", "other"] {
        for _ in 0..15 {
            assert_eq!(send(&app, post_add(user, r#"{"amount": 1}"#, None)).await.status, StatusCode::OK);
        }
    }
    let range = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let first = send(&app, get(&format!("/users/gopal/history?{range}"))).await;
    let cursor = first.body["next_cursor"].as_str().expect("15 transactions make two pages").to_owned();
    assert!(!cursor.contains("gopal") && cursor.len() == 56, "opaque: {cursor}");
    let second = send(&app, get(&format!("/users/gopal/history?{range}&cursor={cursor}"))).await;
    assert_eq!((second.status, second.body["page"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(second.body["transactions"].as_array().map(Vec::len), Some(5));
    for elsewhere in [
        format!("/users/other/history?{range}&cursor={cursor}"),
        format!("/users/gopal/history?cursor={cursor}"),
        format!("/users/gopal/history?from=2000-01-01T00:00:00Z&cursor={cursor}"),
    ] {
        assert_problem(&send(&app, get(&elsewhere)).await, StatusCode::BAD_REQUEST, "invalid-cursor");
    }
    let another_instance = self::app();
    let replayed = send(&another_instance, get(&format!("/users/gopal/history?{range}&cursor={cursor}"))).await;
    assert_problem(&replayed, StatusCode::BAD_REQUEST, "invalid-cursor");
}

#[tokio::test]
async fn transactions_carry_their_sequence_and_the_hash_that_chains_them() {
    let app = app();
    let first = send(&app, post_add("gopal", r#"{"amount": "500"}"#, Some("k"))).await;
    let second = send(&app, post_add("gopal", r#"{"amount": "0.25"}"#, None)).await;
    let replay = send(&app, post_add("gopal", r#"{"amount": "500"}"#, Some("k"))).await;
    assert_eq!((first.body["sequence"].clone(), second.body["sequence"].clone()), (json!(1), json!(2)));
    assert_eq!(replay.body, first.body, "a replay answers the same transaction, hash included");
    let hash = |body: &Value| body["hash"].as_str().expect("a hash").to_owned();
    assert!(hash(&first.body).len() == 64 && hash(&first.body).bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(hash(&first.body), hash(&second.body));
    let history = send(&app, get("/users/gopal/history")).await;
    assert_eq!(history.body["transactions"], json!([second.body, first.body]), "history shows the same fields");
}

#[tokio::test]
async fn a_balance_at_a_time_is_the_balance_after_the_last_transaction_by_then() {
    let app = app();
    let before = send(&app, get("/users/gopal/balance?at=2000-01-01T00:00:00Z")).await;
    assert_eq!(
        before.body,
        json!({"user_id": "gopal", "balance": "0.00", "currency": "USD", "as_of": "2000-01-01T00:00:00Z"})
    );
    let first = send(&app, post_add("gopal", r#"{"amount": "5"}"#, None)).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    send(&app, post_add("gopal", r#"{"amount": "7"}"#, None)).await;
    let created_at = first.body["created_at"].as_str().expect("a time").to_owned();
    let at_first = send(&app, get(&format!("/users/gopal/balance?at={created_at}"))).await;
    assert_eq!((at_first.body["balance"].clone(), at_first.body["as_of"].clone()), (json!("5.00"), json!(created_at)));
    // In another offset, with the + escaped or (as many clients send it) not.
    let later = "2100-01-01T01:00:00";
    for offset in ["%2B01:00", "+01:00"] {
        let reply = send(&app, get(&format!("/users/gopal/balance?at={later}{offset}"))).await;
        assert_eq!(
            (reply.body["balance"].clone(), reply.body["as_of"].clone()),
            (json!("12.00"), json!("2100-01-01T00:00:00Z"))
        );
    }
    let now = send(&app, get("/users/gopal/balance")).await;
    assert_eq!(now.body, json!({"user_id": "gopal", "balance": "12.00", "currency": "USD"}), "no as_of without at");
}

#[tokio::test]
async fn every_response_carries_a_request_id_the_callers_or_a_new_one() {
    let app = app();
    let generated = send(&app, get("/users/gopal/balance")).await;
    let id = generated.headers["x-request-id"].to_str().expect("ASCII");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let echoed =
        send(&app, Request::get("/nope").header("x-request-id", "trace-me-42").body(Body::empty()).expect("valid"))
            .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-me-42");
}

fn unavailable() -> StorageError {
    StorageError::Unavailable("connection refused".into())
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after() {
    let mut store = MockLedgerRepository::new();
    store.expect_record_add().returning(|_| Err(RecordAddError::Storage(unavailable())));
    store.expect_balance().returning(|_| Err(unavailable()));
    store.expect_history().returning(|_, _| Err(unavailable()));
    store.expect_check_ready().returning(|| Err(unavailable()));
    let app = app_over(Arc::new(store));
    for request in [
        post_add("gopal", r#"{"amount": 1}"#, Some("k")),
        get("/users/gopal/balance"),
        get("/users/gopal/history"),
        get("/readyz"),
    ] {
        let reply = send(&app, request).await;
        assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable");
        assert_eq!(reply.headers["retry-after"], "2");
    }
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK, "the process itself is healthy");
}

#[tokio::test]
async fn a_store_failure_is_500_without_its_cause() {
    let mut store = MockLedgerRepository::new();
    store.expect_balance().returning(|_| Err(StorageError::Failed("relation \"secret_table\" does not exist".into())));
    let reply = send(&app_over(Arc::new(store)), get("/users/gopal/balance")).await;
    assert_problem(&reply, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!reply.body.to_string().contains("secret_table"));
}

/// A store that never answers, as one behind a dead network would.
struct SilentStore;

#[async_trait]
impl LedgerRepository for SilentStore {
    async fn record_add(&self, _add: NewAdd) -> Result<AddOutcome, RecordAddError> {
        std::future::pending().await
    }
    async fn balance(&self, _user_id: &UserId) -> Result<Balance, StorageError> {
        std::future::pending().await
    }
    async fn balance_at(&self, _user_id: &UserId, _at: DateTime<Utc>) -> Result<Balance, StorageError> {
        std::future::pending().await
    }
    async fn history(&self, _user_id: &UserId, _query: HistoryQuery) -> Result<HistoryPage, StorageError> {
        std::future::pending().await
    }
    async fn check_ready(&self) -> Result<(), StorageError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_in_time_is_503_not_a_hang() {
    let app = app_over(Arc::new(SilentStore));
    for request in [get("/users/gopal/balance"), get("/users/gopal/history")] {
        let reply = send(&app, request).await;
        assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable");
        assert_eq!(reply.headers["retry-after"], "2");
    }
    assert_eq!(send(&app, get("/readyz")).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_add_the_store_never_answers_is_not_called_unrecorded() {
    // The store may have recorded it: saying "not recorded" would invite a double credit without a key.
    let app = app_over(Arc::new(SilentStore));
    let started = std::time::Instant::now();
    let reply = send(&app, post_add("gopal", r#"{"amount": 1}"#, Some("k"))).await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "outcome-unknown");
    assert_eq!(reply.headers["retry-after"], "2");
    assert!(started.elapsed() >= Duration::from_millis(400), "answered only at the add timeout");
}

/// A store that takes 300 ms to record an add: longer than a read may wait, far shorter than an add may.
struct SlowStore;

#[async_trait]
impl LedgerRepository for SlowStore {
    async fn record_add(&self, add: NewAdd) -> Result<AddOutcome, RecordAddError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let balance_after = Balance::from_decimal(add.amount.as_decimal()).expect("within the limit");
        let mut transaction = domain::Transaction {
            id: domain::TransactionId::new_v7(),
            user_id: add.user_id,
            sequence: domain::Sequence::FIRST,
            amount: add.amount,
            balance_after,
            created_at: domain::recording_time(),
            hash: domain::EntryHash::GENESIS,
        };
        transaction.hash = transaction.chained_hash(&domain::EntryHash::GENESIS);
        Ok(AddOutcome::Applied(transaction))
    }
    async fn balance(&self, _user_id: &UserId) -> Result<Balance, StorageError> {
        Ok(Balance::ZERO)
    }
    async fn balance_at(&self, _user_id: &UserId, _at: DateTime<Utc>) -> Result<Balance, StorageError> {
        Ok(Balance::ZERO)
    }
    async fn history(&self, _user_id: &UserId, _query: HistoryQuery) -> Result<HistoryPage, StorageError> {
        std::future::pending().await
    }
    async fn check_ready(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_slow_add_is_answered_with_its_outcome_not_a_read_timeout() {
    let reply = send(&app_over(Arc::new(SlowStore)), post_add("gopal", r#"{"amount": 1}"#, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "300 ms is past the 200 ms read timeout: {:?}", reply.body);
    assert_eq!(reply.body["balance_after"], "1.00");
}

#[tokio::test]
async fn an_add_whose_outcome_the_store_lost_is_503_outcome_unknown() {
    let mut store = MockLedgerRepository::new();
    store
        .expect_record_add()
        .returning(|_| Err(RecordAddError::OutcomeUnknown("connection lost during COMMIT".into())));
    let reply = send(&app_over(Arc::new(store)), post_add("gopal", r#"{"amount": 1}"#, Some("k"))).await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "outcome-unknown");
    assert_eq!(reply.headers["retry-after"], "2");
    assert!(!reply.body["detail"].as_str().unwrap_or_default().contains("COMMIT"), "the cause stays in the log");
}

#[tokio::test]
async fn readiness_follows_the_store_and_draining() {
    let readiness = Readiness::default();
    let state = AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), readiness.clone(), HttpSettings::default());
    let app = router(state);
    let ready = send(&app, get("/readyz")).await;
    assert_eq!((ready.status, ready.body.clone()), (StatusCode::OK, json!({"status": "ready"})));
    readiness.start_draining();
    let draining = send(&app, get("/readyz")).await;
    assert_problem(&draining, StatusCode::SERVICE_UNAVAILABLE, "draining");
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, get("/users/gopal/balance")).await.status,
        StatusCode::OK,
        "a draining instance still serves"
    );
}
