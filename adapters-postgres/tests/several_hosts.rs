//! `DATABASE_URL` with several hosts: the ledger uses the one that answers as the primary, and says so.
//! Failover between real primaries and standbys is `app/tests/database_failover.rs`, on Patroni.

use std::time::Duration;

use adapters_postgres::{ConnectError, PgLedger, PgSettings};
use domain::{Amount, IdempotencyKey, LedgerRepository, NewAdd, RecordAddError, StorageError, UserId};
use testkit::free_loopback_port;
use testkit::postgres::fresh_database;

fn keyed_add(user: &str, key: &str) -> NewAdd {
    NewAdd {
        user_id: UserId::parse(user).expect("valid user"),
        amount: Amount::parse("1.25").expect("valid amount"),
        idempotency_key: Some(IdempotencyKey::parse(key.as_bytes()).expect("valid key")),
    }
}

/// `postgres://postgres@127.0.0.1:PORT/db` with `hosts` in place of its one host.
fn with_hosts(url: &str, hosts: &str) -> String {
    let (scheme_and_user, rest) = url.split_once('@').expect("a user in the test URL");
    let path = &rest[rest.find('/').expect("a database in the test URL")..];
    format!("{scheme_and_user}@{hosts}{path}")
}

#[tokio::test]
async fn a_host_list_skips_a_host_that_is_down_and_writes_to_the_primary() {
    let Some(database) = fresh_database().await else { return };
    let live = database.url.split_once('@').and_then(|(_, rest)| rest.split_once('/')).expect("host:port").0;
    let dead = format!("127.0.0.1:{}", free_loopback_port());
    let url = format!("{}?target_session_attrs=read-write", with_hosts(&database.url, &format!("{dead},{live}")));
    let settings = PgSettings::new(&url);
    let described = settings.describe().expect("a valid URL");
    assert_eq!(
        described,
        format!("hosts={dead},{live} database={} user=postgres target_session_attrs=primary", database.name)
    );

    let ledger = PgLedger::connect_lazy(&settings).expect("a valid URL");
    ledger.wait_until_reachable(Duration::from_secs(20)).await.expect("the primary is found");
    ledger.migrate().await.expect("the migrations apply");
    let status = ledger.primary_status().expect("a host list is watched");
    assert_eq!(status.hosts, [dead, live.to_owned()]);
    assert_eq!(status.primary, Some(1), "the second host is the one that answers");
    assert_eq!(status.failovers, 0);

    ledger.record_add(keyed_add("alice", "k1")).await.expect("the add is recorded on the primary");
    ledger.check_ready().await.expect("ready: a primary answers");
}

#[tokio::test]
async fn with_no_host_reachable_start_up_and_readiness_say_no_primary_and_adds_are_not_recorded() {
    let Some(database) = fresh_database().await else { return };
    let hosts = format!("127.0.0.1:{},127.0.0.1:{}", free_loopback_port(), free_loopback_port());
    let mut settings = PgSettings::new(with_hosts(&database.url, &hosts));
    settings.acquire_timeout = Duration::from_millis(500);
    let ledger = PgLedger::connect_lazy(&settings).expect("a valid URL");

    let waited = ledger.wait_until_reachable(Duration::from_secs(1)).await;
    assert!(matches!(waited, Err(ConnectError::NoPrimary { .. })), "{waited:?}");
    let ready = ledger.check_ready().await;
    assert!(matches!(ready, Err(StorageError::Unavailable(_))), "{ready:?}");
    let added = ledger.record_add(keyed_add("alice", "k1")).await;
    assert!(matches!(added, Err(RecordAddError::Storage(StorageError::Unavailable(_)))), "{added:?}");
    assert_eq!(ledger.primary_status().expect("watched").primary, None);
}

#[tokio::test]
async fn a_write_refused_as_read_only_was_not_recorded_and_says_unavailable_not_unknown() {
    let Some(database) = fresh_database().await else { return };
    let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
    ledger.migrate().await.expect("the migrations apply");
    // What a session on a standby gets for a write: SQLSTATE 25006, read_only_sql_transaction.
    sqlx::raw_sql(&format!("ALTER DATABASE {} SET default_transaction_read_only = on", database.name))
        .execute(ledger.pool())
        .await
        .expect("the setting applies");
    ledger.pool().close().await;
    let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");

    let added = ledger.record_add(keyed_add("alice", "k1")).await;
    assert!(matches!(added, Err(RecordAddError::Storage(StorageError::Unavailable(_)))), "{added:?}");
}
