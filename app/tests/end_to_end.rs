//! The post-deployment test: the real binary, over a real socket, through the documented API.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::spawn_app;

#[tokio::test]
async fn the_binary_serves_the_ledger_over_http() {
    let app = spawn_app(&[], &[]);
    let add = |amount: Value, key: &'static str| {
        app.client
            .post(app.url("/users/gopal/add"))
            .header("idempotency-key", key)
            .json(&json!({"amount": amount}))
            .send()
    };
    let first = add(json!(500), "deploy-check-1").await.expect("add answers");
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key("x-request-id"));
    let first: Value = first.json().await.expect("a JSON transaction");
    assert_eq!((first["amount"].clone(), first["balance_after"].clone()), (json!("500.00"), json!("500.00")));

    let replay = add(json!(500), "deploy-check-1").await.expect("replay answers");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.expect("JSON"), first);

    let second: Value = add(json!("12.34"), "deploy-check-2").await.expect("add answers").json().await.expect("JSON");
    assert_eq!(second["balance_after"], "512.34");

    let balance: Value = app
        .client
        .get(app.url("/users/gopal/balance"))
        .send()
        .await
        .expect("balance answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(balance, json!({"user_id": "gopal", "balance": "512.34", "currency": "USD"}));

    let history: Value = app
        .client
        .get(app.url("/users/gopal/history?page=1"))
        .send()
        .await
        .expect("history answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(history["transactions"].as_array().map(Vec::len), Some(2));
    assert_eq!(history["transactions"][0]["id"], second["id"], "newest first");

    let missing = app.client.get(app.url("/nope")).send().await.expect("answers");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");

    assert!(
        app.logs().iter().any(|line| line.contains("NOT persisted")),
        "the in-memory store is announced in the log: {:?}",
        app.logs()
    );
}

#[tokio::test]
async fn sigterm_turns_readiness_off_keeps_serving_through_the_grace_period_and_exits_zero() {
    let mut app = spawn_app(&["--drain-grace-ms", "1500"], &[]);
    let ready = app.client.get(app.url("/readyz")).send().await.expect("readyz answers");
    assert_eq!(ready.status(), 200);

    app.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draining = app.client.get(app.url("/readyz")).send().await.expect("readyz answers while draining");
    assert_eq!(draining.status(), 503);
    let served = app
        .client
        .post(app.url("/users/late/add"))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("a request within the grace period is served");
    assert_eq!(served.status(), 200);

    let status = app.wait_for_exit(Duration::from_secs(15));
    assert!(status.success(), "bitburst exits 0 after draining, got {status}");
    assert!(app.logs().iter().any(|line| line.contains("every accepted request was answered")));
}
