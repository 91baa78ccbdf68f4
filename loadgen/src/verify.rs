//! The check that makes this a verifying load generator: for every user that received adds, the
//! balance must be exactly the sum of the acknowledged transactions, and the full history must hold
//! each of them once and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Url;
use rust_decimal::Decimal;

use crate::api::{Api, Failure, HistoryPage, PageRequest, Transaction};
use crate::expected::{Expectations, UserExpectation, amount_matches};
use crate::money::{cents_to_decimal, parse_money};
use crate::resolve::backoff;
use crate::workers::user_id;

/// Attempts per verification read before the user is reported unverifiable.
const READ_ATTEMPTS: u32 = 6;
/// The first few problems are printed in full, to start debugging from.
const MAX_EXAMPLES: usize = 20;
/// The contract's page size; only used to bound the walk of a history that never ends.
const PER_PAGE: usize = 10;

/// What the ledger check found, summed over users.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub users: u64,
    pub distinct_transactions: u64,
    /// Unkeyed adds whose outcome is unknown: allowed, not required, to be in the ledger.
    pub ambiguous: u64,
    /// Acknowledged transactions missing from the history.
    pub lost: u64,
    /// A transaction listed twice, or a key answered with two transactions.
    pub doubled: u64,
    /// History entries nobody acknowledged, wrong amounts, and answers that broke the contract.
    pub unexpected: u64,
    /// Balances that are not the sum of the acknowledged transactions (or of the history).
    pub balance_mismatches: u64,
    /// History entries whose `balance_after` does not follow from the entry before and its amount.
    pub chain_breaks: u64,
    /// Users whose balance or history could not be read after every retry.
    pub unverifiable: u64,
    pub examples: Vec<String>,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.unexpected == 0
            && self.balance_mismatches == 0
            && self.chain_breaks == 0
            && self.unverifiable == 0
    }

    fn merge(&mut self, other: Findings) {
        self.users += other.users;
        self.distinct_transactions += other.distinct_transactions;
        self.ambiguous += other.ambiguous;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.unexpected += other.unexpected;
        self.balance_mismatches += other.balance_mismatches;
        self.chain_breaks += other.chain_breaks;
        self.unverifiable += other.unverifiable;
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    fn note(&mut self, example: String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example);
        }
    }
}

/// Checks every user that received adds, `concurrency` users at a time. Call after the workers have
/// stopped and unknown outcomes were resolved: nothing may change the ledger meanwhile.
pub async fn verify_ledger(
    expectations: &Arc<Expectations>,
    run_id: &str,
    targets: &[Url],
    timeout: Duration,
    concurrency: u32,
) -> Result<Findings, reqwest::Error> {
    let users: Arc<[u32]> = (0..expectations.user_count())
        .map(|user| u32::try_from(user).expect("users were counted in a u32"))
        .filter(|&user| expectations.lock(user).received_adds())
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency.min(u32::try_from(users.len()).unwrap_or(u32::MAX)) {
        let mut api = Api::new(targets, timeout, task as usize)?;
        let (users, next, expectations, run_id) =
            (Arc::clone(&users), Arc::clone(&next), Arc::clone(expectations), run_id.to_owned());
        tasks.spawn(async move {
            let mut findings = Findings::default();
            while let Some(&user) = users.get(next.fetch_add(1, Ordering::Relaxed)) {
                let expectation = expectations.lock(user).clone();
                findings.merge(check_user(&mut api, &user_id(&run_id, user), &expectation).await);
            }
            findings
        });
    }
    let mut findings = Findings::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(task_findings) => findings.merge(task_findings),
            Err(error) => {
                findings.unverifiable += 1;
                findings.note(format!("a verification task failed: {error}"));
            }
        }
    }
    Ok(findings)
}

async fn check_user(api: &mut Api, user_id: &str, expectation: &UserExpectation) -> Findings {
    let mut findings = Findings { users: 1, ..Findings::default() };

    // Every acknowledged transaction, by id: keyed ones (one per key) and unkeyed ones.
    let mut acknowledged: HashMap<&str, u64> = expectation.unkeyed.iter().map(|(id, &c)| (id.as_str(), c)).collect();
    for add in &expectation.keyed {
        if let Some(id) = &add.transaction {
            acknowledged.insert(id.as_str(), add.amount_cents);
        }
    }
    findings.distinct_transactions = acknowledged.len() as u64;
    findings.ambiguous = expectation.ambiguous_adds;
    // Adds that may or may not have landed: unkeyed ones with a lost answer, keyed ones never resolved.
    let unresolved = expectation.keyed.iter().filter(|add| add.needs_resolution());
    let mut allowance_left = expectation.ambiguous_adds + unresolved.clone().count() as u64;
    let allowance_cents = expectation.ambiguous_cents + unresolved.map(|add| add.amount_cents).sum::<u64>();

    let balance = match read_balance(api, user_id).await {
        Ok(balance) => balance,
        Err(problem) => return unverifiable(findings, user_id, &problem),
    };
    let expected_entries = acknowledged.len()
        + expectation.conflicting_ids.len()
        + usize::try_from(allowance_left).unwrap_or(usize::MAX / 2);
    let history = match read_full_history(api, user_id, expected_entries).await {
        Ok(history) => history,
        Err(problem) => return unverifiable(findings, user_id, &problem),
    };

    let mut times_listed: HashMap<&str, u32> = HashMap::new();
    for entry in &history {
        if expectation.conflicting_ids.contains(&entry.id) {
            continue; // a second transaction for one key: counted as doubled when it was answered
        }
        if let Some(&cents) = acknowledged.get(entry.id.as_str()) {
            let listed = times_listed.entry(&entry.id).or_default();
            *listed += 1;
            if *listed == 2 {
                findings.doubled += 1;
                findings.note(format!("{user_id}: transaction {} is listed more than once", entry.id));
            }
            if !amount_matches(&entry.amount, cents) {
                findings.unexpected += 1;
                findings.note(format!(
                    "{user_id}: transaction {} has amount {}, sent {cents} cents",
                    entry.id, entry.amount
                ));
            }
        } else if allowance_left > 0 {
            allowance_left -= 1; // one of the ambiguous adds did land
        } else {
            findings.unexpected += 1;
            findings.note(format!("{user_id}: transaction {} ({}) was never acknowledged", entry.id, entry.amount));
        }
    }
    for id in acknowledged.keys().filter(|id| !times_listed.contains_key(*id)) {
        findings.lost += 1;
        findings.note(format!("{user_id}: acknowledged transaction {id} is missing from the history"));
    }

    check_balance(&mut findings, user_id, balance, &history, acknowledged.values().sum(), allowance_cents);
    check_chain(&mut findings, user_id, balance, &history);
    findings
}

/// The balance must lie between the acknowledged sum and that plus every add that may have landed
/// (exactly the acknowledged sum when nothing is ambiguous), and must equal the sum of the history.
fn check_balance(
    findings: &mut Findings,
    user_id: &str,
    balance: Decimal,
    history: &[Transaction],
    acknowledged_cents: u64,
    allowance_cents: u64,
) {
    let lowest = cents_to_decimal(acknowledged_cents);
    let highest = cents_to_decimal(acknowledged_cents + allowance_cents);
    if balance < lowest || balance > highest {
        findings.balance_mismatches += 1;
        findings.note(format!("{user_id}: balance {balance}, acknowledged adds sum to {lowest} (at most {highest})"));
        return;
    }
    let listed: Option<Decimal> = history.iter().map(|entry| parse_money(&entry.amount)).sum();
    if listed != Some(balance) {
        findings.balance_mismatches += 1;
        findings.note(format!("{user_id}: balance {balance}, its history sums to {listed:?}"));
    }
}

/// Newest first, each entry's `balance_after` is the older entry's plus its own amount, and the newest
/// one's is the balance: the history is one consistent statement.
fn check_chain(findings: &mut Findings, user_id: &str, balance: Decimal, history: &[Transaction]) {
    let mut expected_after = Some(balance);
    for (position, entry) in history.iter().enumerate() {
        let (after, amount) = (parse_money(&entry.balance_after), parse_money(&entry.amount));
        if after.is_none() || after != expected_after {
            findings.chain_breaks += 1;
            findings.note(format!(
                "{user_id}: entry {position} ({}) has balance_after {}, expected {expected_after:?}",
                entry.id, entry.balance_after
            ));
        }
        expected_after = after.zip(amount).map(|(after, amount)| after - amount);
    }
    if !history.is_empty() && expected_after != Some(Decimal::ZERO) {
        findings.chain_breaks += 1;
        findings.note(format!("{user_id}: the oldest entry does not start from 0.00"));
    }
}

fn unverifiable(mut findings: Findings, user_id: &str, problem: &str) -> Findings {
    findings.unverifiable += 1;
    findings.note(format!("{user_id}: could not be read: {problem}"));
    findings
}

async fn read_balance(api: &mut Api, user_id: &str) -> Result<Decimal, String> {
    let mut attempt = 1;
    loop {
        match api.balance(user_id).await {
            Ok(answer) => {
                return parse_money(&answer.balance).ok_or_else(|| format!("balance `{}`", answer.balance));
            }
            Err(failure) if attempt < READ_ATTEMPTS => tokio::time::sleep(backoff(attempt, &failure)).await,
            Err(failure) => return Err(format!("balance: {failure}")),
        }
        attempt += 1;
    }
}

/// The whole history, newest first: the first page by number, then by `next_cursor` until it is null.
async fn read_full_history(api: &mut Api, user_id: &str, expected_entries: usize) -> Result<Vec<Transaction>, String> {
    // Twice the pages the expected entries need, and then some: a history that goes on past that is
    // broken (a cursor that loops) and would otherwise never end the run.
    let page_limit = 2 * (expected_entries / PER_PAGE + 1) + 10;
    let mut entries = Vec::with_capacity(expected_entries);
    let mut cursor: Option<String> = None;
    for _ in 0..page_limit {
        let request = cursor.as_deref().map_or(PageRequest::Number(1), PageRequest::After);
        let page = read_page(api, user_id, request).await?;
        entries.extend(page.transactions);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(entries),
        }
    }
    Err(format!("the history did not end within {page_limit} pages"))
}

async fn read_page(api: &mut Api, user_id: &str, request: PageRequest<'_>) -> Result<HistoryPage, String> {
    let mut attempt = 1;
    loop {
        match api.history(user_id, request).await {
            Ok(page) => return Ok(page),
            Err(failure) if attempt < READ_ATTEMPTS && retryable(&failure) => {
                tokio::time::sleep(backoff(attempt, &failure)).await;
            }
            Err(failure) => return Err(format!("history: {failure}")),
        }
        attempt += 1;
    }
}

/// A 4xx to a read is the same answer next time (a bad cursor, say); anything else may pass.
fn retryable(failure: &Failure) -> bool {
    !matches!(failure, Failure::Status { status, .. } if status.is_client_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, amount: &str, balance_after: &str) -> Transaction {
        Transaction { id: id.to_owned(), amount: amount.to_owned(), balance_after: balance_after.to_owned() }
    }

    fn money(text: &str) -> Decimal {
        parse_money(text).expect("valid money")
    }

    #[test]
    fn a_consistent_statement_has_no_chain_breaks() {
        let history = [entry("c", "0.50", "3.50"), entry("b", "2.00", "3.00"), entry("a", "1.00", "1.00")];
        let mut findings = Findings::default();
        check_chain(&mut findings, "u", money("3.50"), &history);
        check_balance(&mut findings, "u", money("3.50"), &history, 350, 0);
        assert!(findings.clean(), "{findings:?}");
    }

    #[test]
    fn a_wrong_balance_after_or_balance_is_found() {
        let history = [entry("b", "2.00", "3.01"), entry("a", "1.00", "1.00")];
        let mut findings = Findings::default();
        check_chain(&mut findings, "u", money("3.00"), &history);
        assert!(findings.chain_breaks > 0);
        let mut findings = Findings::default();
        check_balance(&mut findings, "u", money("3.00"), &history, 200, 0);
        assert_eq!(findings.balance_mismatches, 1);
    }

    #[test]
    fn ambiguous_adds_widen_the_balance_range() {
        let history = [entry("b", "2.00", "3.00"), entry("a", "1.00", "1.00")];
        let mut findings = Findings::default();
        check_balance(&mut findings, "u", money("3.00"), &history, 100, 200);
        assert!(findings.clean(), "{findings:?}");
        check_balance(&mut findings, "u", money("3.00"), &history, 100, 199);
        assert_eq!(findings.balance_mismatches, 1);
    }
}
