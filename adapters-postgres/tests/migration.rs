//! A database filled under the schema before the audit trail keeps every transaction when it is migrated:
//! each entry gets its sequence from the order the ledger recorded it in and its hash from the same
//! canonical encoding the service uses, and the service carries on from there.

use std::borrow::Cow;

use adapters_postgres::{MIGRATOR, PgLedger, PgSettings};
use domain::{Amount, EntryHash, HistoryRequest, LedgerRepository, NewAdd, PageNumber, Transaction, UserId};
use sqlx::migrate::Migrator;

/// Entries as the first schema recorded them: the database chose `seq` and `created_at`.
const OLD_SCHEMA_ENTRIES: &str = "
INSERT INTO accounts (user_id, balance) VALUES ('alice', 6.50), ('bob', 100.00), ('carol', 0);
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key) VALUES
    ('0190f0c8-0000-7000-8000-000000000001', 'alice', 1.00, 1.00, 'order-1'),
    ('0190f0c8-0000-7000-8000-000000000002', 'bob', 100.00, 100.00, NULL);
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key) VALUES
    ('0190f0c8-0000-7000-8000-000000000003', 'alice', 2.50, 3.50, NULL);
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key) VALUES
    ('0190f0c8-0000-7000-8000-000000000004', 'alice', 3.00, 6.50, 'order-2');";

async fn history(ledger: &impl LedgerRepository, user: &str) -> Vec<Transaction> {
    let user = UserId::parse(user).expect("valid");
    let page = ledger.history(&user, HistoryRequest::Page(PageNumber::FIRST).into()).await.expect("history");
    page.transactions
}

#[tokio::test]
async fn migrating_a_filled_database_numbers_and_chains_every_old_entry() {
    let Some(database) = testkit::postgres::fresh_database().await else { return };
    let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
    let first_schema =
        Migrator { migrations: Cow::Owned(MIGRATOR.iter().take(1).cloned().collect()), ..Migrator::DEFAULT };
    first_schema.run(ledger.pool()).await.expect("the first schema applies");
    sqlx::raw_sql(OLD_SCHEMA_ENTRIES).execute(ledger.pool()).await.expect("old entries insert");
    let old_times: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id::text, created_at FROM ledger_entries ORDER BY seq")
            .fetch_all(ledger.pool())
            .await
            .expect("old entries read");

    ledger.migrate().await.expect("the audit trail migrates the filled database");

    let alice = history(&ledger, "alice").await;
    let described: Vec<(u64, String, String)> =
        alice.iter().map(|t| (t.sequence.get(), t.amount.to_string(), t.balance_after.to_string())).collect();
    assert_eq!(
        described,
        [(3, "3.00".into(), "6.50".into()), (2, "2.50".into(), "3.50".into()), (1, "1.00".into(), "1.00".into())],
        "numbered in the order they were recorded, nothing lost or changed"
    );
    let mut previous = EntryHash::GENESIS;
    for transaction in alice.iter().rev() {
        assert_eq!(transaction.hash, transaction.chained_hash(&previous), "the SQL hash is the domain's hash");
        previous = transaction.hash;
    }
    for transaction in alice.iter().chain(&history(&ledger, "bob").await) {
        let old_time = old_times.iter().find(|(id, _)| *id == transaction.id.to_string()).map(|(_, time)| *time);
        assert_eq!(old_time, Some(transaction.created_at), "times are kept as they were");
    }
    assert_eq!(history(&ledger, "bob").await[0].sequence.get(), 1);

    // The service carries on from the migrated chain, and old keys still replay.
    let add = |amount: &str, key: Option<&str>| NewAdd {
        user_id: UserId::parse("alice").expect("valid"),
        amount: Amount::parse(amount).expect("valid"),
        idempotency_key: key.map(|key| domain::IdempotencyKey::parse(key.as_bytes()).expect("valid")),
    };
    let next = ledger.record_add(add("0.50", None)).await.expect("an add after the migration");
    let next = next.transaction();
    assert_eq!((next.sequence.get(), next.balance_after.to_string()), (4, "7.00".to_owned()));
    assert_eq!(next.hash, next.chained_hash(&alice[0].hash));
    assert!(next.created_at >= alice[0].created_at);
    let replay = ledger.record_add(add("1", Some("order-1"))).await.expect("an old key");
    assert!(replay.is_replayed() && replay.transaction().sequence.get() == 1, "{replay:?}");
    let carol = ledger.record_add(NewAdd { user_id: UserId::parse("carol").expect("valid"), ..add("2", None) });
    assert_eq!(carol.await.expect("an account without entries").transaction().sequence.get(), 1);
}
