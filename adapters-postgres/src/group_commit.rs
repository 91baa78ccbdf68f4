//! Group commit: concurrent adds share one database transaction and one COMMIT.
//!
//! Requests queue on a channel. Each of a few workers takes the first request waiting, and with it every
//! request already queued behind it (up to a batch size), and records them as one batch. Nothing waits
//! for a batch to fill: an idle service records each add at once, alone (one statement), and under load
//! requests gather by themselves while the workers' previous batches commit. Every request is answered
//! only after the COMMIT of its batch.

use std::sync::Arc;

use domain::{AddOutcome, NewAdd, RecordAddError, StorageError};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::errors::{Failure, storage_error};
use crate::{batch, record};

/// How adds are gathered into batches.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// Batches in flight at once; each holds one connection while it runs.
    pub workers: usize,
    /// The most adds in one batch.
    pub max_batch: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self { workers: 4, max_batch: 256 }
    }
}

type Answer = Result<AddOutcome, RecordAddError>;

struct Pending {
    add: NewAdd,
    reply: oneshot::Sender<Answer>,
}

/// The entrance to the batch workers. Dropping every clone stops them once the queue is empty.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommitter {
    /// Starts the workers on the current tokio runtime.
    pub fn start(pool: &PgPool, settings: GroupCommitSettings) -> Self {
        let (queue, waiting) = mpsc::channel(settings.max_batch * settings.workers.max(1) * 4);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..settings.workers.max(1) {
            tokio::spawn(work(pool.clone(), Arc::clone(&waiting), settings.max_batch.max(1)));
        }
        Self { queue }
    }

    /// Adds queued and not yet taken by a worker.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Records one add as part of whatever batch it joins.
    pub async fn record(&self, add: NewAdd) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { add, reply })
            .await
            .map_err(|_| StorageError::Unavailable("the batch workers have stopped".into()))?;
        answer.await.map_err(|_| StorageError::Failed("the batch worker dropped the request".into()))?
    }
}

async fn work(pool: PgPool, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>, max_batch: usize) {
    loop {
        let mut batch = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else { return };
            batch.push(first);
            while batch.len() < max_batch {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        commit(&pool, batch).await;
    }
}

async fn commit(pool: &PgPool, batch: Vec<Pending>) {
    metrics::histogram!("bitburst_pg_batch_size").record(u32::try_from(batch.len()).map_or(f64::MAX, f64::from));
    if batch.len() == 1 {
        for pending in batch {
            let answer = record::record_add(pool, pending.add).await;
            let _ = pending.reply.send(answer);
        }
        return;
    }
    let (adds, replies): (Vec<NewAdd>, Vec<oneshot::Sender<Answer>>) =
        batch.into_iter().map(|pending| (pending.add, pending.reply)).unzip();
    tracing::trace!(size = adds.len(), "recording a batch");
    match batch::record_batch(pool, &adds).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that gave up (timed out, disconnected) no longer listens; its add stands.
                let _ = reply.send(answer);
            }
        }
        Err(failure) => {
            let (unavailable, cause) = match failure {
                Failure::Sql(error) => {
                    let error = storage_error(error);
                    (matches!(error, StorageError::Unavailable(_)), error_chain(&error))
                }
                Failure::Corrupt(error) => (false, error_chain(&error)),
            };
            tracing::warn!(size = replies.len(), error = %cause, "batch failed; none of its adds was recorded");
            for reply in replies {
                let cause = format!("the batch of this add failed: {cause}").into();
                let error = if unavailable { StorageError::Unavailable(cause) } else { StorageError::Failed(cause) };
                let _ = reply.send(Err(error.into()));
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cause = inner.source();
    }
    chain
}
