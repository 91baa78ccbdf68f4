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
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Why a request got no answer from a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAnswered {
    /// No worker took it in time: it never ran, and never will.
    #[error("no batch worker took the request within {0:?}")]
    NotTaken(Duration),
    /// The workers have stopped: it never ran, and never will.
    #[error("the batch workers have stopped")]
    Stopped,
    /// A worker took it, then its batch broke off without answering (it panicked): it may have run.
    #[error("the batch of the request broke off without an answer")]
    Lost,
}

/// Who a queued request belongs to: the caller may give up on it only while no worker has taken it, and
/// a worker may take it only while its caller waits. One compare-and-swap decides, so a request is
/// never both answered "not taken" and run.
#[derive(Debug, Default)]
pub(crate) struct Claim(AtomicU8);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    fn settle(&self, to: u8) -> bool {
        self.0.compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// A worker takes the request, unless its caller gave up on it first.
    pub(crate) fn take(&self) -> bool {
        self.settle(TAKEN)
    }

    /// The caller gives up on the request, unless a worker took it first.
    pub(crate) fn abandon(&self) -> bool {
        self.settle(ABANDONED)
    }

    pub(crate) fn is_taken(&self) -> bool {
        self.0.load(Ordering::Acquire) == TAKEN
    }
}

struct Pending<Request, Answer> {
    request: Request,
    reply: oneshot::Sender<Answer>,
    claim: Arc<Claim>,
}

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

    /// Answers `request` as part of whatever batch it joins. If no worker takes it within `patience`, it
    /// is withdrawn and never runs; once a worker has taken it, this waits for its answer however long the
    /// batch takes, because only the batch knows what became of it.
    pub async fn submit(&self, request: Request, patience: Duration) -> Result<Answer, NotAnswered> {
        let deadline = Instant::now() + patience;
        let shard = usize::try_from((self.shard_of)(&request) % self.queues.len() as u64).unwrap_or(0);
        let (reply, mut answer) = oneshot::channel();
        let claim = Arc::new(Claim::default());
        let pending = Pending { request, reply, claim: Arc::clone(&claim) };
        match tokio::time::timeout_at(deadline, self.queues[shard].send(pending)).await {
            Err(_elapsed) => return Err(NotAnswered::NotTaken(patience)),
            Ok(Err(_closed)) => return Err(NotAnswered::Stopped),
            Ok(Ok(())) => {}
        }
        let answered = match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(answered) => answered,
            Err(_elapsed) if claim.abandon() => return Err(NotAnswered::NotTaken(patience)),
            Err(_elapsed) => answer.await,
        };
        answered.map_err(|_dropped| if claim.is_taken() { NotAnswered::Lost } else { NotAnswered::Stopped })
    }
}

async fn work<Request, Answer, Run, Answers>(
    mut waiting: mpsc::Receiver<Pending<Request, Answer>>,
    max_batch: usize,
    answer: Run,
) where
    Request: Send + 'static,
    Answer: Send + 'static,
    Run: Fn(Vec<Request>) -> Answers,
    Answers: Future<Output = Vec<Answer>> + Send + 'static,
{
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A caller that gave up (its patience ran out, or it went away) has been told its request never
        // ran, or nothing at all: it must not run now.
        batch.retain(|pending| !pending.reply.is_closed() && pending.claim.take());
        if batch.is_empty() {
            continue;
        }
        let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Answer>>) =
            batch.into_iter().map(|pending| (pending.request, pending.reply)).unzip();
        // A batch runs as a task of its own, so a panic in it costs that batch (its callers learn that
        // its outcome is unknown) and not the worker, whose later batches keep running.
        match tokio::spawn(answer(requests)).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller that went away no longer listens; its request stands.
                    let _ = reply.send(answer);
                }
            }
            Err(broke_off) => {
                tracing::error!(error = %broke_off, requests = replies.len(), "a batch broke off without answers");
            }
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

    const PATIENCE: Duration = Duration::from_secs(10);

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
                tokio::spawn(async move { (n, batcher.submit(n, PATIENCE).await) })
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
                tokio::spawn(async move { batcher.submit(n, PATIENCE).await })
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
            async move { batcher.submit(1, PATIENCE).await }
        });
        while ran.lock().expect("ran").is_empty() {
            tokio::task::yield_now().await;
        }
        // The worker is busy with 1; 2 queues behind it and its caller gives up.
        let abandoned = batcher.submit(2, Duration::from_millis(20)).await;
        assert_eq!(abandoned, Err(NotAnswered::NotTaken(Duration::from_millis(20))));
        let third = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(3, PATIENCE).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.notify_one();
        assert_eq!(first.await.expect("ran").expect("answered"), 1);
        assert_eq!(third.await.expect("ran").expect("answered"), 3);
        assert_eq!(*ran.lock().expect("ran"), [1, 3], "the abandoned request never ran");
    }

    #[tokio::test]
    async fn a_request_a_worker_took_gets_its_real_answer_even_after_its_patience() {
        let batcher = Batcher::start(
            1,
            64,
            |_: &u32| 0,
            |numbers: Vec<u32>| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                numbers
            },
        );
        let started = Instant::now();
        assert_eq!(batcher.submit(7, Duration::from_millis(20)).await, Ok(7), "its batch ran to the end");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_batch_that_panics_loses_only_its_own_requests_and_the_worker_goes_on() {
        let batcher = Batcher::start(
            1,
            64,
            |_: &u32| 0,
            |numbers: Vec<u32>| async move {
                assert!(!numbers.contains(&13), "a fault injected for the test");
                numbers
            },
        );
        assert_eq!(batcher.submit(13, PATIENCE).await, Err(NotAnswered::Lost), "it may have run: unknown");
        for n in 0..3 {
            assert_eq!(batcher.submit(n, PATIENCE).await, Ok(n), "the worker still serves its shard");
        }
    }
}
