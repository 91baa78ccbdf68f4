use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::{Amount, Balance, UserId};

/// The id of a recorded transaction: a UUIDv7, so ids sort roughly by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(Uuid);

impl TransactionId {
    /// A new id from the current time.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id of a transaction a store gives back.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID behind the id.
    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One entry of the ledger: money added to a user's balance. Entries are never changed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The entry's id.
    pub id: TransactionId,
    /// Whose balance the entry changed.
    pub user_id: UserId,
    /// The money added.
    pub amount: Amount,
    /// The balance right after this entry, as on a bank statement.
    pub balance_after: Balance,
    /// When the ledger recorded the entry, to the microsecond.
    pub created_at: DateTime<Utc>,
}

/// The current time at the precision every store keeps (PostgreSQL's `timestamptz` is to the
/// microsecond), so an entry reads back exactly as it was first answered.
pub fn recording_time() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
