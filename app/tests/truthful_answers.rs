//! The answers of the service tell the truth about the money when PostgreSQL is slow: an add that reached
//! the database is answered with its outcome, and one answered 503 storage-unavailable is never recorded.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use support::clients::{balance_at, history_ids_at};
use support::start_app;
use testkit::postgres::fresh_database;

async fn add(client: reqwest::Client, url: String, amount: &str) -> (u16, Value) {
    let response = client.post(url).json(&json!({"amount": amount})).send().await.expect("the instance answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn with_a_row_locked_past_the_store_timeout_every_answer_matches_the_balance() {
    let Some(database) = fresh_database().await else { return };
    let app = start_app(&["--store-timeout-ms", "1000", "--database-url", &database.url]);
    let base = app.url("");
    assert_eq!(add(app.client.clone(), app.url("/users/locked/add"), "1").await.0, 200);

    let mut operator = PgConnection::connect(&database.url).await.expect("an operator session");
    sqlx::raw_sql("BEGIN; SELECT * FROM accounts WHERE user_id = 'locked' FOR UPDATE")
        .execute(&mut operator)
        .await
        .expect("the operator locks the row");
    let locked_at = Instant::now();
    let reached = tokio::spawn(add(app.client.clone(), app.url("/users/locked/add"), "10"));
    let mut watcher = PgConnection::connect(&database.url).await.expect("a watching session");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'bitburst' AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut watcher)
    .await
    .expect("reads")
        == 0
    {
        assert!(Instant::now() < deadline, "the add never reached the locked row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Queued behind the add above, this one cannot reach the database within the store timeout.
    let (status, problem) = add(app.client.clone(), app.url("/users/locked/add"), "20").await;
    assert_eq!((status, problem["type"].as_str()), (503, Some("/problems/storage-unavailable")));

    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(locked_at.elapsed())).await;
    sqlx::raw_sql("COMMIT").execute(&mut operator).await.expect("the operator lets go");
    let (status, transaction) = reached.await.expect("the task ran");
    assert_eq!(status, 200, "held 2.5 s past a 1 s store timeout, it is answered with its outcome: {transaction}");
    assert_eq!(transaction["balance_after"], "11.00");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(balance_at(&app.client, &base, "locked").await, "11.00", "1 and 10 answered 200; 20 answered 503");
    assert_eq!(history_ids_at(&app.client, &base, "locked").await.len(), 2);
}
