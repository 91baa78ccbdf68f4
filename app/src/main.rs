//! `bitburst`: the ledger service. Reads its configuration, picks the store, serves the HTTP API, and
//! drains gracefully on SIGTERM or Ctrl-C.

mod config;
mod shutdown;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;

use adapters_http::{AppState, HttpSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use clap::Parser;
use domain::LedgerRepository;

use crate::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "bitburst stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), std::io::Error> {
    let repository = open_store();
    let readiness = Readiness::default();
    let settings = HttpSettings { store_timeout: config.store_timeout(), ..HttpSettings::default() };
    let app = router(AppState::new(Ledger::new(repository), readiness.clone(), settings));

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown::drained(readiness, config.drain_grace())).await?;
    tracing::info!("stopped: every accepted request was answered");
    Ok(())
}

fn open_store() -> Arc<dyn LedgerRepository> {
    tracing::warn!(
        "no DATABASE_URL: serving from memory; balances are NOT persisted and vanish when the process stops"
    );
    Arc::new(InMemoryLedger::new())
}
