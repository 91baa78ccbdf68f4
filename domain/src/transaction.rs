use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use uuid::Uuid;

use crate::{Amount, Balance, EntryHash, UserId};

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

/// Where a transaction stands in its user's history: the user's first transaction is 1, the next 2, and
/// so on with no gaps, in the order the ledger recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sequence(u64);

/// A number that cannot be a [`Sequence`]: sequences start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a transaction's sequence starts at 1, not {0}")]
pub struct InvalidSequence(pub i128);

impl Sequence {
    /// A user's first transaction.
    pub const FIRST: Self = Self(1);

    /// A sequence number as a store keeps it.
    pub fn new(number: u64) -> Result<Self, InvalidSequence> {
        if number == 0 { Err(InvalidSequence(0)) } else { Ok(Self(number)) }
    }

    /// A sequence number from a signed store column.
    pub fn from_i64(number: i64) -> Result<Self, InvalidSequence> {
        u64::try_from(number).map_err(|_| InvalidSequence(i128::from(number))).and_then(Self::new)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The number for a signed store column. Sequences never come near `i64::MAX`.
    pub fn to_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// The sequence of the transaction after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Sequence {
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
    /// Its place in the user's history.
    pub sequence: Sequence,
    /// The money added.
    pub amount: Amount,
    /// The balance right after this entry, as on a bank statement.
    pub balance_after: Balance,
    /// When the ledger recorded the entry, to the microsecond; never earlier than the user's entry before.
    pub created_at: DateTime<Utc>,
    /// The link of this entry in the user's hash chain: see [`EntryHash::chain`].
    pub hash: EntryHash,
}

impl Transaction {
    /// The hash this transaction must have if it follows an entry whose hash is `previous`
    /// ([`EntryHash::GENESIS`] for the first): its own `hash` field plays no part.
    pub fn chained_hash(&self, previous: &EntryHash) -> EntryHash {
        EntryHash::chain(previous, self)
    }
}

/// The current time at the precision every store keeps (PostgreSQL's `timestamptz` is to the
/// microsecond), so an entry reads back exactly as it was first answered.
pub fn recording_time() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A recording time as the ledger writes it everywhere (answers, history, the hash chain): RFC 3339 in
/// UTC with exactly six decimals of a second, e.g. `2026-11-29T10:00:00.123456Z`.
pub fn format_recording_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_start_at_one() {
        assert_eq!(Sequence::new(0), Err(InvalidSequence(0)));
        assert_eq!(Sequence::from_i64(-3), Err(InvalidSequence(-3)));
        assert_eq!(Sequence::from_i64(1), Ok(Sequence::FIRST));
        assert_eq!(Sequence::FIRST.next().get(), 2);
    }

    #[test]
    fn recording_times_always_have_six_decimals() {
        let whole_second = DateTime::parse_from_rfc3339("2026-11-29T10:00:00+02:00").expect("valid").to_utc();
        assert_eq!(format_recording_time(&whole_second), "2026-11-29T08:00:00.000000Z");
    }
}
