//! Gathering concurrent requests into batches. Requests are spread over workers by a shard key (the
//! user), each worker with a queue of its own; a worker takes the first request waiting and every request
//! already queued behind it (up to a batch size), and answers them all with one call. Nothing waits for a
//! batch to fill: a lone request is a batch of one at once, and under load requests gather by themselves
//! while the worker's previous batch runs.
//!
//! Sharding by user does two things: requests for one busy user always meet in one queue, so they make
//! big batches instead of contending for that user's row lock from several workers; and the batches of
//! different workers of one instance never share a user, so they never wait for each other's locks.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// The workers stopped, or one dropped the request without an answer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batch workers did not answer")]
pub struct NotAnswered;

type Pending<Request, Answer> = (Request, oneshot::Sender<Answer>);

/// The entrance to a set of batch workers. Dropping every clone stops them once their queues are empty.
pub struct Batcher<Request, Answer> {
    queues: Arc<[mpsc::Sender<Pending<Request, Answer>>]>,
    shard_of: fn(&Request) -> u64,
}

impl<Request, Answer> std::fmt::Debug for Batcher<Request, Answer> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("workers", &self.queues.len()).finish_non_exhaustive()
    }
}

impl<Request, Answer> Clone for Batcher<Request, Answer> {
    fn clone(&self) -> Self {
        Self { queues: Arc::clone(&self.queues), shard_of: self.shard_of }
    }
}

impl<Request: Send + 'static, Answer: Send + 'static> Batcher<Request, Answer> {
    /// Starts `workers` workers on the current tokio runtime. `answer` gets a batch and returns one answer
    /// per request, in the same order; `shard_of` says which worker a request goes to.
    pub fn start<Run, Answers>(workers: usize, max_batch: usize, shard_of: fn(&Request) -> u64, answer: Run) -> Self
    where
        Run: Fn(Vec<Request>) -> Answers + Clone + Send + Sync + 'static,
        Answers: Future<Output = Vec<Answer>> + Send + 'static,
    {
        let (workers, max_batch) = (workers.max(1), max_batch.max(1));
        let queues = (0..workers)
            .map(|_| {
                let (queue, waiting) = mpsc::channel(max_batch * 4);
                tokio::spawn(work(waiting, max_batch, answer.clone()));
                queue
            })
            .collect();
        Self { queues, shard_of }
    }

    /// Requests queued and not yet taken by a worker.
    pub fn waiting(&self) -> usize {
        self.queues.iter().map(|queue| queue.max_capacity() - queue.capacity()).sum()
    }

    /// Answers `request` as part of whatever batch it joins.
    pub async fn submit(&self, request: Request) -> Result<Answer, NotAnswered> {
        let shard = usize::try_from((self.shard_of)(&request) % self.queues.len() as u64).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        self.queues[shard].send((request, reply)).await.map_err(|_| NotAnswered)?;
        answer.await.map_err(|_| NotAnswered)
    }
}

async fn work<Request, Answer, Run, Answers>(
    mut waiting: mpsc::Receiver<Pending<Request, Answer>>,
    max_batch: usize,
    answer: Run,
) where
    Run: Fn(Vec<Request>) -> Answers,
    Answers: Future<Output = Vec<Answer>>,
{
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A caller that gave up while its request waited (its HTTP request timed out and was answered
        // 503) must not have it run afterwards: it has not started, so dropping it here is exact.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Answer>>) = batch.into_iter().unzip();
        for (reply, answer) in replies.into_iter().zip(answer(requests).await) {
            // A caller that gave up (timed out, disconnected) no longer listens; its request stands.
            let _ = reply.send(answer);
        }
    }
}

/// A stable shard key for a user: the same user always goes to the same worker.
pub fn shard_of_user(user_id: &domain::UserId) -> u64 {
    // FNV-1a: cheap, and stable across processes (unlike the std hasher's random keys), which keeps a
    // user's requests together and nothing else depends on.
    user_id
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_gets_its_own_answer_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Batcher::start(
            1,
            64,
            |n: &u32| u64::from(*n),
            move |numbers: Vec<u32>| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().expect("sizes").push(numbers.len());
                    tokio::task::yield_now().await;
                    numbers.into_iter().map(|n| n * 2).collect::<Vec<_>>()
                }
            },
        );
        let tasks: Vec<_> = (0..200_u32)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (n, batcher.submit(n).await) })
            })
            .collect();
        for task in tasks {
            let (n, answer) = task.await.expect("the task ran");
            assert_eq!(answer.expect("answered"), n * 2);
        }
        let sizes = sizes.lock().expect("sizes").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(sizes.iter().all(|size| *size <= 64));
        assert!(sizes.len() < 200, "requests that queued together were answered together: {sizes:?}");
    }

    #[tokio::test]
    async fn requests_of_one_shard_always_meet_in_one_worker() {
        let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&recorded);
        let batcher = Batcher::start(
            4,
            64,
            |n: &u32| u64::from(*n % 4),
            move |numbers: Vec<u32>| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().expect("recorded").push(numbers.clone());
                    tokio::task::yield_now().await;
                    numbers
                }
            },
        );
        let tasks: Vec<_> = (0..400_u32)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(n).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task ran").expect("answered");
        }
        for batch in recorded.lock().expect("recorded").iter() {
            assert!(batch.iter().all(|n| n % 4 == batch[0] % 4), "one shard per batch: {batch:?}");
        }
    }

    #[tokio::test]
    async fn a_request_whose_caller_gave_up_while_it_waited_is_never_run() {
        let release = Arc::new(tokio::sync::Notify::new());
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (gate, seen) = (Arc::clone(&release), Arc::clone(&ran));
        let batcher = Batcher::start(
            1,
            64,
            |_: &u32| 0,
            move |numbers: Vec<u32>| {
                let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
                async move {
                    seen.lock().expect("ran").extend(numbers.iter().copied());
                    if numbers.contains(&1) {
                        gate.notified().await;
                    }
                    numbers
                }
            },
        );
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(1).await }
        });
        while ran.lock().expect("ran").is_empty() {
            tokio::task::yield_now().await;
        }
        // The worker is busy with 1; 2 queues behind it and its caller gives up.
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(20), batcher.submit(2)).await;
        assert!(abandoned.is_err(), "the caller timed out");
        let third = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(3).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.notify_one();
        assert_eq!(first.await.expect("ran").expect("answered"), 1);
        assert_eq!(third.await.expect("ran").expect("answered"), 3);
        assert_eq!(*ran.lock().expect("ran"), [1, 3], "the abandoned request never ran");
    }
}
