use domain::{
    AddOutcome, Amount, BalanceLimitExceeded, IdempotencyKey, NewAdd, RecordAddError, StorageCause, StorageError,
    Transaction, UserId,
};

use crate::Ledger;

/// A request to add money, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddMoney {
    /// Whose balance grows.
    pub user_id: UserId,
    /// By how much.
    pub amount: Amount,
    /// The caller's name for the transfer, if it may retry.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The answer to an add: the transaction, and whether this call recorded it or replayed an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddReceipt {
    /// The recorded transaction.
    pub transaction: Transaction,
    /// `true` when the key had already recorded this add and nothing new was recorded.
    pub replayed: bool,
}

/// Why an add was refused, or not answered. Nothing was recorded, except perhaps for `OutcomeUnknown`.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The balance would pass 10^12.
    #[error(transparent)]
    BalanceLimit(#[from] BalanceLimitExceeded),
    /// The idempotency key already recorded an add of another amount.
    #[error("the idempotency key was already used for an add of {original_amount}; use a new key for a new transfer")]
    KeyReused {
        /// What the key recorded first.
        original_amount: Amount,
    },
    /// The store failed before the add was recorded; it is not recorded and will not be.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The add may or may not have been recorded; a retry with the same key tells which.
    #[error(transparent)]
    OutcomeUnknown(StorageCause),
}

impl From<RecordAddError> for AddError {
    fn from(error: RecordAddError) -> Self {
        match error {
            RecordAddError::BalanceLimit(exceeded) => Self::BalanceLimit(exceeded),
            RecordAddError::KeyReused { original_amount } => Self::KeyReused { original_amount },
            RecordAddError::Storage(storage) => Self::Storage(storage),
            RecordAddError::OutcomeUnknown(cause) => Self::OutcomeUnknown(cause),
        }
    }
}

impl Ledger {
    /// Adds money to a balance, exactly once per idempotency key.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, amount = %request.amount, keyed = request.idempotency_key.is_some()))]
    pub async fn add(&self, request: AddMoney) -> Result<AddReceipt, AddError> {
        let new_add =
            NewAdd { user_id: request.user_id, amount: request.amount, idempotency_key: request.idempotency_key };
        let receipt = match self.repository.record_add(new_add).await? {
            AddOutcome::Applied(transaction) => AddReceipt { transaction, replayed: false },
            AddOutcome::Replayed(transaction) => AddReceipt { transaction, replayed: true },
        };
        tracing::debug!(transaction_id = %receipt.transaction.id, replayed = receipt.replayed, "add recorded");
        Ok(receipt)
    }
}
