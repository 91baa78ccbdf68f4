//! `bitburst`: the ledger service. Reads its configuration, picks the store, serves the HTTP API, and
//! drains gracefully on SIGTERM or Ctrl-C.

mod config;
mod shutdown;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;

use adapters_http::{AppState, HttpSettings, Readiness, ServeSettings, router};
use adapters_memory::InMemoryLedger;
use adapters_postgres::{ConnectError, PgLedger};
use application::Ledger;
use clap::Parser;
use domain::{LedgerRepository, error_chain};

use crate::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init_logs(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "bitburst stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), StartupError> {
    let prometheus = telemetry::init_metrics();
    let api_keys = config.api_keys()?;
    if api_keys.is_some() {
        tracing::info!("API keys configured: /users/... requests need Authorization: Bearer <key>");
    } else {
        tracing::warn!(
            "no API keys configured (BITBURST_API_KEYS or BITBURST_API_KEYS_FILE): anyone who can reach this service can add money"
        );
    }
    let (repository, gauges) = open_store(&config).await?;
    let readiness = Readiness::default();
    let settings = HttpSettings {
        store_timeout: config.store_timeout(),
        add_timeout: config.add_timeout(),
        api_keys,
        metrics_require_key: config.metrics_require_key,
        rate_limit: config.rate_limit(),
        ..HttpSettings::default()
    };
    let render_metrics = Arc::new(move || {
        gauges();
        prometheus.run_upkeep();
        prometheus.render()
    });
    let state = AppState::new(Ledger::new(repository), readiness.clone(), settings).with_metrics(render_metrics);
    let app = router(state);

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let stopped_accepting = Arc::new(tokio::sync::Notify::new());
    let serve = adapters_http::serve(
        listener,
        app,
        ServeSettings { header_read_timeout: config.header_read_timeout() },
        shutdown::drained(readiness, config.drain_grace(), Arc::clone(&stopped_accepting)),
    );
    let deadline = async {
        stopped_accepting.notified().await;
        tokio::time::sleep(config.shutdown_timeout()).await;
    };
    tokio::select! {
        served = serve => served?,
        () = deadline => return Err(StartupError::ShutdownTimedOut(config.shutdown_timeout())),
    }
    tracing::info!("stopped: every accepted request was answered");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error(transparent)]
    Store(#[from] ConnectError),
    #[error("cannot start")]
    Io(#[from] std::io::Error),
    #[error("requests were still in flight {0:?} after the server stopped accepting; exiting without them")]
    ShutdownTimedOut(std::time::Duration),
}

/// Sets the store's gauges just before a scrape.
type GaugeRefresher = Box<dyn Fn() + Send + Sync>;

/// PostgreSQL when configured (waiting for it, then migrating), else memory.
async fn open_store(config: &Config) -> Result<(Arc<dyn LedgerRepository>, GaugeRefresher), StartupError> {
    let Some(settings) = config.postgres() else {
        tracing::warn!(
            "no DATABASE_URL: serving from memory; balances are NOT persisted and vanish when the process stops"
        );
        return Ok((Arc::new(InMemoryLedger::new()), Box::new(|| {})));
    };
    let target = settings.describe()?;
    tracing::info!(%target, pool_size = settings.pool_size, "connecting to PostgreSQL");
    let ledger = PgLedger::connect_lazy(&settings)?;
    ledger.wait_until_reachable(config.db_wait()).await?;
    ledger.migrate().await?;
    tracing::info!(%target, "PostgreSQL reachable and migrated");
    let observed = ledger.clone();
    let gauges = Box::new(move || {
        let pool = observed.pool();
        metrics::gauge!("bitburst_pg_pool_connections").set(f64::from(pool.size()));
        metrics::gauge!("bitburst_pg_pool_idle_connections")
            .set(u32::try_from(pool.num_idle()).map_or(f64::MAX, f64::from));
        metrics::gauge!("bitburst_pg_adds_waiting")
            .set(u32::try_from(observed.adds_waiting()).map_or(f64::MAX, f64::from));
    });
    Ok((Arc::new(ledger), gauges))
}
