use std::time::Duration;

use domain::{Amount, Balance, RecordAddError, StorageCause, StorageError, error_chain};
use rust_decimal::Decimal;

/// Why the ledger could not be set up on PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("DATABASE_URL is not usable: {0}")]
    UnsupportedUrl(&'static str),
    #[error("PostgreSQL was not reachable within {patience:?}")]
    Unreachable {
        patience: Duration,
        #[source]
        source: sqlx::Error,
    },
    #[error("no PostgreSQL primary among {hosts} within {patience:?}")]
    NoPrimary { patience: Duration, hosts: String },
    #[error("the migrations could not be applied")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

/// SQLSTATEs after which trying again later may work: the server is busy, going away or unreachable.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "40001" // serialization_failure
        | "40P01" // deadlock_detected
        | "57014" // query_canceled: our statement_timeout
        | "57P03" // cannot_connect_now
        | "55P03" // lock_not_available
        | "25006" // read_only_sql_transaction: a pooled connection that ended up on a standby after failover
    ) || closes_the_session(code)
        || code.starts_with("53") // insufficient_resources, e.g. too_many_connections
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(database) => database.code().map(std::borrow::Cow::into_owned),
        _ => None,
    }
}

/// The name of the constraint a database error violated, if any.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(database) => database.constraint(),
        _ => None,
    }
}

/// A sqlx error as the port's storage error: unavailable when waiting may help, failed otherwise.
pub fn storage_error(error: sqlx::Error) -> StorageError {
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        // A broken protocol exchange is a connection that went wrong mid-way, not a bad request.
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| is_transient(&code)),
        _ => false,
    };
    if unavailable { StorageError::Unavailable(Box::new(error)) } else { StorageError::Failed(Box::new(error)) }
}

/// Whether a failed statement is worth running again at once, inside the adapter.
pub fn is_retryable_conflict(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40001" | "40P01"))
}

/// SQLSTATEs with which the server ends the session: a connection exception, an administrator's or a
/// crash's shutdown, the idle-session timeout, and the idle-in-transaction and transaction timeouts.
fn closes_the_session(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P05" | "25P03" | "25P04")
}

/// Whether the connection was gone or went away: the server closed it (restarted, or an operator ended
/// the session), or the network dropped it. After a database restart every pooled connection fails so.
pub fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| closes_the_session(&code)),
        _ => false,
    }
}

/// Whether a COMMIT that failed certainly rolled back: the server answered it with an error of the
/// transaction itself (a deferred constraint, a serialization failure). A connection lost during COMMIT,
/// or a server going away under it, leaves the outcome unknown: the commit record may be on disk.
fn commit_rolled_back(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(_)) && !is_connection_lost(error)
}

/// Commits, telling a COMMIT that certainly failed (`Failure::Sql`: nothing was recorded) from one whose
/// outcome is unknown (`Failure::CommitUnanswered`).
pub async fn commit(transaction: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), Failure> {
    transaction.commit().await.map_err(autocommit_failure)
}

/// The failure of a COMMIT, or of a statement that commits by itself: rolled back when the server answered
/// it with an error (`Failure::Sql`), unknown when the connection went (`Failure::CommitUnanswered`).
pub fn autocommit_failure(error: sqlx::Error) -> Failure {
    if commit_rolled_back(&error) { Failure::Sql(error) } else { Failure::CommitUnanswered(Box::new(error)) }
}

/// A stored balance, checked: a value outside the rules means a corrupt row.
pub fn balance_from(value: Decimal) -> Result<Balance, StorageError> {
    Balance::from_decimal(value).map_err(|invalid| StorageError::Failed(Box::new(invalid)))
}

/// A stored amount, checked: a value outside the rules means a corrupt row.
pub fn amount_from(value: Decimal) -> Result<Amount, StorageError> {
    Amount::from_decimal(value).map_err(|invalid| StorageError::Failed(Box::new(invalid)))
}

/// Why a transaction did not commit, or may not have.
#[derive(Debug)]
pub enum Failure {
    /// A statement, or the COMMIT, failed and the transaction rolled back: nothing was recorded.
    Sql(sqlx::Error),
    /// A row came back breaking the rules; the transaction was not committed.
    Corrupt(StorageError),
    /// The database gave no answer in time before COMMIT; the transaction was abandoned without one, so
    /// nothing was recorded.
    Unanswered(NoAnswer),
    /// The COMMIT was sent and its answer was lost: the transaction may or may not have committed.
    CommitUnanswered(StorageCause),
}

/// The database did not answer within a client-side limit: a backstop for a connection that died
/// silently (no reset reached us), which no server-side timeout can end.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the database gave no answer within {0:?}")]
pub struct NoAnswer(pub Duration);

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

impl Failure {
    /// One storage error per request of a failed batch of reads, each of the same kind and cause.
    pub fn for_each_request(self, count: usize) -> Vec<StorageError> {
        let (unavailable, cause) = match self {
            Self::Sql(error) => {
                let error = storage_error(error);
                (matches!(error, StorageError::Unavailable(_)), error_chain(&error))
            }
            Self::Corrupt(error) => (false, error_chain(&error)),
            Self::Unanswered(error) => (true, error_chain(&error)),
            Self::CommitUnanswered(error) => (false, error_chain(&*error)),
        };
        tracing::warn!(requests = count, error = %cause, "a batch failed; none of its requests was served");
        (0..count)
            .map(|_| {
                let cause = format!("the batch of this request failed: {cause}").into();
                if unavailable { StorageError::Unavailable(cause) } else { StorageError::Failed(cause) }
            })
            .collect()
    }

    /// One answer per add of a failed batch: not recorded, or, when its COMMIT got no answer, unknown.
    pub fn for_each_add(self, count: usize) -> Vec<RecordAddError> {
        let Self::CommitUnanswered(error) = self else {
            return self.for_each_request(count).into_iter().map(RecordAddError::from).collect();
        };
        let cause = error_chain(&*error);
        tracing::error!(requests = count, error = %cause, "a batch's COMMIT got no answer; its outcome is unknown");
        (0..count)
            .map(|_| {
                RecordAddError::OutcomeUnknown(format!("the COMMIT of this add's batch got no answer: {cause}").into())
            })
            .collect()
    }
}
