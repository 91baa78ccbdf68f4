//! What a batch of adds does, decided in memory before anything is written: the same answers, in the
//! same order, as if each add had been recorded alone, one after the other.

use std::collections::HashMap;

use domain::{AddOutcome, Amount, Balance, IdempotencyKey, NewAdd, RecordAddError, Transaction, TransactionId, UserId};

/// An entry the batch will insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    pub id: TransactionId,
    pub user_id: UserId,
    pub amount: Amount,
    pub balance_after: Balance,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The answer an add of the batch will get, once the batch has committed.
#[derive(Debug)]
pub enum PlannedAnswer {
    /// The add is recorded as `entries[index]`.
    Applied(usize),
    /// An earlier add of this batch, `entries[index]`, recorded the same key with the same amount.
    ReplayedInBatch(usize),
    /// The key was recorded by an earlier batch.
    Replayed(Transaction),
    /// Refused by a rule; nothing recorded for it.
    Refused(RecordAddError),
}

/// A whole batch, planned.
#[derive(Debug)]
pub struct BatchPlan {
    /// One answer per add, in the order of the batch.
    pub answers: Vec<PlannedAnswer>,
    /// The entries to insert, in recording order.
    pub entries: Vec<PlannedEntry>,
    /// Each touched user's balance after the batch; written once per user.
    pub final_balances: Vec<(UserId, Balance)>,
}

/// Plans `adds` over the locked `balances` (every user of the batch; absent means zero) and the entries
/// `recorded` earlier under the batch's keys.
pub fn plan(
    adds: &[NewAdd],
    balances: &HashMap<UserId, Balance>,
    recorded: &HashMap<(UserId, IdempotencyKey), Transaction>,
) -> BatchPlan {
    let mut running: HashMap<&UserId, Balance> = HashMap::new();
    let mut keyed_in_batch: HashMap<(&UserId, &IdempotencyKey), usize> = HashMap::new();
    let mut entries = Vec::new();
    let mut answers = Vec::with_capacity(adds.len());
    for add in adds {
        if let Some(key) = &add.idempotency_key {
            if let Some(original) = recorded.get(&(add.user_id.clone(), key.clone())) {
                answers.push(answer_repeat(original.amount, add.amount, || PlannedAnswer::Replayed(original.clone())));
                continue;
            }
            if let Some(&index) = keyed_in_batch.get(&(&add.user_id, key)) {
                let original: &PlannedEntry = &entries[index];
                answers.push(answer_repeat(original.amount, add.amount, || PlannedAnswer::ReplayedInBatch(index)));
                continue;
            }
        }
        let balance =
            running.entry(&add.user_id).or_insert_with(|| balances.get(&add.user_id).copied().unwrap_or(Balance::ZERO));
        match balance.credit(add.amount) {
            Ok(balance_after) => {
                *balance = balance_after;
                if let Some(key) = &add.idempotency_key {
                    keyed_in_batch.insert((&add.user_id, key), entries.len());
                }
                answers.push(PlannedAnswer::Applied(entries.len()));
                entries.push(PlannedEntry {
                    id: TransactionId::new_v7(),
                    user_id: add.user_id.clone(),
                    amount: add.amount,
                    balance_after,
                    idempotency_key: add.idempotency_key.clone(),
                });
            }
            Err(exceeded) => answers.push(PlannedAnswer::Refused(exceeded.into())),
        }
    }
    let mut final_balances: Vec<(UserId, Balance)> = Vec::new();
    for entry in &entries {
        match final_balances.iter_mut().find(|(user_id, _)| *user_id == entry.user_id) {
            Some((_, balance)) => *balance = entry.balance_after,
            None => final_balances.push((entry.user_id.clone(), entry.balance_after)),
        }
    }
    BatchPlan { answers, entries, final_balances }
}

fn answer_repeat(original: Amount, repeat: Amount, replay: impl FnOnce() -> PlannedAnswer) -> PlannedAnswer {
    if original == repeat {
        replay()
    } else {
        PlannedAnswer::Refused(RecordAddError::KeyReused { original_amount: original })
    }
}

impl BatchPlan {
    /// The answers, given the transactions the inserted entries became.
    pub fn into_outcomes(self, inserted: &[Transaction]) -> Vec<Result<AddOutcome, RecordAddError>> {
        self.answers
            .into_iter()
            .map(|answer| match answer {
                PlannedAnswer::Applied(index) => Ok(AddOutcome::Applied(inserted[index].clone())),
                PlannedAnswer::ReplayedInBatch(index) => Ok(AddOutcome::Replayed(inserted[index].clone())),
                PlannedAnswer::Replayed(original) => Ok(AddOutcome::Replayed(original)),
                PlannedAnswer::Refused(error) => Err(error),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
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

    fn describe(answer: &PlannedAnswer) -> String {
        match answer {
            PlannedAnswer::Applied(index) => format!("applied {index}"),
            PlannedAnswer::ReplayedInBatch(index) => format!("replays {index}"),
            PlannedAnswer::Replayed(original) => format!("replays {}", original.amount),
            PlannedAnswer::Refused(RecordAddError::KeyReused { original_amount }) => {
                format!("reused {original_amount}")
            }
            PlannedAnswer::Refused(RecordAddError::BalanceLimit(_)) => "limit".to_owned(),
            PlannedAnswer::Refused(other) => format!("{other}"),
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
        let answers: Vec<String> = plan.answers.iter().map(describe).collect();
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
        let answers: Vec<String> = plan.answers.iter().map(describe).collect();
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
        let recorded = HashMap::from([((user("a"), key), original)]);
        let balances = HashMap::from([(user("a"), balance("1000000000000"))]);
        let plan = plan(&[add("a", "7", Some("k")), add("a", "8", Some("k"))], &balances, &recorded);
        let answers: Vec<String> = plan.answers.iter().map(describe).collect();
        assert_eq!(answers, ["replays 7.00", "reused 7.00"]);
        assert!(plan.entries.is_empty() && plan.final_balances.is_empty());
    }
}
