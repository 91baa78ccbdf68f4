//! BitBurst's use cases: add money to a balance, read a balance, read a page of history.
//!
//! [`Ledger`] holds the storage port and is all that inbound adapters (HTTP) call. The rules of money
//! live in `domain`, and an add's request, answer and errors are the domain's own types; what this layer
//! adds is the history view (pages that say how to reach the next one) and the tracing of each call.

mod add;
mod history;

pub use history::{HistoryView, NextPage};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{Balance, HistoryQuery, LedgerRepository, StorageError, UserId};

/// The ledger's use cases over one store.
#[derive(Clone)]
pub struct Ledger {
    repository: Arc<dyn LedgerRepository>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

impl Ledger {
    /// The use cases over `repository`.
    pub fn new(repository: Arc<dyn LedgerRepository>) -> Self {
        Self { repository }
    }

    /// How much money the user has; zero for a user the ledger has never seen.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn balance(&self, user_id: &UserId) -> Result<Balance, StorageError> {
        self.repository.balance(user_id).await
    }

    /// How much money the user had at `at`: what the user's last transaction recorded at or before then
    /// left; zero before the first.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn balance_at(&self, user_id: &UserId, at: DateTime<Utc>) -> Result<Balance, StorageError> {
        self.repository.balance_at(user_id, at).await
    }

    /// One page of the user's history (all of it, or the query's time range), newest first.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn history(&self, user_id: &UserId, query: impl Into<HistoryQuery>) -> Result<HistoryView, StorageError> {
        let query = query.into();
        let page = self.repository.history(user_id, query).await?;
        Ok(HistoryView::new(query.request.page_number(), page))
    }

    /// Whether the store answers, for readiness probes.
    pub async fn check_ready(&self) -> Result<(), StorageError> {
        self.repository.check_ready().await
    }
}
