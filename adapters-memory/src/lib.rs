//! The [`LedgerRepository`] port in memory: what `bitburst` serves when no database is configured, and
//! the store that use-case tests run against.
//!
//! Users are spread over a fixed set of shards, each behind its own mutex, so adds to different users
//! rarely contend and every operation on one user is serialized: a user's adds are applied one at a
//! time, in the order they take the lock, which is the order of their history. Nothing survives a restart.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use domain::{
    AccountState, AddOutcome, AddsDecided, Balance, HistoryPage, HistoryRequest, IdempotencyKey, LedgerPosition,
    LedgerRepository, NewAdd, PAGE_SIZE, RecordAddError, RecordedKeys, StorageError, Transaction, UserId, decide_adds,
    recording_time,
};

/// Enough shards that two cores never wait on each other for different users.
const SHARD_COUNT: usize = 64;

/// An in-memory ledger. Cheap to create; share it behind an `Arc`.
#[derive(Debug)]
pub struct InMemoryLedger {
    shards: Box<[Mutex<HashMap<UserId, Account>>]>,
    shard_hasher: RandomState,
}

#[derive(Debug)]
struct Account {
    state: AccountState,
    /// Oldest first; an entry's position is its index plus one.
    entries: Vec<Transaction>,
    entry_index_by_key: HashMap<IdempotencyKey, usize>,
}

impl Default for Account {
    fn default() -> Self {
        Self { state: AccountState::NEW, entries: Vec::new(), entry_index_by_key: HashMap::new() }
    }
}

impl RecordedKeys for Account {
    fn recorded(&self, key: &IdempotencyKey) -> Option<&Transaction> {
        self.entry_index_by_key.get(key).map(|&index| &self.entries[index])
    }
}

impl Account {
    /// Stores what the ledger's rule decided.
    fn record(&mut self, decided: &AddsDecided, recorded: &[Transaction]) {
        for (entry, transaction) in decided.entries.iter().zip(recorded) {
            if let Some(key) = &entry.idempotency_key {
                self.entry_index_by_key.insert(key.clone(), self.entries.len());
            }
            self.entries.push(transaction.clone());
        }
        self.state = decided.state;
    }
}

impl Default for InMemoryLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARD_COUNT).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_hasher: RandomState::new(),
        }
    }

    fn shard(&self, user_id: &UserId) -> MutexGuard<'_, HashMap<UserId, Account>> {
        let index = usize::try_from(self.shard_hasher.hash_one(user_id) % SHARD_COUNT as u64).unwrap_or(0);
        // No code panics while holding a shard, and every change to an account is complete before the
        // guard drops, so a poisoned shard still holds consistent accounts.
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl LedgerRepository for InMemoryLedger {
    async fn record_add(&self, add: NewAdd) -> Result<AddOutcome, RecordAddError> {
        let mut shard = self.shard(&add.user_id);
        let account = shard.entry(add.user_id.clone()).or_default();
        let mut decided = decide_adds(account.state, [&add], &*account);
        let recorded_at = recording_time();
        let recorded: Vec<Transaction> = decided.entries.iter().map(|entry| entry.recorded_at(recorded_at)).collect();
        account.record(&decided, &recorded);
        match decided.decisions.pop() {
            Some(decision) => decision.outcome(&recorded),
            None => Err(StorageError::Failed("the ledger's rule gave no decision for an add".into()).into()),
        }
    }

    async fn balance(&self, user_id: &UserId) -> Result<Balance, StorageError> {
        Ok(self.shard(user_id).get(user_id).map_or(Balance::ZERO, |account| account.state.balance))
    }

    async fn history(&self, user_id: &UserId, request: HistoryRequest) -> Result<HistoryPage, StorageError> {
        let shard = self.shard(user_id);
        let entries = shard.get(user_id).map_or(&[][..], |account| &account.entries[..]);
        // `older` is every entry that may appear on the page, oldest first; the page takes its newest end.
        let older = match request {
            HistoryRequest::Page(page) => {
                let skipped = usize::try_from(page.offset()).unwrap_or(usize::MAX);
                &entries[..entries.len().saturating_sub(skipped)]
            }
            HistoryRequest::After(cursor) => {
                let before_index = usize::try_from(cursor.before.get().saturating_sub(1)).unwrap_or(0);
                &entries[..before_index.min(entries.len())]
            }
        };
        let page_size = PAGE_SIZE as usize;
        let first_on_page = older.len().saturating_sub(page_size);
        let transactions = older[first_on_page..].iter().rev().cloned().collect();
        let continues_before = (first_on_page > 0).then(|| position_of(first_on_page));
        Ok(HistoryPage { transactions, continues_before })
    }

    async fn check_ready(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

fn position_of(index: usize) -> LedgerPosition {
    LedgerPosition::new(i64::try_from(index).map_or(i64::MAX, |index| index + 1))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::InMemoryLedger;
    use testkit::contract::Subject;

    testkit::ledger_contract_tests!(async || Some(Arc::new(InMemoryLedger::new()) as Subject));
}
