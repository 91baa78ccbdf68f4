//! Before the ledger is checked, every keyed add whose outcome is unknown (a timeout, a broken
//! connection, a 5xx) is re-sent with the same key and amount until the service acknowledges it: the
//! retries a real client makes, and the reason Idempotency-Keys exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Url;

use crate::api::{Api, Failure};
use crate::expected::{AddKey, Expectations};
use crate::money::format_cents;
use crate::workers::user_id;

/// Attempts per key, including the first re-send; with the backoff below, about 15 s in all.
const MAX_ATTEMPTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A Retry-After longer than this is not waited for in full: the run has to end.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, Default)]
pub struct Resolution {
    /// Keys that had to be re-sent.
    pub retried: u64,
    /// Re-sends in all (a key may need several).
    pub resends: u64,
    /// Keys still without an answer after every attempt: they may or may not be in the ledger.
    pub unresolved: u64,
}

/// How long to wait before attempt `attempt` (from 1) after `failure`: what the service asked for, else
/// exponential backoff.
pub fn backoff(attempt: u32, failure: &Failure) -> Duration {
    failure.retry_after().map_or_else(
        || FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF),
        |asked| asked.min(MAX_RETRY_AFTER),
    )
}

struct Pending {
    user: u32,
    index: usize,
    key: AddKey,
    cents: u64,
}

pub async fn resolve_unknown_outcomes(
    expectations: &Arc<Expectations>,
    run_id: &str,
    targets: &[Url],
    timeout: Duration,
    concurrency: u32,
) -> Result<Resolution, reqwest::Error> {
    let pending: Arc<[Pending]> = expectations
        .keys_needing_resolution()
        .into_iter()
        .map(|(user, index, key, cents)| Pending { user, index, key, cents })
        .collect();
    let mut resolution = Resolution { retried: pending.len() as u64, ..Resolution::default() };
    if pending.is_empty() {
        return Ok(resolution);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency.min(u32::try_from(pending.len()).unwrap_or(u32::MAX)) {
        let mut api = Api::new(targets, timeout, task as usize)?;
        let (pending, next, expectations, run_id) =
            (Arc::clone(&pending), Arc::clone(&next), Arc::clone(expectations), run_id.to_owned());
        tasks.spawn(async move {
            let mut counts = Resolution::default();
            while let Some(item) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (resends, resolved) = resend_until_answered(&mut api, &expectations, &run_id, item).await;
                counts.resends += resends;
                counts.unresolved += u64::from(!resolved);
            }
            counts
        });
    }
    while let Some(counts) = tasks.join_next().await {
        // A task that panicked resolved nothing more: its keys stay unresolved and verification says so.
        if let Ok(counts) = counts {
            resolution.resends += counts.resends;
            resolution.unresolved += counts.unresolved;
        }
    }
    // Keys of a panicked task were never counted; count what is still open instead.
    resolution.unresolved = resolution.unresolved.max(expectations.keys_needing_resolution().len() as u64);
    Ok(resolution)
}

/// Returns the re-sends made and whether the key's outcome is now known.
async fn resend_until_answered(
    api: &mut Api,
    expectations: &Expectations,
    run_id: &str,
    item: &Pending,
) -> (u64, bool) {
    let user_id = user_id(run_id, item.user);
    let key = item.key.header_value();
    let amount = format_cents(item.cents);
    for attempt in 1..=MAX_ATTEMPTS {
        match api.add(&user_id, Some(&key), &amount).await {
            Ok(answer) => {
                expectations.acknowledge_keyed(item.user, item.index, &answer);
                return (u64::from(attempt), true);
            }
            // A refusal of the same key and amount means no request with this key was recorded (a
            // recorded key is answered from its transaction): the outcome is known, nothing was added.
            Err(Failure::Status { status, .. }) if status.is_client_error() && !refusal_means_retry(status) => {
                expectations.lock(item.user).keyed[item.index].outcome_unknown = false;
                return (u64::from(attempt), true);
            }
            Err(failure) => tokio::time::sleep(backoff(attempt, &failure)).await,
        }
    }
    (u64::from(MAX_ATTEMPTS), false)
}

fn refusal_means_retry(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::REQUEST_TIMEOUT || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_honours_retry_after() {
        assert_eq!(backoff(1, &Failure::Timeout), Duration::from_millis(200));
        assert_eq!(backoff(2, &Failure::Timeout), Duration::from_millis(400));
        assert_eq!(backoff(30, &Failure::Timeout), MAX_BACKOFF);
        let asked = |secs| Failure::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(backoff(1, &asked(1)), Duration::from_secs(1));
        assert_eq!(backoff(1, &asked(3600)), MAX_RETRY_AFTER);
    }
}
