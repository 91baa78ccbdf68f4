//! `bitburst verify`: the whole ledger checked against its rules, from one consistent snapshot, streaming.
//! Entries are read in (user, sequence) order with each user's account beside them, so memory holds one
//! user's check at a time, never the table. Each user's history goes through the domain's
//! [`HistoryAudit`], the same rules the service records by.

use domain::{AccountState, Finding, HistoryAudit, UserId, error_chain};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

use crate::database_url::DatabaseUrl;
use crate::entry_row::{ENTRY_COLUMNS, account_from_row, entry_from_row};
use crate::primary::is_standby;

/// Every entry with its account (NULL columns when the account row is missing), in the order each
/// user's history is checked.
fn entries_sql() -> String {
    let entry_columns: Vec<String> = ENTRY_COLUMNS.split(", ").map(|column| format!("e.{column}")).collect();
    format!(
        "SELECT {}, a.user_id IS NOT NULL AS has_account, a.balance, a.last_sequence, a.last_hash, a.last_created_at
         FROM ledger_entries e LEFT JOIN accounts a ON a.user_id = e.user_id
         ORDER BY e.user_id, e.sequence",
        entry_columns.join(", ")
    )
}

/// Accounts that have no entries: each must be empty.
const ACCOUNTS_WITHOUT_ENTRIES: &str = "
SELECT user_id, balance, last_sequence, last_hash, last_created_at FROM accounts a
WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.user_id = a.user_id)";

/// A connection to the URL's first host that is a primary, or else to the first that answers: with
/// several hosts (the same URLs the service takes), the check reads from the primary when one is up.
async fn connect_for_reading(url: &str) -> Result<PgConnection, VerifyError> {
    let mut fallback = None;
    let mut last_error = None;
    for host in DatabaseUrl::parse(url)?.hosts {
        let options = host.options.application_name("bitburst verify").options([("statement_timeout", "0")]);
        match options.connect().await {
            Ok(mut connection) => match is_standby(&mut connection).await {
                Ok(false) => return Ok(connection),
                Ok(true) => fallback = fallback.or(Some(connection)),
                Err(error) => last_error = Some(error),
            },
            Err(error) => last_error = Some(error),
        }
    }
    match (fallback, last_error) {
        (Some(standby), _) => Ok(standby),
        (None, Some(error)) => Err(VerifyError::Read(error)),
        (None, None) => Err(VerifyError::Read(sqlx::Error::Configuration("DATABASE_URL names no host".into()))),
    }
}

/// Why the ledger could not be checked (as opposed to checked and found wrong).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Url(#[from] crate::ConnectError),
    #[error("the ledger could not be read")]
    Read(#[from] sqlx::Error),
}

/// What a check found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Users with an account or entries.
    pub users: u64,
    /// Entries read.
    pub transactions: u64,
    /// Every broken rule, naming the user and, where it is one entry's, the entry.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether every rule holds.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A check of the ledger, open on one snapshot.
#[derive(Debug)]
pub struct LedgerVerification {
    connection: PgConnection,
    /// How many entries the snapshot holds, for progress.
    pub transactions: u64,
}

impl LedgerVerification {
    /// Connects (without a statement timeout: a check reads everything) and opens a read-only snapshot.
    pub async fn begin(url: &str) -> Result<Self, VerifyError> {
        let mut connection = connect_for_reading(url).await?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut connection).await?;
        let transactions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ledger_entries").fetch_one(&mut connection).await?;
        Ok(Self { connection, transactions: u64::try_from(transactions).unwrap_or(0) })
    }

    /// Reads every entry and account of the snapshot, calling `progress` with the entries read so far
    /// every few thousand entries and at the end.
    pub async fn run(mut self, mut progress: impl FnMut(u64)) -> Result<VerifyReport, VerifyError> {
        let mut report = VerifyReport::default();
        // The user being checked, as stored, with the check and the account.
        let mut current: Option<(String, HistoryAudit, Option<AccountState>)> = None;
        let sql = entries_sql();
        let mut rows = sqlx::query(&sql).fetch(&mut self.connection);
        while let Some(row) = rows.try_next().await? {
            let user_text: String = row.try_get("user_id")?;
            if current.as_ref().is_none_or(|(user, _, _)| *user != user_text) {
                if let Some((_, audit, account)) = current.take() {
                    report.findings.extend(audit.finish(account));
                }
                report.users += 1;
                let (audit, account) = start_user(&user_text, &row);
                current = Some((user_text, audit, account));
            }
            if let Some((_, audit, _)) = current.as_mut() {
                match entry_from_row(&row) {
                    Ok(entry) => audit.check(entry),
                    Err(unreadable) => audit.unreadable(error_chain(&unreadable)),
                }
            }
            report.transactions += 1;
            if report.transactions.is_multiple_of(4096) {
                progress(report.transactions);
            }
        }
        drop(rows);
        if let Some((_, audit, account)) = current.take() {
            report.findings.extend(audit.finish(account));
        }
        progress(report.transactions);

        let mut accounts = sqlx::query(ACCOUNTS_WITHOUT_ENTRIES).fetch(&mut self.connection);
        while let Some(row) = accounts.try_next().await? {
            let user_text: String = row.try_get("user_id")?;
            report.users += 1;
            let (audit, account) = start_user(&user_text, &row);
            report.findings.extend(audit.finish(account));
        }
        drop(accounts);
        sqlx::raw_sql("COMMIT").execute(&mut self.connection).await?;
        let _ = self.connection.close().await;
        Ok(report)
    }
}

/// The check of the user a row belongs to, with the row's account (`None` when the row says there is
/// none). A user id or account no rule allows is a finding, and the check goes on.
fn start_user(user_text: &str, row: &PgRow) -> (HistoryAudit, Option<AccountState>) {
    // A stored user id that breaks the rules cannot be a `UserId`: report it under a stand-in name.
    let user_id = UserId::parse(user_text).unwrap_or_else(|_| unreadable_user());
    let mut audit = HistoryAudit::new(user_id);
    if UserId::parse(user_text).is_err() {
        audit.unreadable(format!("the user id {user_text:?} breaks the rules for user ids"));
    }
    let has_account: bool = row.try_get("has_account").unwrap_or(true);
    let account = if has_account {
        match account_from_row(row) {
            Ok(account) => Some(account),
            Err(unreadable) => {
                audit.unreadable(format!("the account: {}", error_chain(&unreadable)));
                Some(AccountState::NEW)
            }
        }
    } else {
        None
    };
    (audit, account)
}

fn unreadable_user() -> UserId {
    UserId::parse("unreadable-user-id").unwrap_or_else(|_| unreachable!("a valid literal"))
}
