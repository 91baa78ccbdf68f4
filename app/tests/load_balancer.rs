//! The load balancer configuration of `docker-compose.yml` (`deploy/nginx.conf`), exercised with this
//! machine's nginx in front of three local instances on one PostgreSQL.

mod support;

use std::io::Write as _;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::clients::{Tally, Transfer, assert_money_is_exact, send_until_acknowledged};
use support::{TestApp, spawn_app};
use testkit::postgres::{fresh_database, unavailable};

/// nginx, running `deploy/nginx.conf` with its upstream servers and listen address replaced.
struct Nginx {
    child: Child,
    prefix: PathBuf,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers only when it is itself allowed to stop.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// The compose configuration with what only Docker has replaced: the replicas found through Docker's
/// DNS become the given local addresses, and the listen port a free one.
fn templated_config(upstreams: &[String], port: u16) -> String {
    let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf"))
        .expect("deploy/nginx.conf");
    let mut templated = Vec::new();
    let mut in_upstream_servers = false;
    for line in config.lines() {
        match line.trim() {
            "# upstream servers" => {
                in_upstream_servers = true;
                templated.extend(upstreams.iter().map(|address| format!("        server {address};")));
            }
            "# end upstream servers" => in_upstream_servers = false,
            trimmed if in_upstream_servers || trimmed.starts_with("resolver ") => {}
            _ => templated.push(line.to_owned()),
        }
    }
    let config = templated.join("\n");
    assert!(config.contains("listen 8080;") && config.contains("server 127.0.0.1:"), "templated: {config}");
    config.replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
}

fn start_nginx(binary: &Path, upstreams: &[String]) -> Nginx {
    let port = testkit::free_loopback_port();
    let prefix = std::env::temp_dir().join(format!("bitburst-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&prefix).expect("a prefix directory");
    let config_path = prefix.join("nginx.conf");
    std::fs::write(&config_path, templated_config(upstreams, port)).expect("the config is written");
    let pid = prefix.join("nginx.pid");
    let child = Command::new(binary)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config_path)
        .arg("-g")
        .arg(format!("daemon off; pid {};", pid.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx { child, prefix, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}

/// Instances behind one load balancer share their cursor secret, so a page reached through one instance
/// continues on any other.
fn instances(count: usize, url: &str) -> Vec<TestApp> {
    let shared = [("DATABASE_URL", url), ("BITBURST_CURSOR_SECRET", "the secret every instance here shares")];
    (0..count).map(|_| spawn_app(&[], &shared)).collect()
}

async fn adds_served(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("answers").text().await.expect("text");
    text.lines()
        .filter(|line| line.starts_with("bitburst_adds_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn send_through(base: &str, tally: &Arc<Tally>, first_step: usize, steps: usize) {
    let tasks: Vec<_> = (0..16)
        .map(|client_number| {
            let (tally, base) = (Arc::clone(tally), base.to_owned());
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
            tokio::spawn(async move {
                for step in first_step..first_step + steps {
                    let transfer = Transfer {
                        user: format!("user-{}", (client_number + step) % 8),
                        key: format!("via-lb-{client_number}-{step}"),
                        cents: 1 + i64::try_from(step).expect("small"),
                    };
                    send_until_acknowledged(&client, std::slice::from_ref(&base), 0, transfer, &tally).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the client finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_spreads_the_load_over_the_instances_and_routes_around_a_dead_one() {
    let Some(binary) = nginx_binary() else {
        return unavailable::<()>("no nginx: apt-get install nginx").unwrap_or(());
    };
    let Some(database) = fresh_database().await else { return };
    let mut apps = instances(3, &database.url);
    let upstreams: Vec<String> = apps.iter().map(|app| app.address.to_string()).collect();
    let nginx = start_nginx(&binary, &upstreams);
    let base = format!("http://127.0.0.1:{}", nginx.port);

    let health = reqwest::get(format!("{base}/lb-health")).await.expect("nginx answers");
    assert_eq!(health.status(), 200);
    let echoed = reqwest::Client::new()
        .get(format!("{base}/users/someone/balance"))
        .header("x-request-id", "through-the-lb")
        .send()
        .await
        .expect("answers");
    assert_eq!(echoed.headers()["x-request-id"], "through-the-lb", "the request id passes through nginx");

    let tally = Arc::new(Tally::default());
    send_through(&base, &tally, 0, 20).await;
    for app in &apps {
        assert!(adds_served(app).await > 0, "every instance behind nginx took adds");
    }
    let sent_before_kill = tally.sent.load(Ordering::Relaxed);
    assert_eq!(sent_before_kill, 16 * 20, "no add needed a retry while every instance was up");

    apps[0].kill_hard();
    send_through(&base, &tally, 20, 20).await;
    let after_kill = tally.sent.load(Ordering::Relaxed) - sent_before_kill;
    report(format_args!(
        "load balancer: adds through nginx={} (before the kill {}), client retries after the kill={}",
        tally.acknowledged_count(),
        sent_before_kill,
        after_kill - 16 * 20
    ));
    assert_eq!(after_kill, 16 * 20, "nginx routed every add around the dead instance without a client retry");
    assert_money_is_exact(&reqwest::Client::new(), &base, &tally).await;
}

/// Prints a figure line past the test harness's capture (it captures `print!`, not the stderr handle),
/// so that CI's log shows it for a passing test too.
fn report(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
