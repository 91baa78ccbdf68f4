//! `bitburst verify` as an operator runs it: on the ledger the service wrote, then after someone rewrote
//! history behind the service's back.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use sqlx::Connection;
use support::{run_verify, spawn_app};
use testkit::postgres::fresh_database;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn verify_passes_the_service_ledger_and_names_what_was_rewritten() {
    let Some(database) = fresh_database().await else { return };
    let app = spawn_app(&[], &[("DATABASE_URL", &database.url)]);
    for (user, amount) in [("alice", "1.50"), ("alice", "2"), ("bob", "10"), ("alice", "3")] {
        let reply = app
            .client
            .post(app.url(&format!("/users/{user}/add")))
            .json(&json!({"amount": amount}))
            .send()
            .await
            .expect("the service answers");
        assert_eq!(reply.status(), 200);
    }

    let clean = run_verify(Some(&database.url), &[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).starts_with("ledger ok: 2 users, 4 transactions, 0 findings"), "{}", stdout(&clean));
    let json_run = run_verify(Some(&database.url), &["--json"]);
    let summary: Value = serde_json::from_slice(&json_run.stdout).expect("one JSON object");
    assert_eq!(
        (
            summary["clean"].clone(),
            summary["users"].clone(),
            summary["transactions"].clone(),
            summary["findings"].clone()
        ),
        (json!(true), json!(2), json!(4), json!([]))
    );

    let mut operator = sqlx::PgConnection::connect(&database.url).await.expect("a superuser connects");
    let tampered = sqlx::raw_sql(
        "BEGIN;
         ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable;
         UPDATE ledger_entries SET amount = 2.50, balance_after = 4.00 WHERE user_id = 'alice' AND sequence = 2;
         ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable;
         COMMIT;",
    )
    .execute(&mut operator)
    .await;
    tampered.expect("a superuser can rewrite history");
    let broken = run_verify(Some(&database.url), &["--json"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    let summary: Value = serde_json::from_slice(&broken.stdout).expect("one JSON object");
    let findings = summary["findings"].as_array().expect("a list");
    assert!(
        findings.iter().any(|f| f["user_id"] == "alice"
            && f["sequence"] == 2
            && f["problem"].as_str().is_some_and(|p| p.contains("hash"))),
        "the rewritten entry is named: {findings:#?}"
    );
    assert!(findings.iter().all(|f| f["user_id"] == "alice"), "{findings:#?}");
    assert_eq!(summary["clean"], json!(false));
}

#[test]
fn verify_without_a_database_cannot_check_and_says_so() {
    let output = run_verify(None, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
    let unreachable = run_verify(Some("postgres://nobody@127.0.0.1:1/none"), &[]);
    assert_eq!(unreachable.status.code(), Some(2));
}
