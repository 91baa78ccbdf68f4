use std::error::Error;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::{Amount, Balance, BalanceLimitExceeded, HistoryPage, HistoryQuery, IdempotencyKey, Transaction, UserId};

/// Money to add to a user's balance, as the caller asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdd {
    /// Whose balance grows.
    pub user_id: UserId,
    /// By how much.
    pub amount: Amount,
    /// The caller's name for this transfer; with one, the add counts once however often it is sent.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What recording an add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// The money was added now; this is the new transaction.
    Applied(Transaction),
    /// The key had already recorded this add; this is the original transaction, unchanged.
    Replayed(Transaction),
}

impl AddOutcome {
    /// The transaction: new, or the original one the key recorded.
    pub fn transaction(&self) -> &Transaction {
        match self {
            Self::Applied(transaction) | Self::Replayed(transaction) => transaction,
        }
    }

    /// Whether the key had already recorded this add, so nothing new was recorded.
    pub fn is_replayed(&self) -> bool {
        matches!(self, Self::Replayed(_))
    }
}

/// Why an add was not recorded, or may not have been. In every case but [`RecordAddError::OutcomeUnknown`]
/// the ledger is unchanged, and stays so: the add will not be recorded later.
#[derive(Debug, thiserror::Error)]
pub enum RecordAddError {
    /// The add would take the balance past the limit.
    #[error(transparent)]
    BalanceLimit(#[from] BalanceLimitExceeded),
    /// The key already recorded an add of another amount for this user.
    #[error("the idempotency key already recorded an add of {original_amount}")]
    KeyReused {
        /// The amount the key recorded first.
        original_amount: Amount,
    },
    /// The store failed before the add could be recorded: it never reached the store, or the store's
    /// transaction was rolled back. It is not recorded and will not be; a retry is safe with or without a key.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The store lost contact after the add may have been committed (the connection broke during COMMIT):
    /// it may or may not be recorded. A retry with the same key tells which.
    #[error("the store may or may not have recorded the add")]
    OutcomeUnknown(#[source] StorageCause),
}

/// The cause of a storage failure, kept for logs.
pub type StorageCause = Box<dyn Error + Send + Sync>;

/// An error and every cause under it, as one line for a log: `outer: inner: innermost`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut chain = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cause = inner.source();
    }
    chain
}

/// The store could not do what was asked. Never a business rule: rules have their own errors.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store cannot be reached in time (down, overloaded, timed out); trying again later may work.
    #[error("the store could not be reached in time")]
    Unavailable(#[source] StorageCause),
    /// The store answered with something it should not have (a corrupt row, a broken query).
    #[error("the store failed")]
    Failed(#[source] StorageCause),
}

/// The ledger's storage. Every implementation has the same observable behaviour; the contract suite in
/// `testkit` holds each one to it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait LedgerRepository: Send + Sync {
    /// Records an add exactly once per (user, key), atomically: the transaction and the new balance are
    /// stored together or not at all. A repeat of a key with the same amount replays the original
    /// transaction; with another amount it is [`RecordAddError::KeyReused`]. Adds without a key are always
    /// new transactions.
    async fn record_add(&self, add: NewAdd) -> Result<AddOutcome, RecordAddError>;

    /// The user's balance; [`Balance::ZERO`] for a user with no transactions.
    async fn balance(&self, user_id: &UserId) -> Result<Balance, StorageError>;

    /// The user's balance as it stood at `at`: the `balance_after` of the user's last transaction recorded
    /// at or before `at`, [`Balance::ZERO`] before the first. Its cost does not grow with the history.
    async fn balance_at(&self, user_id: &UserId, at: DateTime<Utc>) -> Result<Balance, StorageError>;

    /// One page of the user's transactions in the query's range, newest first, in the order the ledger
    /// recorded them.
    async fn history(&self, user_id: &UserId, query: HistoryQuery) -> Result<HistoryPage, StorageError>;

    /// Whether the store answers now.
    async fn check_ready(&self) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_cause_outermost_first() {
        let root = std::io::Error::other("connection refused");
        let error = StorageError::Unavailable(Box::new(root));
        assert_eq!(error_chain(&error), "the store could not be reached in time: connection refused");
    }
}
