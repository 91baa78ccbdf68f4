//! A batch of adds for many users, decided before anything is written: the adds are grouped by user, each
//! group is decided by the ledger's rule ([`decide_adds`]) over its account, and the entries are put back
//! in batch order, so the answers are those each add would get alone, one after the other.

use std::collections::HashMap;

use domain::{
    AccountState, AddOutcome, Balance, Decision, IdempotencyKey, NewAdd, NewEntry, RecordAddError, Transaction, UserId,
    decide_adds,
};

/// A whole batch, planned.
#[derive(Debug)]
pub struct BatchPlan {
    /// One decision per add, in the order of the batch; entry indices point into `entries`.
    pub decisions: Vec<Decision>,
    /// The entries to insert, in batch order.
    pub entries: Vec<NewEntry>,
    /// Each touched user's balance after the batch; written once per user.
    pub final_balances: Vec<(UserId, Balance)>,
}

/// Plans `adds` over the locked `balances` (every user of the batch; absent means zero) and the entries
/// `recorded` earlier under the batch's keys, by user.
pub fn plan(
    adds: &[NewAdd],
    balances: &HashMap<UserId, Balance>,
    recorded: &HashMap<UserId, HashMap<IdempotencyKey, Transaction>>,
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
    let mut final_balances = Vec::new();
    for (group, (user_id, indices)) in groups.iter().enumerate() {
        let state = AccountState { balance: balances.get(*user_id).copied().unwrap_or(Balance::ZERO) };
        let earlier = recorded.get(*user_id).unwrap_or(&no_keys);
        let decided = decide_adds(state, indices.iter().map(|&index| &adds[index]), earlier);
        if !decided.entries.is_empty() {
            final_balances.push(((*user_id).clone(), decided.state.balance));
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
    BatchPlan { decisions, entries, final_balances }
}

impl BatchPlan {
    /// The answers, given the transactions the inserted entries became (in the order of the entries).
    pub fn into_outcomes(self, inserted: &[Transaction]) -> Vec<Result<AddOutcome, RecordAddError>> {
        self.decisions.into_iter().map(|decision| decision.outcome(inserted)).collect()
    }
}

#[cfg(test)]
mod tests {
    use domain::{Amount, Refusal, TransactionId};

    use super::*;

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
        let balances = HashMap::from([(user("a"), balance("10"))]);
        let batch = [add("a", "1", None), add("b", "2", None), add("a", "3", None)];
        let plan = plan(&batch, &balances, &HashMap::new());
        let afters: Vec<String> = plan.entries.iter().map(|e| e.balance_after.to_string()).collect();
        assert_eq!(afters, ["11.00", "2.00", "14.00"]);
        assert_eq!(plan.final_balances, vec![(user("a"), balance("14")), (user("b"), balance("2"))]);
    }

    #[test]
    fn a_key_repeated_inside_a_batch_applies_once() {
        let batch =
            [add("a", "5", Some("k")), add("a", "5", Some("k")), add("a", "6", Some("k")), add("b", "5", Some("k"))];
        let plan = plan(&batch, &HashMap::new(), &HashMap::new());
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        assert_eq!(answers, ["applied 0", "replays 0", "reused 5.00", "applied 1"]);
        assert_eq!(plan.entries.len(), 2);
    }

    #[test]
    fn an_add_past_the_limit_fails_alone() {
        let balances = HashMap::from([(user("a"), balance("999999999999"))]);
        let batch = [
            add("a", "2", Some("big")),
            add("a", "0.50", None),
            add("a", "2", Some("big")),
            add("a", "0.50", Some("big")),
        ];
        let plan = plan(&batch, &balances, &HashMap::new());
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        // The refused key recorded nothing, so its later uses are new adds, judged on their own.
        assert_eq!(answers, ["limit", "applied 0", "limit", "applied 1"]);
        assert_eq!(plan.final_balances, vec![(user("a"), balance("1000000000000.00"))]);
    }

    #[test]
    fn a_key_recorded_before_the_batch_is_replayed_even_at_the_limit() {
        let original = Transaction {
            id: TransactionId::new_v7(),
            user_id: user("a"),
            amount: Amount::parse("7").expect("valid"),
            balance_after: balance("7"),
            created_at: domain::recording_time(),
        };
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let recorded = HashMap::from([(user("a"), HashMap::from([(key, original)]))]);
        let balances = HashMap::from([(user("a"), balance("1000000000000"))]);
        let plan = plan(&[add("a", "7", Some("k")), add("a", "8", Some("k"))], &balances, &recorded);
        let answers: Vec<String> = plan.decisions.iter().map(describe).collect();
        assert_eq!(answers, ["replays 7.00", "reused 7.00"]);
        assert!(plan.entries.is_empty() && plan.final_balances.is_empty());
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
            let balances = HashMap::from([(user("u0"), balance("999999999990"))]);
            let plan = plan(&adds, &balances, &HashMap::new());

            let mut last_recorded = None;
            for (add, decision) in adds.iter().zip(&plan.decisions) {
                if let Decision::Record(index) | Decision::RepeatOfNew(index) = decision {
                    let entry = &plan.entries[*index];
                    proptest::prop_assert_eq!(&entry.user_id, &add.user_id);
                    proptest::prop_assert_eq!(entry.amount, add.amount);
                    proptest::prop_assert_eq!(&entry.idempotency_key, &add.idempotency_key);
                }
                if let Decision::Record(index) = decision {
                    proptest::prop_assert!(last_recorded < Some(*index), "entries in batch order");
                    last_recorded = Some(*index);
                }
            }
            for user_id in ["u0", "u1", "u2"].map(user) {
                let own: Vec<&NewAdd> = adds.iter().filter(|add| add.user_id == user_id).collect();
                let start = AccountState { balance: balances.get(&user_id).copied().unwrap_or(Balance::ZERO) };
                let alone = decide_adds(start, own.iter().copied(), &HashMap::new());
                let in_batch: Vec<String> = adds
                    .iter()
                    .zip(&plan.decisions)
                    .filter(|(add, _)| add.user_id == user_id)
                    .map(|(_, decision)| kind(decision))
                    .collect();
                proptest::prop_assert_eq!(in_batch, alone.decisions.iter().map(kind).collect::<Vec<_>>());
                let written = plan.final_balances.iter().find(|(written, _)| *written == user_id).map(|(_, b)| *b);
                let expected = (!alone.entries.is_empty()).then_some(alone.state.balance);
                proptest::prop_assert_eq!(written, expected);
            }
        }
    }
}
