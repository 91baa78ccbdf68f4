//! The ledger's rule for adds, decided in one place. Stores load an account's state, call [`decide_adds`]
//! with the adds for it in arrival order, record the entries it returns, and answer with its outcomes:
//! they never decide themselves. A store that records one add at a time and one that records a batch
//! therefore give the same answers by construction, down to each entry's sequence, time and hash.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};

use crate::{
    AddOutcome, Amount, Balance, BalanceLimitExceeded, EntryHash, IdempotencyKey, NewAdd, RecordAddError, Sequence,
    Transaction, TransactionId,
};

/// What the ledger knows of an account when it decides the account's next adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// The balance after the last recorded entry.
    pub balance: Balance,
    /// The last recorded entry; `None` for an account without entries.
    pub head: Option<ChainHead>,
}

/// What the next entry of an account follows: the account's last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The last entry's sequence.
    pub sequence: Sequence,
    /// The last entry's hash.
    pub hash: EntryHash,
    /// When the last entry was recorded.
    pub created_at: DateTime<Utc>,
}

impl ChainHead {
    /// The head of a chain whose last entry is `transaction`.
    pub fn of(transaction: &Transaction) -> Self {
        Self { sequence: transaction.sequence, hash: transaction.hash, created_at: transaction.created_at }
    }
}

impl AccountState {
    /// An account with no entries yet.
    pub const NEW: Self = Self { balance: Balance::ZERO, head: None };
}

/// Where a decision finds the transactions recorded earlier under the keys of the adds it decides.
pub trait RecordedKeys {
    /// The transaction recorded earlier under `key` for this account, if any.
    fn recorded(&self, key: &IdempotencyKey) -> Option<&Transaction>;
}

impl<S: std::hash::BuildHasher> RecordedKeys for HashMap<IdempotencyKey, Transaction, S> {
    fn recorded(&self, key: &IdempotencyKey) -> Option<&Transaction> {
        self.get(key)
    }
}

/// A transaction the decision asks the store to record, with the key it is recorded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The transaction, complete: sequence, time and hash included.
    pub transaction: Transaction,
    /// The key it is recorded under, if the caller gave one.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What becomes of one add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It is recorded as the entry at this index of [`AddsDecided::entries`].
    Record(usize),
    /// It repeats the key and amount of the entry at this index, recorded by an earlier add of the same call.
    RepeatOfNew(usize),
    /// It repeats the key and amount of a transaction recorded earlier.
    Replay(Transaction),
    /// It breaks a rule; nothing is recorded for it.
    Refuse(Refusal),
}

/// Why the ledger refuses an add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The add would take the balance past the limit.
    BalanceLimit(BalanceLimitExceeded),
    /// The key already recorded an add of another amount.
    KeyReused {
        /// The amount the key recorded first.
        original_amount: Amount,
    },
}

impl From<Refusal> for RecordAddError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::BalanceLimit(exceeded) => Self::BalanceLimit(exceeded),
            Refusal::KeyReused { original_amount } => Self::KeyReused { original_amount },
        }
    }
}

/// The adds of one account, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddsDecided {
    /// One decision per add, in the order of the adds.
    pub decisions: Vec<Decision>,
    /// The entries to record, in the order they are recorded (the order of the account's history).
    pub entries: Vec<NewEntry>,
    /// The account after the entries.
    pub state: AccountState,
}

/// Decides `adds`, all for one account, in the order given, as if each were recorded alone one after
/// the other: a key seen before (earlier, or earlier in `adds`) with the same amount is a replay and with
/// another amount a refusal; otherwise the add is credited, unless that passes the balance limit.
///
/// Each new entry takes the next sequence and is chained to the entry before it. It is recorded at `now`
/// (the store's clock while it holds the account), or at the previous entry's time if that is later: a
/// clock that steps back, or an instance whose clock runs behind another's, never makes a user's history
/// go back in time.
pub fn decide_adds<'a>(
    state: AccountState,
    adds: impl IntoIterator<Item = &'a NewAdd>,
    earlier: &impl RecordedKeys,
    now: DateTime<Utc>,
) -> AddsDecided {
    let now = now.trunc_subsecs(6);
    let created_at = state.head.map_or(now, |head| head.created_at.max(now));
    let mut balance = state.balance;
    let mut head = state.head;
    let mut entries: Vec<NewEntry> = Vec::new();
    let mut new_by_key: HashMap<&IdempotencyKey, usize> = HashMap::new();
    let decisions = adds
        .into_iter()
        .map(|add| {
            if let Some(key) = &add.idempotency_key {
                if let Some(original) = earlier.recorded(key) {
                    return repeat(original.amount, add.amount, || Decision::Replay(original.clone()));
                }
                if let Some(&index) = new_by_key.get(key) {
                    let recorded = entries[index].transaction.amount;
                    return repeat(recorded, add.amount, || Decision::RepeatOfNew(index));
                }
            }
            match balance.credit(add.amount) {
                Ok(balance_after) => {
                    balance = balance_after;
                    let mut transaction = Transaction {
                        id: TransactionId::new_v7(),
                        user_id: add.user_id.clone(),
                        sequence: head.map_or(Sequence::FIRST, |head| head.sequence.next()),
                        amount: add.amount,
                        balance_after,
                        created_at,
                        hash: EntryHash::GENESIS,
                    };
                    transaction.hash = transaction.chained_hash(&head.map_or(EntryHash::GENESIS, |head| head.hash));
                    head = Some(ChainHead::of(&transaction));
                    if let Some(key) = &add.idempotency_key {
                        new_by_key.insert(key, entries.len());
                    }
                    entries.push(NewEntry { transaction, idempotency_key: add.idempotency_key.clone() });
                    Decision::Record(entries.len() - 1)
                }
                Err(exceeded) => Decision::Refuse(Refusal::BalanceLimit(exceeded)),
            }
        })
        .collect();
    AddsDecided { decisions, entries, state: AccountState { balance, head } }
}

fn repeat(original: Amount, repeated: Amount, replay: impl FnOnce() -> Decision) -> Decision {
    if original == repeated { replay() } else { Decision::Refuse(Refusal::KeyReused { original_amount: original }) }
}

impl Decision {
    /// The answer to the add, once `entries` (those the decision returned with it) are recorded.
    ///
    /// # Panics
    /// If `entries` is not the list the decision was made with.
    pub fn outcome(self, entries: &[NewEntry]) -> Result<AddOutcome, RecordAddError> {
        match self {
            Self::Record(index) => Ok(AddOutcome::Applied(entries[index].transaction.clone())),
            Self::RepeatOfNew(index) => Ok(AddOutcome::Replayed(entries[index].transaction.clone())),
            Self::Replay(original) => Ok(AddOutcome::Replayed(original)),
            Self::Refuse(refusal) => Err(refusal.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::UserId;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid")
    }

    fn add(amount: &str, key: Option<&str>) -> NewAdd {
        NewAdd {
            user_id: user("a"),
            amount: Amount::parse(amount).expect("valid"),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k.as_bytes()).expect("valid")),
        }
    }

    fn balance(text: &str) -> Balance {
        Balance::from_decimal(text.parse().expect("a decimal")).expect("valid")
    }

    fn state(text: &str) -> AccountState {
        AccountState { balance: balance(text), head: None }
    }

    fn describe(decision: &Decision) -> String {
        match decision {
            Decision::Record(index) => format!("record {index}"),
            Decision::RepeatOfNew(index) => format!("repeats {index}"),
            Decision::Replay(original) => format!("replays {}", original.amount),
            Decision::Refuse(Refusal::KeyReused { original_amount }) => format!("reused {original_amount}"),
            Decision::Refuse(Refusal::BalanceLimit(_)) => "limit".to_owned(),
        }
    }

    fn nothing_earlier() -> HashMap<IdempotencyKey, Transaction> {
        HashMap::new()
    }

    #[test]
    fn adds_are_credited_in_order_with_a_running_balance() {
        let adds = [add("1", None), add("3", None)];
        let decided = decide_adds(state("10"), &adds, &nothing_earlier(), crate::recording_time());
        let afters: Vec<String> =
            decided.entries.iter().map(|entry| entry.transaction.balance_after.to_string()).collect();
        assert_eq!(afters, ["11.00", "14.00"]);
        assert_eq!(decided.state.balance, balance("14"));
    }

    #[test]
    fn a_key_repeated_among_the_adds_is_recorded_once() {
        let adds = [add("5", Some("k")), add("5", Some("k")), add("6", Some("k")), add("5", Some("j"))];
        let decided = decide_adds(AccountState::NEW, &adds, &nothing_earlier(), crate::recording_time());
        let decisions: Vec<String> = decided.decisions.iter().map(describe).collect();
        assert_eq!(decisions, ["record 0", "repeats 0", "reused 5.00", "record 1"]);
        assert_eq!(decided.state.balance, balance("10"));
    }

    #[test]
    fn an_add_past_the_limit_is_refused_alone_and_its_key_stays_unused() {
        let adds = [add("2", Some("big")), add("0.50", None), add("2", Some("big")), add("0.50", Some("big"))];
        let decided = decide_adds(state("999999999999"), &adds, &nothing_earlier(), crate::recording_time());
        let decisions: Vec<String> = decided.decisions.iter().map(describe).collect();
        assert_eq!(decisions, ["limit", "record 0", "limit", "record 1"]);
        assert_eq!(decided.state.balance, balance("1000000000000.00"));
    }

    #[test]
    fn a_key_recorded_earlier_is_replayed_even_at_the_limit() {
        let original = Transaction {
            id: TransactionId::new_v7(),
            user_id: user("a"),
            sequence: Sequence::FIRST,
            amount: Amount::parse("7").expect("valid"),
            balance_after: balance("7"),
            created_at: crate::recording_time(),
            hash: EntryHash::GENESIS,
        };
        let earlier = HashMap::from([(IdempotencyKey::parse(b"k").expect("valid"), original)]);
        let decided = decide_adds(
            state("1000000000000"),
            &[add("7", Some("k")), add("8", Some("k"))],
            &earlier,
            crate::recording_time(),
        );
        let decisions: Vec<String> = decided.decisions.iter().map(describe).collect();
        assert_eq!(decisions, ["replays 7.00", "reused 7.00"]);
        assert!(decided.entries.is_empty());
        assert_eq!(decided.state.balance, balance("1000000000000"));
    }

    #[test]
    fn entries_continue_the_accounts_sequence_and_chain() {
        let first = decide_adds(AccountState::NEW, &[add("1", None)], &nothing_earlier(), crate::recording_time());
        let second =
            decide_adds(first.state, &[add("2", None), add("3", None)], &nothing_earlier(), crate::recording_time());
        let [one] = &first.entries[..] else { panic!("one entry: {first:?}") };
        let [two, three] = &second.entries[..] else { panic!("two entries: {second:?}") };
        let sequences: Vec<u64> = [one, two, three].iter().map(|entry| entry.transaction.sequence.get()).collect();
        assert_eq!(sequences, [1, 2, 3]);
        assert_eq!(one.transaction.hash, one.transaction.chained_hash(&EntryHash::GENESIS));
        assert_eq!(two.transaction.hash, two.transaction.chained_hash(&one.transaction.hash));
        assert_eq!(three.transaction.hash, three.transaction.chained_hash(&two.transaction.hash));
        assert_eq!(second.state.head, Some(ChainHead::of(&three.transaction)));
    }

    #[test]
    fn a_clock_behind_the_last_entry_does_not_take_the_history_back_in_time() {
        let last = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00.000005Z").expect("valid").to_utc();
        let behind = last - chrono::Duration::seconds(2);
        let head = ChainHead { sequence: Sequence::FIRST, hash: EntryHash::GENESIS, created_at: last };
        let state = AccountState { balance: balance("1"), head: Some(head) };
        let decided = decide_adds(state, &[add("1", None)], &nothing_earlier(), behind);
        assert_eq!(decided.entries[0].transaction.created_at, last);
        let ahead = last + chrono::Duration::nanoseconds(1_500);
        let decided = decide_adds(state, &[add("1", None)], &nothing_earlier(), ahead);
        assert_eq!(
            decided.entries[0].transaction.created_at,
            last + chrono::Duration::microseconds(1),
            "to the microsecond"
        );
    }

    /// An add as the model sees it: an amount in cents and, maybe, one of a few keys.
    fn arbitrary_adds() -> impl Strategy<Value = Vec<(u32, Option<u8>)>> {
        prop::collection::vec((1_u32..100_000, prop::option::of(0_u8..4)), 0..40)
    }

    proptest! {
        /// The simple model: one transaction per key (the first amount it came with wins), every other
        /// add of a new key or of no key is credited unless that passes the limit (then its key stays
        /// unused), and the balance is the starting one plus what was recorded. The account starts close
        /// enough to the limit for some adds to reach it.
        #[test]
        fn any_sequence_of_adds_and_repeats_matches_the_model(
            adds in arbitrary_adds(),
            split in 0_usize..40,
            headroom_cents in 0_i64..2_000_000,
        ) {
            let adds: Vec<NewAdd> = adds
                .iter()
                .map(|(cents, key)| {
                    let amount = rust_decimal::Decimal::new(i64::from(*cents), 2).to_string();
                    add(&amount, key.map(|key| format!("key-{key}")).as_deref())
                })
                .collect();
            let start = crate::MAX_BALANCE - rust_decimal::Decimal::new(headroom_cents, 2);
            let start = AccountState { balance: Balance::from_decimal(start).expect("within the limit"), head: None };
            // Decided in two calls, as two batches would be, the second seeing what the first recorded.
            let split = split.min(adds.len());
            let first = decide_adds(start, &adds[..split], &nothing_earlier(), crate::recording_time());
            let earlier: HashMap<IdempotencyKey, Transaction> = first
                .entries
                .iter()
                .filter_map(|entry| Some((entry.idempotency_key.clone()?, entry.transaction.clone())))
                .collect();
            let second = decide_adds(first.state, &adds[split..], &earlier, crate::recording_time());

            let mut model_balance = start.balance.as_decimal();
            let mut model_keys: HashMap<&IdempotencyKey, Amount> = HashMap::new();
            let mut expected = Vec::new();
            for add in &adds {
                match add.idempotency_key.as_ref().and_then(|key| model_keys.get(key)) {
                    Some(original) if *original == add.amount => expected.push("repeat".to_owned()),
                    Some(original) => expected.push(format!("reused {original}")),
                    None if model_balance + add.amount.as_decimal() > crate::MAX_BALANCE => {
                        expected.push("limit".to_owned());
                    }
                    None => {
                        model_balance += add.amount.as_decimal();
                        if let Some(key) = &add.idempotency_key {
                            model_keys.insert(key, add.amount);
                        }
                        expected.push("credit".to_owned());
                    }
                }
            }
            let decided: Vec<(&NewAdd, &Decision, &[NewEntry])> = adds[..split]
                .iter()
                .zip(&first.decisions)
                .map(|(add, decision)| (add, decision, first.entries.as_slice()))
                .chain(adds[split..].iter().zip(&second.decisions).map(|(add, decision)| (add, decision, second.entries.as_slice())))
                .collect();
            let mut actual = Vec::new();
            for (add, decision, entries) in decided {
                // A recorded or repeated add points at an entry of its own key and amount.
                let pointed = match decision {
                    Decision::Record(index) | Decision::RepeatOfNew(index) => {
                        Some((entries[*index].idempotency_key.clone(), entries[*index].transaction.amount))
                    }
                    Decision::Replay(original) => Some((add.idempotency_key.clone(), original.amount)),
                    Decision::Refuse(_) => None,
                };
                if let Some((key, amount)) = pointed {
                    prop_assert_eq!(&key, &add.idempotency_key);
                    prop_assert_eq!(amount, add.amount);
                }
                actual.push(match decision {
                    Decision::Record(_) => "credit".to_owned(),
                    Decision::RepeatOfNew(_) | Decision::Replay(_) => "repeat".to_owned(),
                    Decision::Refuse(Refusal::KeyReused { original_amount }) => format!("reused {original_amount}"),
                    Decision::Refuse(Refusal::BalanceLimit(_)) => "limit".to_owned(),
                });
            }
            prop_assert_eq!(actual, expected);
            prop_assert_eq!(second.state.balance.as_decimal(), model_balance);
            let mut running = start.balance.as_decimal();
            let mut previous: Option<&Transaction> = None;
            for (number, entry) in first.entries.iter().chain(&second.entries).enumerate() {
                let transaction = &entry.transaction;
                running += transaction.amount.as_decimal();
                prop_assert_eq!(transaction.balance_after.as_decimal(), running, "balance_after grows by each amount");
                prop_assert_eq!(transaction.sequence.get(), u64::try_from(number).expect("small") + 1, "no gaps");
                let previous_hash = previous.map_or(EntryHash::GENESIS, |previous| previous.hash);
                prop_assert_eq!(transaction.hash, transaction.chained_hash(&previous_hash), "one unbroken chain");
                prop_assert!(previous.is_none_or(|previous| previous.created_at <= transaction.created_at));
                previous = Some(transaction);
            }
            prop_assert_eq!(second.state.head.map(|head| head.hash), previous.map(|last| last.hash));
        }
    }
}
