//! Finding the primary among the hosts of `DATABASE_URL`, and finding it again after a failover.
//!
//! A watcher task keeps one connection to the primary it found and asks it `SELECT pg_is_in_recovery()`
//! every [`CHECK_EVERY`]. When that fails or says "standby" (the server died, or was demoted by a
//! switchover), it asks every host at once and points the pool at the one that answers "primary"
//! (`Pool::set_connect_options`), asking again every [`SEARCH_EVERY`] while there is none. The pool's
//! connections to the old primary fail and are dropped; new ones go to the new primary. A connection that
//! still lands on a standby (made while the role moved) is refused by the pool's `after_connect` check,
//! which wakes the watcher, and the pool connects again a moment later: so no pooled connection points
//! at a standby and no write reaches one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::database_url::Host;

/// How often the watcher asks the primary it found whether it still is one.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often the watcher looks for a primary while it knows of none.
const SEARCH_EVERY: Duration = Duration::from_millis(200);

/// Which host is the primary, as far as this instance knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryStatus {
    /// Every host of `DATABASE_URL`, as `host:port`, in its order.
    pub hosts: Vec<String>,
    /// The index in `hosts` of the primary, or `None` while no host answers as one.
    pub primary: Option<usize>,
    /// How often the primary moved from one host to another while this instance ran.
    pub failovers: u64,
}

#[derive(Debug, Default)]
struct Known {
    primary: Option<usize>,
    /// The last primary found, kept while none is reachable, to tell a failover from a restart.
    last: Option<usize>,
}

/// The hosts, which of them is the primary, and the pool to point at it.
#[derive(Debug)]
pub struct PrimaryFinder {
    hosts: Vec<Host>,
    pool: PgPool,
    known: Mutex<Known>,
    failovers: AtomicU64,
    wake: Arc<Notify>,
    probe_timeout: Duration,
}

/// Why a connection was refused by the pool: it reached a standby.
#[derive(Debug, thiserror::Error)]
#[error("the server is a standby (in recovery), not the primary")]
pub struct NotPrimary;

impl PrimaryFinder {
    /// Starts the watcher on the current tokio runtime. It stops once the finder is dropped.
    pub fn start(hosts: Vec<Host>, pool: PgPool, wake: Arc<Notify>, probe_timeout: Duration) -> Arc<Self> {
        let finder = Arc::new(Self {
            hosts,
            pool,
            known: Mutex::new(Known::default()),
            failovers: AtomicU64::new(0),
            wake: Arc::clone(&wake),
            probe_timeout,
        });
        tokio::spawn(watch(Arc::downgrade(&finder), wake));
        finder
    }

    pub fn status(&self) -> PrimaryStatus {
        PrimaryStatus {
            hosts: self.hosts.iter().map(|host| host.label.clone()).collect(),
            primary: self.known().primary,
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }

    /// The primary's `host:port`, when one is known.
    pub fn primary(&self) -> Option<&str> {
        self.known().primary.map(|index| self.hosts[index].label.as_str())
    }

    /// Asks the watcher to check at once: a request failed in a way that suggests the primary moved.
    pub fn suspect(&self) {
        self.wake.notify_one();
    }

    /// Every host's labels, for messages.
    pub fn labels(&self) -> String {
        self.hosts.iter().map(|host| host.label.as_str()).collect::<Vec<_>>().join(",")
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        // A panic while holding this lock cannot leave it half-written: every write is one assignment.
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks every host at once; the primary (the one found before, if it still is one, else the first in
    /// the URL's order) and a connection to it.
    async fn search(&self) -> Option<(usize, PgConnection)> {
        let mut asking = JoinSet::new();
        for (index, host) in self.hosts.iter().enumerate() {
            let (options, timeout) = (host.options.clone(), self.probe_timeout);
            asking.spawn(async move {
                let answer = tokio::time::timeout(timeout, async {
                    let mut connection = options.connect().await?;
                    let standby = is_standby(&mut connection).await?;
                    Ok::<_, sqlx::Error>((standby, connection))
                })
                .await;
                (index, answer)
            });
        }
        let mut primaries = Vec::new();
        while let Some(joined) = asking.join_next().await {
            let Ok((index, answer)) = joined else { continue };
            match answer {
                Ok(Ok((false, connection))) => primaries.push((index, connection)),
                Ok(Ok((true, connection))) => {
                    let _ = connection.close().await;
                }
                Ok(Err(error)) => tracing::debug!(host = %self.hosts[index].label, %error, "host not reachable"),
                Err(_elapsed) => tracing::debug!(host = %self.hosts[index].label, "host gave no answer in time"),
            }
        }
        let previous = self.known().last;
        primaries.sort_by_key(|(index, _)| (Some(*index) != previous, *index));
        let mut primaries = primaries.into_iter();
        let found = primaries.next();
        for (index, connection) in primaries {
            tracing::warn!(host = %self.hosts[index].label, "another host also answers as primary; not using it");
            let _ = connection.close().await;
        }
        found
    }

    fn found(&self, index: usize) {
        let mut known = self.known();
        if known.primary == Some(index) {
            return;
        }
        let host = &self.hosts[index].label;
        match known.last {
            Some(last) if last != index => {
                self.failovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(from = %self.hosts[last].label, to = %host, "the PostgreSQL primary moved; writing to the new one");
            }
            _ => tracing::info!(%host, "PostgreSQL primary found"),
        }
        self.pool.set_connect_options(self.hosts[index].options.clone());
        *known = Known { primary: Some(index), last: Some(index) };
    }

    fn lost(&self) {
        let mut known = self.known();
        if known.primary.take().is_some() {
            tracing::warn!(hosts = %self.labels(), "no PostgreSQL primary reachable; looking for one");
        }
    }
}

/// Whether the server of `connection` is a standby.
pub async fn is_standby(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(connection).await
}

/// The pool's check of every new connection: a standby is refused (and the watcher woken), so that the
/// pool connects again, by then to the new primary.
pub async fn refuse_standby(connection: &mut PgConnection, wake: &Notify) -> Result<(), sqlx::Error> {
    if is_standby(connection).await? {
        wake.notify_one();
        return Err(sqlx::Error::Io(std::io::Error::other(NotPrimary)));
    }
    Ok(())
}

async fn watch(finder: Weak<PrimaryFinder>, wake: Arc<Notify>) {
    let mut watched: Option<PgConnection> = None;
    loop {
        let Some(finder) = finder.upgrade() else { return };
        let still_primary = match watched.as_mut() {
            Some(connection) => {
                matches!(tokio::time::timeout(finder.probe_timeout, is_standby(connection)).await, Ok(Ok(false)))
            }
            None => false,
        };
        if !still_primary {
            // Dropping a connection closes its socket; a dead one has nothing to say goodbye to.
            watched = None;
            match finder.search().await {
                Some((index, connection)) => {
                    finder.found(index);
                    watched = Some(connection);
                }
                None => finder.lost(),
            }
        }
        // Not held while waiting, so that dropping the ledger stops this task.
        drop(finder);
        if watched.is_some() {
            // A failed request wakes the check at once; it costs one round trip on the watched connection.
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {}
                () = wake.notified() => {}
            }
        } else {
            // While there is no primary every request fails: the hosts are asked at a steady pace instead,
            // however many requests fail meanwhile.
            tokio::time::sleep(SEARCH_EVERY).await;
        }
    }
}
