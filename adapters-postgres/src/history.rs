use domain::{HistoryPage, HistoryRequest, LedgerPosition, PAGE_SIZE, StorageError, UserId};
use sqlx::PgPool;

use crate::entry_row::{ENTRY_COLUMNS, entry_from_row};
use crate::errors::storage_error;

/// One page of history. One row more than a page is read to learn whether another page follows.
pub async fn page(pool: &PgPool, user_id: &UserId, request: HistoryRequest) -> Result<HistoryPage, StorageError> {
    let look_ahead = i64::from(PAGE_SIZE) + 1;
    let rows = match request {
        HistoryRequest::Page(page) => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3"
            );
            let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
            sqlx::query(&sql).bind(user_id.as_str()).bind(look_ahead).bind(offset).fetch_all(pool).await
        }
        HistoryRequest::After(cursor) => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            );
            sqlx::query(&sql).bind(user_id.as_str()).bind(cursor.before.get()).bind(look_ahead).fetch_all(pool).await
        }
    }
    .map_err(storage_error)?;

    let mut entries = rows.iter().map(entry_from_row).collect::<Result<Vec<_>, _>>()?;
    let continues_before = if entries.len() > PAGE_SIZE as usize {
        entries.truncate(PAGE_SIZE as usize);
        entries.last().map(|(seq, _)| LedgerPosition::new(*seq))
    } else {
        None
    };
    Ok(HistoryPage {
        transactions: entries.into_iter().map(|(_, transaction)| transaction).collect(),
        continues_before,
    })
}
