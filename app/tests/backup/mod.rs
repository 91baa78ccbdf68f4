//! A PostgreSQL 15 server with default durability that archives every WAL segment with pgBackRest into a
//! repository on local disk (`deploy/pgbackrest/pgbackrest.conf`, filled in for this run), and restores
//! from it into fresh data directories. Every server it starts is stopped when it is dropped, a failing
//! test's too, and its directory removed.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root, PostgreSQL and pgBackRest run as the
//! `postgres` user, like the throwaway servers of `testkit`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use testkit::free_loopback_port;

const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const STANZA: &str = "bitburst";

/// What a test does when this machine cannot run the drill: fail in CI, say so and skip elsewhere.
pub fn unavailable<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and no pgBackRest drill possible: {why} (`.ci/run` installs pgbackrest and postgresql-15)"
    );
    eprintln!("SKIPPED: no pgBackRest drill on this machine ({why}); apt-get install pgbackrest postgresql-15");
    None
}

/// One running PostgreSQL of the drill: its data directory and port.
struct Postgres {
    child: Child,
    port: u16,
    data_dir: PathBuf,
}

/// The archived server and its repository.
pub struct ArchivedServer {
    root: PathBuf,
    run_as: Option<(u32, u32)>,
    config: PathBuf,
    running: Option<Postgres>,
    /// Data directories made so far (the first by initdb, the others by restores), for unique names.
    data_dirs: usize,
}

impl ArchivedServer {
    /// initdb, a server that archives through pgBackRest, the stanza, and a first full backup. `None`
    /// when this machine cannot run it (see [`unavailable`]).
    pub async fn start() -> Option<Self> {
        if !Path::new(PG_BIN_DIR).join("postgres").is_file() {
            return unavailable(&format!("no PostgreSQL 15 in {PG_BIN_DIR}"));
        }
        if Command::new("pgbackrest").arg("version").output().is_err() {
            return unavailable("pgbackrest is not on PATH");
        }
        let run_as = match testkit::postgres::postgres_user_ids() {
            Ok(run_as) => run_as,
            Err(why) => return unavailable(&why),
        };
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
        let root = std::env::temp_dir().join(format!("bitburst-drill-{}-{nanos:x}", std::process::id()));
        let mut server = Self { config: root.join("pgbackrest.conf"), root, run_as, running: None, data_dirs: 0 };
        for dir in ["", "repo", "log", "lock"] {
            server.make_dir(&server.root.join(dir));
        }
        let data_dir = server.next_data_dir();
        Self::run(server.as_postgres(&Path::new(PG_BIN_DIR).join("initdb")).arg("-D").arg(&data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]));
        let port = free_loopback_port();
        server.write_config(&data_dir, port);
        server.start_postgres(data_dir, port, true).await;
        server.pgbackrest(&["stanza-create"]);
        server.pgbackrest(&["check"]);
        server.backup("full");
        Some(server)
    }

    /// `full` or `incr`: a backup of the running server into the repository.
    pub fn backup(&self, kind: &str) {
        self.pgbackrest(&["backup", &format!("--type={kind}")]);
    }

    /// The URL of `database` on the running server, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.running().port)
    }

    /// The server's clock, as PostgreSQL and pgBackRest read a time (`2026-12-03 10:00:00.123456+00`).
    pub async fn clock(&self) -> String {
        let mut connection = self.connect("postgres").await;
        let now: String = sqlx::query_scalar("SELECT clock_timestamp()::text")
            .fetch_one(&mut connection)
            .await
            .expect("the server tells its time");
        let _ = connection.close().await;
        now
    }

    pub async fn connect(&self, database: &str) -> PgConnection {
        PgConnection::connect(&self.url(database)).await.expect("the superuser connects")
    }

    /// Ends the current WAL segment and waits until the archive has it: everything written so far can
    /// then be restored.
    pub async fn archive_everything_written(&self) {
        let mut connection = self.connect("postgres").await;
        let segment: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
            .fetch_one(&mut connection)
            .await
            .expect("the WAL segment switches");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> = sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
                .fetch_one(&mut connection)
                .await
                .expect("the archiver's progress");
            // Segment names of one timeline sort in the order they were written.
            if archived.as_deref().is_some_and(|archived| archived[..24.min(archived.len())] >= *segment.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "segment {segment} archived within 60 s (last: {archived:?})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = connection.close().await;
    }

    /// Stops the server cleanly (fast shutdown; the archiver sends what is left first).
    pub fn stop(&mut self) {
        if let Some(mut postgres) = self.running.take() {
            let _ = Command::new("kill").args(["-INT", &postgres.child.id().to_string()]).status();
            let _ = postgres.child.wait();
        }
    }

    /// The machine dies: `kill -9` of the postmaster, and its data directory deleted.
    pub fn destroy(&mut self) {
        let mut postgres = self.running.take().expect("a server runs");
        let _ = postgres.child.kill();
        let _ = postgres.child.wait();
        // Its backends notice the postmaster is gone and exit; the files go now.
        std::fs::remove_dir_all(&postgres.data_dir).expect("the data directory is deleted");
    }

    /// Restores into a fresh data directory (`target`: `None` for the latest archived state, or a time
    /// as [`ArchivedServer::clock`] gives it) and starts a server on it, without archiving (the
    /// repository stays the old timeline's), once it accepts writes. Returns how long that took.
    pub async fn restore(&mut self, target: Option<&str>) -> Duration {
        assert!(self.running.is_none(), "the server is stopped before a restore");
        let started = Instant::now();
        let data_dir = self.next_data_dir();
        let mut args = vec![format!("--pg1-path={}", data_dir.display())];
        if let Some(time) = target {
            args.extend(["--type=time".to_owned(), format!("--target={time}"), "--target-action=promote".to_owned()]);
        }
        args.push("restore".to_owned());
        self.pgbackrest(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.start_postgres(data_dir, free_loopback_port(), false).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut connection = self.connect("postgres").await;
        loop {
            let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut connection)
                .await
                .expect("the restored server answers");
            if !recovering {
                break;
            }
            assert!(Instant::now() < deadline, "the restored server finished recovery within 120 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = connection.close().await;
        started.elapsed()
    }

    fn running(&self) -> &Postgres {
        self.running.as_ref().expect("a server runs")
    }

    fn next_data_dir(&mut self) -> PathBuf {
        self.data_dirs += 1;
        let data_dir = self.root.join(format!("data{}", self.data_dirs));
        self.make_dir(&data_dir);
        std::fs::set_permissions(&data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("the data directory is private");
        data_dir
    }

    fn write_config(&self, data_dir: &Path, port: u16) {
        let template =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pgbackrest/pgbackrest.conf"))
                .expect("deploy/pgbackrest/pgbackrest.conf is readable");
        let values = [
            ("CONFIG", self.config.display().to_string()),
            ("REPO_PATH", self.root.join("repo").display().to_string()),
            ("LOG_PATH", self.root.join("log").display().to_string()),
            ("LOCK_PATH", self.root.join("lock").display().to_string()),
            ("DATA_DIR", data_dir.display().to_string()),
            ("PG_PORT", port.to_string()),
            ("SOCKET_DIR", self.root.display().to_string()),
            ("PG_USER", "postgres".to_owned()),
        ];
        let filled =
            values.iter().fold(template, |text, (name, value)| text.replace(&format!("{{{{{name}}}}}"), value));
        let unfilled = filled.lines().find(|line| !line.trim_start().starts_with('#') && line.contains("{{"));
        assert!(unfilled.is_none(), "every placeholder of pgbackrest.conf is filled: {unfilled:?}");
        std::fs::write(&self.config, filled).expect("pgbackrest.conf is written");
        self.chown(&self.config);
    }

    async fn start_postgres(&mut self, data_dir: PathBuf, port: u16, archiving: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("postgres.log"))
            .expect("the server log opens");
        let mut command = self.as_postgres(&Path::new(PG_BIN_DIR).join("postgres"));
        command
            .arg("-D")
            .arg(&data_dir)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"])
            .arg("-k")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if archiving {
            let archive_command =
                format!("pgbackrest --config={} --stanza={STANZA} archive-push %p", self.config.display());
            command
                .args(["-c", "archive_mode=on", "-c", "archive_timeout=1", "-c"])
                .arg(format!("archive_command={archive_command}"));
        } else {
            // The restored server writes a new timeline; this drill does not archive it.
            command.args(["-c", "archive_mode=off"]);
        }
        let child = command.spawn().expect("postgres starts");
        self.running = Some(Postgres { child, port, data_dir });
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = self.url("postgres");
        while PgConnection::connect(&url).await.is_err() {
            if let Some(postgres) = self.running.as_mut()
                && let Ok(Some(status)) = postgres.child.try_wait()
            {
                panic!("postgres exited with {status}; see {}", self.root.join("postgres.log").display());
            }
            assert!(Instant::now() < deadline, "postgres accepts connections within 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pgbackrest(&self, args: &[&str]) {
        let mut command = self.as_postgres(Path::new("pgbackrest"));
        command.arg(format!("--config={}", self.config.display())).arg(format!("--stanza={STANZA}")).args(args);
        Self::run(&mut command);
    }

    fn run(command: &mut Command) {
        let output = command.output().unwrap_or_else(|error| panic!("{command:?} runs: {error}"));
        assert!(
            output.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn as_postgres(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.root);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid).env("HOME", &self.root);
        }
        command
    }

    fn make_dir(&self, path: &Path) {
        std::fs::create_dir_all(path).expect("a directory of the drill is created");
        self.chown(path);
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("the drill's files can be given to postgres");
        }
    }
}

impl Drop for ArchivedServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of postgres.log ----");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(mut postgres) = self.running.take() {
            // Immediate shutdown: a failing test leaves nothing worth a clean stop.
            let _ = Command::new("kill").args(["-QUIT", &postgres.child.id().to_string()]).status();
            let _ = postgres.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
