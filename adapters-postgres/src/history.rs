//! History pages and balances at a time. Sequences have no gaps and recording times never go back within
//! a user, so a time range is a range of sequences, found with one descent of `ledger_entries_user_time`
//! per end, and page N of it starts a computable number of sequences below its newest entry: every page
//! is a range scan of `ledger_entries_user_sequence` that starts where the page starts, however deep.

use chrono::{DateTime, SubsecRound, Utc};
use domain::{Balance, HistoryPage, HistoryQuery, HistoryRequest, PAGE_SIZE, StorageError, UserId};
use sqlx::{PgPool, Row};

use crate::entry_row::{ENTRY_COLUMNS, entry_from_row};
use crate::errors::{balance_from, storage_error};

/// `$1` user, `$2` first time in the range or NULL, `$3` first time past it or NULL, `$4` how many of the
/// range's newest entries to skip, `$5` the highest sequence the page may show, `$6` how many rows to read.
/// A NULL end (a user or a range without entries) selects nothing.
fn page_sql() -> String {
    format!(
        "
WITH newest AS (
    SELECT CASE WHEN $3::timestamptz IS NULL
        THEN (SELECT last_sequence FROM accounts WHERE user_id = $1)
        ELSE (SELECT sequence FROM ledger_entries WHERE user_id = $1 AND created_at < $3
              ORDER BY created_at DESC, sequence DESC LIMIT 1)
    END AS sequence
), oldest AS (
    SELECT CASE WHEN $2::timestamptz IS NULL
        THEN 1
        ELSE (SELECT sequence FROM ledger_entries WHERE user_id = $1 AND created_at >= $2
              ORDER BY created_at, sequence LIMIT 1)
    END AS sequence
)
SELECT {ENTRY_COLUMNS} FROM ledger_entries
WHERE user_id = $1
  AND sequence <= (SELECT sequence FROM newest) - $4
  AND sequence <= $5
  AND sequence >= (SELECT sequence FROM oldest)
ORDER BY sequence DESC
LIMIT $6"
    )
}

/// One page of history. One row more than a page is read to learn whether another page follows.
pub async fn page(pool: &PgPool, user_id: &UserId, query: HistoryQuery) -> Result<HistoryPage, StorageError> {
    let (skipped, highest) = match query.request {
        HistoryRequest::Page(page) => (i64::try_from(page.offset()).unwrap_or(i64::MAX), i64::MAX),
        HistoryRequest::After(cursor) => (0, cursor.before.to_i64() - 1),
    };
    let look_ahead = i64::from(PAGE_SIZE) + 1;
    let rows = sqlx::query(&page_sql())
        .bind(user_id.as_str())
        .bind(query.range.first_microsecond())
        .bind(query.range.end_microsecond())
        .bind(skipped)
        .bind(highest)
        .bind(look_ahead)
        .fetch_all(pool)
        .await
        .map_err(storage_error)?;

    let mut transactions = rows.iter().map(entry_from_row).collect::<Result<Vec<_>, _>>()?;
    let continues_before = if transactions.len() > PAGE_SIZE as usize {
        transactions.truncate(PAGE_SIZE as usize);
        transactions.last().map(|last| last.sequence)
    } else {
        None
    };
    Ok(HistoryPage { transactions, continues_before })
}

/// The `balance_after` of the user's last entry recorded at or before `at`; zero before the first.
pub async fn balance_at(pool: &PgPool, user_id: &UserId, at: DateTime<Utc>) -> Result<Balance, StorageError> {
    // Recording times are whole microseconds, so those at or before `at` are those at or before its
    // microsecond (PostgreSQL keeps no more).
    let row = sqlx::query(
        "SELECT balance_after FROM ledger_entries WHERE user_id = $1 AND created_at <= $2
         ORDER BY created_at DESC, sequence DESC LIMIT 1",
    )
    .bind(user_id.as_str())
    .bind(at.trunc_subsecs(6))
    .fetch_optional(pool)
    .await
    .map_err(storage_error)?;
    match row {
        Some(row) => balance_from(row.try_get("balance_after").map_err(storage_error)?),
        None => Ok(Balance::ZERO),
    }
}
