//! The behaviour of the `LedgerRepository` port, as one suite that runs against every adapter so that
//! they cannot drift apart. [`ledger_contract_tests!`](crate::ledger_contract_tests) turns it into tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use domain::{
    AddOutcome, Amount, Balance, EntryHash, HistoryCursor, HistoryPage, HistoryQuery, HistoryRequest, IdempotencyKey,
    LedgerRepository, NewAdd, PAGE_SIZE, PageNumber, RecordAddError, TimeRange, Transaction, UserId,
};
use rust_decimal::Decimal;

/// The store under test, shared between the tasks of a test.
pub type Subject = Arc<dyn LedgerRepository>;

/// Writes one `#[tokio::test]` per behaviour of the contract. `$make` is an async closure returning
/// `Option<Subject>`, a fresh empty store per test, or `None` when the store cannot be had here (which
/// the closure must say loudly; CI never allows it).
#[macro_export]
macro_rules! ledger_contract_tests {
    ($make:expr) => {
        $crate::ledger_contract_tests!(@each $make;
            unknown_user_has_zero_balance_and_no_history,
            an_add_records_a_transaction_and_raises_the_balance,
            balance_after_is_the_running_balance,
            replayed_key_returns_the_original_transaction,
            key_reused_with_another_amount_changes_nothing,
            keys_are_scoped_to_their_user,
            adds_without_a_key_are_always_new,
            an_add_past_the_balance_limit_changes_nothing,
            a_repeat_is_replayed_even_at_the_balance_limit,
            history_is_newest_first_ten_a_page,
            keyset_pages_match_offset_pages,
            each_users_transactions_are_numbered_and_chained,
            a_balance_at_a_time_is_what_the_last_transaction_by_then_left,
            a_time_range_pages_only_the_transactions_within_it,
            concurrent_repeats_of_one_key_apply_once,
            concurrent_adds_to_one_hot_user_are_exact,
            concurrent_adds_to_many_users_are_exact,
        );
    };
    (@each $make:expr; $($behaviour:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $behaviour() {
                let make = $make;
                if let Some(subject) = make().await {
                    $crate::contract::$behaviour(subject).await;
                }
            }
        )+
    };
}

/// A user id from a literal the test knows to be valid.
pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("test user ids are valid")
}

/// An amount from a literal the test knows to be valid.
pub fn amount(text: &str) -> Amount {
    Amount::parse(text).expect("test amounts are valid")
}

/// An idempotency key from a literal the test knows to be valid.
pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text.as_bytes()).expect("test keys are valid")
}

fn add(user_id: &UserId, amount_text: &str, key_text: Option<&str>) -> NewAdd {
    NewAdd { user_id: user_id.clone(), amount: amount(amount_text), idempotency_key: key_text.map(key) }
}

async fn applied(subject: &Subject, new_add: NewAdd) -> Transaction {
    match subject.record_add(new_add).await {
        Ok(AddOutcome::Applied(transaction)) => transaction,
        other => panic!("expected the add to be applied, got {other:?}"),
    }
}

async fn balance(subject: &Subject, user_id: &UserId) -> String {
    subject.balance(user_id).await.expect("the store answers").to_string()
}

async fn page(subject: &Subject, user_id: &UserId, request: HistoryRequest) -> HistoryPage {
    subject.history(user_id, request.into()).await.expect("the store answers")
}

fn page_number(number: u32) -> PageNumber {
    PageNumber::parse(&number.to_string()).expect("test page numbers are valid")
}

/// Every transaction of a user, newest first, read through keyset pages.
pub async fn full_history(subject: &Subject, user_id: &UserId) -> Vec<Transaction> {
    history_within(subject, user_id, TimeRange::ALL).await
}

/// Every transaction of a user in `range`, newest first, read through keyset pages.
async fn history_within(subject: &Subject, user_id: &UserId, range: TimeRange) -> Vec<Transaction> {
    let mut all = Vec::new();
    let mut request = HistoryRequest::Page(PageNumber::FIRST);
    loop {
        let query = HistoryQuery { range, request };
        let current = subject.history(user_id, query).await.expect("the store answers");
        all.extend(current.transactions);
        let Some(before) = current.continues_before else { return all };
        let next = request.page_number().next().expect("test histories are short");
        request = HistoryRequest::After(HistoryCursor { page: next, before });
    }
}

/// The invariant of a ledger: read oldest first, the entries are numbered 1, 2, 3, ..., each one's hash
/// chains it to the one before, its time is not before the one before, its `balance_after` is the previous
/// one plus its amount, and the last one is the balance.
pub async fn assert_ledger_is_consistent(subject: &Subject, user_id: &UserId) -> Vec<Transaction> {
    let history = full_history(subject, user_id).await;
    for pair in history.windows(2) {
        assert!(pair[0].created_at >= pair[1].created_at, "history is newest first by created_at too: {pair:?}");
    }
    let mut running = Balance::ZERO;
    let mut previous_hash = EntryHash::GENESIS;
    for (number, transaction) in (1_u64..).zip(history.iter().rev()) {
        running = running.credit(transaction.amount).expect("history stays within the limit");
        assert_eq!(transaction.balance_after, running, "balance_after of {} breaks the running sum", transaction.id);
        assert_eq!(&transaction.user_id, user_id);
        assert_eq!(transaction.sequence.get(), number, "{user_id}: sequences have no gaps");
        assert_eq!(
            transaction.hash,
            transaction.chained_hash(&previous_hash),
            "{user_id}: the chain breaks at {number}"
        );
        previous_hash = transaction.hash;
    }
    assert_eq!(subject.balance(user_id).await.expect("the store answers"), running, "balance differs from history");
    history
}

pub async fn unknown_user_has_zero_balance_and_no_history(subject: Subject) {
    let nobody = user("nobody");
    assert_eq!(balance(&subject, &nobody).await, "0.00");
    let first = page(&subject, &nobody, HistoryRequest::Page(PageNumber::FIRST)).await;
    assert_eq!(first, HistoryPage { transactions: vec![], continues_before: None });
}

pub async fn an_add_records_a_transaction_and_raises_the_balance(subject: Subject) {
    let gopal = user("gopal");
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let transaction = applied(&subject, add(&gopal, "500", None)).await;
    assert_eq!(transaction.user_id, gopal);
    assert_eq!(transaction.amount.to_string(), "500.00");
    assert_eq!(transaction.balance_after.to_string(), "500.00");
    assert_eq!(transaction.id.as_uuid().get_version_num(), 7);
    assert!(transaction.created_at > before, "created_at {} is not recent", transaction.created_at);
    assert_eq!(balance(&subject, &gopal).await, "500.00");
    let first = page(&subject, &gopal, HistoryRequest::Page(PageNumber::FIRST)).await;
    assert_eq!(first.transactions, vec![transaction]);
}

pub async fn balance_after_is_the_running_balance(subject: Subject) {
    let gopal = user("gopal");
    let amounts = ["0.01", "12.34", "100", "0.99"];
    let mut seen = Vec::new();
    for amount_text in amounts {
        seen.push(applied(&subject, add(&gopal, amount_text, None)).await.balance_after.to_string());
    }
    assert_eq!(seen, ["0.01", "12.35", "112.35", "113.34"]);
    assert_eq!(balance(&subject, &gopal).await, "113.34");
    assert_ledger_is_consistent(&subject, &gopal).await;
}

pub async fn replayed_key_returns_the_original_transaction(subject: Subject) {
    let gopal = user("gopal");
    let original = applied(&subject, add(&gopal, "12.34", Some("order-1"))).await;
    applied(&subject, add(&gopal, "1", None)).await;
    let repeat = subject.record_add(add(&gopal, "12.34", Some("order-1"))).await.expect("a repeat succeeds");
    assert_eq!(repeat, AddOutcome::Replayed(original));
    assert_eq!(balance(&subject, &gopal).await, "13.34");
    assert_eq!(full_history(&subject, &gopal).await.len(), 2);
}

pub async fn key_reused_with_another_amount_changes_nothing(subject: Subject) {
    let gopal = user("gopal");
    let original = applied(&subject, add(&gopal, "10", Some("order-1"))).await;
    let reuse = subject.record_add(add(&gopal, "11", Some("order-1"))).await;
    match reuse {
        Err(RecordAddError::KeyReused { original_amount }) => assert_eq!(original_amount, amount("10")),
        other => panic!("expected KeyReused, got {other:?}"),
    }
    assert_eq!(balance(&subject, &gopal).await, "10.00");
    assert_eq!(full_history(&subject, &gopal).await, vec![original]);
}

pub async fn keys_are_scoped_to_their_user(subject: Subject) {
    let (alice, bob) = (user("alice"), user("bob"));
    let for_alice = applied(&subject, add(&alice, "5", Some("shared-key"))).await;
    let for_bob = applied(&subject, add(&bob, "7", Some("shared-key"))).await;
    assert_ne!(for_alice.id, for_bob.id);
    assert_eq!(balance(&subject, &alice).await, "5.00");
    assert_eq!(balance(&subject, &bob).await, "7.00");
}

pub async fn adds_without_a_key_are_always_new(subject: Subject) {
    let gopal = user("gopal");
    let first = applied(&subject, add(&gopal, "5", None)).await;
    let second = applied(&subject, add(&gopal, "5", None)).await;
    assert_ne!(first.id, second.id);
    assert_eq!(balance(&subject, &gopal).await, "10.00");
}

pub async fn an_add_past_the_balance_limit_changes_nothing(subject: Subject) {
    let whale = user("whale");
    // 1,000 adds of the largest amount reach the limit of 10^12 exactly.
    for _ in 0..1000 {
        applied(&subject, add(&whale, "1000000000", None)).await;
    }
    assert_eq!(balance(&subject, &whale).await, "1000000000000.00");
    let refused = subject.record_add(add(&whale, "0.01", Some("one-cent-too-many"))).await;
    match refused {
        Err(RecordAddError::BalanceLimit(exceeded)) => {
            assert_eq!(exceeded.amount, amount("0.01"));
            assert_eq!(exceeded.balance.to_string(), "1000000000000.00");
        }
        other => panic!("expected BalanceLimit, got {other:?}"),
    }
    assert_eq!(balance(&subject, &whale).await, "1000000000000.00");
    assert_eq!(full_history(&subject, &whale).await.len(), 1000);
    // The refused key recorded nothing, so it is still free for another user's or a later add.
    let elsewhere = user("minnow");
    applied(&subject, add(&elsewhere, "0.01", Some("one-cent-too-many"))).await;
}

pub async fn a_repeat_is_replayed_even_at_the_balance_limit(subject: Subject) {
    let whale = user("whale");
    let keyed = applied(&subject, add(&whale, "1000000000", Some("first"))).await;
    for _ in 1..1000 {
        applied(&subject, add(&whale, "1000000000", None)).await;
    }
    let repeat = subject.record_add(add(&whale, "1000000000", Some("first"))).await.expect("a repeat succeeds");
    assert_eq!(repeat, AddOutcome::Replayed(keyed), "the repeat is answered, not refused by the limit");
    let reuse = subject.record_add(add(&whale, "5", Some("first"))).await;
    assert!(matches!(reuse, Err(RecordAddError::KeyReused { .. })), "{reuse:?}");
    assert_eq!(balance(&subject, &whale).await, "1000000000000.00");
}

pub async fn history_is_newest_first_ten_a_page(subject: Subject) {
    let gopal = user("gopal");
    let mut recorded = Vec::new();
    for cents in 1..=25 {
        recorded.push(applied(&subject, add(&gopal, &format!("0.{cents:02}"), None)).await);
    }
    recorded.reverse();
    let pages: Vec<HistoryPage> = futures_of_pages(&subject, &gopal, 4).await;
    assert_eq!(pages[0].transactions, recorded[0..10]);
    assert_eq!(pages[1].transactions, recorded[10..20]);
    assert_eq!(pages[2].transactions, recorded[20..25]);
    assert!(pages[0].continues_before.is_some() && pages[1].continues_before.is_some());
    assert_eq!(pages[2].continues_before, None, "page 3 is the last page");
    assert_eq!(pages[3], HistoryPage { transactions: vec![], continues_before: None }, "page 4 is past the end");
    let exactly_ten = user("ten");
    for _ in 0..PAGE_SIZE {
        applied(&subject, add(&exactly_ten, "1", None)).await;
    }
    assert_eq!(page(&subject, &exactly_ten, HistoryRequest::Page(PageNumber::FIRST)).await.continues_before, None);
}

async fn futures_of_pages(subject: &Subject, user_id: &UserId, count: u32) -> Vec<HistoryPage> {
    let mut pages = Vec::new();
    for number in 1..=count {
        pages.push(page(subject, user_id, HistoryRequest::Page(page_number(number))).await);
    }
    pages
}

pub async fn keyset_pages_match_offset_pages(subject: Subject) {
    let gopal = user("gopal");
    for index in 1..=35 {
        applied(&subject, add(&gopal, &index.to_string(), None)).await;
    }
    let by_offset: Vec<Transaction> =
        futures_of_pages(&subject, &gopal, 4).await.into_iter().flat_map(|p| p.transactions).collect();
    let by_cursor = full_history(&subject, &gopal).await;
    assert_eq!(by_offset.len(), 35);
    assert_eq!(by_cursor, by_offset);
    // Adds after a cursor was issued do not move the pages that follow it.
    let first = page(&subject, &gopal, HistoryRequest::Page(PageNumber::FIRST)).await;
    let before = first.continues_before.expect("35 transactions make more than one page");
    applied(&subject, add(&gopal, "1000", None)).await;
    let second = page(&subject, &gopal, HistoryRequest::After(HistoryCursor { page: page_number(2), before })).await;
    assert_eq!(second.transactions, by_offset[10..20]);
}

pub async fn each_users_transactions_are_numbered_and_chained(subject: Subject) {
    let (alice, bob) = (user("alice"), user("bob"));
    let first = applied(&subject, add(&alice, "1", Some("a-1"))).await;
    applied(&subject, add(&bob, "2", None)).await;
    let second = applied(&subject, add(&alice, "3", None)).await;
    let replayed = subject.record_add(add(&alice, "1", Some("a-1"))).await.expect("a repeat succeeds");
    let third = applied(&subject, add(&alice, "4", None)).await;
    let numbers: Vec<u64> = [&first, &second, &third].iter().map(|t| t.sequence.get()).collect();
    assert_eq!(numbers, [1, 2, 3], "a replay takes no number, and other users' adds do not count");
    assert_eq!(replayed, AddOutcome::Replayed(first.clone()));
    assert_eq!(first.hash, first.chained_hash(&EntryHash::GENESIS));
    assert_eq!(second.hash, second.chained_hash(&first.hash));
    assert_eq!(third.hash, third.chained_hash(&second.hash));
    assert_eq!(full_history(&subject, &alice).await, vec![third, second, first], "history shows what adds answered");
    let bobs = assert_ledger_is_consistent(&subject, &bob).await;
    assert_eq!(bobs[0].sequence.get(), 1, "each user's numbers start at 1");
}

pub async fn a_balance_at_a_time_is_what_the_last_transaction_by_then_left(subject: Subject) {
    let gopal = user("gopal");
    let mut recorded = Vec::new();
    for amount_text in ["1", "2", "4", "8"] {
        recorded.push(applied(&subject, add(&gopal, amount_text, None)).await);
    }
    let at = |time: chrono::DateTime<chrono::Utc>| {
        let subject = Arc::clone(&subject);
        let gopal = gopal.clone();
        async move { subject.balance_at(&gopal, time).await.expect("the store answers").to_string() }
    };
    let first_time = recorded[0].created_at;
    assert_eq!(at(first_time - chrono::Duration::microseconds(1)).await, "0.00", "before the first transaction");
    for transaction in &recorded {
        // The last transaction recorded at or before that time; several may share a microsecond.
        let expected = recorded.iter().rfind(|t| t.created_at <= transaction.created_at).expect("itself");
        assert_eq!(at(transaction.created_at).await, expected.balance_after.to_string());
    }
    assert_eq!(at(chrono::Utc::now() + chrono::Duration::days(1)).await, "15.00");
    assert_eq!(subject.balance_at(&user("nobody"), first_time).await.expect("answers").to_string(), "0.00");
}

pub async fn a_time_range_pages_only_the_transactions_within_it(subject: Subject) {
    let gopal = user("gopal");
    let mut recorded = Vec::new();
    for index in 1..=40 {
        recorded.push(applied(&subject, add(&gopal, &index.to_string(), None)).await);
    }
    let from = recorded[5].created_at;
    let to = recorded[33].created_at;
    let range = TimeRange::new(Some(from), Some(to)).expect("from is before to");
    let expected: Vec<Transaction> =
        recorded.iter().rev().filter(|t| t.created_at >= from && t.created_at < to).cloned().collect();
    assert!(expected.len() > 2 * PAGE_SIZE as usize, "the range spans several pages");
    assert_eq!(history_within(&subject, &gopal, range).await, expected, "by cursor");
    let mut by_number = Vec::new();
    for number in 1..=4 {
        let query = HistoryQuery { range, request: HistoryRequest::Page(page_number(number)) };
        by_number.extend(subject.history(&gopal, query).await.expect("the store answers").transactions);
    }
    assert_eq!(by_number, expected, "by page number");
    let open_ended = TimeRange::new(Some(to), None).expect("a range");
    let tail: Vec<Transaction> = recorded.iter().rev().filter(|t| t.created_at >= to).cloned().collect();
    assert_eq!(history_within(&subject, &gopal, open_ended).await, tail);
    let before_all = TimeRange::new(None, Some(recorded[0].created_at)).expect("a range");
    assert_eq!(history_within(&subject, &gopal, before_all).await, vec![], "nothing before the first");
}

pub async fn concurrent_repeats_of_one_key_apply_once(subject: Subject) {
    let gopal = user("gopal");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let subject = Arc::clone(&subject);
            let new_add = add(&gopal, "25.50", Some("the-one-transfer"));
            tokio::spawn(async move { subject.record_add(new_add).await })
        })
        .collect();
    let mut applied_ids = Vec::new();
    let mut replayed_ids = Vec::new();
    for task in tasks {
        match task.await.expect("the task ran").expect("every repeat succeeds") {
            AddOutcome::Applied(transaction) => applied_ids.push(transaction.id),
            AddOutcome::Replayed(transaction) => replayed_ids.push(transaction.id),
        }
    }
    assert_eq!(applied_ids.len(), 1, "exactly one of the concurrent repeats applies");
    assert!(replayed_ids.iter().all(|id| *id == applied_ids[0]), "every replay returns the applied transaction");
    assert_eq!(balance(&subject, &gopal).await, "25.50");
    assert_eq!(full_history(&subject, &gopal).await.len(), 1);
}

/// What a hammering sent to one user: the distinct key numbers and the count of unkeyed adds.
#[derive(Debug, Default)]
struct Sent {
    keys: std::collections::BTreeSet<usize>,
    unkeyed: i64,
}

/// Sends `adds_per_task` adds from each of `tasks` tasks, spread over `users`; every add carries a key
/// drawn from a small set per user, so many are repeats (a key always carries the same amount), and every
/// fifth step also sends an unkeyed add of one cent. Returns what was sent to each user.
async fn hammer(
    subject: &Subject,
    users: &[UserId],
    tasks: usize,
    adds_per_task: usize,
    keys_per_user: usize,
) -> HashMap<UserId, Sent> {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let subject = Arc::clone(subject);
            let users = users.to_vec();
            tokio::spawn(async move {
                for step in 0..adds_per_task {
                    let (user_index, key_number) = schedule_of(task, step, users.len(), keys_per_user);
                    let user_id = &users[user_index];
                    let keyed = NewAdd {
                        user_id: user_id.clone(),
                        amount: amount_for_key(key_number),
                        idempotency_key: Some(key(&format!("k-{key_number}"))),
                    };
                    subject.record_add(keyed).await.expect("every add succeeds");
                    if step % 5 == 0 {
                        let unkeyed =
                            NewAdd { user_id: user_id.clone(), amount: amount("0.01"), idempotency_key: None };
                        subject.record_add(unkeyed).await.expect("every add succeeds");
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("the task ran");
    }
    let mut sent: HashMap<UserId, Sent> = HashMap::new();
    for task in 0..tasks {
        for step in 0..adds_per_task {
            let (user_index, key_number) = schedule_of(task, step, users.len(), keys_per_user);
            let for_user = sent.entry(users[user_index].clone()).or_default();
            for_user.keys.insert(key_number);
            if step % 5 == 0 {
                for_user.unkeyed += 1;
            }
        }
    }
    sent
}

fn schedule_of(task: usize, step: usize, user_count: usize, keys_per_user: usize) -> (usize, usize) {
    ((task + step) % user_count, (task * 7 + step * 13) % keys_per_user)
}

/// Amounts above one cent, distinct per key number, so keyed and unkeyed adds can be told apart.
fn amount_for_key(key_number: usize) -> Amount {
    let cents = i64::try_from(key_number).expect("small") + 2;
    Amount::from_cents(cents).expect("a cent amount")
}

/// Every balance equals the sum of its history and the sum of what was sent, counting each key once.
async fn assert_hammered_ledger_is_exact(subject: &Subject, sent: &HashMap<UserId, Sent>) {
    let cent = amount("0.01");
    for (user_id, sent) in sent {
        let history = assert_ledger_is_consistent(subject, user_id).await;
        let keyed: BTreeMap<Amount, usize> =
            history.iter().filter(|t| t.amount != cent).fold(BTreeMap::new(), |mut counts, t| {
                *counts.entry(t.amount).or_default() += 1;
                counts
            });
        let expected_keyed: BTreeMap<Amount, usize> = sent.keys.iter().map(|k| (amount_for_key(*k), 1)).collect();
        assert_eq!(keyed, expected_keyed, "{user_id}: one transaction per distinct key");
        let unkeyed = history.iter().filter(|t| t.amount == cent).count();
        assert_eq!(i64::try_from(unkeyed).expect("small"), sent.unkeyed, "{user_id}: every unkeyed add counts");
        let expected: Decimal =
            sent.keys.iter().map(|k| amount_for_key(*k).as_decimal()).sum::<Decimal>() + Decimal::new(sent.unkeyed, 2);
        assert_eq!(subject.balance(user_id).await.expect("the store answers").as_decimal(), expected, "{user_id}");
    }
}

pub async fn concurrent_adds_to_one_hot_user_are_exact(subject: Subject) {
    let hot = vec![user("hot")];
    let sent = hammer(&subject, &hot, 16, 30, 40).await;
    assert_eq!(sent[&hot[0]].keys.len(), 40, "the schedule uses every key");
    assert_hammered_ledger_is_exact(&subject, &sent).await;
}

pub async fn concurrent_adds_to_many_users_are_exact(subject: Subject) {
    let users: Vec<UserId> = (0..20).map(|n| user(&format!("user-{n}"))).collect();
    let sent = hammer(&subject, &users, 16, 40, 10).await;
    assert_eq!(sent.len(), users.len(), "the schedule reaches every user");
    assert_hammered_ledger_is_exact(&subject, &sent).await;
}
