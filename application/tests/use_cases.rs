//! The use cases against the in-memory store (behaviour) and against mocks of the port (failures the
//! in-memory store cannot produce on demand).

use std::sync::Arc;

use adapters_memory::InMemoryLedger;
use application::Ledger;
use domain::{
    Amount, HistoryPage, HistoryRequest, IdempotencyKey, MockLedgerRepository, NewAdd, PageNumber, RecordAddError,
    Sequence, StorageError, UserId,
};

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("valid user id")
}

fn add(user_id: &str, amount: &str, key: Option<&str>) -> NewAdd {
    NewAdd {
        user_id: user(user_id),
        amount: Amount::parse(amount).expect("valid amount"),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k.as_bytes()).expect("valid key")),
    }
}

fn in_memory() -> Ledger {
    Ledger::new(Arc::new(InMemoryLedger::new()))
}

fn unavailable() -> StorageError {
    StorageError::Unavailable("connection refused".into())
}

#[tokio::test]
async fn an_add_is_seen_in_balance_and_history() {
    let ledger = in_memory();
    let receipt = ledger.add(add("gopal", "500", None)).await.expect("add succeeds");
    assert!(!receipt.is_replayed());
    assert_eq!(receipt.transaction().balance_after.to_string(), "500.00");
    assert_eq!(ledger.balance(&user("gopal")).await.expect("balance").to_string(), "500.00");
    let view = ledger.history(&user("gopal"), HistoryRequest::Page(PageNumber::FIRST)).await.expect("history");
    assert_eq!(view.transactions, vec![receipt.transaction().clone()]);
    assert_eq!(view.per_page, 10);
    assert_eq!(view.next, None);
}

#[tokio::test]
async fn a_repeated_key_is_a_replayed_receipt_of_the_same_transaction() {
    let ledger = in_memory();
    let first = ledger.add(add("gopal", "12.34", Some("k1"))).await.expect("add succeeds");
    let again = ledger.add(add("gopal", "12.34", Some("k1"))).await.expect("repeat succeeds");
    assert!(again.is_replayed());
    assert_eq!(again.transaction(), first.transaction());
    assert_eq!(ledger.balance(&user("gopal")).await.expect("balance").to_string(), "12.34");
}

#[tokio::test]
async fn a_key_reused_with_another_amount_is_refused_with_the_original_amount() {
    let ledger = in_memory();
    ledger.add(add("gopal", "10", Some("k1"))).await.expect("add succeeds");
    match ledger.add(add("gopal", "20", Some("k1"))).await {
        Err(RecordAddError::KeyReused { original_amount }) => assert_eq!(original_amount.to_string(), "10.00"),
        other => panic!("expected KeyReused, got {other:?}"),
    }
    assert_eq!(ledger.balance(&user("gopal")).await.expect("balance").to_string(), "10.00");
}

#[tokio::test]
async fn history_pages_link_to_the_next_page_by_number_and_by_cursor() {
    let ledger = in_memory();
    for _ in 0..25 {
        ledger.add(add("gopal", "1", None)).await.expect("add succeeds");
    }
    let first = ledger.history(&user("gopal"), HistoryRequest::Page(PageNumber::FIRST)).await.expect("page 1");
    let next = first.next.expect("25 transactions make 3 pages");
    assert_eq!(next.page.get(), 2);
    assert_eq!(next.cursor.page.get(), 2);
    let by_cursor = ledger.history(&user("gopal"), HistoryRequest::After(next.cursor)).await.expect("page 2");
    let by_number = ledger.history(&user("gopal"), HistoryRequest::Page(next.page)).await.expect("page 2");
    assert_eq!(by_cursor, by_number);
    assert_eq!(by_cursor.page.get(), 2);
    let last = ledger.history(&user("gopal"), HistoryRequest::After(by_cursor.next.expect("page 3").cursor)).await;
    let last = last.expect("page 3");
    assert_eq!((last.page.get(), last.transactions.len(), last.next), (3, 5, None));
}

#[tokio::test]
async fn an_unavailable_store_fails_an_add_as_a_storage_error() {
    let mut repository = MockLedgerRepository::new();
    repository.expect_record_add().times(1).returning(|_| Err(RecordAddError::Storage(unavailable())));
    let ledger = Ledger::new(Arc::new(repository));
    let result = ledger.add(add("gopal", "5", Some("k1"))).await;
    assert!(matches!(result, Err(RecordAddError::Storage(StorageError::Unavailable(_)))), "{result:?}");
}

#[tokio::test]
async fn a_conflict_found_by_the_store_is_a_key_reuse_not_a_storage_error() {
    // The store sees a concurrent add of another amount under the same key only at commit time.
    let mut repository = MockLedgerRepository::new();
    repository
        .expect_record_add()
        .times(1)
        .returning(|_| Err(RecordAddError::KeyReused { original_amount: Amount::parse("7").expect("valid amount") }));
    let ledger = Ledger::new(Arc::new(repository));
    let result = ledger.add(add("gopal", "5", Some("k1"))).await;
    assert!(matches!(result, Err(RecordAddError::KeyReused { .. })), "{result:?}");
}

#[tokio::test]
async fn an_unavailable_store_fails_balance_and_history_reads() {
    let mut repository = MockLedgerRepository::new();
    repository.expect_balance().times(1).returning(|_| Err(unavailable()));
    repository.expect_history().times(1).returning(|_, _| Err(unavailable()));
    let ledger = Ledger::new(Arc::new(repository));
    assert!(matches!(ledger.balance(&user("gopal")).await, Err(StorageError::Unavailable(_))));
    let history = ledger.history(&user("gopal"), HistoryRequest::Page(PageNumber::FIRST)).await;
    assert!(matches!(history, Err(StorageError::Unavailable(_))));
}

#[tokio::test]
async fn the_last_numberable_page_has_no_next_page_even_if_the_store_has_more() {
    let mut repository = MockLedgerRepository::new();
    repository
        .expect_history()
        .times(1)
        .returning(|_, _| Ok(HistoryPage { transactions: vec![], continues_before: Some(Sequence::FIRST) }));
    let ledger = Ledger::new(Arc::new(repository));
    let last = PageNumber::parse(&u32::MAX.to_string()).expect("valid page");
    let view = ledger.history(&user("gopal"), HistoryRequest::Page(last)).await.expect("history");
    assert_eq!(view.next, None);
}
