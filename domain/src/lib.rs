//! The BitBurst ledger, free of I/O.
//!
//! Every value here is parsed, not validated: a [`UserId`], [`Amount`], [`Balance`] or
//! [`IdempotencyKey`] that exists obeys the rules of the API contract, so code that takes one never
//! checks it again. [`decide_adds`] is the one ledger rule for adds (built on [`Balance::credit`]),
//! and [`LedgerRepository`] is the port through which the application reaches storage.

mod add_decision;
mod audit;
mod entry_hash;
mod history;
mod idempotency_key;
mod money;
mod repository;
mod transaction;
mod user_id;

pub use add_decision::{AccountState, AddsDecided, ChainHead, Decision, NewEntry, RecordedKeys, Refusal, decide_adds};
pub use audit::{Finding, HistoryAudit, Problem};
pub use entry_hash::{EntryHash, InvalidEntryHash, canonical_encoding};
pub use history::{
    HistoryCursor, HistoryPage, HistoryQuery, HistoryRequest, InvalidTimeRange, PAGE_SIZE, PageNumber, PageNumberError,
    TimeRange,
};
pub use idempotency_key::{IdempotencyKey, IdempotencyKeyError};
pub use money::{Amount, AmountError, Balance, BalanceLimitExceeded, InvalidBalance, MAX_AMOUNT, MAX_BALANCE};
#[cfg(feature = "mocks")]
pub use repository::MockLedgerRepository;
pub use repository::{AddOutcome, LedgerRepository, NewAdd, RecordAddError, StorageCause, StorageError, error_chain};
pub use transaction::{InvalidSequence, Sequence, Transaction, TransactionId, format_recording_time, recording_time};
pub use user_id::{UserId, UserIdError};
