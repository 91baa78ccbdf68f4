//! Recording adds under their accounts' row locks, for the users that [`crate::optimistic_batch`] set aside
//! because another transaction held their row or moved their account: this waits for the lock (up to the
//! statement timeout), so it runs in a lane of its own, one user at a time.
//!
//! One database transaction of four round trips: lock the batch's accounts
//! (creating missing ones; existing ones in user order, so concurrent batches rarely deadlock, and a
//! batch that does is rolled back whole by PostgreSQL and run again), read the entries
//! already recorded under its keys, decide every add in memory with the ledger's rule, then insert all
//! entries with one `UNNEST` and write each touched account once, in one statement. One COMMIT answers
//! the whole batch.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{AccountState, AddOutcome, IdempotencyKey, NewAdd, NewEntry, RecordAddError, Transaction, UserId};
use sqlx::{PgPool, Postgres, Row, Transaction as DbTransaction};

use crate::batch_plan::{BatchPlan, plan};
use crate::entry_row::{
    EntryColumns, HeadColumns, account_from_row, entries_under_keys, keyed_entry_from_row, keys_of,
};
use crate::errors::{Failure, NoAnswer, commit, violated_constraint};
use crate::retry::retrying;

/// Locks the batch's accounts, creating the missing ones empty, and returns each one's state with the
/// database's clock, read once the rows are locked: one clock for every instance, so a user's times do
/// not depend on which instance recorded the add. Rows that `created` inserts are invisible to `locked`
/// (one snapshot for the statement), hence the union. A row another transaction inserts concurrently is
/// in neither; the caller locks such users again.
const LOCK_OR_CREATE_ACCOUNTS: &str = "
WITH created AS (
    INSERT INTO accounts (user_id, balance)
    SELECT user_id, 0 FROM unnest($1::text[]) AS user_id ORDER BY user_id
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_id, balance, last_sequence, last_hash, last_created_at
), locked AS (
    SELECT user_id, balance, last_sequence, last_hash, last_created_at
    FROM accounts WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE
)
SELECT *, clock_timestamp() AS now FROM locked
UNION ALL
SELECT *, clock_timestamp() AS now FROM created";

const LOCK_ACCOUNTS: &str = "
SELECT user_id, balance, last_sequence, last_hash, last_created_at, clock_timestamp() AS now
FROM accounts WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE";

/// Inserts the entries and writes each touched account's new state once.
const WRITE_ENTRIES_AND_ACCOUNTS: &str = "
WITH inserted AS (
    INSERT INTO ledger_entries (id, user_id, sequence, amount, balance_after, idempotency_key, created_at, hash)
    SELECT * FROM unnest(
        $1::uuid[], $2::text[], $3::bigint[], $4::numeric[], $5::numeric[], $6::text[], $7::timestamptz[],
        $8::bytea[])
)
UPDATE accounts AS account
SET balance = final.balance, last_sequence = final.last_sequence, last_hash = final.last_hash,
    last_created_at = final.last_created_at, updated_at = now()
FROM unnest($9::text[], $10::numeric[], $11::bigint[], $12::bytea[], $13::timestamptz[])
     AS final (user_id, balance, last_sequence, last_hash, last_created_at)
WHERE account.user_id = final.user_id";

/// How long a batch waits for the database before it gives up: client-side backstops for a connection that
/// died silently, well beyond what the server's own timeouts allow a healthy connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For everything before COMMIT. Past it the transaction is abandoned without a COMMIT: not recorded.
    pub before_commit: Duration,
    /// For the COMMIT. Past it the outcome is unknown.
    pub commit: Duration,
}

/// Records `adds` together; the answers are in the order of `adds`. `Err` fails every add of the batch,
/// and only this batch: nothing of it was recorded, unless it is `Failure::CommitUnanswered`.
pub async fn record_batch(
    pool: &PgPool,
    adds: &[NewAdd],
    deadlines: Deadlines,
) -> Result<Vec<Result<AddOutcome, RecordAddError>>, Failure> {
    // A key recorded concurrently by a writer that does not lock the account first is a race too.
    let one_per_key = |error: &sqlx::Error| violated_constraint(error) == Some("ledger_entries_one_per_key");
    retrying(pool, one_per_key, || try_batch(pool, adds, deadlines)).await
}

async fn try_batch(
    pool: &PgPool,
    adds: &[NewAdd],
    deadlines: Deadlines,
) -> Result<Vec<Result<AddOutcome, RecordAddError>>, Failure> {
    let prepared = tokio::time::timeout(deadlines.before_commit, prepare(pool, adds))
        .await
        .map_err(|_| Failure::Unanswered(NoAnswer(deadlines.before_commit)))??;
    let (transaction, plan) = prepared;
    tokio::time::timeout(deadlines.commit, commit(transaction))
        .await
        .map_err(|_| Failure::CommitUnanswered(Box::new(NoAnswer(deadlines.commit))))??;
    Ok(plan.into_outcomes())
}

/// Everything of a batch but its COMMIT: the open transaction and the plan it wrote.
async fn prepare(pool: &PgPool, adds: &[NewAdd]) -> Result<(DbTransaction<'static, Postgres>, BatchPlan), Failure> {
    let mut users: Vec<&str> = adds.iter().map(|add| add.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();

    let mut transaction = pool.begin().await?;
    let mut locked = lock_accounts(&mut transaction, LOCK_OR_CREATE_ACCOUNTS, &users).await?;
    let missing: Vec<&str> = users.iter().copied().filter(|user| !locked.states.contains_key(*user)).collect();
    if !missing.is_empty() {
        // Created by a transaction that committed while this statement waited: visible now.
        let late = lock_accounts(&mut transaction, LOCK_ACCOUNTS, &missing).await?;
        locked.states.extend(late.states);
        locked.now = locked.now.max(late.now);
    }
    let states: HashMap<UserId, AccountState> =
        adds.iter().filter_map(|add| Some((add.user_id.clone(), *locked.states.get(add.user_id.as_str())?))).collect();
    let recorded = recorded_under_keys(&mut transaction, adds).await?;

    let plan = plan(adds, &states, &recorded, locked.now);
    write(&mut transaction, &plan.entries, &plan.final_states).await?;
    Ok((transaction, plan))
}

/// The locked accounts by user, and the database's clock once they were locked.
struct Locked {
    states: HashMap<String, AccountState>,
    now: DateTime<Utc>,
}

async fn lock_accounts(
    transaction: &mut DbTransaction<'_, Postgres>,
    sql: &str,
    users: &[&str],
) -> Result<Locked, Failure> {
    let rows = sqlx::query(sql).bind(users).fetch_all(&mut **transaction).await?;
    let mut locked = Locked { states: HashMap::with_capacity(rows.len()), now: DateTime::<Utc>::MIN_UTC };
    for row in &rows {
        let user: String = row.try_get("user_id")?;
        locked.states.insert(user, account_from_row(row).map_err(Failure::Corrupt)?);
        locked.now = locked.now.max(row.try_get("now")?);
    }
    Ok(locked)
}

async fn recorded_under_keys(
    transaction: &mut DbTransaction<'_, Postgres>,
    adds: &[NewAdd],
) -> Result<HashMap<UserId, HashMap<IdempotencyKey, Transaction>>, Failure> {
    let (users, keys) = keys_of(adds);
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(entries_under_keys!()).bind(users).bind(keys).fetch_all(&mut **transaction).await?;
    let mut recorded: HashMap<UserId, HashMap<IdempotencyKey, Transaction>> = HashMap::new();
    for row in &rows {
        let (key, transaction) = keyed_entry_from_row(row).map_err(Failure::Corrupt)?;
        recorded.entry(transaction.user_id.clone()).or_default().insert(key, transaction);
    }
    Ok(recorded)
}

/// Inserts the planned entries and writes the accounts' final states.
async fn write(
    transaction: &mut DbTransaction<'_, Postgres>,
    entries: &[NewEntry],
    final_states: &[(UserId, AccountState)],
) -> Result<(), Failure> {
    if entries.is_empty() {
        return Ok(());
    }
    let entries = EntryColumns::of(entries);
    let heads = HeadColumns::of(final_states);
    entries
        .bind_to(sqlx::query(WRITE_ENTRIES_AND_ACCOUNTS))
        .bind(heads.user_ids())
        .bind(heads.balances)
        .bind(heads.last_sequences)
        .bind(heads.last_hashes)
        .bind(heads.last_times)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::{Amount, HistoryPage, HistoryRequest, LedgerRepository, PageNumber};

    use super::*;
    use crate::{PgLedger, PgSettings};

    async fn ledger() -> Option<PgLedger> {
        let database = testkit::postgres::fresh_database().await?;
        let ledger = PgLedger::connect_lazy(&PgSettings::new(&database.url)).expect("a valid URL");
        ledger.migrate().await.expect("the migrations apply");
        Some(ledger)
    }

    fn add(user_id: &str, amount: &str, key: Option<&str>) -> NewAdd {
        NewAdd {
            user_id: UserId::parse(user_id).expect("valid"),
            amount: Amount::parse(amount).expect("valid"),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k.as_bytes()).expect("valid")),
        }
    }

    const DEADLINES: Deadlines = Deadlines { before_commit: Duration::from_secs(30), commit: Duration::from_secs(30) };

    async fn record_batch_now(
        pool: &PgPool,
        adds: &[NewAdd],
    ) -> Result<Vec<Result<AddOutcome, RecordAddError>>, Failure> {
        record_batch(pool, adds, DEADLINES).await
    }

    fn describe(answer: &Result<AddOutcome, RecordAddError>) -> String {
        match answer {
            Ok(AddOutcome::Applied(t)) => format!("applied {} -> {}", t.amount, t.balance_after),
            Ok(AddOutcome::Replayed(t)) => format!("replayed {} -> {}", t.amount, t.balance_after),
            Err(RecordAddError::KeyReused { original_amount }) => format!("reused {original_amount}"),
            Err(RecordAddError::BalanceLimit(_)) => "limit".to_owned(),
            Err(RecordAddError::Storage(error)) => format!("storage {error}"),
            Err(RecordAddError::OutcomeUnknown(error)) => format!("unknown {error}"),
        }
    }

    async fn history(ledger: &PgLedger, user: &str) -> HistoryPage {
        let user = UserId::parse(user).expect("valid");
        ledger.history(&user, HistoryRequest::Page(PageNumber::FIRST).into()).await.expect("history")
    }

    async fn balance(ledger: &PgLedger, user: &str) -> String {
        ledger.balance(&UserId::parse(user).expect("valid")).await.expect("balance").to_string()
    }

    #[tokio::test]
    async fn each_add_of_a_batch_gets_the_answer_it_would_get_alone() {
        let Some(ledger) = ledger().await else { return };
        ledger.record_add(add("a", "7", Some("old"))).await.expect("recorded before the batch");
        let batch = [
            add("a", "1", Some("k1")),
            add("a", "2", Some("k1")),
            add("a", "1", Some("k1")),
            add("b", "5", None),
            add("a", "7", Some("old")),
            add("a", "8", Some("old")),
            add("a", "1000000000", None),
            add("a", "3", None),
        ];
        let answers = record_batch_now(ledger.pool(), &batch).await.expect("the batch commits");
        let described: Vec<String> = answers.iter().map(describe).collect();
        assert_eq!(
            described,
            [
                "applied 1.00 -> 8.00",
                "reused 1.00",
                "replayed 1.00 -> 8.00",
                "applied 5.00 -> 5.00",
                "replayed 7.00 -> 7.00",
                "reused 7.00",
                "applied 1000000000.00 -> 1000000008.00",
                "applied 3.00 -> 1000000011.00",
            ]
        );
        assert_eq!(balance(&ledger, "a").await, "1000000011.00");
        assert_eq!(balance(&ledger, "b").await, "5.00");
        let afters: Vec<String> =
            history(&ledger, "a").await.transactions.iter().map(|t| t.balance_after.to_string()).collect();
        assert_eq!(afters, ["1000000011.00", "1000000008.00", "8.00", "7.00"], "newest first, in batch order");
    }

    #[tokio::test]
    async fn an_add_past_the_limit_fails_alone_inside_a_batch() {
        let Some(ledger) = ledger().await else { return };
        let fill: Vec<NewAdd> = (0..999).map(|_| add("whale", "1000000000", None)).collect();
        record_batch_now(ledger.pool(), &fill).await.expect("the batch commits");
        let batch = [add("whale", "1000000000", None), add("whale", "0.01", None), add("minnow", "1", None)];
        let described: Vec<String> =
            record_batch_now(ledger.pool(), &batch).await.expect("the batch commits").iter().map(describe).collect();
        assert_eq!(described, ["applied 1000000000.00 -> 1000000000000.00", "limit", "applied 1.00 -> 1.00"]);
        assert_eq!(balance(&ledger, "whale").await, "1000000000000.00");
    }

    #[tokio::test]
    async fn a_batch_writes_each_balance_row_once() {
        let Some(ledger) = ledger().await else { return };
        record_batch_now(ledger.pool(), &[add("hot", "1", None), add("warm", "1", None)]).await.expect("commits");
        sqlx::raw_sql(
            "CREATE TABLE account_writes (user_id text);
             CREATE FUNCTION count_account_write() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO account_writes VALUES (NEW.user_id); RETURN NEW; END $$;
             CREATE TRIGGER count_account_writes AFTER UPDATE ON accounts
             FOR EACH ROW EXECUTE FUNCTION count_account_write();",
        )
        .execute(ledger.pool())
        .await
        .expect("the counting trigger installs");
        let mut batch: Vec<NewAdd> = (0..50).map(|_| add("hot", "0.01", None)).collect();
        batch.extend((0..10).map(|_| add("warm", "0.10", None)));
        record_batch_now(ledger.pool(), &batch).await.expect("commits");
        let writes: Vec<(String, i64)> =
            sqlx::query_as("SELECT user_id, count(*) FROM account_writes GROUP BY user_id ORDER BY user_id")
                .fetch_all(ledger.pool())
                .await
                .expect("counted");
        assert_eq!(writes, [("hot".to_owned(), 1), ("warm".to_owned(), 1)]);
        assert_eq!(balance(&ledger, "hot").await, "1.50");
        assert_eq!(balance(&ledger, "warm").await, "2.00");
    }

    #[tokio::test]
    async fn a_database_error_fails_its_batch_whole_and_no_other() {
        let Some(ledger) = ledger().await else { return };
        sqlx::raw_sql(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.user_id = 'poison' THEN RAISE EXCEPTION 'poisoned batch'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger_entries
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .execute(ledger.pool())
        .await
        .expect("the failing trigger installs");
        let poisoned = [add("a", "1", Some("k")), add("poison", "1", None), add("b", "1", None)];
        let failed = record_batch_now(ledger.pool(), &poisoned).await;
        assert!(matches!(failed, Err(Failure::Sql(_))), "{failed:?}");
        assert_eq!(balance(&ledger, "a").await, "0.00", "nothing of the failed batch was recorded");
        assert_eq!(balance(&ledger, "b").await, "0.00");
        let retried = record_batch_now(ledger.pool(), &[add("a", "1", Some("k")), add("b", "1", None)]).await;
        let described: Vec<String> = retried.expect("the next batch commits").iter().map(describe).collect();
        assert_eq!(described, ["applied 1.00 -> 1.00", "applied 1.00 -> 1.00"], "a retry with the key counts once");
    }

    #[tokio::test]
    async fn concurrent_batches_over_the_same_users_neither_deadlock_nor_lose_money() {
        let Some(ledger) = ledger().await else { return };
        let ledger = Arc::new(ledger);
        let users = ["u1", "u2", "u3", "u4", "u5"];
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let ledger = Arc::clone(&ledger);
                tokio::spawn(async move {
                    // Each batch names the users in another order; locks are still taken in one order.
                    let batch: Vec<NewAdd> =
                        (0..25).map(|i| add(users[(i * 3 + task) % users.len()], "1", None)).collect();
                    record_batch_now(ledger.pool(), &batch).await
                })
            })
            .collect();
        for task in tasks {
            let answers = task.await.expect("the task ran").expect("the batch commits");
            assert!(answers.iter().all(|answer| matches!(answer, Ok(AddOutcome::Applied(_)))));
        }
        for user in users {
            assert_eq!(balance(&ledger, user).await, "80.00", "{user}: 16 batches x 5 adds of 1");
        }
    }
}
