//! The wiring: configuration → store → router → a bound listener, then serving until stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters_http::{AppState, Readiness, ServeSettings, router};
use adapters_memory::InMemoryLedger;
use adapters_postgres::{ConnectError, PgLedger};
use application::Ledger;
use axum::Router;
use domain::LedgerRepository;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::{process_metrics, shutdown, telemetry};

/// The service, built and listening, not yet serving: [`Application::address`] tells where it listens
/// (the port the system chose when the configured one is 0), and [`Application::run_until_stopped`] serves.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    readiness: Readiness,
    serve: ServeSettings,
    drain_grace: Duration,
    shutdown_timeout: Duration,
}

/// Why the service could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] ConnectError),
    #[error("cannot start")]
    Io(#[from] std::io::Error),
    #[error("requests were still in flight {0:?} after the server stopped accepting; exiting without them")]
    ShutdownTimedOut(Duration),
}

impl Application {
    /// Opens the store (PostgreSQL when configured: waiting for it, then migrating; else memory), builds
    /// the router and binds the configured address. The listener is bound only once the store is ready,
    /// so a connection accepted is a request the service can answer.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let prometheus = telemetry::prometheus();
        let settings = config.http()?;
        if config.cursor_secret.is_none() {
            tracing::warn!(
                "no BITBURST_CURSOR_SECRET: history cursors of this instance work only here, until it restarts; give \
                 every instance the same secret"
            );
        }
        if settings.api_keys.is_some() {
            tracing::info!("API keys configured: /users/... requests need Authorization: Bearer <key>");
        } else {
            tracing::warn!(
                "no API keys configured (BITBURST_API_KEYS or BITBURST_API_KEYS_FILE): anyone who can reach this service can add money"
            );
        }
        let (repository, gauges) = open_store(config).await?;
        let readiness = Readiness::default();
        let render_metrics = Arc::new(move || {
            gauges();
            process_metrics::record();
            prometheus.run_upkeep();
            prometheus.render()
        });
        let state = AppState::new(Ledger::new(repository), readiness.clone(), settings).with_metrics(render_metrics);

        let listener = TcpListener::bind(config.addr).await?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "listening");
        Ok(Self {
            listener,
            address,
            router: router(state),
            readiness,
            serve: config.serve(),
            drain_grace: config.drain_grace(),
            shutdown_timeout: config.shutdown_timeout(),
        })
    }

    /// Where the service listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until SIGTERM or Ctrl-C, then drains: see [`Application::run_until`].
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.run_until(shutdown::signal()).await
    }

    /// Serves until `stop` resolves (with what stopped the service, for the log). Then `/readyz` answers
    /// 503 while the drain grace period passes, the server stops accepting, and this returns once every
    /// accepted request is answered, or with [`StartupError::ShutdownTimedOut`] after the shutdown timeout.
    pub async fn run_until(self, stop: impl Future<Output = &'static str>) -> Result<(), StartupError> {
        let stopped_accepting = Arc::new(tokio::sync::Notify::new());
        let serve = adapters_http::serve(
            self.listener,
            self.router,
            self.serve,
            shutdown::drained(stop, self.readiness, self.drain_grace, Arc::clone(&stopped_accepting)),
        );
        let deadline = async {
            stopped_accepting.notified().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        tokio::select! {
            served = serve => served?,
            () = deadline => return Err(StartupError::ShutdownTimedOut(self.shutdown_timeout)),
        }
        tracing::info!("stopped: every accepted request was answered");
        Ok(())
    }
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
        if let Some(status) = observed.primary_status() {
            // One series per host of DATABASE_URL (a closed set): 1 for the primary, 0 for the others.
            for (index, host) in status.hosts.into_iter().enumerate() {
                let is_primary = if status.primary == Some(index) { 1.0 } else { 0.0 };
                metrics::gauge!("bitburst_pg_primary", "host" => host).set(is_primary);
            }
            metrics::counter!("bitburst_pg_failovers_total").absolute(status.failovers);
        }
        let pool = observed.pool();
        metrics::gauge!("bitburst_pg_pool_connections").set(f64::from(pool.size()));
        metrics::gauge!("bitburst_pg_pool_idle_connections")
            .set(u32::try_from(pool.num_idle()).map_or(f64::MAX, f64::from));
        metrics::gauge!("bitburst_pg_adds_waiting")
            .set(u32::try_from(observed.adds_waiting()).map_or(f64::MAX, f64::from));
    });
    Ok((Arc::new(ledger), gauges))
}
