use std::time::Duration;

use domain::{Amount, Balance, StorageError, error_chain};
use rust_decimal::Decimal;

/// Why the ledger could not be set up on PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("PostgreSQL was not reachable within {patience:?}")]
    Unreachable {
        patience: Duration,
        #[source]
        source: sqlx::Error,
    },
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
        | "57P01" | "57P02" | "57P03" // admin_shutdown, crash_shutdown, cannot_connect_now
        | "55P03" // lock_not_available
        | "25006" // read_only_sql_transaction: a pooled connection that ended up on a standby after failover
    ) || code.starts_with("08") // connection_exception
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

/// A stored balance, checked: a value outside the rules means a corrupt row.
pub fn balance_from(value: Decimal) -> Result<Balance, StorageError> {
    Balance::from_decimal(value).map_err(|invalid| StorageError::Failed(Box::new(invalid)))
}

/// A stored amount, checked: a value outside the rules means a corrupt row.
pub fn amount_from(value: Decimal) -> Result<Amount, StorageError> {
    Amount::from_decimal(value).map_err(|invalid| StorageError::Failed(Box::new(invalid)))
}

/// A statement that failed, or a row that came back breaking the rules.
#[derive(Debug)]
pub enum Failure {
    Sql(sqlx::Error),
    Corrupt(StorageError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

impl Failure {
    /// One storage error per request of a failed batch, each of the same kind and with the same cause.
    pub fn for_each_request(self, count: usize) -> Vec<StorageError> {
        let (unavailable, cause) = match self {
            Self::Sql(error) => {
                let error = storage_error(error);
                (matches!(error, StorageError::Unavailable(_)), error_chain(&error))
            }
            Self::Corrupt(error) => (false, error_chain(&error)),
        };
        tracing::warn!(requests = count, error = %cause, "a batch failed; none of its requests was served");
        (0..count)
            .map(|_| {
                let cause = format!("the batch of this request failed: {cause}").into();
                if unavailable { StorageError::Unavailable(cause) } else { StorageError::Failed(cause) }
            })
            .collect()
    }
}
