//! Starting the service for a black-box test on a free port: `start_app` runs it inside the test process;
//! `spawn_app` runs the real `bitburst` binary, for the tests that signal or kill the process, or read its
//! logs or its exit status.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod clients;
mod in_process;
mod process;

use std::net::SocketAddr;
use std::time::Duration;

pub use in_process::{InProcess, start_app};
pub use process::{Process, run_verify, spawn_app};

/// A running instance, listening at `address`, and a client for it; stopped when dropped. `R` says how it
/// runs: as a [`Process`], which a test can signal and kill and whose logs it can read, or [`InProcess`].
pub struct TestApp<R = Process> {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    runner: R,
}

impl<R> TestApp<R> {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client")
}
