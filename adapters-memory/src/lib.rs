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
use chrono::{DateTime, Utc};
use domain::{
    AccountState, AddOutcome, AddsDecided, Balance, HistoryPage, HistoryQuery, HistoryRequest, IdempotencyKey,
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
    /// Oldest first: an entry's sequence is its index plus one, and recording times never decrease.
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
    fn record(&mut self, decided: &AddsDecided) {
        for entry in &decided.entries {
            if let Some(key) = &entry.idempotency_key {
                self.entry_index_by_key.insert(key.clone(), self.entries.len());
            }
            self.entries.push(entry.transaction.clone());
        }
        self.state = decided.state;
    }

    /// How many entries were recorded before `time` (a binary search: recording times never decrease).
    fn count_before(&self, time: DateTime<Utc>) -> usize {
        self.entries.partition_point(|entry| entry.created_at < time)
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
        let mut decided = decide_adds(account.state, [&add], &*account, recording_time());
        account.record(&decided);
        match decided.decisions.pop() {
            Some(decision) => decision.outcome(&decided.entries),
            None => Err(StorageError::Failed("the ledger's rule gave no decision for an add".into()).into()),
        }
    }

    async fn balance(&self, user_id: &UserId) -> Result<Balance, StorageError> {
        Ok(self.shard(user_id).get(user_id).map_or(Balance::ZERO, |account| account.state.balance))
    }

    async fn balance_at(&self, user_id: &UserId, at: DateTime<Utc>) -> Result<Balance, StorageError> {
        let shard = self.shard(user_id);
        let Some(account) = shard.get(user_id) else { return Ok(Balance::ZERO) };
        let recorded_by_then = account.entries.partition_point(|entry| entry.created_at <= at);
        Ok(recorded_by_then.checked_sub(1).map_or(Balance::ZERO, |last| account.entries[last].balance_after))
    }

    async fn history(&self, user_id: &UserId, query: HistoryQuery) -> Result<HistoryPage, StorageError> {
        let shard = self.shard(user_id);
        let Some(account) = shard.get(user_id) else {
            return Ok(HistoryPage { transactions: Vec::new(), continues_before: None });
        };
        // The range is the entries from index `first` up to (not including) `end`.
        let first = query.range.first_microsecond().map_or(0, |from| account.count_before(from));
        let end = query.range.end_microsecond().map_or(account.entries.len(), |to| account.count_before(to));
        let page_end = match query.request {
            HistoryRequest::Page(page) => end.saturating_sub(usize::try_from(page.offset()).unwrap_or(usize::MAX)),
            // The entry with sequence `before` has index `before - 1`: the page ends just below it.
            HistoryRequest::After(cursor) => {
                end.min(usize::try_from(cursor.before.get()).map_or(usize::MAX, |before| before - 1))
            }
        };
        let page_start = page_end.saturating_sub(PAGE_SIZE as usize).max(first);
        let on_page = account.entries.get(page_start..page_end).unwrap_or_default();
        let transactions: Vec<Transaction> = on_page.iter().rev().cloned().collect();
        let continues_before = if page_start > first { transactions.last().map(|last| last.sequence) } else { None };
        Ok(HistoryPage { transactions, continues_before })
    }

    async fn check_ready(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::InMemoryLedger;
    use testkit::contract::Subject;

    testkit::ledger_contract_tests!(async || Some(Arc::new(InMemoryLedger::new()) as Subject));
}
