//! `bitburst`: the ledger service. Reads its configuration, picks the store, serves the HTTP API, and
//! drains gracefully on SIGTERM or Ctrl-C.

mod config;
mod shutdown;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;

use adapters_http::{AppState, HttpSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use adapters_postgres::{ConnectError, PgLedger};
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
            tracing::error!(error = %error_chain(&error), "bitburst stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), StartupError> {
    let repository = open_store(&config).await?;
    let readiness = Readiness::default();
    let settings = HttpSettings { store_timeout: config.store_timeout(), ..HttpSettings::default() };
    let app = router(AppState::new(Ledger::new(repository), readiness.clone(), settings));

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown::drained(readiness, config.drain_grace())).await?;
    tracing::info!("stopped: every accepted request was answered");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error(transparent)]
    Store(#[from] ConnectError),
    #[error("cannot serve HTTP")]
    Http(#[from] std::io::Error),
}

/// PostgreSQL when configured (waiting for it, then migrating), else memory.
async fn open_store(config: &Config) -> Result<Arc<dyn LedgerRepository>, StartupError> {
    let Some(settings) = config.postgres() else {
        tracing::warn!(
            "no DATABASE_URL: serving from memory; balances are NOT persisted and vanish when the process stops"
        );
        return Ok(Arc::new(InMemoryLedger::new()));
    };
    let target = settings.describe()?;
    tracing::info!(%target, pool_size = settings.pool_size, "connecting to PostgreSQL");
    let ledger = PgLedger::connect_lazy(&settings)?;
    ledger.wait_until_reachable(config.db_wait()).await?;
    ledger.migrate().await?;
    tracing::info!(%target, "PostgreSQL reachable and migrated");
    Ok(Arc::new(ledger))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cause = inner.source();
    }
    chain
}
