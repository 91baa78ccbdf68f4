//! A batch of adds for many users, decided before anything is written: the adds are grouped by user, each
//! group is decided by the ledger's rule ([`decide_adds`]) over its account, and the entries are put back
//! in batch order, so the answers are those each add would get alone, one after the other.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{
    AccountState, AddOutcome, Decision, IdempotencyKey, NewAdd, NewEntry, RecordAddError, Transaction, UserId,
    decide_adds,
};

/// A whole batch, planned.
#[derive(Debug)]
pub struct BatchPlan {
    /// One decision per add, in the order of the batch; entry indices point into `entries`.
    pub decisions: Vec<Decision>,
    /// The entries to insert, in batch order.
    pub entries: Vec<NewEntry>,
    /// Each touched user's account after the batch; written once per user.
    pub final_states: Vec<(UserId, AccountState)>,
}

/// Plans `adds` over the locked accounts' `states` (every user of the batch; absent means new) and the
/// entries `recorded` earlier under the batch's keys, by user, recording new entries at `now`.
pub fn plan(
    adds: &[NewAdd],
    states: &HashMap<UserId, AccountState>,
    recorded: &HashMap<UserId, HashMap<IdempotencyKey, Transaction>>,
    now: DateTime<Utc>,
) -> BatchPlan {
    let mut groups: Vec<(&UserId, Vec<usize>)> = Vec::new();
    let mut group_of_user: HashMap<&UserId, usize> = HashMap::new();
    for (index, add) in adds.iter().enumerate() {
        let group = *group_of_user.entry(&add.user_id).or_insert_with(|| {
            groups.push((&add.user_id, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(index);
    }

    let no_keys = HashMap::new();
    let mut decided_by_add: Vec<(usize, usize, Decision)> = Vec::with_capacity(adds.len());
    let mut group_entries: Vec<Vec<NewEntry>> = Vec::with_capacity(groups.len());
    let mut final_states = Vec::new();
    for (group, (user_id, indices)) in groups.iter().enumerate() {
        let state = states.get(*user_id).copied().unwrap_or(AccountState::NEW);
        let earlier = recorded.get(*user_id).unwrap_or(&no_keys);
        let decided = decide_adds(state, indices.iter().map(|&index| &adds[index]), earlier, now);
        if !decided.entries.is_empty() {
            final_states.push(((*user_id).clone(), decided.state));
        }
        decided_by_add.extend(indices.iter().zip(decided.decisions).map(|(&index, decision)| (index, group, decision)));
        group_entries.push(decided.entries);
    }
    decided_by_add.sort_unstable_by_key(|(index, _, _)| *index);

    // Entries in batch order: an entry's place is that of the add that recorded it, which comes before
    // any add of the batch that repeats it.
    let mut entries = Vec::new();
    let mut placed: HashMap<(usize, usize), usize> = HashMap::new();
    let decisions = decided_by_add
        .into_iter()
        .map(|(_, group, decision)| match decision {
            Decision::Record(local) => {
                placed.insert((group, local), entries.len());
                entries.push(group_entries[group][local].clone());
                Decision::Record(entries.len() - 1)
            }
            Decision::RepeatOfNew(local) => Decision::RepeatOfNew(placed[&(group, local)]),
            other => other,
        })
        .collect();
    BatchPlan { decisions, entries, final_states }
}

impl BatchPlan {
    /// The answers, once the entries are recorded.
    pub fn into_outcomes(self) -> Vec<Result<AddOutcome, RecordAddError>> {
        let entries = self.entries;
        self.decisions.into_iter().map(|decision| decision.outcome(&entries)).collect()
    }
}

#[cfg(test)]
mod tests {
    use domain::{Amount, Balance, EntryHash, Refusal, Sequence, TransactionId};

    use super::*;

    fn states(balances: &[(&str, &str)]) -> HashMap<UserId, AccountState> {
        balances.iter().map(|(id, text)| (user(id), AccountState { balance: balance(text), head: None })).collect()
    }

    fn final_balances(plan: &BatchPlan) -> Vec<(UserId, Balance)> {
        plan.final_states.iter().map(|(user_id, state)| (user_id.clone(), state.balance)).collect()
    }

    fn now() -> DateTime<Utc> {
        domain::recording_time()
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid")
    }

    fn add(user_id: &str, amount: &str, key: Option<&str>) -> NewAdd {
        NewAdd {
            user_id: user(user_id),
            amount: Amount::parse(amount).expect("valid"),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k.as_bytes()).expect("valid")),
        }
    }

    fn balance(text: &str) -> Balance {
        Balance::from_decimal(text.parse().expect("a decimal")).expect("valid")
    }

    fn describe(decision: &Decision) -> String {
        match decision {
            Decision::Record(index) => format!("applied {index}"),
            Decision::RepeatOfNew(index) => format!("replays {index}"),
            Decision::Replay(original) => format!("replays {}", original.amount),
            Decision::Refuse(Refusal::KeyReused { original_amount }) => format!("reused {original_amount}"),
            Decision::Refuse(Refusal::BalanceLimit(_)) => "limit".to_owned(),
        }
    }

    #[test]
    fn adds_of_one_user_run_in_order_and_write_the_balance_once() {
        let batch = [add("a", "1", None), add("b", "2", None), add("a", "3", None)];
        let plan = plan(&batch, &states(&[("a", "10")]), &HashMap::new(), now());
        let afters: Vec<String> = plan.entries.iter().map(|e| e.transaction.balance_after.to_string()).collect();
        assert_eq!(afters, ["11.00", "2.00", "14.00"]);
        assert_eq!(final_balances(&plan), vec![(user("a"), balance("14")), (user("b"), balance("2"))]);
    }

    #[test]
    fn a_key_repeated_inside_a_batch_applies_once() {
        let batch =
            [add("a", "5", Some("k")), add("a", "5", Some("k")), add("a", "6", Some("k")), add("b", "5", Some("k"))];
        let plan = plan(&batch, &HashMap::new(), &HashMap::new(), now());
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        assert_eq!(answers, ["applied 0", "replays 0", "reused 5.00", "applied 1"]);
        assert_eq!(plan.entries.len(), 2);
    }

    #[test]
    fn an_add_past_the_limit_fails_alone() {
        let batch = [
            add("a", "2", Some("big")),
            add("a", "0.50", None),
            add("a", "2", Some("big")),
            add("a", "0.50", Some("big")),
        ];
        let plan = plan(&batch, &states(&[("a", "999999999999")]), &HashMap::new(), now());
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        // The refused key recorded nothing, so its later uses are new adds, judged on their own.
        assert_eq!(answers, ["limit", "applied 0", "limit", "applied 1"]);
        assert_eq!(final_balances(&plan), vec![(user("a"), balance("1000000000000.00"))]);
    }

    #[test]
    fn a_key_recorded_before_the_batch_is_replayed_even_at_the_limit() {
        let original = Transaction {
            id: TransactionId::new_v7(),
            user_id: user("a"),
            sequence: Sequence::FIRST,
            amount: Amount::parse("7").expect("valid"),
            balance_after: balance("7"),
            created_at: domain::recording_time(),
            hash: EntryHash::GENESIS,
        };
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let recorded = HashMap::from([(user("a"), HashMap::from([(key, original)]))]);
        let balances = states(&[("a", "1000000000000")]);
        let plan = plan(&[add("a", "7", Some("k")), add("a", "8", Some("k"))], &balances, &recorded, now());
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        assert_eq!(answers, ["replays 7.00", "reused 7.00"]);
        assert!(plan.entries.is_empty() && plan.final_states.is_empty());
    }

    fn kind(decision: &Decision) -> String {
        match decision {
            Decision::Record(_) => "record".to_owned(),
            Decision::RepeatOfNew(_) => "repeat".to_owned(),
            other => describe(other),
        }
    }

    proptest::proptest! {
        /// Grouping by user changes nothing: each user's adds get what deciding that user alone gives, every
        /// entry is the add that recorded it, in batch order, and each user's final balance is written.
        #[test]
        fn a_batch_gives_each_user_what_deciding_that_user_alone_gives(
            raw in proptest::collection::vec((0_u8..3, 1_u32..100_000, proptest::option::of(0_u8..3)), 0..40),
        ) {
            let adds: Vec<NewAdd> = raw
                .iter()
                .map(|(user_number, cents, key)| {
                    let amount = rust_decimal::Decimal::new(i64::from(*cents), 2).to_string();
                    add(&format!("u{user_number}"), &amount, key.map(|key| format!("k{key}")).as_deref())
                })
                .collect();
            let balances = states(&[("u0", "999999999990")]);
            let now = now();
            let plan = plan(&adds, &balances, &HashMap::new(), now);

            let mut last_recorded = None;
            for (add, decision) in adds.iter().zip(&plan.decisions) {
                if let Decision::Record(index) | Decision::RepeatOfNew(index) = decision {
                    let entry = &plan.entries[*index];
                    proptest::prop_assert_eq!(&entry.transaction.user_id, &add.user_id);
                    proptest::prop_assert_eq!(entry.transaction.amount, add.amount);
                    proptest::prop_assert_eq!(&entry.idempotency_key, &add.idempotency_key);
                }
                if let Decision::Record(index) = decision {
                    proptest::prop_assert!(last_recorded < Some(*index), "entries in batch order");
                    last_recorded = Some(*index);
                }
            }
            for user_id in ["u0", "u1", "u2"].map(user) {
                let own: Vec<&NewAdd> = adds.iter().filter(|add| add.user_id == user_id).collect();
                let start = balances.get(&user_id).copied().unwrap_or(AccountState::NEW);
                let alone = decide_adds(start, own.iter().copied(), &HashMap::new(), now);
                let in_batch: Vec<String> = adds
                    .iter()
                    .zip(&plan.decisions)
                    .filter(|(add, _)| add.user_id == user_id)
                    .map(|(_, decision)| kind(decision))
                    .collect();
                proptest::prop_assert_eq!(in_batch, alone.decisions.iter().map(kind).collect::<Vec<_>>());
                let written = plan.final_states.iter().find(|(written, _)| *written == user_id).map(|(_, s)| *s);
                let expected = (!alone.entries.is_empty()).then_some(alone.state);
                proptest::prop_assert_eq!(written.map(|state| state.balance), expected.map(|state| state.balance));
                proptest::prop_assert_eq!(
                    written.and_then(|state| state.head).map(|head| head.sequence),
                    expected.and_then(|state| state.head).map(|head| head.sequence)
                );
            }
        }
    }
}
