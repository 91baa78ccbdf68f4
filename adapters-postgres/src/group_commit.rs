//! Group commit: concurrent adds share one database transaction and one COMMIT. Adds gather through a
//! [`Batcher`]: an idle service records each add at once, as a batch of one; under load adds gather
//! while the workers' previous batches commit. Every add is answered only after its batch's COMMIT, or
//! when no worker took it in time (then it never runs).

use std::time::Duration;

use domain::{AddOutcome, NewAdd, RecordAddError, StorageError};
use sqlx::PgPool;

use crate::batch::{self, Deadlines};
use crate::batcher::{Batcher, NotAnswered, shard_of_user};

/// How adds are gathered into batches.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// Workers, each recording one batch at a time on one connection. Users are spread over them, so a
    /// user's concurrent adds share one worker's batches.
    pub workers: usize,
    /// The most adds in one batch.
    pub max_batch: usize,
}

impl GroupCommitSettings {
    /// The default of [`GroupCommitSettings::workers`].
    pub const DEFAULT_WORKERS: usize = 8;
    /// The default of [`GroupCommitSettings::max_batch`].
    pub const DEFAULT_MAX_BATCH: usize = 256;
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self { workers: Self::DEFAULT_WORKERS, max_batch: Self::DEFAULT_MAX_BATCH }
    }
}

type Answer = Result<AddOutcome, RecordAddError>;

fn shard_of_add(add: &NewAdd) -> u64 {
    shard_of_user(&add.user_id)
}

/// The entrance to the batch workers. Dropping every clone stops them once the queue is empty.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    batcher: Batcher<NewAdd, Answer>,
    queue_timeout: Duration,
}

impl GroupCommitter {
    /// Starts the workers on the current tokio runtime. An add that no worker takes within `queue_timeout`
    /// is withdrawn and answered as not recorded (it never reached the database); once taken, it is
    /// answered with its real outcome.
    pub fn start(pool: &PgPool, settings: GroupCommitSettings, queue_timeout: Duration, deadlines: Deadlines) -> Self {
        let pool = pool.clone();
        let batcher = Batcher::start(settings.workers, settings.max_batch, shard_of_add, move |adds| {
            let pool = pool.clone();
            async move { commit(&pool, adds, deadlines).await }
        });
        Self { batcher, queue_timeout }
    }

    /// Adds queued and not yet taken by a worker.
    pub fn waiting(&self) -> usize {
        self.batcher.waiting()
    }

    /// Records one add as part of whatever batch it joins.
    pub async fn record(&self, add: NewAdd) -> Answer {
        match self.batcher.submit(add, self.queue_timeout).await {
            Ok(answer) => answer,
            Err(lost @ NotAnswered::Lost) => Err(RecordAddError::OutcomeUnknown(Box::new(lost))),
            Err(not_run) => Err(StorageError::Unavailable(Box::new(not_run)).into()),
        }
    }
}

async fn commit(pool: &PgPool, adds: Vec<NewAdd>, deadlines: Deadlines) -> Vec<Answer> {
    metrics::histogram!("bitburst_pg_batch_size").record(u32::try_from(adds.len()).map_or(f64::MAX, f64::from));
    tracing::trace!(size = adds.len(), "recording a batch");
    match batch::record_batch(pool, &adds, deadlines).await {
        Ok(answers) => answers,
        Err(failure) => failure.for_each_add(adds.len()).into_iter().map(Err).collect(),
    }
}
