//! `verify` on a real database: a ledger the service wrote passes, and each way a superuser can rewrite
//! history behind the service's back is caught and named.

mod support;

use adapters_postgres::{LedgerVerification, PgLedger, VerifyReport};
use domain::{Amount, IdempotencyKey, LedgerRepository, NewAdd, UserId};
use support::migrated_ledger;

async fn fill(ledger: &PgLedger) {
    for (user, amounts) in [("alice", ["1", "2.50", "3", "4"]), ("bob", ["10", "20", "30", "40"])] {
        for (number, amount) in amounts.iter().enumerate() {
            let add = NewAdd {
                user_id: UserId::parse(user).expect("valid"),
                amount: Amount::parse(amount).expect("valid"),
                idempotency_key: Some(IdempotencyKey::parse(format!("k{number}").as_bytes()).expect("valid")),
            };
            ledger.record_add(add).await.expect("recorded");
        }
    }
    // An account without entries: an add refused at the limit still creates it.
    sqlx::raw_sql("INSERT INTO accounts (user_id, balance) VALUES ('carol', 0)")
        .execute(ledger.pool())
        .await
        .expect("an empty account");
}

async fn verify(url: &str) -> VerifyReport {
    let verification = LedgerVerification::begin(url).await.expect("the ledger opens");
    assert_eq!(verification.transactions, 8);
    let mut last_progress = 0;
    let report = verification.run(|read| last_progress = read).await.expect("the ledger reads");
    assert_eq!(last_progress, 8, "progress ends at every entry read");
    report
}

/// Runs `sql` as the superuser with the immutability trigger off, as an operator's mistake would.
async fn tamper(ledger: &PgLedger, sql: &str) {
    sqlx::raw_sql(&format!(
        "BEGIN;
         ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable;
         {sql};
         ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable;
         COMMIT;"
    ))
    .execute(ledger.pool())
    .await
    .expect("a superuser can tamper");
}

fn findings(report: &VerifyReport) -> Vec<String> {
    report.findings.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn a_ledger_the_service_wrote_is_clean() {
    let Some((database, ledger)) = migrated_ledger().await else { return };
    fill(&ledger).await;
    let report = verify(&database.url).await;
    assert_eq!(findings(&report), Vec::<String>::new());
    assert_eq!((report.users, report.transactions), (3, 8));
    assert!(report.is_clean());
}

#[tokio::test]
async fn a_changed_amount_is_caught() {
    let Some((database, ledger)) = migrated_ledger().await else { return };
    fill(&ledger).await;
    tamper(&ledger, "UPDATE ledger_entries SET amount = amount + 1 WHERE user_id = 'alice' AND sequence = 2").await;
    let found = findings(&verify(&database.url).await);
    assert!(
        found.iter().any(|f| f.starts_with("user alice transaction 2 (") && f.contains("balance_after")),
        "{found:#?}"
    );
    assert!(found.iter().any(|f| f.starts_with("user alice transaction 2 (") && f.contains("hash")), "{found:#?}");
    assert!(found.iter().all(|f| f.starts_with("user alice")), "bob is untouched: {found:#?}");
}

#[tokio::test]
async fn a_deleted_entry_is_caught() {
    let Some((database, ledger)) = migrated_ledger().await else { return };
    fill(&ledger).await;
    tamper(&ledger, "DELETE FROM ledger_entries WHERE user_id = 'bob' AND sequence = 3").await;
    let verification = LedgerVerification::begin(&database.url).await.expect("the ledger opens");
    let found = findings(&verification.run(|_| {}).await.expect("the ledger reads"));
    assert!(
        found.iter().any(|f| f.starts_with("user bob transaction 4 (") && f.contains("sequence 4 where 3")),
        "{found:#?}"
    );
    assert!(found.iter().any(|f| f.starts_with("user bob:") && f.contains("stored balance 100.00")), "{found:#?}");
}

#[tokio::test]
async fn swapped_times_are_caught() {
    let Some((database, ledger)) = migrated_ledger().await else { return };
    fill(&ledger).await;
    tamper(
        &ledger,
        "UPDATE ledger_entries AS e SET created_at = o.created_at
         FROM ledger_entries AS o
         WHERE e.user_id = 'alice' AND o.user_id = 'alice' AND e.sequence + o.sequence = 3 AND e.sequence IN (1, 2)",
    )
    .await;
    // The two entries may share a microsecond (one batch); then only the hashes could show a swap, and
    // they cover the times: force distinct times to swap.
    tamper(&ledger, "UPDATE ledger_entries SET created_at = created_at + interval '1 second' WHERE user_id = 'alice' AND sequence = 1").await;
    let found = findings(&verify(&database.url).await);
    assert!(
        found.iter().any(|f| f.starts_with("user alice transaction 2 (") && f.contains("is before the previous")),
        "{found:#?}"
    );
    assert!(found.iter().any(|f| f.starts_with("user alice transaction 1 (") && f.contains("hash")), "{found:#?}");
}

#[tokio::test]
async fn a_changed_balance_is_caught() {
    let Some((database, ledger)) = migrated_ledger().await else { return };
    fill(&ledger).await;
    tamper(&ledger, "UPDATE accounts SET balance = balance + 1000 WHERE user_id = 'bob'").await;
    tamper(&ledger, "UPDATE accounts SET balance = 5 WHERE user_id = 'carol'").await;
    let found = findings(&verify(&database.url).await);
    assert!(found.iter().any(|f| f.starts_with("user bob:") && f.contains("stored balance 1100.00")), "{found:#?}");
    assert!(found.iter().any(|f| f.starts_with("user carol:") && f.contains("stored balance 5.00")), "{found:#?}");
    assert_eq!(found.len(), 2, "{found:#?}");
}
