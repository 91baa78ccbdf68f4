//! What the database itself guarantees, whatever code talks to it, and how the adapter behaves when
//! the database is shared by several instances or cannot be reached.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters_postgres::{PgLedger, PgSettings};
use domain::{AddOutcome, Amount, IdempotencyKey, LedgerRepository, NewAdd, RecordAddError, StorageError, UserId};
use support::{ledger_on, migrated_ledger};

fn keyed_add(user: &str, amount: &str, key: &str) -> NewAdd {
    NewAdd {
        user_id: UserId::parse(user).expect("valid user"),
        amount: Amount::parse(amount).expect("valid amount"),
        idempotency_key: Some(IdempotencyKey::parse(key.as_bytes()).expect("valid key")),
    }
}

async fn sql_error(ledger: &PgLedger, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(ledger.pool()).await {
        Ok(_) => panic!("the database accepted: {sql}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn ledger_entries_are_never_changed_or_removed() {
    let Some((_database, ledger)) = migrated_ledger().await else { return };
    ledger.record_add(keyed_add("gopal", "10", "k1")).await.expect("add succeeds");
    for sql in
        ["UPDATE ledger_entries SET amount = 1000", "DELETE FROM ledger_entries", "TRUNCATE ledger_entries CASCADE"]
    {
        let error = sql_error(&ledger, sql).await;
        assert!(error.contains("never changed or removed"), "{sql}: {error}");
    }
    let balance = ledger.balance(&UserId::parse("gopal").expect("valid")).await.expect("balance");
    assert_eq!(balance.to_string(), "10.00");
}

#[tokio::test]
async fn the_database_refuses_money_that_breaks_the_rules() {
    let Some((_database, ledger)) = migrated_ledger().await else { return };
    sqlx::raw_sql("INSERT INTO accounts (user_id, balance) VALUES ('gopal', 0)")
        .execute(ledger.pool())
        .await
        .expect("an empty account is fine");
    let entry = |user: &str, sequence: i64, amount: &str, balance_after: &str, hash_bytes: usize| {
        format!(
            "INSERT INTO ledger_entries (id, user_id, sequence, amount, balance_after, created_at, hash)
             VALUES (gen_random_uuid(), '{user}', {sequence}, {amount}, {balance_after}, now(),
                     decode(repeat('ab', {hash_bytes}), 'hex'))"
        )
    };
    sqlx::raw_sql(&entry("gopal", 1, "5", "5", 32)).execute(ledger.pool()).await.expect("a valid entry is fine");
    for (sql, constraint) in [
        ("UPDATE accounts SET balance = 1000000000000.01".to_owned(), "accounts_balance_within_limit"),
        ("UPDATE accounts SET balance = -0.01".to_owned(), "accounts_balance_within_limit"),
        ("UPDATE accounts SET last_sequence = -1".to_owned(), "accounts_last_sequence_valid"),
        ("UPDATE accounts SET last_hash = '\\x00'".to_owned(), "accounts_last_hash_length"),
        ("INSERT INTO accounts (user_id, balance) VALUES ('bad user', 0)".to_owned(), "accounts_user_id_shape"),
        (entry("gopal", 2, "0", "5", 32), "ledger_entries_amount_valid"),
        (entry("gopal", 2, "-5", "5", 32), "ledger_entries_amount_valid"),
        (entry("nobody", 1, "5", "5", 32), "ledger_entries_user_id_fkey"),
        (entry("gopal", 0, "5", "10", 32), "ledger_entries_sequence_valid"),
        (entry("gopal", 1, "5", "10", 32), "ledger_entries_user_sequence"),
        (entry("gopal", 2, "5", "10", 31), "ledger_entries_hash_length"),
    ] {
        let error = sql_error(&ledger, &sql).await;
        assert!(error.contains(constraint), "{sql}: {error}");
    }
}

#[tokio::test]
async fn two_instances_on_one_database_never_count_a_key_twice() {
    let Some((database, first_instance)) = migrated_ledger().await else { return };
    let second_instance = ledger_on(&database.url);
    let instances: [Arc<dyn LedgerRepository>; 2] = [Arc::new(first_instance), Arc::new(second_instance)];
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let instance = Arc::clone(&instances[n % 2]);
            tokio::spawn(
                async move { instance.record_add(keyed_add("shared", "7.77", &format!("k-{}", n % 10))).await },
            )
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.expect("the task ran").expect("every add succeeds") {
            AddOutcome::Applied(_) => applied += 1,
            AddOutcome::Replayed(_) => {}
        }
    }
    assert_eq!(applied, 10, "one transaction per distinct key, whichever instance got it");
    let balance = instances[1].balance(&UserId::parse("shared").expect("valid")).await.expect("balance");
    assert_eq!(balance.to_string(), "77.70");
}

#[tokio::test]
async fn instances_migrating_at_once_apply_the_schema_once() {
    let Some(database) = testkit::postgres::fresh_database().await else { return };
    let migrations: Vec<_> = (0..4)
        .map(|_| {
            let ledger = ledger_on(&database.url);
            tokio::spawn(async move { ledger.migrate().await })
        })
        .collect();
    for migration in migrations {
        migration.await.expect("the task ran").expect("every instance's migration succeeds");
    }
    let ledger = ledger_on(&database.url);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(ledger.pool())
        .await
        .expect("the migrations table exists");
    assert_eq!(usize::try_from(applied).expect("small"), adapters_postgres::MIGRATOR.iter().count());
    ledger.record_add(keyed_add("gopal", "1", "k")).await.expect("the schema works");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_acquire_timeout() {
    let closed_port = testkit::free_loopback_port();
    let mut settings = PgSettings::new(format!("postgres://nobody@127.0.0.1:{closed_port}/none"));
    settings.acquire_timeout = Duration::from_secs(1);
    let ledger = PgLedger::connect_lazy(&settings).expect("a valid URL");
    let started = Instant::now();
    let result = ledger.record_add(keyed_add("gopal", "1", "k")).await;
    assert!(
        matches!(result, Err(RecordAddError::Storage(StorageError::Unavailable(_)))),
        "an unreachable store is unavailable, not a business error: {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "answered in {:?}", started.elapsed());
    assert!(matches!(ledger.check_ready().await, Err(StorageError::Unavailable(_))));
}

#[tokio::test]
async fn migrations_are_not_cut_short_by_the_statement_timeout_of_requests() {
    let Some(database) = testkit::postgres::fresh_database().await else { return };
    // A timeout no migration fits in: rewriting a large ledger takes minutes, and must still finish.
    let settings = PgSettings { statement_timeout: Duration::from_millis(1), ..PgSettings::new(database.url.clone()) };
    let ledger = PgLedger::connect_lazy(&settings).expect("valid settings");
    ledger.migrate().await.expect("every migration runs to its end");
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(ledger.pool())
        .await
        .expect("the pool's connections answer");
    assert_eq!(timeout, "1ms", "requests keep their statement timeout after the migration");
}
