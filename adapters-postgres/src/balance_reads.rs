//! Balance reads, coalesced: concurrent reads share one indexed lookup of all their users
//! (`user_id = ANY(...)`), so that under load PostgreSQL and the driver do one statement's work for many
//! reads. A read alone is one point lookup, at once. A read is answered from a statement that started
//! after the read arrived, so it sees every add acknowledged before it.

use std::collections::HashMap;
use std::time::Duration;

use domain::{Balance, StorageError, UserId};
use sqlx::{PgPool, Row};

use crate::batcher::{Batcher, shard_of_user};
use crate::errors::{Failure, NoAnswer, balance_from};
use crate::retry::retrying;

type Answer = Result<Balance, StorageError>;

/// The entrance to the read workers.
#[derive(Debug, Clone)]
pub struct BalanceReader {
    batcher: Batcher<UserId, Answer>,
    queue_timeout: Duration,
}

/// The most reads answered by one statement.
const MAX_READ_BATCH: usize = 256;

impl BalanceReader {
    /// Starts the read workers; a lookup that gets no answer within `deadline` fails its reads.
    pub fn start(pool: &PgPool, workers: usize, queue_timeout: Duration, deadline: Duration) -> Self {
        let pool = pool.clone();
        let batcher = Batcher::start(workers, MAX_READ_BATCH, shard_of_user, move |users| {
            let pool = pool.clone();
            async move { read(&pool, users, deadline).await }
        });
        Self { batcher, queue_timeout }
    }

    pub async fn balance(&self, user_id: UserId) -> Answer {
        self.batcher
            .submit(user_id, self.queue_timeout)
            .await
            .map_err(|not_answered| StorageError::Unavailable(Box::new(not_answered)))?
    }
}

async fn read(pool: &PgPool, users: Vec<UserId>, deadline: Duration) -> Vec<Answer> {
    // A read changes nothing, so any failure may be tried again, and a stale connection always is.
    let looked_up = tokio::time::timeout(deadline, retrying(pool, |_| false, || look_up(pool, &users))).await;
    match looked_up.unwrap_or(Err(Failure::Unanswered(NoAnswer(deadline)))) {
        Ok(balances) => {
            users.iter().map(|user_id| Ok(balances.get(user_id.as_str()).copied().unwrap_or(Balance::ZERO))).collect()
        }
        Err(failure) => failure.for_each_request(users.len()).into_iter().map(Err).collect(),
    }
}

/// The balances of the users that have an account; a read alone is a point lookup.
async fn look_up(pool: &PgPool, users: &[UserId]) -> Result<HashMap<String, Balance>, Failure> {
    let rows = if let [user_id] = users {
        sqlx::query("SELECT user_id, balance FROM accounts WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_all(pool)
            .await?
    } else {
        let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        sqlx::query("SELECT user_id, balance FROM accounts WHERE user_id = ANY($1)").bind(ids).fetch_all(pool).await?
    };
    rows.iter()
        .map(|row| {
            let user_id: String = row.try_get("user_id")?;
            Ok((user_id, balance_from(row.try_get("balance")?).map_err(Failure::Corrupt)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::{Amount, LedgerRepository, NewAdd};

    use crate::{PgLedger, PgSettings};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reads_each_get_their_own_users_balance() {
        let Some(database) = testkit::postgres::fresh_database().await else { return };
        let mut settings = PgSettings::new(&database.url);
        settings.read_workers = 1;
        let ledger = Arc::new(PgLedger::connect_lazy(&settings).expect("a valid URL"));
        ledger.migrate().await.expect("the migrations apply");
        for n in 1..=5_i64 {
            let user_id = domain::UserId::parse(&format!("reader-{n}")).expect("valid");
            let amount = Amount::from_cents(n * 100).expect("valid");
            ledger.record_add(NewAdd { user_id, amount, idempotency_key: None }).await.expect("recorded");
        }
        let reads: Vec<_> = (0..200_i64)
            .map(|i| {
                let ledger = Arc::clone(&ledger);
                // Users 1 to 5 have n.00; users 6 and 7 were never seen.
                let n = i % 7 + 1;
                tokio::spawn(async move {
                    let user_id = domain::UserId::parse(&format!("reader-{n}")).expect("valid");
                    (n, ledger.balance(&user_id).await.expect("the read succeeds").to_string())
                })
            })
            .collect();
        for read in reads {
            let (n, balance) = read.await.expect("the task ran");
            let expected = if n <= 5 { format!("{n}.00") } else { "0.00".to_owned() };
            assert_eq!(balance, expected, "reader-{n}");
        }
    }
}
