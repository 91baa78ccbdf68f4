//! The restore drill: PostgreSQL 15 with default durability archives every WAL segment through pgBackRest
//! (`deploy/pgbackrest/`, a repository on local disk), `bitburst` serves keyed adds from several clients,
//! and then the data is lost twice over:
//! 1. an operator's mistake (with the immutability trigger off, a superuser deletes one user's entries
//!    and changes another's balance), undone by a point-in-time restore to the moment before it;
//! 2. the whole server (kill -9 of PostgreSQL, its data directory deleted), restored to the latest
//!    archived state.
//!
//! After each restore `bitburst verify` finds the ledger intact, and the service runs on the restored
//! database and serves adds with the next sequence numbers and an unbroken hash chain. Figures go to stderr
//! (`cargo test -p app --test disaster_recovery -- --nocapture`).

mod backup;
mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup::ArchivedServer;
use serde_json::Value;
use sqlx::Connection;
use support::clients::{
    Sent, Tally, Transfer, assert_money_is_exact, lost_and_doubled, send_once, send_until_acknowledged,
};
use support::{Process, TestApp, run_verify, spawn_app};

const CLIENTS: usize = 4;
const USERS: usize = 6;

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}

fn transfer(phase: &str, client: usize, number: usize) -> Transfer {
    Transfer {
        user: format!("drill-{}", (client * 5 + number) % USERS),
        key: format!("{phase}-client-{client}-transfer-{number}"),
        cents: i64::try_from((client * 131 + number * 17) % 50_000 + 1).expect("small"),
    }
}

async fn create_ledger_database(server: &ArchivedServer) -> String {
    let mut admin = server.connect("postgres").await;
    sqlx::raw_sql("CREATE DATABASE bitburst").execute(&mut admin).await.expect("the ledger's database is created");
    let _ = admin.close().await;
    server.url("bitburst")
}

fn start_service(url: &str) -> TestApp<Process> {
    spawn_app(&[], &[("DATABASE_URL", url), ("BITBURST_CURSOR_SECRET", "a drill's cursor secret, 32 chars")])
}

/// `count` keyed adds from each of the clients, each sent until acknowledged, into `tally`.
async fn send_adds(base: &str, phase: &str, count: usize, tally: &Arc<Tally>) {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (bases, tally, http) = (vec![base.to_owned()], Arc::clone(tally), http_client());
            let phase = phase.to_owned();
            tokio::spawn(async move {
                for number in 0..count {
                    send_until_acknowledged(&http, &bases, 0, transfer(&phase, client, number), &tally).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("every client finished");
    }
}

fn verify_exit_code(url: &str) -> Option<i32> {
    run_verify(Some(url), &["--json"]).status.code()
}

/// After a restore: the service on the restored database adds to every user with the next sequence
/// number, chained to the restored entry before it, and `verify` still finds nothing wrong.
async fn assert_the_ledger_goes_on(base: &str, url: &str, phase: &str) {
    let http = http_client();
    for user in 0..USERS {
        let user = format!("drill-{user}");
        let newest = |page: Value| page["transactions"][0].clone();
        let history = |http: reqwest::Client, user: String| async move {
            http.get(format!("{base}/users/{user}/history?page=1"))
                .send()
                .await
                .expect("history answers")
                .json::<Value>()
                .await
                .expect("JSON")
        };
        let before = newest(history(http.clone(), user.clone()).await);
        let next = Transfer { user: user.clone(), key: format!("{phase}-after-restore-{user}"), cents: 100 };
        match send_once(&http, base, &next).await {
            Sent::Acknowledged { .. } => {}
            Sent::Failed(why) => panic!("the restored ledger takes an add for {user}: {why}"),
        }
        let added = newest(history(http.clone(), user.clone()).await);
        let before_sequence = before["sequence"].as_u64().unwrap_or(0);
        assert_eq!(added["sequence"].as_u64(), Some(before_sequence + 1), "{user}: the next sequence number");
    }
    assert_eq!(verify_exit_code(url), Some(0), "verify after adds on the restored ledger");
}

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "disaster recovery, {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_point_in_time_restore_undoes_an_operators_mistake_and_keeps_every_earlier_add() {
    let Some(mut server) = ArchivedServer::start().await else { return };
    let url = create_ledger_database(&server).await;
    let app = start_service(&url);
    let before_mistake = Arc::new(Tally::default());
    send_adds(&app.url(""), "before-incr", 20, &before_mistake).await;
    server.backup("incr");
    send_adds(&app.url(""), "after-incr", 20, &before_mistake).await;

    let moment_before = server.clock().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut operator = server.connect("bitburst").await;
    sqlx::raw_sql(
        "BEGIN;
         ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable;
         DELETE FROM ledger_entries WHERE user_id = 'drill-1';
         UPDATE accounts SET balance = balance + 1000 WHERE user_id = 'drill-2';
         ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable;
         COMMIT;",
    )
    .execute(&mut operator)
    .await
    .expect("the superuser's mistake goes through");
    let _ = operator.close().await;
    let after_mistake = Arc::new(Tally::default());
    send_adds(&app.url(""), "after-mistake", 10, &after_mistake).await;
    let damaged = verify_exit_code(&url);
    assert_eq!(damaged, Some(1), "verify finds the damaged ledger broken");

    server.archive_everything_written().await;
    drop(app);
    server.stop();
    let restore_took = server.restore(Some(&moment_before)).await;
    let url = server.url("bitburst");
    assert_eq!(verify_exit_code(&url), Some(0), "verify finds the restored ledger intact");
    let app = start_service(&url);
    let http = http_client();
    let (lost, doubled) = lost_and_doubled(&http, &app.url(""), &before_mistake).await;
    assert_eq!((lost, doubled), (0, 0), "every add acknowledged before the mistake, once");
    // Each user's balance and history are exactly the adds acknowledged before the mistake: none of
    // those acknowledged after it (they went to the same users) is there.
    assert_money_is_exact(&http, &app.url(""), &before_mistake).await;
    let mut ledger = server.connect("bitburst").await;
    let after_keys: Vec<String> =
        (0..CLIENTS).flat_map(|client| (0..10).map(move |n| transfer("after-mistake", client, n).key)).collect();
    let present: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE idempotency_key = ANY($1)")
        .bind(&after_keys)
        .fetch_one(&mut ledger)
        .await
        .expect("the keys are looked up");
    assert_eq!(present, 0, "no add acknowledged after the mistake is in the restored ledger");
    let _ = ledger.close().await;
    assert_the_ledger_goes_on(&app.url(""), &url, "pitr").await;
    report(&format!(
        "point in time: adds acknowledged before the mistake={} present once={} after the mistake={} present=0 \
         verify on the damaged ledger exit={} restore to {moment_before} took {:.1} s, verify clean, adds go on",
        before_mistake.acknowledged_count(),
        before_mistake.acknowledged_count() - lost,
        after_mistake.acknowledged_count(),
        damaged.unwrap_or(-1),
        restore_took.as_secs_f64(),
    ));
}

/// Every transfer the clients made, with the time it was acknowledged, if it was.
type Attempts = Arc<Mutex<Vec<(Transfer, Option<(String, Instant)>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_server_lost_is_restored_from_the_archive_with_seconds_of_adds_at_most() {
    let Some(mut server) = ArchivedServer::start().await else { return };
    let url = create_ledger_database(&server).await;
    let app = start_service(&url);
    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Attempts = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, http, stop, attempts) = (app.url(""), http_client(), Arc::clone(&stop), Arc::clone(&attempts));
            tokio::spawn(async move {
                let mut number = 0;
                while !stop.load(Ordering::SeqCst) {
                    let transfer = transfer("lost-server", client, number);
                    let acknowledged = loop {
                        match send_once(&http, &base, &transfer).await {
                            Sent::Acknowledged { transaction_id } => break Some((transaction_id, Instant::now())),
                            Sent::Failed(_) if stop.load(Ordering::SeqCst) => break None,
                            Sent::Failed(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    };
                    attempts.lock().expect("attempts").push((transfer, acknowledged));
                    number += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let destroyed_at = Instant::now();
    server.destroy();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("every client finished");
    }
    drop(app);

    let restore_took = server.restore(None).await;
    let url = server.url("bitburst");
    assert_eq!(verify_exit_code(&url), Some(0), "verify finds the restored ledger intact");
    let mut ledger = server.connect("bitburst").await;
    let recorded: BTreeSet<String> = sqlx::query_scalar::<_, String>("SELECT id::text FROM ledger_entries")
        .fetch_all(&mut ledger)
        .await
        .expect("the restored entries are read")
        .into_iter()
        .collect();
    let _ = ledger.close().await;
    let attempts = attempts.lock().expect("attempts").clone();
    let acknowledged: Vec<&(String, Instant)> = attempts.iter().filter_map(|(_, ack)| ack.as_ref()).collect();
    let lost: Vec<&(String, Instant)> = acknowledged.iter().copied().filter(|(id, _)| !recorded.contains(id)).collect();
    let lost_seconds =
        lost.iter().map(|(_, at)| destroyed_at.saturating_duration_since(*at)).max().unwrap_or(Duration::ZERO);
    assert!(
        lost_seconds < Duration::from_secs(30),
        "with archive_timeout = 1 s, at most seconds of acknowledged adds are lost, not {lost_seconds:?}"
    );

    // The clients send again, with their keys, everything they did not get an answer for and everything
    // the restore lost: each is recorded once, and what the restore kept is answered as it was.
    let app = start_service(&url);
    let http = http_client();
    let resent = Arc::new(Tally::default());
    let bases = vec![app.url("")];
    for (transfer, acknowledged) in &attempts {
        send_until_acknowledged(&http, &bases, 0, transfer.clone(), &resent).await;
        if let Some((id, _)) = acknowledged
            && recorded.contains(id)
        {
            let (first_answer, again) = (id, resent.transaction_id(transfer));
            assert_eq!(again.as_ref(), Some(first_answer), "{transfer:?} is answered with its restored transaction");
        }
    }
    assert_money_is_exact(&http, &app.url(""), &resent).await;
    assert_the_ledger_goes_on(&app.url(""), &url, "lost-server").await;
    report(&format!(
        "whole server lost: adds acknowledged={} acknowledged adds lost={} seconds of adds lost={:.2} \
         unanswered at the loss={} restore of the latest state took {:.1} s, verify clean, every add re-sent with its key \
         recorded once",
        acknowledged.len(),
        lost.len(),
        lost_seconds.as_secs_f64(),
        attempts.len() - acknowledged.len(),
        restore_took.as_secs_f64(),
    ));
}
