//! Ledger entries as rows: the columns every query of entries reads, and their decoding.

use chrono::{DateTime, Utc};
use domain::{StorageError, Transaction, TransactionId, UserId};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::{amount_from, balance_from, storage_error};

/// The columns every query of entries reads, in the order [`entry_from_row`] expects.
pub const ENTRY_COLUMNS: &str = "seq, id, user_id, amount, balance_after, created_at";

/// An entry and its position, from a row of [`ENTRY_COLUMNS`]. Every value is checked again: a row that
/// breaks a rule is reported as a store failure, never passed on.
pub fn entry_from_row(row: &PgRow) -> Result<(i64, Transaction), StorageError> {
    let seq: i64 = row.try_get("seq").map_err(storage_error)?;
    let id: Uuid = row.try_get("id").map_err(storage_error)?;
    let user_id: String = row.try_get("user_id").map_err(storage_error)?;
    let amount: Decimal = row.try_get("amount").map_err(storage_error)?;
    let balance_after: Decimal = row.try_get("balance_after").map_err(storage_error)?;
    let created_at: DateTime<Utc> = row.try_get("created_at").map_err(storage_error)?;
    let transaction = Transaction {
        id: TransactionId::from_uuid(id),
        user_id: UserId::parse(&user_id).map_err(|invalid| StorageError::Failed(Box::new(invalid)))?,
        amount: amount_from(amount)?,
        balance_after: balance_from(balance_after)?,
        created_at,
    };
    Ok((seq, transaction))
}
