//! `spawn_app`: the real `bitburst` binary on a free port, as a deployment would run it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::{TestApp, http_client};

/// How a spawned app runs: a `bitburst` process, whose logs are kept. Killed when dropped.
pub struct Process {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Starts `bitburst` with the given extra arguments and environment and waits until it listens. Its logs
/// are kept for assertions, and printed as they come when `TEST_LOG` is set.
pub fn spawn_app(args: &[&str], env: &[(&str, &str)]) -> TestApp<Process> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bitburst"));
    command.args(["--addr", "127.0.0.1:0"]).args(args).env("RUST_LOG", "info").env_remove("DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("bitburst starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (address_sender, address_receiver) = mpsc::channel();
    let kept = Arc::clone(&logs);
    std::thread::spawn(move || {
        let echo = std::env::var_os("TEST_LOG").is_some();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if echo {
                println!("[bitburst] {line}");
            }
            if let Some(address) = listening_address(&line) {
                let _ = address_sender.send(address);
            }
            kept.lock().expect("log buffer").push(line);
        }
    });
    let address =
        address_receiver.recv_timeout(Duration::from_secs(60)).expect("bitburst logs its address within a minute");
    TestApp { address, client: http_client(), runner: Process { child, logs } }
}

/// The address of the "listening" line, in text (`address=127.0.0.1:80`) or JSON (`"address":"…"`) logs.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    line.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|word| word.strip_prefix("address=").or_else(|| word.strip_prefix(r#""address":"#)))
        .and_then(|text| text.trim_matches(|c| c == '"' || c == '}').parse().ok())
}

impl TestApp<Process> {
    pub fn logs(&self) -> Vec<String> {
        self.runner.logs.lock().expect("log buffer").clone()
    }

    pub fn pid(&self) -> u32 {
        self.runner.child.id()
    }

    /// Sends SIGTERM, as an orchestrator stopping the instance would.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "SIGTERM was delivered");
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would: nothing is drained.
    pub fn kill_hard(&mut self) {
        self.runner.child.kill().expect("the process can be killed");
        let _ = self.runner.child.wait();
    }

    /// Whether the process is still the one started: it has not exited (nor been restarted).
    pub fn still_running(&mut self) -> bool {
        matches!(self.runner.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.runner.child.try_wait().expect("the process can be waited for") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "bitburst did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bitburst verify` with `args`, on `database_url` (none: with no `DATABASE_URL` at all), as an operator
/// runs it; returns when it exits.
pub fn run_verify(database_url: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bitburst"));
    command.arg("verify").args(args).env_remove("DATABASE_URL");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().expect("bitburst verify runs")
}
