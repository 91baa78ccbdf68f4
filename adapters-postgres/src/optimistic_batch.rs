//! Recording a batch of adds in two statements and no lock held between them: read the batch's accounts
//! and the entries already recorded under its keys, decide every add with the ledger's rule, then write
//! the entries and the accounts in one statement, which is its own transaction and commits by itself.
//!
//! The write applies a user's adds only if the user's account is still as it was read (the same last
//! sequence, or still no account at all) and the row is not locked by anyone else (`SKIP LOCKED`): then
//! the decision stands, because every add to an account moves its last sequence. A user whose account
//! moved (another instance recorded an add) or is locked (an operator's transaction, a migration) is not
//! written, and its adds are set aside to [`crate::batch`], which waits for the row lock; the other users
//! of the batch never wait for it. The unique indexes on `(user_id, sequence)` and `(user_id,
//! idempotency_key)` refuse whatever a bug in this reasoning would let through.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::{AccountState, AddOutcome, IdempotencyKey, NewAdd, RecordAddError, StorageError, Transaction, UserId};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};

use crate::batch::Deadlines;
use crate::batch_plan::{BatchPlan, plan};
use crate::collector::Handled;
use crate::entry_row::{
    EntryColumns, HeadColumns, account_from_row, entries_under_keys, keyed_entry_from_row, keys_of,
};
use crate::errors::{Failure, NoAnswer, autocommit_failure, is_retryable_conflict, violated_constraint};
use crate::retry::retrying;

type Answer = Result<AddOutcome, RecordAddError>;

/// The database's clock, the batch's accounts, and the entries recorded under the batch's keys, one row
/// each, told apart by `kind`. The clock is one for every instance, so a user's times do not depend on
/// which instance recorded an add.
const READ_ACCOUNTS_AND_KEYS: &str = concat!(
    "SELECT 'clock' AS kind, NULL::text AS user_id, NULL::numeric AS balance, NULL::bigint AS last_sequence,
            NULL::bytea AS last_hash, NULL::timestamptz AS last_created_at, NULL::uuid AS id,
            NULL::bigint AS sequence, NULL::numeric AS amount, NULL::numeric AS balance_after,
            NULL::timestamptz AS created_at, NULL::bytea AS hash, NULL::text AS idempotency_key,
            clock_timestamp() AS now
     UNION ALL
     SELECT 'account', user_id, balance, last_sequence, last_hash, last_created_at,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM accounts WHERE user_id = ANY($3)
     UNION ALL
     SELECT 'entry', user_id, NULL, NULL, NULL, NULL,
            id, sequence, amount, balance_after, created_at, hash, idempotency_key, NULL
     FROM (",
    entries_under_keys!(),
    ") AS under_keys"
);

/// Writes each user whose account is still as read and not locked elsewhere (`expected_sequence` NULL: no
/// account was read, and one is created), and inserts the entries of exactly those users. Returns them.
const WRITE_UNCHANGED_ACCOUNTS: &str = "
WITH head AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::numeric[], $4::bigint[], $5::bytea[], $6::timestamptz[])
        AS head (user_id, expected_sequence, balance, last_sequence, last_hash, last_created_at)
), claimed AS (
    -- One index descent per user; a join with `head` here would search the whole array once per user.
    SELECT user_id, last_sequence FROM accounts WHERE user_id = ANY($1)
    FOR UPDATE SKIP LOCKED
), unchanged AS (
    SELECT head.* FROM head JOIN claimed USING (user_id)
    WHERE claimed.last_sequence = head.expected_sequence
), updated AS (
    UPDATE accounts AS account
    SET balance = unchanged.balance, last_sequence = unchanged.last_sequence, last_hash = unchanged.last_hash,
        last_created_at = unchanged.last_created_at, updated_at = now()
    FROM unchanged
    WHERE account.user_id = unchanged.user_id AND account.last_sequence = unchanged.expected_sequence
    RETURNING account.user_id
), created AS (
    INSERT INTO accounts (user_id, balance, last_sequence, last_hash, last_created_at)
    SELECT user_id, balance, last_sequence, last_hash, last_created_at FROM head
    WHERE expected_sequence IS NULL
    ORDER BY user_id
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_id
), written AS (
    SELECT user_id FROM updated UNION ALL SELECT user_id FROM created
), inserted AS (
    INSERT INTO ledger_entries (id, user_id, sequence, amount, balance_after, idempotency_key, created_at, hash)
    SELECT entry.* FROM unnest(
        $7::uuid[], $8::text[], $9::bigint[], $10::numeric[], $11::numeric[], $12::text[], $13::timestamptz[],
        $14::bytea[]) AS entry (id, user_id, sequence, amount, balance_after, idempotency_key, created_at, hash)
    WHERE entry.user_id IN (SELECT user_id FROM written)
)
SELECT user_id FROM written";

/// Records `adds` (or sets aside the users it cannot write without waiting); one result per add, in
/// order.
pub async fn record_batch(pool: &PgPool, adds: Vec<NewAdd>, deadlines: Deadlines) -> Vec<Handled<NewAdd, Answer>> {
    let read = tokio::time::timeout(deadlines.before_commit, retrying(pool, |_| false, || read(pool, &adds))).await;
    let (mut connection, read) = match read.unwrap_or(Err(Failure::Unanswered(NoAnswer(deadlines.before_commit)))) {
        Ok(read) => read,
        Err(failure) => {
            return failure.for_each_add(adds.len()).into_iter().map(|e| Handled::Answered(Err(e))).collect();
        }
    };
    let plan = plan(&adds, &read.states, &read.recorded, read.now);
    let to_write: HashSet<UserId> = plan.final_states.iter().map(|(user, _)| user.clone()).collect();
    let written = if to_write.is_empty() {
        Ok(HashSet::new())
    } else {
        tokio::time::timeout(deadlines.commit, write(&mut connection, &plan, &read))
            .await
            .unwrap_or_else(|_| Err(Failure::CommitUnanswered(Box::new(NoAnswer(deadlines.commit)))))
    };
    drop(connection);
    answer(adds, plan, &to_write, written)
}

/// Each add's answer: from the plan if its user needed no write or was written; set aside if its user
/// could not be written without waiting; the failure's answer if the write failed.
fn answer(
    adds: Vec<NewAdd>,
    plan: BatchPlan,
    to_write: &HashSet<UserId>,
    written: Result<HashSet<UserId>, Failure>,
) -> Vec<Handled<NewAdd, Answer>> {
    let (written, mut failed) = match written {
        Ok(written) => (written, Vec::new()),
        // Rolled back because it lost a race with another writer (a deadlock over new accounts, or a key
        // or sequence taken meanwhile): the locking lane decides these users again.
        Err(Failure::Sql(error)) if lost_a_race(&error) => (HashSet::new(), Vec::new()),
        Err(failure) => {
            let count = adds.iter().filter(|add| to_write.contains(&add.user_id)).count();
            (HashSet::new(), failure.for_each_add(count))
        }
    };
    let mut set_aside = 0_u64;
    let entries = plan.entries;
    let handled = adds
        .into_iter()
        .zip(plan.decisions)
        .map(|(add, decision)| {
            if !to_write.contains(&add.user_id) || written.contains(&add.user_id) {
                Handled::Answered(decision.outcome(&entries))
            } else if let Some(error) = failed.pop() {
                Handled::Answered(Err(error))
            } else {
                set_aside += 1;
                Handled::SetAside(add)
            }
        })
        .collect();
    if set_aside > 0 {
        metrics::counter!("bitburst_pg_adds_set_aside_total").increment(set_aside);
    }
    handled
}

fn lost_a_race(error: &sqlx::Error) -> bool {
    is_retryable_conflict(error)
        || matches!(violated_constraint(error), Some("ledger_entries_one_per_key" | "ledger_entries_user_sequence"))
}

/// What the batch read: the accounts by user (absent: no account), the entries under the batch's keys by
/// user, and the database's clock.
struct Read {
    states: HashMap<UserId, AccountState>,
    recorded: HashMap<UserId, HashMap<IdempotencyKey, Transaction>>,
    now: DateTime<Utc>,
}

async fn read(pool: &PgPool, adds: &[NewAdd]) -> Result<(PoolConnection<Postgres>, Read), Failure> {
    let mut users: Vec<&str> = adds.iter().map(|add| add.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let (key_users, keys) = keys_of(adds);
    let mut connection = pool.acquire().await?;
    let rows =
        sqlx::query(READ_ACCOUNTS_AND_KEYS).bind(key_users).bind(keys).bind(users).fetch_all(&mut *connection).await?;
    let mut read = Read { states: HashMap::new(), recorded: HashMap::new(), now: DateTime::<Utc>::MIN_UTC };
    for row in &rows {
        let kind: &str = row.try_get("kind")?;
        match kind {
            "clock" => read.now = row.try_get("now")?,
            "account" => {
                read.states.insert(user_from_row(row)?, account_from_row(row).map_err(Failure::Corrupt)?);
            }
            _ => {
                let (key, transaction) = keyed_entry_from_row(row).map_err(Failure::Corrupt)?;
                read.recorded.entry(transaction.user_id.clone()).or_default().insert(key, transaction);
            }
        }
    }
    Ok((connection, read))
}

fn user_from_row(row: &PgRow) -> Result<UserId, Failure> {
    let user: &str = row.try_get("user_id")?;
    UserId::parse(user).map_err(|invalid| Failure::Corrupt(StorageError::Failed(invalid.to_string().into())))
}

/// Runs the write; the users it wrote. A failure here is of a statement that commits by itself, so a
/// lost connection leaves its outcome unknown.
async fn write(
    connection: &mut PoolConnection<Postgres>,
    plan: &BatchPlan,
    read: &Read,
) -> Result<HashSet<UserId>, Failure> {
    let heads = HeadColumns::of(&plan.final_states);
    let expected: Vec<Option<i64>> = heads
        .users
        .iter()
        .map(|user| {
            // No state read: no account, and one is created.
            read.states.get(*user).map(|state| state.head.map_or(0, |head| head.sequence.to_i64()))
        })
        .collect();
    let entries = EntryColumns::of(&plan.entries);
    let heads_bound = sqlx::query(WRITE_UNCHANGED_ACCOUNTS)
        .bind(heads.user_ids())
        .bind(expected)
        .bind(heads.balances)
        .bind(heads.last_sequences)
        .bind(heads.last_hashes)
        .bind(heads.last_times);
    let rows = entries.bind_to(heads_bound).fetch_all(&mut **connection).await.map_err(autocommit_failure)?;
    rows.iter().map(user_from_row).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::{Amount, LedgerRepository};

    use super::*;
    use crate::{PgLedger, PgSettings};

    const DEADLINES: Deadlines = Deadlines { before_commit: Duration::from_secs(30), commit: Duration::from_secs(30) };

    fn add(user_id: &str, amount: &str, key: Option<&str>) -> NewAdd {
        NewAdd {
            user_id: UserId::parse(user_id).expect("valid"),
            amount: Amount::parse(amount).expect("valid"),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k.as_bytes()).expect("valid")),
        }
    }

    fn describe(handled: &Handled<NewAdd, Answer>) -> String {
        match handled {
            Handled::Answered(Ok(AddOutcome::Applied(t))) => {
                format!("applied {} -> {} #{}", t.amount, t.balance_after, t.sequence.to_i64())
            }
            Handled::Answered(Ok(AddOutcome::Replayed(t))) => format!("replayed {} #{}", t.amount, t.sequence.to_i64()),
            Handled::Answered(Err(error)) => format!("error {error}"),
            Handled::SetAside(add) => format!("set aside {}", add.user_id),
        }
    }

    #[tokio::test]
    async fn an_unlocked_batch_is_written_at_once_for_new_and_existing_users() {
        let Some(database) = testkit::postgres::fresh_database().await else { return };
        let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
        ledger.migrate().await.expect("the migrations apply");
        ledger.record_add(add("old", "5", Some("before"))).await.expect("recorded");
        let batch = vec![
            add("old", "1", None),
            add("new", "2", Some("k")),
            add("old", "5", Some("before")),
            add("new", "2", Some("k")),
            add("new", "3", None),
        ];
        let described: Vec<String> = record_batch(ledger.pool(), batch, DEADLINES).await.iter().map(describe).collect();
        assert_eq!(
            described,
            [
                "applied 1.00 -> 6.00 #2",
                "applied 2.00 -> 2.00 #1",
                "replayed 5.00 #1",
                "replayed 2.00 #1",
                "applied 3.00 -> 5.00 #2"
            ]
        );
    }

    #[tokio::test]
    async fn a_user_whose_row_is_locked_is_set_aside_and_the_others_written() {
        let Some(database) = testkit::postgres::fresh_database().await else { return };
        let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
        ledger.migrate().await.expect("the migrations apply");
        for user in ["locked", "free"] {
            ledger.record_add(add(user, "1", None)).await.expect("recorded");
        }
        let mut operator = ledger.pool().begin().await.expect("a transaction");
        sqlx::query("SELECT 1 FROM accounts WHERE user_id = 'locked' FOR UPDATE")
            .execute(&mut *operator)
            .await
            .expect("locked");
        let batch = vec![add("locked", "1", None), add("free", "1", None), add("locked", "2", None)];
        let described: Vec<String> = record_batch(ledger.pool(), batch, DEADLINES).await.iter().map(describe).collect();
        assert_eq!(described, ["set aside locked", "applied 1.00 -> 2.00 #2", "set aside locked"]);
        operator.rollback().await.expect("released");
        assert_eq!(ledger.balance(&UserId::parse("locked").expect("valid")).await.expect("read").to_string(), "1.00");
    }

    #[tokio::test]
    async fn a_user_whose_account_moved_since_the_read_is_not_written() {
        let Some(database) = testkit::postgres::fresh_database().await else { return };
        let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
        ledger.migrate().await.expect("the migrations apply");
        ledger.record_add(add("moved", "1", None)).await.expect("recorded");
        let batch = [add("moved", "10", Some("k")), add("newcomer", "1", None)];
        let (mut connection, stale) = read(ledger.pool(), &batch).await.expect("read");
        // Another instance records an add for the user, and creates the newcomer, after this batch read.
        ledger.record_add(add("moved", "2", None)).await.expect("recorded");
        ledger.record_add(add("newcomer", "5", None)).await.expect("recorded");
        let plan = plan(&batch, &stale.states, &stale.recorded, stale.now);
        let written = write(&mut connection, &plan, &stale).await.expect("the statement runs");
        assert!(written.is_empty(), "neither decision stands: {written:?}");
        drop(connection);
        let balance = |user: &'static str| {
            let ledger = ledger.clone();
            async move { ledger.balance(&UserId::parse(user).expect("valid")).await.expect("read").to_string() }
        };
        assert_eq!(balance("moved").await, "3.00", "nothing of the stale decision was written");
        assert_eq!(balance("newcomer").await, "5.00");
    }

    #[tokio::test]
    async fn plans_made_on_a_new_ledger_keep_to_the_indexes_as_it_grows() {
        let Some(database) = testkit::postgres::fresh_database().await else { return };
        let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
        ledger.migrate().await.expect("the migrations apply");
        let mut connection = ledger.pool().acquire().await.expect("a connection of the service");
        // What a connection's statement cache does: plan once, on the tables as they are, and keep it.
        let statements = [
            // A ledger a few minutes old: a handful of accounts, which autovacuum has analyzed.
            "INSERT INTO accounts (user_id, balance) SELECT 'first-' || n, 0 FROM generate_series(1, 20) AS n; \
             ANALYZE accounts"
                .to_owned(),
            format!(
                "SET plan_cache_mode = force_generic_plan; PREPARE read_batch(text[], text[], text[]) AS {READ_ACCOUNTS_AND_KEYS}"
            ),
            "EXECUTE read_batch('{a}', '{k}', '{a}')".to_owned(),
            "INSERT INTO accounts (user_id, balance) SELECT 'user-' || n, 0 FROM generate_series(1, 20000) AS n"
                .to_owned(),
        ];
        for statement in &statements {
            sqlx::raw_sql(statement).execute(&mut *connection).await.expect("runs");
        }
        let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE read_batch('{a}', '{k}', '{user-7}')")
            .fetch_all(&mut *connection)
            .await
            .expect("explained");
        assert!(!plan.iter().any(|line| line.contains("Seq Scan")), "{}", plan.join("\n"));
    }
}
