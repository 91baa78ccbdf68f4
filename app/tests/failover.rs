//! Several instances on one PostgreSQL, failing: one is killed with SIGKILL in the middle of the load,
//! another is stopped with SIGTERM while it serves. Money must come out exact either way.

mod support;

use std::io::Write as _;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::clients::{Sent, Tally, Transfer, assert_money_is_exact, send_once, send_until_acknowledged};
use support::{TestApp, spawn_app};
use testkit::postgres::fresh_database;

fn instances(count: usize, url: &str, args: &[&str]) -> Vec<TestApp> {
    (0..count).map(|_| spawn_app(args, &[("DATABASE_URL", url)])).collect()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_instance_mid_load_loses_nothing_and_doubles_nothing() {
    let Some(database) = fresh_database().await else { return };
    let mut apps = instances(3, &database.url, &[]);
    let bases: Arc<Vec<String>> = Arc::new(apps.iter().map(|app| app.url("")).collect());
    let tally = Arc::new(Tally::default());
    let (clients, transfers_per_client) = (24_usize, 50_usize);
    let tasks: Vec<_> = (0..clients)
        .map(|client_number| {
            let (bases, tally, client) = (Arc::clone(&bases), Arc::clone(&tally), http_client());
            tokio::spawn(async move {
                for step in 0..transfers_per_client {
                    let transfer = Transfer {
                        user: format!("user-{}", (client_number * 7 + step) % 15),
                        key: format!("client-{client_number}-transfer-{step}"),
                        cents: i64::try_from((client_number * 131 + step * 17) % 50_000 + 1).expect("small"),
                    };
                    send_until_acknowledged(&client, &bases, client_number + step, transfer, &tally).await;
                }
            })
        })
        .collect();

    while tally.acknowledged_count() < clients * transfers_per_client / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    apps[0].kill_hard();
    let acknowledged_at_kill = tally.acknowledged_count();
    for task in tasks {
        task.await.expect("every client finished");
    }

    assert_money_is_exact(&http_client(), &bases[1], &tally).await;
    report(format_args!(
        "failover: requests sent={} retried={} acknowledged={} (of which {} before the kill) instances killed=1",
        tally.sent.load(Ordering::Relaxed),
        tally.retried.load(Ordering::Relaxed),
        tally.acknowledged_count(),
        acknowledged_at_kill
    ));
    assert_eq!(tally.acknowledged_count(), clients * transfers_per_client);
    assert!(tally.retried.load(Ordering::Relaxed) > 0, "the kill hit requests in flight or on their way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_stopped_with_sigterm_answers_every_request_it_accepted() {
    let Some(database) = fresh_database().await else { return };
    let mut draining = spawn_app(&["--drain-grace-ms", "1500"], &[("DATABASE_URL", database.url.as_str())]);
    let standby = spawn_app(&[], &[("DATABASE_URL", database.url.as_str())]);
    let (draining_base, standby_base) = (draining.url(""), standby.url(""));

    // The load balancer of this test: it polls /readyz and takes the instance out when it answers 503.
    let in_rotation = Arc::new(AtomicBool::new(true));
    let probe = {
        let (in_rotation, base, client) = (Arc::clone(&in_rotation), draining_base.clone(), http_client());
        tokio::spawn(async move {
            while in_rotation.load(Ordering::SeqCst) {
                let ready = client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200);
                if !ready {
                    in_rotation.store(false, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let tally = Arc::new(Tally::default());
    let (served_by_draining, cut) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let finished = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..16)
        .map(|client_number| {
            let (tally, client, finished, in_rotation) =
                (Arc::clone(&tally), http_client(), Arc::clone(&finished), Arc::clone(&in_rotation));
            let (served_by_draining, cut) = (Arc::clone(&served_by_draining), Arc::clone(&cut));
            let (draining_base, standby_base) = (draining_base.clone(), standby_base.clone());
            tokio::spawn(async move {
                let mut step: usize = 0;
                while !finished.load(Ordering::SeqCst) {
                    let transfer = Transfer {
                        user: format!("user-{}", (client_number + step) % 10),
                        key: format!("client-{client_number}-transfer-{step}"),
                        cents: 100 + i64::try_from(step % 50).expect("small"),
                    };
                    step += 1;
                    if !in_rotation.load(Ordering::SeqCst) {
                        send_until_acknowledged(&client, std::slice::from_ref(&standby_base), 0, transfer, &tally)
                            .await;
                        continue;
                    }
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    match send_once(&client, &draining_base, &transfer).await {
                        Sent::Acknowledged { transaction_id } => {
                            served_by_draining.fetch_add(1, Ordering::Relaxed);
                            tally.acknowledge(&transfer, &transaction_id);
                        }
                        Sent::Failed(why) => {
                            eprintln!("a request to the draining instance failed: {why}");
                            cut.fetch_add(1, Ordering::Relaxed);
                            send_until_acknowledged(&client, std::slice::from_ref(&standby_base), 0, transfer, &tally)
                                .await;
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_signal = served_by_draining.load(Ordering::Relaxed);
    draining.terminate();
    let status = tokio::task::spawn_blocking(move || {
        let status = draining.wait_for_exit(Duration::from_secs(30));
        (status, draining)
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    finished.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("every client finished");
    }
    probe.await.expect("the probe finished");
    let (status, _draining) = status.await.expect("the waiter ran");

    assert_money_is_exact(&http_client(), &standby_base, &tally).await;
    report(format_args!(
        "drain: requests sent={} served by the draining instance={} (of which {} after SIGTERM) cut=0 expected, got {}",
        tally.sent.load(Ordering::Relaxed),
        served_by_draining.load(Ordering::Relaxed),
        served_by_draining.load(Ordering::Relaxed) - before_signal,
        cut.load(Ordering::Relaxed)
    ));
    assert!(status.success(), "the drained instance exits 0, got {status}");
    assert_eq!(cut.load(Ordering::Relaxed), 0, "every request the draining instance accepted was answered");
    assert!(before_signal > 0, "the instance was under load when it got SIGTERM");
}

/// Prints a figure line past the test harness's capture (it captures `print!`, not the stderr handle),
/// so that CI's log shows it for a passing test too.
fn report(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
