//! The database fails over under load, and nothing acknowledged is lost: one etcd and two Patroni-managed
//! PostgreSQL 15 nodes with synchronous replication (`deploy/patroni/`), two `bitburst` processes with a
//! two-host `DATABASE_URL`, and clients that send keyed adds and retry every failure with their key. In
//! turn: `kill -9` of the primary's postmaster and Patroni agent; the killed node back as a standby
//! (rewound with `pg_rewind`) and a planned switchover back to it; `kill -9` of that node again. After each,
//! every acknowledged add is in the ledger exactly once, every balance is the sum of its entries, and both
//! instances still run: they found each new primary by themselves. Figures go to stderr
//! (`cargo test --test database_failover -- --nocapture` shows them for a passing run too).

mod patroni;
mod support;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patroni::{Cluster, Roles};
use sqlx::{Connection, PgConnection};
use support::clients::{Tally, Transfer, assert_money_is_exact, lost_and_doubled, send_until_acknowledged_within};
use support::{Process, TestApp, run_verify, spawn_app};
use tokio::task::JoinHandle;

/// The generous bound of the timed assertions: writes resume within it after any failover.
const WRITES_RESUME_WITHIN: Duration = Duration::from_secs(60);
/// How long a client keeps retrying one add before the test fails.
const CLIENT_PATIENCE: Duration = Duration::from_secs(90);
const CLIENTS: usize = 8;
/// Adds acknowledged before the failure, and after writes resumed, in each scenario.
const ADDS_AROUND_EACH_FAILURE: usize = 150;

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client")
}

/// Keyed adds from several clients until stopped, with the time of every acknowledgement, and a probe of
/// the first instance's `/readyz`.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
    probe: JoinHandle<u64>,
    acknowledged_at: Arc<Mutex<Vec<Instant>>>,
    started: Instant,
    before: (u64, u64, usize),
}

impl Load {
    fn start(scenario: usize, bases: &Arc<Vec<String>>, tally: &Arc<Tally>) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged_at = Arc::new(Mutex::new(Vec::new()));
        let before =
            (tally.sent.load(Ordering::Relaxed), tally.retried.load(Ordering::Relaxed), tally.acknowledged_count());
        let clients = (0..CLIENTS)
            .map(|client_number| {
                let (bases, tally, client) = (Arc::clone(bases), Arc::clone(tally), http_client());
                let (stop, acknowledged_at) = (Arc::clone(&stop), Arc::clone(&acknowledged_at));
                tokio::spawn(async move {
                    let mut transfer_number = 0_usize;
                    while !stop.load(Ordering::SeqCst) {
                        let transfer = Transfer {
                            user: format!("user-{}", (client_number * 7 + transfer_number) % 12),
                            key: format!("scenario-{scenario}-client-{client_number}-transfer-{transfer_number}"),
                            cents: i64::try_from((client_number * 131 + transfer_number * 17) % 50_000 + 1)
                                .expect("small"),
                        };
                        let first = client_number + transfer_number;
                        send_until_acknowledged_within(&client, &bases, first, transfer, &tally, CLIENT_PATIENCE).await;
                        acknowledged_at.lock().expect("times").push(Instant::now());
                        transfer_number += 1;
                    }
                })
            })
            .collect();
        let probe = {
            let (stop, base, client) = (Arc::clone(&stop), bases[0].clone(), http_client());
            tokio::spawn(async move {
                let mut not_ready = 0;
                while !stop.load(Ordering::SeqCst) {
                    let ready = client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200);
                    not_ready += u64::from(!ready);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                not_ready
            })
        };
        Self { stop, clients, probe, acknowledged_at, started, before }
    }

    fn acknowledged_since(&self, since: Instant) -> usize {
        self.acknowledged_at.lock().expect("times").iter().filter(|at| **at > since).count()
    }

    /// Waits until `count` adds were acknowledged after `since`; panics after `limit`.
    async fn wait_for_acknowledged(&self, since: Instant, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.acknowledged_since(since) < count {
            assert!(Instant::now() < deadline, "fewer than {count} adds acknowledged within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients (each finishes the add it is sending) and sums up around the failure at `event`.
    async fn stop(self, event: Instant, tally: &Tally) -> Figures {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.expect("every client finished");
        }
        let not_ready = self.probe.await.expect("the probe finished");
        let mut times = self.acknowledged_at.lock().expect("times").clone();
        times.sort();
        let last_before = times.iter().rposition(|at| *at <= event).unwrap_or(0);
        // The longest stretch without an acknowledged add, from the last one before the failure on; writes
        // were back when it ended. (An add in flight at the failure may still be acknowledged just after it.)
        let (longest_gap, resumed_at) = times[last_before..]
            .windows(2)
            .map(|pair| (pair[1] - pair[0], pair[1]))
            .max()
            .unwrap_or((Duration::ZERO, event));
        let (sent, retried, acknowledged) = self.before;
        Figures {
            sent: tally.sent.load(Ordering::Relaxed) - sent,
            retried: tally.retried.load(Ordering::Relaxed) - retried,
            acknowledged: tally.acknowledged_count() - acknowledged,
            longest_gap,
            resumed_after: resumed_at.saturating_duration_since(event),
            not_ready,
        }
    }
}

struct Figures {
    sent: u64,
    retried: u64,
    acknowledged: usize,
    /// The longest time without an acknowledged add, from the last one before the failure on.
    longest_gap: Duration,
    /// From the failure to the end of that stretch: when writes were back.
    resumed_after: Duration,
    /// Probes of `/readyz` that did not answer 200.
    not_ready: u64,
}

/// Creates the ledger's role and database on the primary; the URL of both hosts for `bitburst`.
async fn ledger_database(cluster: &Cluster, primary: usize) -> String {
    let password = format!("ledger-{}", cluster.superuser_password);
    let mut admin = PgConnection::connect(&cluster.superuser_url(primary)).await.expect("the superuser connects");
    // Two statements: CREATE DATABASE cannot run in the implicit transaction of a multi-statement query.
    for statement in [
        format!("CREATE ROLE bitburst LOGIN PASSWORD '{password}'"),
        "CREATE DATABASE bitburst OWNER bitburst".to_owned(),
    ] {
        sqlx::raw_sql(&statement).execute(&mut admin).await.expect("the ledger's role and database are created");
    }
    let _ = admin.close().await;
    let hosts: Vec<String> = cluster.nodes.iter().map(patroni::Node::address).collect();
    format!("postgres://bitburst:{password}@{}/bitburst?target_session_attrs=read-write", hosts.join(","))
}

/// Everything that must hold after a failover: the instances never restarted, each names the new primary
/// and counts the failovers, no acknowledged add is lost or doubled, and `bitburst verify`
/// finds every balance, sequence and hash chain intact. Returns (lost, doubled).
async fn check_after_failover(
    apps: &mut [TestApp<Process>],
    cluster: &Cluster,
    primary: usize,
    failovers: u64,
    url: &str,
    tally: &Arc<Tally>,
) -> (usize, usize) {
    let client = http_client();
    for (number, app) in apps.iter_mut().enumerate() {
        assert!(app.still_running(), "instance {number} still runs: it was never restarted");
        let metrics = client.get(app.url("/metrics")).send().await.expect("metrics answer").text().await.expect("text");
        let gauge = format!("bitburst_pg_primary{{host=\"{}\"}} 1", cluster.nodes[primary].address());
        assert!(metrics.contains(&gauge), "instance {number} names the new primary ({gauge}):\n{metrics}");
        let counter = format!("bitburst_pg_failovers_total {failovers}\n");
        assert!(metrics.contains(&counter), "instance {number} counted {failovers} failovers:\n{metrics}");
    }
    let (lost, doubled) = lost_and_doubled(&client, &apps[1].url(""), tally).await;
    assert_money_is_exact(&client, &apps[0].url(""), tally).await;
    // `bitburst verify` on the same two-host URL as the instances: it reads from the new primary.
    let verified = run_verify(Some(url), &["--json"]);
    let summary = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "bitburst verify finds the ledger intact: {summary}");
    assert!(summary.contains("\"clean\":true"), "{summary}");
    (lost, doubled)
}

fn report(
    scenario: &str,
    figures: &Figures,
    promoted_after: Duration,
    lost: usize,
    doubled: usize,
    rewound: Option<bool>,
) {
    let rewound = rewound.map_or(String::new(), |rewound| format!(" old primary rejoined with pg_rewind={rewound}"));
    let _ = writeln!(
        std::io::stderr(),
        "database failover, {scenario}: requests sent={} acknowledged={} retried={} seconds without successful writes={:.2} \
         writes back {:.2} s after the failure (Patroni's new primary after {:.2} s) /readyz not 200={} adds lost={lost} adds doubled={doubled} \
         instances restarted=0{rewound}",
        figures.sent,
        figures.acknowledged,
        figures.retried,
        figures.longest_gap.as_secs_f64(),
        figures.resumed_after.as_secs_f64(),
        promoted_after.as_secs_f64(),
        figures.not_ready,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failovers_of_a_patroni_cluster_under_load_lose_and_double_no_acknowledged_add() {
    let Some(mut cluster) = Cluster::start(2).await else { return };
    let first_primary = cluster.roles().await.primary().expect("a primary");
    let url = ledger_database(&cluster, first_primary).await;
    let mut apps: Vec<TestApp<Process>> = (0..2).map(|_| spawn_app(&[], &[("DATABASE_URL", url.as_str())])).collect();
    let bases = Arc::new(apps.iter().map(|app| app.url("")).collect::<Vec<_>>());
    let tally = Arc::new(Tally::default());

    // 1. kill -9 of the primary's postmaster and its Patroni agent, mid-load: the standby is promoted.
    let (killed, standby) = (first_primary, 1 - first_primary);
    let load = Load::start(1, &bases, &tally);
    load.wait_for_acknowledged(load.started, ADDS_AROUND_EACH_FAILURE, CLIENT_PATIENCE).await;
    let event = Instant::now();
    cluster.kill_hard(killed);
    cluster
        .wait_for(WRITES_RESUME_WITHIN, "the standby's promotion", |roles: &Roles| roles.primary() == Some(standby))
        .await;
    let promoted_after = event.elapsed();
    load.wait_for_acknowledged(event, ADDS_AROUND_EACH_FAILURE, WRITES_RESUME_WITHIN).await;
    let figures = load.stop(event, &tally).await;
    let (lost, doubled) = check_after_failover(&mut apps, &cluster, standby, 1, &url, &tally).await;
    report("kill -9 of the primary", &figures, promoted_after, lost, doubled, None);
    assert_eq!((lost, doubled), (0, 0), "no acknowledged add lost or doubled");
    assert!(figures.longest_gap < WRITES_RESUME_WITHIN, "writes resumed within {WRITES_RESUME_WITHIN:?}");
    assert!(figures.not_ready > 0, "/readyz answered 503 while no primary was reachable");

    // 2. The killed node comes back and rejoins as a standby; a planned switchover back to it, mid-load.
    cluster.start_node(killed);
    cluster
        .wait_for(Duration::from_secs(120), "the old primary to rejoin as the synchronous standby", Roles::healthy)
        .await;
    let rewound = cluster.rewound(killed);
    let load = Load::start(2, &bases, &tally);
    load.wait_for_acknowledged(load.started, ADDS_AROUND_EACH_FAILURE, CLIENT_PATIENCE).await;
    let event = Instant::now();
    cluster.switchover(standby, killed).expect("patronictl switches over");
    cluster.wait_for(WRITES_RESUME_WITHIN, "the switchover", |roles: &Roles| roles.primary() == Some(killed)).await;
    let promoted_after = event.elapsed();
    load.wait_for_acknowledged(event, ADDS_AROUND_EACH_FAILURE, WRITES_RESUME_WITHIN).await;
    let figures = load.stop(event, &tally).await;
    let (lost, doubled) = check_after_failover(&mut apps, &cluster, killed, 2, &url, &tally).await;
    report("planned switchover back to the rejoined node", &figures, promoted_after, lost, doubled, Some(rewound));
    assert_eq!((lost, doubled), (0, 0), "no acknowledged add lost or doubled");
    assert!(figures.longest_gap < WRITES_RESUME_WITHIN, "writes resumed within {WRITES_RESUME_WITHIN:?}");

    // 3. The demoted node is the synchronous standby now; kill -9 of the primary again fails over to it.
    cluster
        .wait_for(Duration::from_secs(120), "the demoted primary to stream as the synchronous standby", Roles::healthy)
        .await;
    let load = Load::start(3, &bases, &tally);
    load.wait_for_acknowledged(load.started, ADDS_AROUND_EACH_FAILURE, CLIENT_PATIENCE).await;
    let event = Instant::now();
    cluster.kill_hard(killed);
    cluster
        .wait_for(WRITES_RESUME_WITHIN, "the second promotion", |roles: &Roles| roles.primary() == Some(standby))
        .await;
    let promoted_after = event.elapsed();
    load.wait_for_acknowledged(event, ADDS_AROUND_EACH_FAILURE, WRITES_RESUME_WITHIN).await;
    let figures = load.stop(event, &tally).await;
    let (lost, doubled) = check_after_failover(&mut apps, &cluster, standby, 3, &url, &tally).await;
    report("kill -9 of the primary again, back to the first standby", &figures, promoted_after, lost, doubled, None);
    assert_eq!((lost, doubled), (0, 0), "no acknowledged add lost or doubled");
    assert!(figures.longest_gap < WRITES_RESUME_WITHIN, "writes resumed within {WRITES_RESUME_WITHIN:?}");
    assert!(figures.not_ready > 0, "/readyz answered 503 while no primary was reachable");
}
