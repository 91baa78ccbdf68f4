//! PostgreSQL for tests: each test gets a database of its own, on a server found or started here.
//!
//! Where the server comes from, in order:
//! 1. `DATABASE_URL`, when set: a server someone runs (the role needs `CREATEDB`).
//! 2. Docker, when a daemon is reachable: a `postgres:15-alpine` container through testcontainers.
//! 3. The PostgreSQL binaries of this machine (`PG_BIN_DIR`, `pg_config --bindir`, or the newest
//!    `/usr/lib/postgresql/*/bin`): a throwaway server in a temporary directory, run as the `postgres`
//!    user when the tests run as root (initdb refuses root). `pgtemp` does the same but needs `sudo` for
//!    that, which CI machines here do not have, and starts one server per database rather than one per
//!    test process.
//!
//! With `CI=true` a test that cannot get a server fails; elsewhere it says so on stderr and skips.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A database made for one test. It lives as long as its server.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// A URL that reaches the database with full rights.
    pub url: String,
    /// Its name.
    pub name: String,
}

/// A new, empty database on the shared test server; `None` (with a message on stderr) when no server can
/// be had and the run is not CI.
pub async fn fresh_database() -> Option<TestDatabase> {
    let admin_url = match shared_server() {
        Ok(url) => url,
        Err(why) => return unavailable(&why),
    };
    Some(create_database(&admin_url).await)
}

/// Creates a new, empty database on the server of `admin_url`.
pub async fn create_database(admin_url: &str) -> TestDatabase {
    let name = format!("bitburst_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = connect_patiently(admin_url, Duration::from_secs(60)).await;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("CREATE DATABASE works");
    let _ = admin.close().await;
    TestDatabase { url: with_database(admin_url, &name), name }
}

/// What a test does when it cannot have PostgreSQL: fail in CI, say so and skip elsewhere.
pub fn unavailable<T>(why: &str) -> Option<T> {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no PostgreSQL for the tests: {why}");
    eprintln!("SKIPPED: no PostgreSQL for this test ({why}); set DATABASE_URL or install PostgreSQL");
    None
}

async fn connect_patiently(url: &str, patience: Duration) -> PgConnection {
    let deadline = Instant::now() + patience;
    loop {
        match PgConnection::connect(url).await {
            Ok(connection) => return connection,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the test server at {} did not accept connections: {error}", redact(url)),
        }
    }
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_end = base.find("://").map_or(0, |scheme| scheme + 3);
    let server = base[authority_end..].find('/').map_or(base, |slash| &base[..authority_end + slash]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://<credentials>{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The admin URL of the server every test of this process shares, started on first use.
fn shared_server() -> Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return Ok(url);
            }
            if docker_is_reachable() {
                match container::start() {
                    Ok(url) => return Ok(url),
                    Err(why) => eprintln!("testcontainers could not start PostgreSQL ({why}); trying local binaries"),
                }
            }
            let server = LocalServer::start(Lifetime::UntilProcessExit)?;
            let url = server.admin_url();
            // The server stops when this process exits, through the pipe it watches; nothing else owns it.
            std::mem::forget(server);
            Ok(url)
        })
        .clone()
}

fn docker_is_reachable() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists()
}

mod container {
    use std::sync::mpsc;

    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    /// Starts a container on a thread of its own, which keeps it until the process exits.
    pub fn start() -> Result<String, String> {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => return drop(sender.send(Err(error.to_string()))),
            };
            runtime.block_on(async move {
                let started = GenericImage::new("postgres", "15-alpine")
                    .with_exposed_port(5432.tcp())
                    .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
                    .with_env_var("POSTGRES_PASSWORD", "postgres")
                    .start()
                    .await;
                let container = match started {
                    Ok(container) => container,
                    Err(error) => return drop(sender.send(Err(error.to_string()))),
                };
                let port = match container.get_host_port_ipv4(5432).await {
                    Ok(port) => port,
                    Err(error) => return drop(sender.send(Err(error.to_string()))),
                };
                let _ = sender.send(Ok(format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")));
                std::future::pending::<()>().await;
            });
        });
        receiver.recv().map_err(|error| error.to_string())?
    }
}

/// How long a [`LocalServer`]'s files outlive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Removed when the process exits; for a server nobody stops or restarts.
    UntilProcessExit,
    /// Kept across [`LocalServer::stop`] and [`LocalServer::restart`], removed on drop.
    UntilDropped,
}

/// A throwaway PostgreSQL server from this machine's binaries, on a free loopback port.
#[derive(Debug)]
pub struct LocalServer {
    bin_dir: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres_user: bool,
    lifetime: Lifetime,
    running: Option<(Child, ChildStdin)>,
}

static SERVER_COUNTER: AtomicU32 = AtomicU32::new(0);

impl LocalServer {
    /// Initializes a data directory and starts the server. Durability is off (fsync, synchronous commit):
    /// these servers hold test data only, and the benchmarks start their own.
    pub fn start(lifetime: Lifetime) -> Result<Self, String> {
        let bin_dir = find_bin_dir()?;
        let root = std::env::temp_dir().join(format!(
            "bitburst-pg-{}-{}",
            std::process::id(),
            SERVER_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&root).map_err(|error| format!("cannot create {}: {error}", root.display()))?;
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(&root))?;
        }
        let mut server =
            Self { bin_dir, root, port: crate::free_loopback_port(), as_postgres_user, lifetime, running: None };
        let initdb = server.bin_dir.join("initdb");
        let data_dir = server.data_dir();
        run(server.command(&initdb).arg("-D").arg(&data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]))?;
        server.restart()?;
        Ok(server)
    }

    /// The URL of the `postgres` database as the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.running.is_some() {
            return Ok(());
        }
        // The shell runs postgres and waits for its stdin to close: when this process exits, however it
        // exits, the pipe closes and the server gets a fast shutdown, so no server outlives its tests.
        let remove_after = if self.lifetime == Lifetime::UntilProcessExit { "rm -rf \"$4\"" } else { ":" };
        let script = format!(
            "\"$1\" -D \"$2\" -p \"$3\" -k \"$2\" -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c log_min_messages=fatal & pg=$!; \
             read _; kill -INT $pg; wait $pg; {remove_after}"
        );
        let log = std::fs::File::create(self.root.join("server.log")).map_err(|error| error.to_string())?;
        let mut child = self
            .command(Path::new("sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(self.bin_dir.join("postgres"))
            .arg(self.data_dir())
            .arg(self.port.to_string())
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|error| format!("cannot start postgres: {error}"))?;
        let stdin = child.stdin.take().ok_or("postgres has no stdin pipe")?;
        self.running = Some((child, stdin));
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let pg_isready = self.bin_dir.join("pg_isready");
        loop {
            let ready = Command::new(&pg_isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(());
            }
            if let Some((child, _)) = &mut self.running
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
                return Err(format!("postgres exited with {status}: {log}"));
            }
            if Instant::now() > deadline {
                return Err("postgres did not become ready within 30 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: open transactions are rolled back), keeping its data.
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.running.take() {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no PostgreSQL binaries: /usr/lib/postgresql is missing and PG_BIN_DIR is not set".to_owned())?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

/// The uid and gid of the `postgres` user when this process runs as root (PostgreSQL refuses to run as
/// root, so the tests that start servers or their tools run them as that user); `None` otherwise.
pub fn postgres_user_ids() -> Result<Option<(u32, u32)>, String> {
    if !running_as_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|error| format!("cannot read /etc/passwd: {error}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .map(Some)
        .ok_or_else(|| "running as root and there is no postgres user to run PostgreSQL as".to_owned())
}
