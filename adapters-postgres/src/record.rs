use chrono::{DateTime, Utc};
use domain::{
    AddOutcome, Amount, BalanceLimitExceeded, IdempotencyKey, NewAdd, RecordAddError, StorageError, Transaction,
    TransactionId, UserId,
};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::errors::{Failure, amount_from, balance_from, commit, outcome_unknown, storage_error, violated_constraint};
use crate::retry::retrying;

/// The columns every query of entries reads, in the order [`entry_from_row`] expects.
pub const ENTRY_COLUMNS: &str = "seq, id, user_id, amount, balance_after, created_at";

/// One statement in a transaction of its own: the account upsert takes the user's row lock and returns
/// the new balance, which the entry records as `balance_after`. If the key was used before, or the
/// balance would pass its limit, a constraint fails the statement and nothing is written. The explicit
/// transaction (rather than the statement's implicit one) is what lets a lost connection be told apart:
/// before COMMIT nothing was recorded and the add may run again; during COMMIT the outcome is unknown.
const RECORD_ADD: &str = "
WITH credited AS (
    INSERT INTO accounts AS account (user_id, balance) VALUES ($1, $2)
    ON CONFLICT (user_id) DO UPDATE SET balance = account.balance + EXCLUDED.balance, updated_at = now()
    RETURNING account.balance
)
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key)
SELECT $3, $1, $2, credited.balance, $4 FROM credited
RETURNING seq, id, user_id, amount, balance_after, created_at";

const ONE_PER_KEY: &str = "ledger_entries_one_per_key";
const BALANCE_WITHIN_LIMIT: &str = "accounts_balance_within_limit";

/// How often an add whose key's entry is not visible yet is looked for again.
const MAX_KEY_LOOKUPS: u32 = 5;

pub async fn record_add(pool: &PgPool, add: NewAdd) -> Result<AddOutcome, RecordAddError> {
    let mut lookups = 1;
    loop {
        let error = match retrying(pool, |_| false, || insert_entry(pool, &add)).await {
            Ok(transaction) => return Ok(AddOutcome::Applied(transaction)),
            Err(Failure::Corrupt(storage)) => return Err(storage.into()),
            Err(Failure::CommitUnanswered(error)) => return Err(outcome_unknown(error)),
            Err(Failure::Sql(error)) => error,
        };
        let constraint = violated_constraint(&error);
        if !matches!(constraint, Some(ONE_PER_KEY | BALANCE_WITHIN_LIMIT)) {
            return Err(storage_error(error).into());
        }
        // A repeat is answered from the original entry even when the balance has since reached its
        // limit, so the key is looked up before the limit is reported.
        if let Some(key) = &add.idempotency_key
            && let Some(original) = find_by_key(pool, &add.user_id, key).await?
        {
            return replay_or_reuse(original, add.amount);
        }
        if constraint == Some(BALANCE_WITHIN_LIMIT) {
            let balance = current_balance(pool, &add.user_id).await?;
            return Err(BalanceLimitExceeded { balance, amount: add.amount }.into());
        }
        // The key's entry was committed by the statement that beat this one, so it is normally found
        // above; reaching here means it is not visible yet, and another attempt will see it.
        if lookups >= MAX_KEY_LOOKUPS {
            return Err(storage_error(error).into());
        }
        lookups += 1;
    }
}

async fn insert_entry(pool: &PgPool, add: &NewAdd) -> Result<Transaction, Failure> {
    let mut transaction = pool.begin().await?;
    let row = sqlx::query(RECORD_ADD)
        .bind(add.user_id.as_str())
        .bind(add.amount.as_decimal())
        .bind(TransactionId::new_v7().as_uuid())
        .bind(add.idempotency_key.as_ref().map(IdempotencyKey::as_str))
        .fetch_one(&mut *transaction)
        .await?;
    let (_, recorded) = entry_from_row(&row).map_err(Failure::Corrupt)?;
    commit(transaction).await?;
    Ok(recorded)
}

fn replay_or_reuse(original: Transaction, amount: Amount) -> Result<AddOutcome, RecordAddError> {
    if original.amount == amount {
        Ok(AddOutcome::Replayed(original))
    } else {
        Err(RecordAddError::KeyReused { original_amount: original.amount })
    }
}

async fn find_by_key(
    pool: &PgPool,
    user_id: &UserId,
    key: &IdempotencyKey,
) -> Result<Option<Transaction>, StorageError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE user_id = $1 AND idempotency_key = $2");
    let row = sqlx::query(&sql)
        .bind(user_id.as_str())
        .bind(key.as_str())
        .fetch_optional(pool)
        .await
        .map_err(storage_error)?;
    row.map(|row| entry_from_row(&row).map(|(_, transaction)| transaction)).transpose()
}

async fn current_balance(pool: &PgPool, user_id: &UserId) -> Result<domain::Balance, StorageError> {
    let balance: Decimal = sqlx::query_scalar("SELECT balance FROM accounts WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_one(pool)
        .await
        .map_err(storage_error)?;
    balance_from(balance)
}

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
