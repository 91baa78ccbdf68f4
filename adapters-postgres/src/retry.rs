//! Running a transaction again when it failed in a way that recorded nothing and another try may cure.

use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;

use crate::errors::{Failure, is_connection_lost, is_retryable_conflict};

/// How often a transaction that lost a race is run again before its error is returned.
const MAX_CONFLICT_RETRIES: u32 = 4;

/// Runs `attempt` until it succeeds or fails for good. Two failures are tried again, and both left
/// nothing recorded, because they happen before COMMIT:
/// - a lost race: a serialization failure or a deadlock, which PostgreSQL rolled back (and, for errors
///   `also` names, a race of the caller's own kind);
/// - a connection that was dead or died before COMMIT: after a database restart every pooled connection
///   is stale, and the pool closes each as it fails, so a fresh one comes within a pool's worth of tries.
///
/// A failure of the COMMIT itself is never tried again: it may have committed.
pub async fn retrying<T, Attempt, Attempted>(
    pool: &PgPool,
    also: fn(&sqlx::Error) -> bool,
    mut attempt: Attempt,
) -> Result<T, Failure>
where
    Attempt: FnMut() -> Attempted,
    Attempted: Future<Output = Result<T, Failure>>,
{
    let max_lost = pool.options().get_max_connections() + 1;
    let (mut conflicts, mut lost) = (0, 0);
    loop {
        match attempt().await {
            Err(Failure::Sql(error)) if is_connection_lost(&error) && lost < max_lost => {
                lost += 1;
                tracing::debug!(lost, %error, "connection lost before COMMIT; running the transaction again");
            }
            Err(Failure::Sql(error))
                if (is_retryable_conflict(&error) || also(&error)) && conflicts < MAX_CONFLICT_RETRIES =>
            {
                conflicts += 1;
                tracing::debug!(conflicts, %error, "transaction lost a race; running it again");
                tokio::time::sleep(Duration::from_millis(u64::from(conflicts) * 2)).await;
            }
            result => return result,
        }
    }
}
