//! Gathering concurrent requests into batches: each of a few workers takes the first request waiting
//! and every request already queued behind it (up to a batch size), and answers them all with one call.
//! Nothing waits for a batch to fill: a lone request is a batch of one at once, and under load requests
//! gather by themselves while the workers' previous batches run.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

/// The workers stopped, or one dropped the request without an answer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batch workers did not answer")]
pub struct NotAnswered;

type Pending<Request, Answer> = (Request, oneshot::Sender<Answer>);

/// The entrance to a set of batch workers. Dropping every clone stops them once the queue is empty.
#[derive(Debug)]
pub struct Batcher<Request, Answer> {
    queue: mpsc::Sender<Pending<Request, Answer>>,
}

impl<Request, Answer> Clone for Batcher<Request, Answer> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<Request: Send + 'static, Answer: Send + 'static> Batcher<Request, Answer> {
    /// Starts `workers` workers on the current tokio runtime. `answer` gets a batch and returns one answer
    /// per request, in the same order.
    pub fn start<Run, Answers>(workers: usize, max_batch: usize, answer: Run) -> Self
    where
        Run: Fn(Vec<Request>) -> Answers + Clone + Send + Sync + 'static,
        Answers: Future<Output = Vec<Answer>> + Send + 'static,
    {
        let (workers, max_batch) = (workers.max(1), max_batch.max(1));
        let (queue, waiting) = mpsc::channel(max_batch * workers * 4);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..workers {
            tokio::spawn(work(Arc::clone(&waiting), max_batch, answer.clone()));
        }
        Self { queue }
    }

    /// Requests queued and not yet taken by a worker.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Answers `request` as part of whatever batch it joins.
    pub async fn submit(&self, request: Request) -> Result<Answer, NotAnswered> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((request, reply)).await.map_err(|_| NotAnswered)?;
        answer.await.map_err(|_| NotAnswered)
    }
}

async fn work<Request, Answer, Run, Answers>(
    waiting: Arc<Mutex<mpsc::Receiver<Pending<Request, Answer>>>>,
    max_batch: usize,
    answer: Run,
) where
    Run: Fn(Vec<Request>) -> Answers,
    Answers: Future<Output = Vec<Answer>>,
{
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
        let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Answer>>) = batch.into_iter().unzip();
        for (reply, answer) in replies.into_iter().zip(answer(requests).await) {
            // A caller that gave up (timed out, disconnected) no longer listens; its request stands.
            let _ = reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_gets_its_own_answer_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Batcher::start(1, 64, move |numbers: Vec<u32>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().expect("sizes").push(numbers.len());
                tokio::task::yield_now().await;
                numbers.into_iter().map(|n| n * 2).collect::<Vec<_>>()
            }
        });
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
}
