//! Group commit: concurrent adds share one database transaction and one commit. Adds gather through a
//! [`Collector`]: an idle service records each add at once, as a batch of one; under load adds gather
//! while the batches in flight commit. A batch is recorded by [`optimistic_batch`] in two statements;
//! users it cannot write without waiting for a row lock are set aside to [`batch`], which waits for the
//! lock, one user at a time, while other users' batches go on. Every add is answered only after its
//! batch committed, or when it was not taken into a batch in time (then it never runs).

use std::time::Duration;

use domain::{AddOutcome, NewAdd, RecordAddError, StorageError};
use sqlx::PgPool;

use crate::batch::{self, Deadlines};
use crate::batcher::NotAnswered;
use crate::collector::{Collector, Lanes};
use crate::optimistic_batch;

/// How adds are gathered into batches.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// Batches in flight at once, each on one connection. Fewer means bigger batches; more means more
    /// round trips overlap. Batches in flight never share a user.
    pub in_flight: usize,
    /// The most adds in one batch.
    pub max_batch: usize,
}

impl GroupCommitSettings {
    /// The default of [`GroupCommitSettings::in_flight`].
    pub const DEFAULT_IN_FLIGHT: usize = 2;
    /// The default of [`GroupCommitSettings::max_batch`].
    pub const DEFAULT_MAX_BATCH: usize = 256;
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self { in_flight: Self::DEFAULT_IN_FLIGHT, max_batch: Self::DEFAULT_MAX_BATCH }
    }
}

type Answer = Result<AddOutcome, RecordAddError>;

fn user_of(add: &NewAdd) -> domain::UserId {
    add.user_id.clone()
}

/// The entrance to group commit. Dropping every clone stops it once the queue is empty.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    collector: Collector<NewAdd, Answer>,
    queue_timeout: Duration,
}

impl GroupCommitter {
    /// Starts group commit on the current tokio runtime. An add not taken into a batch within
    /// `queue_timeout` is withdrawn and answered as not recorded (it never reached the database); once
    /// taken, it is answered with its real outcome. At most `aside_in_flight` set-aside users wait for
    /// their row locks at once, each holding a connection.
    pub fn start(
        pool: &PgPool,
        settings: GroupCommitSettings,
        aside_in_flight: usize,
        queue_timeout: Duration,
        deadlines: Deadlines,
    ) -> Self {
        let (pool, aside_pool) = (pool.clone(), pool.clone());
        let lanes = Lanes {
            in_flight: settings.in_flight,
            max_batch: settings.max_batch,
            aside_in_flight,
            run: move |adds: Vec<NewAdd>| {
                let pool = pool.clone();
                async move {
                    metrics::histogram!("bitburst_pg_batch_size")
                        .record(u32::try_from(adds.len()).map_or(f64::MAX, f64::from));
                    optimistic_batch::record_batch(&pool, adds, deadlines).await
                }
            },
            run_aside: move |adds: Vec<NewAdd>| {
                let pool = aside_pool.clone();
                async move { commit_waiting_for_locks(&pool, adds, deadlines).await }
            },
        };
        Self { collector: Collector::start(lanes, user_of), queue_timeout }
    }

    /// Adds queued and not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        self.collector.waiting()
    }

    /// Records one add as part of whatever batch it joins.
    pub async fn record(&self, add: NewAdd) -> Answer {
        match self.collector.submit(add, self.queue_timeout).await {
            Ok(answer) => answer,
            Err(lost @ NotAnswered::Lost) => Err(RecordAddError::OutcomeUnknown(Box::new(lost))),
            Err(not_run) => Err(StorageError::Unavailable(Box::new(not_run)).into()),
        }
    }
}

/// Records adds in one transaction that waits for the accounts' row locks.
async fn commit_waiting_for_locks(pool: &PgPool, adds: Vec<NewAdd>, deadlines: Deadlines) -> Vec<Answer> {
    tracing::debug!(adds = adds.len(), "recording set-aside adds, waiting for their row lock");
    match batch::record_batch(pool, &adds, deadlines).await {
        Ok(answers) => answers,
        Err(failure) => failure.for_each_add(adds.len()).into_iter().map(Err).collect(),
    }
}
