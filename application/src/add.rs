use domain::{AddOutcome, NewAdd, RecordAddError};

use crate::Ledger;

impl Ledger {
    /// Adds money to a balance, exactly once per idempotency key.
    #[tracing::instrument(skip_all, fields(user_id = %add.user_id, amount = %add.amount, keyed = add.idempotency_key.is_some()))]
    pub async fn add(&self, add: NewAdd) -> Result<AddOutcome, RecordAddError> {
        let outcome = self.repository.record_add(add).await?;
        tracing::debug!(transaction_id = %outcome.transaction().id, replayed = outcome.is_replayed(), "add recorded");
        Ok(outcome)
    }
}
