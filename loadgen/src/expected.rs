//! What the ledger must hold, as far as this client knows: every add the service acknowledged, and
//! every add whose outcome is unknown. Shared by all workers (two workers may send the same user's key
//! at once, which is the point of repeats), one small lock per user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::api::AddAnswer;
use crate::money::{cents_to_decimal, parse_money};
use crate::rng::SplitMix64;

/// An Idempotency-Key made by worker `worker` as its `seq`-th fresh key. Keys are scoped to the user
/// by the API and users are scoped to the run, so this is unique without the run id in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddKey {
    pub worker: u32,
    pub seq: u64,
}

impl AddKey {
    pub fn header_value(self) -> String {
        format!("k{}-{}", self.worker, self.seq)
    }
}

/// One Idempotency-Key of a user and everything its answers said.
#[derive(Debug, Clone)]
pub struct KeyedAdd {
    pub key: AddKey,
    pub amount_cents: u64,
    /// The transaction of the first 2xx answer; every later answer must name the same one.
    pub transaction: Option<String>,
    /// Answers without `Idempotent-Replayed: true`: at most one request per key may be the one that
    /// recorded it.
    pub fresh_answers: u32,
    /// Some request with this key got no readable answer, so it may have been applied.
    pub outcome_unknown: bool,
}

impl KeyedAdd {
    /// Sent, possibly applied, never acknowledged: must be re-sent before the ledger can be checked.
    pub fn needs_resolution(&self) -> bool {
        self.transaction.is_none() && self.outcome_unknown
    }
}

/// Everything known about one user's adds.
#[derive(Debug, Clone, Default)]
pub struct UserExpectation {
    pub keyed: Vec<KeyedAdd>,
    /// Acknowledged adds without a key: transaction id -> cents.
    pub unkeyed: HashMap<String, u64>,
    /// Unkeyed adds with an unknown outcome: each may or may not be in the ledger.
    pub ambiguous_adds: u64,
    pub ambiguous_cents: u64,
    /// Transaction ids that answers for an already-acknowledged key named besides the first: a second
    /// transaction for one key, already counted as doubled when the answer came.
    pub conflicting_ids: Vec<String>,
}

impl UserExpectation {
    pub fn received_adds(&self) -> bool {
        !self.keyed.is_empty() || !self.unkeyed.is_empty() || self.ambiguous_adds > 0
    }
}

/// Violations seen in answers as they arrive (the ledger itself is checked at the end).
#[derive(Debug, Default)]
pub struct AnswerCounters {
    /// 2xx answers to adds, replays included.
    pub acknowledged: AtomicU64,
    /// Of those, answers with `Idempotent-Replayed: true`.
    pub replays: AtomicU64,
    /// A key answered with a second transaction id.
    pub doubled: AtomicU64,
    /// An answer that breaks the contract without adding money: a wrong amount, a replay flag on an
    /// unkeyed add, or two answers both claiming to have recorded one key.
    pub unexpected: AtomicU64,
}

#[derive(Debug)]
pub struct Expectations {
    users: Box<[Mutex<UserExpectation>]>,
    pub counters: AnswerCounters,
}

impl Expectations {
    pub fn new(users: u32) -> Self {
        let users = (0..users).map(|_| Mutex::new(UserExpectation::default())).collect();
        Self { users, counters: AnswerCounters::default() }
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// A panicking worker must not hide what the others recorded, so a poisoned lock is still read.
    pub fn lock(&self, user: u32) -> MutexGuard<'_, UserExpectation> {
        self.users[user as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a fresh key before it is sent, so that other workers may repeat it while it is in flight.
    /// Returns its index among the user's keys.
    pub fn begin_keyed(&self, user: u32, key: AddKey, amount_cents: u64) -> usize {
        let mut expectation = self.lock(user);
        expectation.keyed.push(KeyedAdd {
            key,
            amount_cents,
            transaction: None,
            fresh_answers: 0,
            outcome_unknown: false,
        });
        expectation.keyed.len() - 1
    }

    /// One of the user's earlier keys, at random, with its amount: `(index, key, cents)`.
    pub fn earlier_key(&self, user: u32, rng: &mut SplitMix64) -> Option<(usize, AddKey, u64)> {
        let expectation = self.lock(user);
        if expectation.keyed.is_empty() {
            return None;
        }
        let index = usize::try_from(rng.below(expectation.keyed.len() as u64)).expect("below(len) fits a usize");
        let add = &expectation.keyed[index];
        Some((index, add.key, add.amount_cents))
    }

    pub fn acknowledge_keyed(&self, user: u32, index: usize, answer: &AddAnswer) {
        self.count_acknowledged(answer);
        let mut expectation = self.lock(user);
        let expectation = &mut *expectation;
        let add = &mut expectation.keyed[index];
        if !amount_matches(&answer.transaction.amount, add.amount_cents) {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        }
        if !answer.replayed {
            add.fresh_answers += 1;
        }
        match &add.transaction {
            None => add.transaction = Some(answer.transaction.id.clone()),
            Some(id) if *id != answer.transaction.id => {
                self.counters.doubled.fetch_add(1, Ordering::Relaxed);
                if !expectation.conflicting_ids.contains(&answer.transaction.id) {
                    expectation.conflicting_ids.push(answer.transaction.id.clone());
                }
                return;
            }
            Some(_) => {}
        }
        // The same transaction, but two requests both said they recorded it.
        if !answer.replayed && add.fresh_answers > 1 {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn mark_keyed_unknown(&self, user: u32, index: usize) {
        self.lock(user).keyed[index].outcome_unknown = true;
    }

    pub fn acknowledge_unkeyed(&self, user: u32, amount_cents: u64, answer: &AddAnswer) {
        self.count_acknowledged(answer);
        if answer.replayed || !amount_matches(&answer.transaction.amount, amount_cents) {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        }
        let previous = self.lock(user).unkeyed.insert(answer.transaction.id.clone(), amount_cents);
        // Two unkeyed adds answered with one transaction: one of them was not recorded.
        if previous.is_some() {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn mark_unkeyed_ambiguous(&self, user: u32, amount_cents: u64) {
        let mut expectation = self.lock(user);
        expectation.ambiguous_adds += 1;
        expectation.ambiguous_cents += amount_cents;
    }

    /// Every key that was sent, may have been applied and was never acknowledged:
    /// `(user, index, key, cents)`.
    pub fn keys_needing_resolution(&self) -> Vec<(u32, usize, AddKey, u64)> {
        let mut pending = Vec::new();
        for user in 0..self.users.len() {
            let user = u32::try_from(user).expect("users were counted in a u32");
            let expectation = self.lock(user);
            for (index, add) in expectation.keyed.iter().enumerate() {
                if add.needs_resolution() {
                    pending.push((user, index, add.key, add.amount_cents));
                }
            }
        }
        pending
    }

    fn count_acknowledged(&self, answer: &AddAnswer) {
        self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
        if answer.replayed {
            self.counters.replays.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether the service's amount is the one that was sent (compared as decimals, not as text).
pub fn amount_matches(text: &str, cents: u64) -> bool {
    parse_money(text) == Some(cents_to_decimal(cents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Transaction;

    fn answer(id: &str, amount: &str, replayed: bool) -> AddAnswer {
        AddAnswer {
            transaction: Transaction { id: id.to_owned(), amount: amount.to_owned(), balance_after: amount.to_owned() },
            replayed,
        }
    }

    const KEY: AddKey = AddKey { worker: 0, seq: 0 };

    #[test]
    fn a_fresh_answer_then_replays_of_the_same_transaction_are_fine() {
        let expectations = Expectations::new(1);
        let index = expectations.begin_keyed(0, KEY, 150);
        expectations.acknowledge_keyed(0, index, &answer("t1", "1.50", false));
        expectations.acknowledge_keyed(0, index, &answer("t1", "1.50", true));
        let counters = &expectations.counters;
        assert_eq!(counters.acknowledged.load(Ordering::Relaxed), 2);
        assert_eq!(counters.replays.load(Ordering::Relaxed), 1);
        assert_eq!(counters.doubled.load(Ordering::Relaxed), 0);
        assert_eq!(counters.unexpected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_second_transaction_for_one_key_is_doubled() {
        let expectations = Expectations::new(1);
        let index = expectations.begin_keyed(0, KEY, 150);
        expectations.acknowledge_keyed(0, index, &answer("t1", "1.50", false));
        expectations.acknowledge_keyed(0, index, &answer("t2", "1.50", true));
        assert_eq!(expectations.counters.doubled.load(Ordering::Relaxed), 1);
        assert_eq!(expectations.lock(0).conflicting_ids, ["t2"]);
    }

    #[test]
    fn two_requests_claiming_to_have_recorded_one_key_are_unexpected() {
        let expectations = Expectations::new(1);
        let index = expectations.begin_keyed(0, KEY, 150);
        expectations.acknowledge_keyed(0, index, &answer("t1", "1.50", false));
        expectations.acknowledge_keyed(0, index, &answer("t1", "1.50", false));
        assert_eq!(expectations.counters.unexpected.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn only_unacknowledged_unknown_keys_need_resolution() {
        let expectations = Expectations::new(2);
        let acknowledged = expectations.begin_keyed(0, KEY, 1);
        expectations.mark_keyed_unknown(0, acknowledged);
        expectations.acknowledge_keyed(0, acknowledged, &answer("t1", "0.01", true));
        let refused = expectations.begin_keyed(1, AddKey { worker: 0, seq: 1 }, 2);
        let lost_answer = expectations.begin_keyed(1, AddKey { worker: 0, seq: 2 }, 3);
        expectations.mark_keyed_unknown(1, lost_answer);
        let pending = expectations.keys_needing_resolution();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].0, pending[0].1), (1, lost_answer));
        assert_ne!(refused, lost_answer);
    }
}
