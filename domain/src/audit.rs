//! Checking a user's recorded history against the ledger's rules, one entry at a time, so that a whole
//! ledger can be checked streaming: sequences 1, 2, 3, ... with no gaps, each `balance_after` the one
//! before plus the amount, times that never go back, an unbroken hash chain, and an account that agrees
//! with its entries.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{AccountState, EntryHash, Sequence, Transaction, TransactionId, UserId, format_recording_time};

/// One way a user's recorded history breaks the ledger's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whose history.
    pub user_id: UserId,
    /// The entry where it shows, when it is one entry's.
    pub entry: Option<(Sequence, TransactionId)>,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An entry has another sequence than the one after the entry before it.
    SequenceGap { expected: u64, found: u64 },
    /// An entry's `balance_after` is not the previous one plus its amount.
    BalanceAfterBroken { expected: Decimal, found: Decimal },
    /// An entry was recorded earlier than the entry before it.
    TimeWentBack { previous: DateTime<Utc>, found: DateTime<Utc> },
    /// An entry's hash is not the one its fields and the previous hash give.
    HashBroken { expected: EntryHash, found: EntryHash },
    /// The account's balance is not what its entries add up to.
    BalanceDiffers { stored: Decimal, entries_sum: Decimal, last_balance_after: Decimal },
    /// The account's record of its last entry is not its last entry.
    HeadDiffers { stored: String, entries: String },
    /// Entries exist for a user without an account.
    NoAccount,
    /// A stored value that no rule allows, e.g. an amount out of range.
    Unreadable(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SequenceGap { expected, found } => write!(f, "sequence {found} where {expected} was due"),
            Self::BalanceAfterBroken { expected, found } => {
                write!(f, "balance_after {found} where the previous one plus the amount is {expected}")
            }
            Self::TimeWentBack { previous, found } => write!(
                f,
                "created_at {} is before the previous entry's {}",
                format_recording_time(found),
                format_recording_time(previous)
            ),
            Self::HashBroken { expected, found } => {
                write!(f, "hash {found} where the fields and the previous hash give {expected}")
            }
            Self::BalanceDiffers { stored, entries_sum, last_balance_after } => write!(
                f,
                "stored balance {stored}, but the amounts add up to {entries_sum} and the last balance_after is \
                 {last_balance_after}"
            ),
            Self::HeadDiffers { stored, entries } => {
                write!(f, "the account records its last entry as {stored}, but it is {entries}")
            }
            Self::NoAccount => f.write_str("entries without an account"),
            Self::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some((sequence, id)) => write!(f, "user {} transaction {sequence} ({id}): {}", self.user_id, self.problem),
            None => write!(f, "user {}: {}", self.user_id, self.problem),
        }
    }
}

/// The check of one user's history, fed its entries oldest first.
#[derive(Debug)]
pub struct HistoryAudit {
    user_id: UserId,
    entries: u64,
    sum: Decimal,
    last: Option<Transaction>,
    findings: Vec<Finding>,
}

impl HistoryAudit {
    /// The check of `user_id`'s history, before its first entry.
    pub fn new(user_id: UserId) -> Self {
        Self { user_id, entries: 0, sum: Decimal::ZERO, last: None, findings: Vec::new() }
    }

    /// Whose history this checks.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Checks the next entry, oldest first.
    pub fn check(&mut self, entry: Transaction) {
        self.entries += 1;
        self.sum += entry.amount.as_decimal();
        let at = Some((entry.sequence, entry.id));
        let previous_hash = self.last.as_ref().map_or(EntryHash::GENESIS, |last| last.hash);
        let expected_sequence = self.last.as_ref().map_or(1, |last| last.sequence.get() + 1);
        if entry.sequence.get() != expected_sequence {
            self.found(at, Problem::SequenceGap { expected: expected_sequence, found: entry.sequence.get() });
        }
        let previous_balance = self.last.as_ref().map_or(Decimal::ZERO, |last| last.balance_after.as_decimal());
        let expected_balance = previous_balance + entry.amount.as_decimal();
        if entry.balance_after.as_decimal() != expected_balance {
            let found = entry.balance_after.as_decimal();
            self.found(at, Problem::BalanceAfterBroken { expected: expected_balance, found });
        }
        if let Some(previous) = self.last.as_ref().map(|last| last.created_at).filter(|time| *time > entry.created_at) {
            self.found(at, Problem::TimeWentBack { previous, found: entry.created_at });
        }
        let expected_hash = entry.chained_hash(&previous_hash);
        if entry.hash != expected_hash {
            self.found(at, Problem::HashBroken { expected: expected_hash, found: entry.hash });
        }
        self.last = Some(entry);
    }

    /// Records a stored entry that could not be read as a transaction.
    pub fn unreadable(&mut self, why: String) {
        self.entries += 1;
        self.found(None, Problem::Unreadable(why));
    }

    /// Compares the account (`None`: no account row) with the entries checked, and returns every finding.
    pub fn finish(mut self, account: Option<AccountState>) -> Vec<Finding> {
        let Some(account) = account else {
            if self.entries > 0 {
                self.found(None, Problem::NoAccount);
            }
            return self.findings;
        };
        let last_balance_after = self.last.as_ref().map_or(Decimal::ZERO, |last| last.balance_after.as_decimal());
        let stored = account.balance.as_decimal();
        if stored != self.sum || stored != last_balance_after {
            self.found(None, Problem::BalanceDiffers { stored, entries_sum: self.sum, last_balance_after });
        }
        let describe = |sequence: Option<Sequence>, hash: Option<EntryHash>, time: Option<DateTime<Utc>>| match (
            sequence, hash, time,
        ) {
            (Some(sequence), Some(hash), Some(time)) => {
                format!("sequence {sequence}, hash {hash}, created_at {}", format_recording_time(&time))
            }
            _ => "none".to_owned(),
        };
        let head = account.head;
        let stored_head = describe(head.map(|h| h.sequence), head.map(|h| h.hash), head.map(|h| h.created_at));
        let last = self.last.as_ref();
        let entries_head = describe(last.map(|l| l.sequence), last.map(|l| l.hash), last.map(|l| l.created_at));
        if stored_head != entries_head {
            self.found(None, Problem::HeadDiffers { stored: stored_head, entries: entries_head });
        }
        self.findings
    }

    fn found(&mut self, entry: Option<(Sequence, TransactionId)>, problem: Problem) {
        self.findings.push(Finding { user_id: self.user_id.clone(), entry, problem });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Amount, NewAdd, decide_adds};

    fn user() -> UserId {
        UserId::parse("gopal").expect("valid")
    }

    /// A correct history of three entries and the account it leaves.
    fn history() -> (Vec<Transaction>, AccountState) {
        let adds: Vec<NewAdd> = ["1", "2.50", "3"]
            .iter()
            .map(|amount| NewAdd {
                user_id: user(),
                amount: Amount::parse(amount).expect("valid"),
                idempotency_key: None,
            })
            .collect();
        let decided = decide_adds(AccountState::NEW, &adds, &std::collections::HashMap::new(), crate::recording_time());
        (decided.entries.into_iter().map(|entry| entry.transaction).collect(), decided.state)
    }

    fn audit(entries: Vec<Transaction>, account: Option<AccountState>) -> Vec<String> {
        let mut audit = HistoryAudit::new(user());
        for entry in entries {
            audit.check(entry);
        }
        audit.finish(account).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_history_the_ledger_recorded_passes() {
        let (entries, account) = history();
        assert_eq!(audit(entries, Some(account)), Vec::<String>::new());
        assert_eq!(audit(Vec::new(), Some(AccountState::NEW)), Vec::<String>::new(), "an account without entries");
    }

    #[test]
    fn a_changed_amount_breaks_the_balance_chain_the_hash_and_the_sum() {
        let (mut entries, account) = history();
        entries[1].amount = Amount::parse("2.51").expect("valid");
        let findings = audit(entries, Some(account));
        assert_eq!(findings.len(), 3, "{findings:#?}");
        assert!(findings[0].contains("transaction 2") && findings[0].contains("balance_after 3.50"), "{findings:#?}");
        assert!(findings[1].contains("transaction 2") && findings[1].contains("hash"), "{findings:#?}");
        assert!(findings[2].contains("amounts add up to 6.51"), "{findings:#?}");
    }

    #[test]
    fn a_removed_entry_leaves_a_gap_and_a_broken_chain() {
        let (mut entries, account) = history();
        entries.remove(1);
        let findings = audit(entries, Some(account));
        assert!(findings.iter().any(|f| f.contains("transaction 3") && f.contains("sequence 3 where 2 was due")));
        assert!(findings.iter().any(|f| f.contains("transaction 3") && f.contains("hash")));
        assert!(findings.iter().any(|f| f.contains("stored balance 6.50")));
    }

    #[test]
    fn swapped_times_go_back_and_break_the_hashes() {
        let (mut entries, account) = history();
        entries[2].created_at = entries[0].created_at - chrono::Duration::seconds(1);
        let findings = audit(entries, Some(account));
        assert!(findings.iter().any(|f| f.contains("transaction 3") && f.contains("is before the previous")));
        assert!(findings.iter().any(|f| f.contains("transaction 3") && f.contains("hash")));
    }

    #[test]
    fn an_account_that_disagrees_with_its_entries_is_named() {
        let (entries, mut account) = history();
        account.balance = crate::Balance::ZERO;
        assert_eq!(audit(entries.clone(), Some(account)).len(), 1);
        assert_eq!(audit(entries, None), ["user gopal: entries without an account"]);
    }
}
