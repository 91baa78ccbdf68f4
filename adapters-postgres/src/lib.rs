//! The [`LedgerRepository`] port on PostgreSQL, through sqlx.
//!
//! Adds go through group commit ([`GroupCommitSettings`]): concurrent adds are recorded together, each
//! keeping the meaning it would have alone. An add that finds the service idle is a batch of one. What each
//! add does is decided by the ledger's rule in `domain` ([`domain::decide_adds`]) over the accounts as
//! read; this crate loads the state and stores the result.
//!
//! Exactly-once per (user, key) is the `ledger_entries_one_per_key` unique constraint, not a lock in this
//! process, so it holds across instances. A batch reads its accounts and the entries under its keys, then
//! writes a user only if the user's account is unchanged since (any add moves its last sequence), so a key
//! recorded meanwhile by another instance is seen, not raced: that user is decided again under its row
//! lock.
//!
//! Queries are plain `sqlx::query` rather than the checked `query!` macros: the macros need a live
//! database or committed offline data at build time, and every statement here is exercised by the
//! contract suite and the tests beside it against a real PostgreSQL instead.

mod balance_reads;
mod batch;
mod batch_plan;
mod batcher;
mod collector;
mod database_url;
mod entry_row;
mod errors;
mod group_commit;
mod history;
mod optimistic_batch;
mod primary;
mod retry;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    AddOutcome, Balance, HistoryPage, HistoryQuery, LedgerRepository, NewAdd, RecordAddError, StorageError, UserId,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::Notify;

pub use errors::ConnectError;
pub use group_commit::GroupCommitSettings;
pub use primary::PrimaryStatus;
pub use verify::{LedgerVerification, VerifyError, VerifyReport};

use balance_reads::BalanceReader;
use batch::Deadlines;
use database_url::DatabaseUrl;
use group_commit::GroupCommitter;
use primary::{NotPrimary, PrimaryFinder};

/// The schema, applied by the binary at start-up. sqlx holds an advisory lock while it migrates, so
/// several instances starting together apply each migration once.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How to reach PostgreSQL and how long to wait for it.
#[derive(Clone)]
pub struct PgSettings {
    /// A `postgres://` URL. Never logged: it may hold a password. It may list several hosts in libpq's
    /// syntax (`postgres://user:pass@host1:5432,host2:5432/db?target_session_attrs=read-write`): the
    /// ledger then writes only to the one that is the primary, and follows it when it moves.
    pub url: String,
    /// Connections this instance may hold. Instances × pool size must stay below `max_connections`.
    pub pool_size: u32,
    /// How long a request may wait for a free connection, or for a new one to be made.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for every statement of this pool.
    pub statement_timeout: Duration,
    /// How long a request may wait for a worker to take it to the database. An add that waited this long
    /// is withdrawn and answered as not recorded; once taken, it waits for its real outcome, each of its
    /// statements bounded by `statement_timeout`.
    pub queue_timeout: Duration,
    /// How concurrent adds share transactions.
    pub group_commit: GroupCommitSettings,
    /// How many coalesced balance reads may be in flight at once (each holds a connection).
    pub read_workers: usize,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("queue_timeout", &self.queue_timeout)
            .field("group_commit", &self.group_commit)
            .field("read_workers", &self.read_workers)
            .finish()
    }
}

impl PgSettings {
    /// The default of [`PgSettings::pool_size`].
    pub const DEFAULT_POOL_SIZE: u32 = 16;
    /// The default of [`PgSettings::acquire_timeout`].
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
    /// The default of [`PgSettings::statement_timeout`].
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default of [`PgSettings::queue_timeout`].
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default of [`PgSettings::read_workers`].
    pub const DEFAULT_READ_WORKERS: usize = 1;

    /// Settings for `url` with the defaults of the binary.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            queue_timeout: Self::DEFAULT_QUEUE_TIMEOUT,
            group_commit: GroupCommitSettings::default(),
            read_workers: Self::DEFAULT_READ_WORKERS,
        }
    }

    /// Where the settings point (every host), without the password, for logs.
    pub fn describe(&self) -> Result<String, ConnectError> {
        Ok(DatabaseUrl::parse(&self.url)?.describe())
    }
}

/// The ledger in PostgreSQL.
#[derive(Clone)]
pub struct PgLedger {
    pool: PgPool,
    connect_options: PgConnectOptions,
    /// With several hosts (or `target_session_attrs=read-write`): which of them is the primary.
    primary: Option<Arc<PrimaryFinder>>,
    committer: GroupCommitter,
    balance_reader: BalanceReader,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connect options: they hold the password.
        f.debug_struct("PgLedger").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl PgLedger {
    /// A ledger over a pool that connects on demand, with its group-commit workers started on the current
    /// tokio runtime: nothing is contacted here, so an unreachable database
    /// fails requests (503) rather than start-up, and the pool heals by itself when the database returns.
    pub fn connect_lazy(settings: &PgSettings) -> Result<Self, ConnectError> {
        let statement_timeout = settings.statement_timeout.as_millis().to_string();
        let url = DatabaseUrl::parse(&settings.url)?;
        let mut hosts = url.hosts;
        for host in &mut hosts {
            host.options = host
                .options
                .clone()
                .application_name("bitburst")
                // Every statement of the service finds its rows through an index by user. A prepared
                // statement's plan is kept per connection, and one made while a table was small (a new
                // ledger) would keep scanning the whole table as it grows; without sequential scans the
                // planner keeps to the indexes whatever the table's size was.
                .options([("statement_timeout", statement_timeout.as_str()), ("enable_seqscan", "off")]);
        }
        let options = hosts[0].options.clone();
        let mut pool_options = PgPoolOptions::new();
        let wake = Arc::new(Notify::new());
        if url.primary_only {
            // A new connection that lands on a standby (the role moved while it was made) is refused; the
            // pool connects again, by then to the primary the watcher found.
            let wake = Arc::clone(&wake);
            pool_options = pool_options.after_connect(move |connection, _| {
                let wake = Arc::clone(&wake);
                Box::pin(async move { primary::refuse_standby(connection, &wake).await })
            });
        }
        let pool = pool_options
            .max_connections(settings.pool_size)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            // A ping per checkout would cost a round trip on every request; a broken connection fails its
            // one request (503, retried by the caller with its key) and is discarded by the pool.
            .test_before_acquire(false)
            .idle_timeout(Duration::from_secs(60))
            .max_lifetime(Duration::from_secs(30 * 60))
            .connect_lazy_with(options.clone());
        // Client-side backstops for a connection that died silently: a healthy one answers each statement
        // within the statement timeout (and a new one comes within the acquire timeout).
        let deadlines = Deadlines {
            before_commit: settings.acquire_timeout + settings.statement_timeout * 4 + Duration::from_secs(1),
            commit: settings.statement_timeout + Duration::from_secs(1),
        };
        // A quarter of the pool at most waits for row locks: the batches and the reads keep the rest.
        let aside_in_flight = usize::try_from(settings.pool_size / 4).unwrap_or(1).max(1);
        let committer =
            GroupCommitter::start(&pool, settings.group_commit, aside_in_flight, settings.queue_timeout, deadlines);
        let balance_reader =
            BalanceReader::start(&pool, settings.read_workers, settings.queue_timeout, deadlines.before_commit);
        let primary =
            url.primary_only.then(|| PrimaryFinder::start(hosts, pool.clone(), wake, settings.acquire_timeout));
        Ok(Self { pool, connect_options: options, primary, committer, balance_reader })
    }

    /// Which host is the primary, when `DATABASE_URL` names several (or asks for a primary).
    pub fn primary_status(&self) -> Option<PrimaryStatus> {
        self.primary.as_ref().map(|finder| finder.status())
    }

    /// Adds waiting for a group-commit worker, for gauges.
    pub fn adds_waiting(&self) -> usize {
        self.committer.waiting()
    }

    /// The pool, for gauges and for tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits until the database answers, retrying with doubling delays (capped at 5 s) for at most
    /// `patience`. Each failed attempt is logged.
    pub async fn wait_until_reachable(&self, patience: Duration) -> Result<(), ConnectError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1_u32;
        if let Some(finder) = &self.primary {
            return wait_for_primary(finder, deadline, patience).await;
        }
        loop {
            // One plain connection attempt each time: the pool would retry silently until its timeout.
            match self.connect_options.connect().await {
                Ok(connection) => {
                    let _ = connection.close().await;
                    return Ok(());
                }
                Err(error) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(attempt, retry_in_ms = delay.as_millis(), %error, "PostgreSQL not reachable yet");
                }
                Err(error) => return Err(ConnectError::Unreachable { patience, source: error }),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    /// Applies the migrations that are not applied yet, on a connection of their own without the
    /// statement timeout: a migration that rewrites a large ledger takes as long as it takes, once.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        // A pool of its own rather than one borrowed connection: the migrator's future is then `Send`.
        let options =
            (*self.pool.connect_options()).clone().options([("statement_timeout", "0"), ("enable_seqscan", "on")]);
        let migration_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.pool.options().get_acquire_timeout())
            .connect_with(options)
            .await
            .map_err(|error| ConnectError::Migration(error.into()))?;
        let migrated = MIGRATOR.run(&migration_pool).await.map_err(ConnectError::Migration);
        migration_pool.close().await;
        migrated
    }
}

#[async_trait]
impl LedgerRepository for PgLedger {
    #[tracing::instrument(skip_all, fields(user_id = %add.user_id))]
    async fn record_add(&self, add: NewAdd) -> Result<AddOutcome, RecordAddError> {
        let recorded = self.committer.record(add).await;
        // A lost connection, or a write refused by a standby: perhaps the primary moved.
        if let (
            Some(finder),
            Err(RecordAddError::Storage(StorageError::Unavailable(_)) | RecordAddError::OutcomeUnknown(_)),
        ) = (&self.primary, &recorded)
        {
            finder.suspect();
        }
        recorded
    }

    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    async fn balance(&self, user_id: &UserId) -> Result<Balance, StorageError> {
        self.balance_reader.balance(user_id.clone()).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    async fn balance_at(&self, user_id: &UserId, at: DateTime<Utc>) -> Result<Balance, StorageError> {
        history::balance_at(&self.pool, user_id, at).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    async fn history(&self, user_id: &UserId, query: HistoryQuery) -> Result<HistoryPage, StorageError> {
        history::page(&self.pool, user_id, query).await
    }

    async fn check_ready(&self) -> Result<(), StorageError> {
        let Some(finder) = &self.primary else {
            return sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(errors::storage_error);
        };
        // Ready means a primary answers: a pool that reaches a standby, or nothing, cannot record an add.
        if finder.primary().is_none() {
            return Err(StorageError::Unavailable(format!("no PostgreSQL primary among {}", finder.labels()).into()));
        }
        let standby: Result<bool, _> = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&self.pool).await;
        match standby {
            Ok(false) => Ok(()),
            Ok(true) => {
                finder.suspect();
                Err(StorageError::Unavailable(Box::new(NotPrimary)))
            }
            Err(error) => {
                finder.suspect();
                Err(errors::storage_error(error))
            }
        }
    }
}

/// Waits until the watcher has found a primary, logging each look that found none.
async fn wait_for_primary(
    finder: &PrimaryFinder,
    deadline: tokio::time::Instant,
    patience: Duration,
) -> Result<(), ConnectError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1_u32;
    loop {
        if finder.primary().is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(ConnectError::NoPrimary { patience, hosts: finder.labels() });
        }
        if attempt > 1 {
            tracing::warn!(attempt, hosts = %finder.labels(), retry_in_ms = delay.as_millis(), "no PostgreSQL primary reachable yet");
        }
        finder.suspect();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}
