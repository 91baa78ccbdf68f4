//! What an add's answer says about the money, when PostgreSQL is slow, restarts or loses a connection:
//! "not recorded" only when it certainly was not and never will be, "unknown" only when nobody can know,
//! and the real outcome whenever the add reached the database.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters_postgres::{GroupCommitSettings, PgLedger, PgSettings};
use domain::{
    AddOutcome, Amount, HistoryRequest, IdempotencyKey, LedgerRepository, NewAdd, PageNumber, RecordAddError,
    StorageError, UserId,
};
use sqlx::{Connection, PgConnection};
use support::migrated_ledger;
use testkit::postgres::fresh_database;

fn add(user: &str, amount: &str, key: Option<&str>) -> NewAdd {
    NewAdd {
        user_id: UserId::parse(user).expect("valid user"),
        amount: Amount::parse(amount).expect("valid amount"),
        idempotency_key: key.map(|key| IdempotencyKey::parse(key.as_bytes()).expect("valid key")),
    }
}

async fn balance(ledger: &PgLedger, user: &str) -> String {
    ledger.balance(&UserId::parse(user).expect("valid")).await.expect("balance").to_string()
}

async fn history_length(ledger: &PgLedger, user: &str) -> usize {
    let user = UserId::parse(user).expect("valid");
    ledger.history(&user, HistoryRequest::Page(PageNumber::FIRST).into()).await.expect("history").transactions.len()
}

/// A ledger of its own on a new database, with the given timeouts.
async fn ledger_with(configure: impl FnOnce(&mut PgSettings)) -> Option<(String, PgLedger)> {
    let database = fresh_database().await?;
    let mut settings = PgSettings::new(&database.url);
    configure(&mut settings);
    let ledger = PgLedger::connect_lazy(&settings).expect("a valid URL");
    ledger.migrate().await.expect("the migrations apply");
    Some((database.url, ledger))
}

/// Another session on the database, as an operator's would be.
async fn session(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("a session connects")
}

/// An operator's session holding `user`'s account row locked until it commits.
async fn lock_account(url: &str, user: &str) -> PgConnection {
    let mut operator = session(url).await;
    sqlx::raw_sql("BEGIN").execute(&mut operator).await.expect("a transaction begins");
    sqlx::query("SELECT * FROM accounts WHERE user_id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut operator)
        .await
        .expect("the operator locks the row");
    operator
}

/// Waits until a statement of the service matching `condition` (SQL over `pg_stat_activity`) is running.
async fn wait_for_service_statement(operator: &mut PgConnection, condition: &str) -> i32 {
    let sql = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'bitburst' \
         AND state = 'active' AND {condition} LIMIT 1"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = sqlx::query_scalar::<_, i32>(&sql).fetch_optional(&mut *operator).await.expect("reads") {
            return pid;
        }
        assert!(Instant::now() < deadline, "no service statement with {condition}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_not_recorded(answer: &Result<AddOutcome, RecordAddError>) -> bool {
    matches!(answer, Err(RecordAddError::Storage(StorageError::Unavailable(_))))
}

#[tokio::test]
async fn an_add_behind_a_locked_row_gets_its_real_outcome_and_one_still_queued_is_withdrawn() {
    let Some((url, ledger)) = ledger_with(|settings| settings.queue_timeout = Duration::from_millis(500)).await else {
        return;
    };
    let ledger = Arc::new(ledger);
    ledger.record_add(add("locked", "1", None)).await.expect("the account exists");
    let mut operator = lock_account(&url, "locked").await;

    let taken = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { ledger.record_add(add("locked", "10", None)).await }
    });
    let mut watcher = session(&url).await;
    wait_for_service_statement(&mut watcher, "wait_event_type = 'Lock'").await;
    // The worker of this user is busy with the add above: this one waits in its queue past its patience.
    let started = Instant::now();
    let queued = ledger.record_add(add("locked", "20", None)).await;
    assert!(is_not_recorded(&queued), "withdrawn before it reached the database: {queued:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "answered at its queue timeout");

    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::raw_sql("COMMIT").execute(&mut operator).await.expect("the operator lets go");
    match taken.await.expect("the task ran") {
        Ok(AddOutcome::Applied(transaction)) => assert_eq!(transaction.balance_after.to_string(), "11.00"),
        other => panic!("the add that reached the database is answered with its outcome: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(balance(&ledger, "locked").await, "11.00", "the withdrawn add of 20 never ran");
    assert_eq!(history_length(&ledger, "locked").await, 2);
}

/// Adds of 1 for `users` users (`other-0`, `other-1`, ...), `rounds` each, all at once, each with a key of
/// its own that starts with `keys`; their answers.
async fn adds_of_other_users(
    ledger: &Arc<PgLedger>,
    users: usize,
    rounds: usize,
    keys: &str,
) -> Vec<Result<AddOutcome, RecordAddError>> {
    let tasks: Vec<_> = (0..users * rounds)
        .map(|n| {
            let ledger = Arc::clone(ledger);
            let (user, key) = (format!("other-{}", n % users), format!("{keys}-{n}"));
            tokio::spawn(async move { ledger.record_add(add(&user, "1", Some(&key))).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the task ran"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_row_delays_only_its_own_users_adds() {
    let Some((url, ledger)) = ledger_with(|settings| {
        settings.statement_timeout = Duration::from_secs(20);
        // The locked user's second add waits behind its first for as long as the test holds the lock.
        settings.queue_timeout = Duration::from_secs(30);
        // One batch in flight: the one every user's add would queue behind, were a blocked user kept in it.
        settings.group_commit = GroupCommitSettings { in_flight: 1, max_batch: 256 };
    })
    .await
    else {
        return;
    };
    let ledger = Arc::new(ledger);
    ledger.record_add(add("locked", "1", None)).await.expect("the account exists");
    assert!(adds_of_other_users(&ledger, 20, 1, "first").await.iter().all(Result::is_ok), "the other accounts exist");
    let mut operator = lock_account(&url, "locked").await;

    let first = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { ledger.record_add(add("locked", "10", Some("locked-1"))).await }
    });
    let mut watcher = session(&url).await;
    wait_for_service_statement(&mut watcher, "wait_event_type = 'Lock'").await;
    let second = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { ledger.record_add(add("locked", "20", Some("locked-2"))).await }
    });

    // 20 users, in batches with new ones (accounts created on the way) and behind the waiting user.
    let answers = adds_of_other_users(&ledger, 20, 10, "while-locked").await;
    let created = ledger.record_add(add("newcomer", "3", None)).await;
    let failed: Vec<_> = answers.iter().filter(|answer| !matches!(answer, Ok(AddOutcome::Applied(_)))).collect();
    assert!(failed.is_empty(), "{} of 200 adds of other users failed: {failed:?}", failed.len());
    assert!(matches!(created, Ok(AddOutcome::Applied(_))), "{created:?}");
    assert!(!first.is_finished() && !second.is_finished(), "the locked user's adds still wait, the others did not");
    assert_eq!(balance(&ledger, "other-7").await, "11.00");

    sqlx::raw_sql("COMMIT").execute(&mut operator).await.expect("the operator lets go");
    let first = first.await.expect("the task ran");
    let second = second.await.expect("the task ran");
    let after = |answer: &Result<AddOutcome, RecordAddError>| match answer {
        Ok(AddOutcome::Applied(transaction)) => (transaction.sequence.to_i64(), transaction.balance_after.to_string()),
        other => panic!("recorded once the row is free: {other:?}"),
    };
    assert_eq!(after(&first), (2, "11.00".to_owned()), "in the order they were sent");
    assert_eq!(after(&second), (3, "31.00".to_owned()));
    assert_eq!(balance(&ledger, "locked").await, "31.00");
}

#[tokio::test]
async fn an_add_whose_statement_times_out_is_rolled_back_and_said_to_be_not_recorded() {
    let Some((url, ledger)) = ledger_with(|settings| settings.statement_timeout = Duration::from_millis(700)).await
    else {
        return;
    };
    ledger.record_add(add("locked", "1", None)).await.expect("the account exists");
    let mut operator = lock_account(&url, "locked").await;
    let answer = ledger.record_add(add("locked", "10", Some("k"))).await;
    assert!(is_not_recorded(&answer), "{answer:?}");
    sqlx::raw_sql("COMMIT").execute(&mut operator).await.expect("the operator lets go");
    assert_eq!(balance(&ledger, "locked").await, "1.00");
    assert_eq!(history_length(&ledger, "locked").await, 1);
    let retried = ledger.record_add(add("locked", "10", Some("k"))).await;
    assert!(matches!(retried, Ok(AddOutcome::Applied(_))), "the key was never used: {retried:?}");
    assert_eq!(balance(&ledger, "locked").await, "11.00");
}

#[tokio::test]
async fn a_connection_lost_during_commit_is_an_unknown_outcome_that_a_keyed_retry_settles() {
    let Some((url, ledger)) = migrated_ledger().await.map(|(database, ledger)| (database.url, ledger)) else {
        return;
    };
    // A deferred trigger runs as the transaction commits (a COMMIT, or the end of a statement that commits
    // by itself): it holds the commit open long enough to cut its connection.
    sqlx::raw_sql(
        "CREATE FUNCTION linger_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER linger_at_commit AFTER INSERT ON ledger_entries
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.user_id = 'slow')
         EXECUTE FUNCTION linger_at_commit();",
    )
    .execute(ledger.pool())
    .await
    .expect("the trigger installs");
    let ledger = Arc::new(ledger);
    let pending = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { ledger.record_add(add("slow", "5", Some("transfer-1"))).await }
    });
    let mut operator = session(&url).await;
    let pid = wait_for_service_statement(&mut operator, "wait_event = 'PgSleep'").await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut operator).await.expect("terminated");

    let answer = pending.await.expect("the task ran");
    assert!(matches!(answer, Err(RecordAddError::OutcomeUnknown(_))), "{answer:?}");
    sqlx::raw_sql("DROP TRIGGER linger_at_commit ON ledger_entries").execute(&mut operator).await.expect("dropped");
    let settled = ledger.record_add(add("slow", "5", Some("transfer-1"))).await;
    let recorded_now = matches!(settled, Ok(AddOutcome::Applied(_)));
    assert!(recorded_now || matches!(settled, Ok(AddOutcome::Replayed(_))), "{settled:?}");
    assert_eq!(balance(&ledger, "slow").await, "5.00", "counted once, whatever the first COMMIT did");
    assert_eq!(history_length(&ledger, "slow").await, 1);
}

#[tokio::test]
async fn after_every_pooled_connection_died_adds_still_succeed_on_fresh_ones() {
    let Some((url, ledger)) = ledger_with(|settings| {
        settings.pool_size = 4;
        // Small batches, so that 40 adds keep four connections busy and the pool holds them.
        settings.group_commit = GroupCommitSettings { in_flight: 4, max_batch: 5 };
    })
    .await
    else {
        return;
    };
    let ledger = Arc::new(ledger);
    let concurrent_adds = |prefix: &'static str| {
        let tasks: Vec<_> = (0..40)
            .map(|n| {
                let ledger = Arc::clone(&ledger);
                tokio::spawn(async move { ledger.record_add(add(&format!("{prefix}-{n}"), "1", None)).await })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.expect("the task ran"));
            }
            answers
        }
    };
    assert!(concurrent_adds("warm").await.iter().all(Result::is_ok));
    assert!(ledger.pool().num_idle() >= 2, "the pool holds idle connections: {}", ledger.pool().num_idle());

    // What a database restart does to a pool: every connection it holds is dead, and it does not know.
    let mut operator = session(&url).await;
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'bitburst'",
    )
    .fetch_all(&mut operator)
    .await
    .expect("the service's connections are listed");
    for pid in &pids {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut operator).await.expect("ended");
    }
    let ended = pids.len();
    assert!(ended >= 2, "{ended} connections ended");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let answers = concurrent_adds("after").await;
    let failed: Vec<_> = answers.iter().filter(|answer| answer.is_err()).collect();
    assert!(failed.is_empty(), "{} of 40 adds failed: {failed:?}", failed.len());
    let alone = ledger.record_add(add("alone", "1", None)).await;
    assert!(alone.is_ok(), "{alone:?}");
}

/// A TCP proxy in front of PostgreSQL that can fall silent: it then drops every byte both ways and closes
/// nothing, as a network partition does, so no error ever reaches either side.
struct PartitionableProxy {
    address: std::net::SocketAddr,
    silent: Arc<std::sync::atomic::AtomicBool>,
}

impl PartitionableProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the proxy listens");
        let address = listener.local_addr().expect("an address");
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = Arc::clone(&silent);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pass(client_read, server_write, Arc::clone(&gate)));
                tokio::spawn(pass(server_read, client_write, Arc::clone(&gate)));
            }
        });
        Self { address, silent }
    }

    fn fall_silent(&self, silent: bool) {
        self.silent.store(silent, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else { return };
        if read == 0 {
            return;
        }
        if !silent.load(std::sync::atomic::Ordering::SeqCst) && to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_connection_that_falls_silent_is_given_up_as_not_recorded_and_the_worker_goes_on() {
    let Some(database) = fresh_database().await else { return };
    let direct = PgSettings::new(&database.url);
    let target = {
        let options: sqlx::postgres::PgConnectOptions = database.url.parse().expect("a valid URL");
        let ip: std::net::IpAddr = options.get_host().parse().expect("the test server listens on an IP");
        std::net::SocketAddr::new(ip, options.get_port())
    };
    PgLedger::connect_lazy(&direct).expect("a valid URL").migrate().await.expect("the migrations apply");
    let proxy = PartitionableProxy::start(target).await;
    let mut settings = PgSettings::new(database.url.replace(&target.to_string(), &proxy.address.to_string()));
    settings.acquire_timeout = Duration::from_millis(500);
    settings.statement_timeout = Duration::from_millis(300);
    settings.group_commit = GroupCommitSettings { in_flight: 1, max_batch: 256 };
    let ledger = PgLedger::connect_lazy(&settings).expect("a valid URL");
    ledger.record_add(add("partitioned", "1", None)).await.expect("recorded before the partition");
    // The connection goes back to the pool (after a ping) and waits there: the partition strikes the next
    // transaction mid-way, after its first statement was sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ledger.pool().num_idle(), 1);

    proxy.fall_silent(true);
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), ledger.record_add(add("partitioned", "10", None)))
        .await
        .expect("answered, not hung");
    assert!(is_not_recorded(&answer), "nothing reached the database: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "given up after {:?}", started.elapsed());

    proxy.fall_silent(false);
    let after = tokio::time::timeout(Duration::from_secs(30), ledger.record_add(add("partitioned", "100", None)))
        .await
        .expect("the worker serves again");
    assert!(matches!(after, Ok(AddOutcome::Applied(_))), "{after:?}");
    let reader = PgLedger::connect_lazy(&direct).expect("a valid URL");
    assert_eq!(balance(&reader, "partitioned").await, "101.00", "1 and 100 recorded; 10 answered not recorded");
}
