//! A Patroni cluster for one test: one etcd and Patroni-managed PostgreSQL 15 nodes on this machine, from
//! the templates in `deploy/patroni/` with ports and directories of this run. Every process it starts is
//! killed when the cluster is dropped, a failing test's too, and its directory removed.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root, etcd and Patroni (and so PostgreSQL)
//! run as the `postgres` user, like the throwaway servers of `testkit`.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::free_loopback_port;

/// The PostgreSQL binaries the template names.
const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A process of the cluster; killed (SIGKILL) when dropped.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One Patroni node and its PostgreSQL.
pub struct Node {
    pub name: String,
    pub pg_port: u16,
    rest_port: u16,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    patroni: Option<Daemon>,
}

impl Node {
    /// `127.0.0.1:PORT`, as `DATABASE_URL` names it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.pg_port)
    }

    /// The PID of the postmaster, from its pid file, while one of this data directory runs.
    fn postmaster_pid(&self) -> Option<u32> {
        let pid: u32 =
            std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?.lines().next()?.parse().ok()?;
        // A stale pid file may name a PID that another process has since taken.
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&command).contains("postgres").then_some(pid)
    }
}

/// The cluster: etcd, the nodes, and the passwords of this run.
pub struct Cluster {
    root: PathBuf,
    run_as: Option<(u32, u32)>,
    etcd: Option<Daemon>,
    pub nodes: Vec<Node>,
    pub superuser_password: String,
    http: reqwest::Client,
}

/// What a test does when this machine cannot run the cluster: fail in CI, say so and skip elsewhere.
pub fn unavailable<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and no Patroni cluster for the test: {why} (`.ci/run` installs patroni and etcd-server)"
    );
    eprintln!("SKIPPED: no Patroni cluster for this test ({why}); apt-get install patroni etcd-server postgresql-15");
    None
}

fn missing_programs() -> Option<String> {
    let missing: Vec<&str> = ["patroni", "patronictl", "etcd"]
        .into_iter()
        .filter(|program| {
            !std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|dir| dir.join(program).is_file())
        })
        .collect();
    let mut why = String::new();
    if !missing.is_empty() {
        let _ = write!(why, "not on PATH: {}", missing.join(", "));
    }
    if !Path::new(PG_BIN_DIR).join("postgres").is_file() {
        let _ = write!(why, "{}no PostgreSQL 15 in {PG_BIN_DIR}", if why.is_empty() { "" } else { "; " });
    }
    (!why.is_empty()).then_some(why)
}

fn template(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/patroni").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let filled =
        values.iter().fold(template.to_owned(), |text, (name, value)| text.replace(&format!("{{{{{name}}}}}"), value));
    let unfilled = filled.lines().find(|line| !line.trim_start().starts_with('#') && line.contains("{{"));
    assert!(unfilled.is_none(), "every placeholder of the template is filled: {unfilled:?}");
    filled
}

impl Cluster {
    /// Starts etcd and `nodes` Patroni nodes, and waits until one is the primary and every other a
    /// synchronous or streaming standby. `None` when this machine cannot run it (see [`unavailable`]).
    pub async fn start(nodes: usize) -> Option<Self> {
        if let Some(why) = missing_programs() {
            return unavailable(&why);
        }
        let run_as = match testkit::postgres::postgres_user_ids() {
            Ok(run_as) => run_as,
            Err(why) => return unavailable(&why),
        };
        let root = std::env::temp_dir().join(format!("bitburst-patroni-{}-{}", std::process::id(), uuid_like()));
        std::fs::create_dir_all(&root).expect("the cluster's directory is created");
        let mut cluster = Self {
            root,
            run_as,
            etcd: None,
            nodes: Vec::new(),
            superuser_password: format!("super-{}", uuid_like()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("an HTTP client"),
        };
        cluster.chown(&cluster.root.clone());

        let (etcd_client, etcd_peer) = (free_loopback_port(), free_loopback_port());
        let etcd_config = cluster.root.join("etcd.yml");
        let etcd_data = cluster.root.join("etcd");
        cluster.write(
            &etcd_config,
            &fill(
                &template("etcd.yml"),
                &[
                    ("NAME", "etcd1"),
                    ("HOST", "127.0.0.1"),
                    ("DATA_DIR", &etcd_data.display().to_string()),
                    ("CLIENT_PORT", &etcd_client.to_string()),
                    ("PEER_PORT", &etcd_peer.to_string()),
                ],
            ),
        );
        let etcd =
            cluster.spawn("etcd", &["--config-file".as_ref(), etcd_config.as_os_str()], &cluster.root.join("etcd.log"));
        cluster.etcd = Some(etcd);

        let replication_password = format!("repl-{}", uuid_like());
        for number in 1..=nodes {
            let name = format!("node{number}");
            let (pg_port, rest_port) = (free_loopback_port(), free_loopback_port());
            let config = cluster.root.join(format!("{name}.yml"));
            let data_dir = cluster.root.join(&name);
            cluster.write(
                &config,
                &fill(
                    &template("patroni.yml"),
                    &[
                        ("NAME", &name),
                        ("HOST", "127.0.0.1"),
                        ("REST_PORT", &rest_port.to_string()),
                        ("PG_PORT", &pg_port.to_string()),
                        ("DATA_DIR", &data_dir.display().to_string()),
                        ("RUN_DIR", &cluster.root.display().to_string()),
                        ("ETCD_HOSTS", &format!("127.0.0.1:{etcd_client}")),
                        ("CLIENT_NETWORK", "127.0.0.0/8"),
                        ("SUPERUSER_PASSWORD", &cluster.superuser_password),
                        ("REPLICATION_PASSWORD", &replication_password),
                        ("ARCHIVE_COMMAND", "/bin/true"),
                    ],
                ),
            );
            let log = cluster.root.join(format!("{name}.log"));
            cluster.nodes.push(Node { name, pg_port, rest_port, config, data_dir, log, patroni: None });
        }
        // The first node bootstraps the cluster; the others clone it once it is the primary.
        cluster.start_node(0);
        cluster
            .wait_for(Duration::from_secs(120), "node1 to bootstrap as the primary", |roles| roles.primary() == Some(0))
            .await;
        for index in 1..nodes {
            cluster.start_node(index);
        }
        cluster.wait_for(Duration::from_secs(120), "every standby to stream, one synchronously", Roles::healthy).await;
        Some(cluster)
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("the cluster's files can be given to postgres");
        }
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::write(path, text).expect("a config file is written");
        self.chown(path);
    }

    fn spawn(&self, program: &str, args: &[&std::ffi::OsStr], log: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("a log file opens");
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid).env("HOME", &self.root);
        }
        Daemon { child: command.spawn().unwrap_or_else(|error| panic!("{program} starts: {error}")) }
    }

    /// Starts (or starts again) the Patroni agent of a node, which starts its PostgreSQL.
    pub fn start_node(&mut self, index: usize) {
        let node = &self.nodes[index];
        let patroni = self.spawn("patroni", &[node.config.as_os_str()], &node.log);
        self.nodes[index].patroni = Some(patroni);
    }

    /// `kill -9` of a node's postmaster and of its Patroni agent, as a crash of its machine would.
    pub fn kill_hard(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let postmaster = node.postmaster_pid();
        if let Some(patroni) = &mut node.patroni {
            patroni.kill();
        }
        node.patroni = None;
        let postmaster = postmaster.expect("the node's PostgreSQL runs");
        let status = Command::new("kill").args(["-KILL", &postmaster.to_string()]).status().expect("kill runs");
        assert!(status.success(), "SIGKILL reached the postmaster");
    }

    /// A planned switchover with `patronictl`, which returns once the candidate is the primary.
    pub fn switchover(&self, from: usize, to: usize) -> Result<(), String> {
        let output = Command::new("patronictl")
            .arg("-c")
            .arg(&self.nodes[to].config)
            .args(["switchover", "--leader", &self.nodes[from].name, "--candidate", &self.nodes[to].name, "--force"])
            .output()
            .map_err(|error| format!("patronictl does not run: {error}"))?;
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if output.status.success() && said.contains("Successfully switched over") { Ok(()) } else { Err(said) }
    }

    /// Every node's role, as Patroni's REST API of the live nodes tells it.
    pub async fn roles(&self) -> Roles {
        for node in self.nodes.iter().filter(|node| node.patroni.is_some()) {
            let answer = self.http.get(format!("http://127.0.0.1:{}/cluster", node.rest_port)).send().await;
            let Ok(body) = answer else { continue };
            let Ok(cluster) = body.json::<Value>().await else { continue };
            let members = cluster["members"].as_array().cloned().unwrap_or_default();
            let role_of = |name: &str| {
                members.iter().find(|member| member["name"] == name).map(|member| {
                    let running = member["state"] == "running" || member["state"] == "streaming";
                    match (member["role"].as_str(), running) {
                        (Some("leader"), true) => Role::Primary,
                        (Some("sync_standby"), true) => Role::SyncStandby,
                        (Some("replica"), true) => Role::Standby,
                        _ => Role::Other,
                    }
                })
            };
            return Roles(self.nodes.iter().map(|node| role_of(&node.name).unwrap_or(Role::Absent)).collect());
        }
        Roles(vec![Role::Absent; self.nodes.len()])
    }

    /// Waits until `ready` holds for the roles, at most `limit`; panics with the roles otherwise.
    pub async fn wait_for(&self, limit: Duration, what: &str, ready: impl Fn(&Roles) -> bool) -> Roles {
        let deadline = Instant::now() + limit;
        loop {
            let roles = self.roles().await;
            if ready(&roles) {
                return roles;
            }
            assert!(Instant::now() < deadline, "waited {limit:?} for {what}; roles: {roles:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether a node's Patroni log says it ran `pg_rewind` to rejoin.
    pub fn rewound(&self, index: usize) -> bool {
        std::fs::read_to_string(&self.nodes[index].log).is_ok_and(|log| log.contains("pg_rewind exit code=0"))
    }

    /// A URL of the `postgres` database on one node, as the superuser.
    pub fn superuser_url(&self, index: usize) -> String {
        format!("postgres://postgres:{}@{}/postgres", self.superuser_password, self.nodes[index].address())
    }

    fn print_logs(&self) {
        for name in ["etcd.log"]
            .into_iter()
            .map(str::to_owned)
            .chain(self.nodes.iter().map(|node| format!("{}.log", node.name)))
        {
            let log = std::fs::read_to_string(self.root.join(&name)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of {name} ----");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for node in &mut self.nodes {
            node.patroni = None;
        }
        // Patroni starts PostgreSQL in a session of its own, so it outlives the agent: stop it too (SIGQUIT:
        // immediate shutdown, which ends every backend), then make sure.
        let postmasters: Vec<u32> = self.nodes.iter().filter_map(Node::postmaster_pid).collect();
        for pid in &postmasters {
            let _ = Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while postmasters.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in postmasters.iter().filter(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        self.etcd = None;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What each node is, in the order of [`Cluster::nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(pub Vec<Role>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    SyncStandby,
    Standby,
    /// Starting, stopping, rewinding, or not running.
    Other,
    /// Not a member the cluster knows of (its agent is not running).
    Absent,
}

impl Roles {
    /// The node that is the primary, if exactly one is.
    pub fn primary(&self) -> Option<usize> {
        let mut primaries =
            self.0.iter().enumerate().filter(|(_, role)| **role == Role::Primary).map(|(index, _)| index);
        let first = primaries.next();
        if primaries.next().is_some() { None } else { first }
    }

    /// One primary, one synchronous standby, every other node a streaming standby.
    pub fn healthy(&self) -> bool {
        self.primary().is_some()
            && self.0.iter().filter(|role| **role == Role::SyncStandby).count() == 1
            && self.0.iter().all(|role| matches!(role, Role::Primary | Role::SyncStandby | Role::Standby))
    }
}

/// Random enough for a directory name and a password of one run.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{:x}{:x}", nanos, std::process::id())
}
