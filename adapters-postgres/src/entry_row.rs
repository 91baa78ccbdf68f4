//! Ledger entries and accounts as rows: the columns every query of entries reads, and their decoding.

use chrono::{DateTime, Utc};
use domain::{
    AccountState, ChainHead, EntryHash, IdempotencyKey, NewAdd, NewEntry, Sequence, StorageError, Transaction,
    TransactionId, UserId,
};
use rust_decimal::Decimal;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::errors::{amount_from, balance_from, storage_error};

/// The columns every query of entries reads, as [`entry_from_row`] expects them.
pub const ENTRY_COLUMNS: &str = "id, user_id, sequence, amount, balance_after, created_at, hash";

/// The entries recorded under the (user, key) pairs of the arrays `$1` and `$2`, with their keys, one index
/// lookup each. A plan is cached per connection, and one made while the table was small would keep a
/// join of the pairs as a hash join over a sequential scan of every entry as the ledger grows; a lateral
/// subquery with a `LIMIT` is never turned into such a join. A macro, so that statements can `concat!` it.
macro_rules! entries_under_keys {
    () => {
        "SELECT entry.* FROM unnest($1::text[], $2::text[]) AS wanted (wanted_user, wanted_key)
         CROSS JOIN LATERAL (
             SELECT id, user_id, sequence, amount, balance_after, created_at, hash, idempotency_key
             FROM ledger_entries WHERE user_id = wanted_user AND idempotency_key = wanted_key LIMIT 1
         ) AS entry"
    };
}
pub(crate) use entries_under_keys;

/// The (user, key) pairs of the keyed adds, as the arrays `$1` and `$2` of [`entries_under_keys`].
pub fn keys_of(adds: &[NewAdd]) -> (Vec<&str>, Vec<&str>) {
    adds.iter().filter_map(|add| Some((add.user_id.as_str(), add.idempotency_key.as_ref()?.as_str()))).unzip()
}

/// An entry found under its key, from a row of [`entries_under_keys`].
pub fn keyed_entry_from_row(row: &PgRow) -> Result<(IdempotencyKey, Transaction), StorageError> {
    let transaction = entry_from_row(row)?;
    let key: &str = row.try_get("idempotency_key").map_err(storage_error)?;
    let key = IdempotencyKey::parse(key.as_bytes()).map_err(|invalid| StorageError::Failed(Box::new(invalid)))?;
    Ok((key, transaction))
}

/// An entry, from a row of [`ENTRY_COLUMNS`]. Every value is checked again: a row that breaks a rule is
/// reported as a store failure, never passed on.
pub fn entry_from_row(row: &PgRow) -> Result<Transaction, StorageError> {
    let corrupt = |invalid: &dyn std::fmt::Display| StorageError::Failed(invalid.to_string().into());
    let id: Uuid = row.try_get("id").map_err(storage_error)?;
    let user_id: String = row.try_get("user_id").map_err(storage_error)?;
    let sequence: i64 = row.try_get("sequence").map_err(storage_error)?;
    let amount: Decimal = row.try_get("amount").map_err(storage_error)?;
    let balance_after: Decimal = row.try_get("balance_after").map_err(storage_error)?;
    let created_at: DateTime<Utc> = row.try_get("created_at").map_err(storage_error)?;
    let hash: &[u8] = row.try_get("hash").map_err(storage_error)?;
    Ok(Transaction {
        id: TransactionId::from_uuid(id),
        user_id: UserId::parse(&user_id).map_err(|invalid| corrupt(&invalid))?,
        sequence: Sequence::from_i64(sequence).map_err(|invalid| corrupt(&invalid))?,
        amount: amount_from(amount)?,
        balance_after: balance_from(balance_after)?,
        created_at,
        hash: EntryHash::from_slice(hash).map_err(|invalid| corrupt(&invalid))?,
    })
}

/// An account's state, from a row with `balance, last_sequence, last_hash, last_created_at`.
pub fn account_from_row(row: &PgRow) -> Result<AccountState, StorageError> {
    let corrupt = |invalid: &dyn std::fmt::Display| StorageError::Failed(invalid.to_string().into());
    let balance = balance_from(row.try_get("balance").map_err(storage_error)?)?;
    let last_sequence: i64 = row.try_get("last_sequence").map_err(storage_error)?;
    if last_sequence == 0 {
        return Ok(AccountState { balance, head: None });
    }
    let sequence = Sequence::from_i64(last_sequence).map_err(|invalid| corrupt(&invalid))?;
    let hash =
        EntryHash::from_slice(row.try_get("last_hash").map_err(storage_error)?).map_err(|invalid| corrupt(&invalid))?;
    let created_at: Option<DateTime<Utc>> = row.try_get("last_created_at").map_err(storage_error)?;
    let created_at = created_at.ok_or_else(|| corrupt(&"an account with entries has no last_created_at"))?;
    Ok(AccountState { balance, head: Some(ChainHead { sequence, hash, created_at }) })
}

/// New entries as the arrays a statement `unnest`s into rows of `ledger_entries`, one per column.
pub struct EntryColumns<'a> {
    pub ids: Vec<Uuid>,
    pub users: Vec<&'a str>,
    pub sequences: Vec<i64>,
    pub amounts: Vec<Decimal>,
    pub balances_after: Vec<Decimal>,
    pub keys: Vec<Option<&'a str>>,
    pub times: Vec<DateTime<Utc>>,
    pub hashes: Vec<&'a [u8]>,
}

impl<'a> EntryColumns<'a> {
    pub fn of(entries: &'a [NewEntry]) -> Self {
        let recorded = || entries.iter().map(|entry| &entry.transaction);
        Self {
            ids: recorded().map(|t| t.id.as_uuid()).collect(),
            users: recorded().map(|t| t.user_id.as_str()).collect(),
            sequences: recorded().map(|t| t.sequence.to_i64()).collect(),
            amounts: recorded().map(|t| t.amount.as_decimal()).collect(),
            balances_after: recorded().map(|t| t.balance_after.as_decimal()).collect(),
            keys: entries.iter().map(|entry| entry.idempotency_key.as_ref().map(IdempotencyKey::as_str)).collect(),
            times: recorded().map(|t| t.created_at).collect(),
            hashes: recorded().map(|t| &t.hash.as_bytes()[..]).collect(),
        }
    }
}

impl<'a> EntryColumns<'a> {
    /// Binds the arrays to the next eight parameters, in the order of the columns above.
    pub fn bind_to<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.ids)
            .bind(self.users)
            .bind(self.sequences)
            .bind(self.amounts)
            .bind(self.balances_after)
            .bind(self.keys)
            .bind(self.times)
            .bind(self.hashes)
    }
}

/// Accounts' new states as arrays, one per column of `accounts`; only accounts with entries have a head,
/// and only those are written.
pub struct HeadColumns<'a> {
    pub users: Vec<&'a UserId>,
    pub balances: Vec<Decimal>,
    pub last_sequences: Vec<i64>,
    pub last_hashes: Vec<&'a [u8]>,
    pub last_times: Vec<DateTime<Utc>>,
}

impl<'a> HeadColumns<'a> {
    pub fn of(final_states: &'a [(UserId, AccountState)]) -> Self {
        let heads: Vec<(&UserId, &AccountState, &ChainHead)> =
            final_states.iter().filter_map(|(user, state)| Some((user, state, state.head.as_ref()?))).collect();
        Self {
            users: heads.iter().map(|(user, _, _)| *user).collect(),
            balances: heads.iter().map(|(_, state, _)| state.balance.as_decimal()).collect(),
            last_sequences: heads.iter().map(|(_, _, head)| head.sequence.to_i64()).collect(),
            last_hashes: heads.iter().map(|(_, _, head)| &head.hash.as_bytes()[..]).collect(),
            last_times: heads.iter().map(|(_, _, head)| head.created_at).collect(),
        }
    }

    /// The users, as the text the statements bind.
    pub fn user_ids(&self) -> Vec<&'a str> {
        self.users.iter().map(|user| user.as_str()).collect()
    }
}
