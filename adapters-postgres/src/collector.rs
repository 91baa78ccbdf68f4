//! Gathering concurrent adds into batches that fill. One queue feeds one collector; the collector keeps a
//! few batches in flight at once, and forms the next batch from everything waiting the moment a slot frees,
//! so under load batches grow to what arrived during one batch's round trips, and an idle service still
//! sends a lone add at once, as a batch of one.
//!
//! Batches in flight never share a user: a request whose user is in flight waits, in arrival order, until
//! that user's batch is answered. So one user's adds run in the order they arrived, and batches of one
//! instance never wait for each other's row locks.
//!
//! A batch may set requests aside (their user's row is locked by someone else): those run in a lane of
//! their own, one user at a time, however long they wait, while the slot they left serves other users.
//! Their user stays in flight until the lane answers, so the user's later requests keep their place.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::batcher::{Claim, NotAnswered};

/// What a batch did with one of its requests.
#[derive(Debug)]
pub enum Handled<Request, Answer> {
    Answered(Answer),
    /// Not run, and handed back to be run in the set-aside lane.
    SetAside(Request),
}

struct Pending<Request, Answer> {
    request: Request,
    reply: oneshot::Sender<Answer>,
    claim: Arc<Claim>,
}

/// How the collector forms and runs batches.
pub struct Lanes<Run, RunAside> {
    /// Batches in flight at once.
    pub in_flight: usize,
    /// The most requests in one batch.
    pub max_batch: usize,
    /// Set-aside users served at once (each may hold a connection while it waits for a lock).
    pub aside_in_flight: usize,
    /// Runs a batch; one [`Handled`] per request, in the same order. A user's requests are either all
    /// answered or all set aside.
    pub run: Run,
    /// Runs one user's set-aside requests; one answer per request, in the same order.
    pub run_aside: RunAside,
}

/// The entrance to the collector. Dropping every clone stops it once everything queued is answered.
pub struct Collector<Request, Answer> {
    queue: mpsc::Sender<Pending<Request, Answer>>,
    waiting: Arc<AtomicUsize>,
}

impl<Request, Answer> std::fmt::Debug for Collector<Request, Answer> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("waiting", &self.waiting()).finish_non_exhaustive()
    }
}

impl<Request, Answer> Clone for Collector<Request, Answer> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone(), waiting: Arc::clone(&self.waiting) }
    }
}

impl<Request, Answer> Collector<Request, Answer> {
    /// Requests not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl<Request: Send + 'static, Answer: Send + 'static> Collector<Request, Answer> {
    /// Starts the collector on the current tokio runtime; `user_of` says whose a request is.
    pub fn start<User, Run, Ran, RunAside, RanAside>(lanes: Lanes<Run, RunAside>, user_of: fn(&Request) -> User) -> Self
    where
        User: Eq + Hash + Clone + Send + 'static,
        Run: Fn(Vec<Request>) -> Ran + Send + Sync + 'static,
        Ran: Future<Output = Vec<Handled<Request, Answer>>> + Send + 'static,
        RunAside: Fn(Vec<Request>) -> RanAside + Send + Sync + 'static,
        RanAside: Future<Output = Vec<Answer>> + Send + 'static,
    {
        let lanes = Lanes {
            in_flight: lanes.in_flight.max(1),
            max_batch: lanes.max_batch.max(1),
            aside_in_flight: lanes.aside_in_flight.max(1),
            ..lanes
        };
        let (queue, arrivals) = mpsc::channel(lanes.max_batch * lanes.in_flight * 2);
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(collect(arrivals, Arc::new(lanes), user_of, Arc::clone(&waiting)));
        Self { queue, waiting }
    }

    /// Answers `request` as part of whatever batch it joins. If it is not taken into a batch within
    /// `patience`, it is withdrawn and never runs; once taken, this waits for its real answer.
    pub async fn submit(&self, request: Request, patience: Duration) -> Result<Answer, NotAnswered> {
        let deadline = Instant::now() + patience;
        let (reply, mut answer) = oneshot::channel();
        let claim = Arc::new(Claim::default());
        let pending = Pending { request, reply, claim: Arc::clone(&claim) };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout_at(deadline, self.queue.send(pending)).await {
            Ok(Ok(())) => {}
            not_sent => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(if not_sent.is_err() { NotAnswered::NotTaken(patience) } else { NotAnswered::Stopped });
            }
        }
        let answered = match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(answered) => answered,
            Err(_elapsed) if claim.abandon() => return Err(NotAnswered::NotTaken(patience)),
            Err(_elapsed) => answer.await,
        };
        answered.map_err(|_dropped| if claim.is_taken() { NotAnswered::Lost } else { NotAnswered::Stopped })
    }
}

/// Users done with: the slot of a batch, or a set-aside user's lane, is free again.
struct Released<User> {
    users: Vec<User>,
    frees_a_slot: bool,
}

/// Sends its release when dropped, so that a batch that panics still frees its users and its slot.
struct ReleaseOnDrop<User> {
    released: Option<Released<User>>,
    to: mpsc::UnboundedSender<Released<User>>,
}

impl<User> Drop for ReleaseOnDrop<User> {
    fn drop(&mut self) {
        if let Some(released) = self.released.take() {
            // The collector is gone only once nothing is in flight: nobody to tell.
            let _ = self.to.send(released);
        }
    }
}

async fn collect<Request, Answer, User, Run, Ran, RunAside, RanAside>(
    mut arrivals: mpsc::Receiver<Pending<Request, Answer>>,
    lanes: Arc<Lanes<Run, RunAside>>,
    user_of: fn(&Request) -> User,
    waiting: Arc<AtomicUsize>,
) where
    Request: Send + 'static,
    Answer: Send + 'static,
    User: Eq + Hash + Clone + Send + 'static,
    Run: Fn(Vec<Request>) -> Ran + Send + Sync + 'static,
    Ran: Future<Output = Vec<Handled<Request, Answer>>> + Send + 'static,
    RunAside: Fn(Vec<Request>) -> RanAside + Send + Sync + 'static,
    RanAside: Future<Output = Vec<Answer>> + Send + 'static,
{
    let (release_sender, mut releases) = mpsc::unbounded_channel::<Released<User>>();
    let aside_permits = Arc::new(Semaphore::new(lanes.aside_in_flight));
    let mut pending: VecDeque<Pending<Request, Answer>> = VecDeque::new();
    let mut busy: HashSet<User> = HashSet::new();
    let (mut batches_in_flight, mut open) = (0_usize, true);
    loop {
        while batches_in_flight < lanes.in_flight {
            let batch = take_batch(&mut pending, &mut busy, lanes.max_batch, user_of, &waiting);
            if batch.is_empty() {
                break;
            }
            batches_in_flight += 1;
            let guard = ReleaseOnDrop { released: None, to: release_sender.clone() };
            tokio::spawn(run_batch(batch, Arc::clone(&lanes), user_of, guard, Arc::clone(&aside_permits)));
        }
        if !open && pending.is_empty() && busy.is_empty() && batches_in_flight == 0 {
            return;
        }
        tokio::select! {
            Some(done) = releases.recv() => {
                batches_in_flight -= usize::from(done.frees_a_slot);
                for user in &done.users {
                    busy.remove(user);
                }
            }
            arrival = arrivals.recv(), if open => match arrival {
                Some(first) => {
                    pending.push_back(first);
                    while let Ok(next) = arrivals.try_recv() {
                        pending.push_back(next);
                    }
                }
                None => open = false,
            },
        }
    }
}

/// The next batch: waiting requests in arrival order whose user is not in flight, up to `max_batch`.
/// Requests whose callers gave up are dropped unrun; those of users in flight keep their place.
fn take_batch<Request, Answer, User: Eq + Hash + Clone>(
    pending: &mut VecDeque<Pending<Request, Answer>>,
    busy: &mut HashSet<User>,
    max_batch: usize,
    user_of: fn(&Request) -> User,
    waiting: &AtomicUsize,
) -> Vec<Pending<Request, Answer>> {
    let mut batch = Vec::new();
    let mut batch_users = HashSet::new();
    let mut kept = VecDeque::with_capacity(pending.len());
    for waiting_request in pending.drain(..) {
        if batch.len() >= max_batch {
            kept.push_back(waiting_request);
            continue;
        }
        // A caller that gave up has been told its request never ran, or nothing at all: it must not run.
        // Dropped here even while its user is in flight, so that a user locked for long, whose clients
        // keep retrying, does not pile up abandoned requests.
        if waiting_request.reply.is_closed() {
            waiting.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let user = user_of(&waiting_request.request);
        if busy.contains(&user) && !batch_users.contains(&user) {
            kept.push_back(waiting_request);
            continue;
        }
        waiting.fetch_sub(1, Ordering::Relaxed);
        if !waiting_request.claim.take() {
            continue;
        }
        batch_users.insert(user);
        batch.push(waiting_request);
    }
    *pending = kept;
    busy.extend(batch_users);
    batch
}

async fn run_batch<Request, Answer, User, Run, Ran, RunAside, RanAside>(
    batch: Vec<Pending<Request, Answer>>,
    lanes: Arc<Lanes<Run, RunAside>>,
    user_of: fn(&Request) -> User,
    mut guard: ReleaseOnDrop<User>,
    aside_permits: Arc<Semaphore>,
) where
    Request: Send + 'static,
    Answer: Send + 'static,
    User: Eq + Hash + Clone + Send + 'static,
    Run: Fn(Vec<Request>) -> Ran + Send + Sync + 'static,
    Ran: Future<Output = Vec<Handled<Request, Answer>>> + Send + 'static,
    RunAside: Fn(Vec<Request>) -> RanAside + Send + Sync + 'static,
    RanAside: Future<Output = Vec<Answer>> + Send + 'static,
{
    let users: Vec<User> = batch.iter().map(|pending| user_of(&pending.request)).collect();
    let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Answer>>) =
        batch.into_iter().map(|pending| (pending.request, pending.reply)).unzip();
    // If `run` panics, the guard still frees every user and the slot; the callers learn that the outcome
    // of their requests is unknown.
    guard.released = Some(Released { users: users.clone(), frees_a_slot: true });
    let handled = (lanes.run)(requests).await;
    let mut set_aside: HashMap<User, (Vec<Request>, Vec<oneshot::Sender<Answer>>)> = HashMap::new();
    for ((reply, outcome), user) in replies.into_iter().zip(handled).zip(&users) {
        match outcome {
            Handled::Answered(answer) => {
                // A caller that went away no longer listens; its request stands.
                let _ = reply.send(answer);
            }
            Handled::SetAside(request) => {
                let (requests, replies) = set_aside.entry(user.clone()).or_default();
                requests.push(request);
                replies.push(reply);
            }
        }
    }
    let freed = users.iter().filter(|user| !set_aside.contains_key(user)).cloned().collect();
    let release = guard.to.clone();
    guard.released = Some(Released { users: freed, frees_a_slot: true });
    drop(guard);
    for (user, (requests, replies)) in set_aside {
        let lane_guard =
            ReleaseOnDrop { released: Some(Released { users: vec![user], frees_a_slot: false }), to: release.clone() };
        let (lanes, permits) = (Arc::clone(&lanes), Arc::clone(&aside_permits));
        tokio::spawn(async move {
            let _released_when_done = lane_guard;
            // The semaphore is never closed.
            let Ok(_permit) = permits.acquire().await else { return };
            let answers = (lanes.run_aside)(requests).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A request: (user, number).
    type Numbered = (u32, u32);

    type Recorded<T> = Arc<Mutex<Vec<T>>>;

    #[expect(clippy::trivially_copy_pass_by_ref, reason = "the collector asks for a `fn(&Request) -> User`")]
    fn user_of(request: &Numbered) -> u32 {
        request.0
    }

    /// A collector whose batches record what they ran (pausing a moment, as a database would) and answer
    /// each number doubled; `aside` users are set aside, and their lane waits for `gate`.
    fn recording(
        in_flight: usize,
        aside: &'static [u32],
        gate: Arc<tokio::sync::Notify>,
    ) -> (Collector<Numbered, u32>, Recorded<Vec<Numbered>>, Recorded<Numbered>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let lane = Arc::new(Mutex::new(Vec::new()));
        let (seen, seen_aside) = (Arc::clone(&batches), Arc::clone(&lane));
        let lanes = Lanes {
            in_flight,
            max_batch: 64,
            aside_in_flight: 4,
            run: move |requests: Vec<Numbered>| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().expect("batches").push(requests.clone());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    requests
                        .into_iter()
                        .map(|request| {
                            if aside.contains(&request.0) {
                                Handled::SetAside(request)
                            } else {
                                Handled::Answered(request.1 * 2)
                            }
                        })
                        .collect()
                }
            },
            run_aside: move |requests: Vec<Numbered>| {
                let (seen, gate) = (Arc::clone(&seen_aside), Arc::clone(&gate));
                async move {
                    gate.notified().await;
                    seen.lock().expect("lane").extend(requests.iter().copied());
                    requests.into_iter().map(|request| request.1 * 2).collect()
                }
            },
        };
        (Collector::start(lanes, user_of), batches, lane)
    }

    fn submit_all(
        collector: &Collector<Numbered, u32>,
        requests: impl Iterator<Item = Numbered>,
    ) -> Vec<tokio::task::JoinHandle<(Numbered, Result<u32, NotAnswered>)>> {
        requests
            .map(|request| {
                let collector = collector.clone();
                tokio::spawn(async move { (request, collector.submit(request, PATIENCE).await) })
            })
            .collect()
    }

    #[tokio::test]
    async fn every_request_gets_its_own_answer_and_batches_fill_under_load() {
        let (collector, batches, _) = recording(2, &[], Arc::new(tokio::sync::Notify::new()));
        for task in submit_all(&collector, (0..300).map(|n| (n % 50, n))) {
            let (request, answer) = task.await.expect("the task ran");
            assert_eq!(answer, Ok(request.1 * 2));
        }
        let sizes: Vec<usize> = batches.lock().expect("batches").iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 300);
        assert!(sizes.iter().all(|size| *size <= 64));
        assert!(sizes.len() <= 30, "requests that waited together were answered together: {sizes:?}");
    }

    // One thread: the tasks below queue their requests in the order they were spawned.
    #[tokio::test]
    async fn batches_in_flight_never_share_a_user_and_a_users_requests_run_in_arrival_order() {
        let in_flight_users = Arc::new(Mutex::new(HashSet::new()));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (seen_users, seen_order) = (Arc::clone(&in_flight_users), Arc::clone(&order));
        let lanes = Lanes {
            in_flight: 4,
            max_batch: 8,
            aside_in_flight: 1,
            run: move |requests: Vec<Numbered>| {
                let (users, order) = (Arc::clone(&seen_users), Arc::clone(&seen_order));
                async move {
                    let mine: HashSet<u32> = requests.iter().map(|request| request.0).collect();
                    for user in &mine {
                        assert!(users.lock().expect("users").insert(*user), "user {user} is in two batches");
                    }
                    order.lock().expect("order").extend(requests.iter().copied());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    for user in &mine {
                        users.lock().expect("users").remove(user);
                    }
                    requests.into_iter().map(|request| Handled::Answered(request.1)).collect()
                }
            },
            run_aside: |requests: Vec<Numbered>| async move { requests.into_iter().map(|request| request.1).collect() },
        };
        let collector = Collector::start(lanes, user_of);
        // Each of 5 users sends its requests one after another, as separate tasks started in order.
        let mut tasks = Vec::new();
        for n in 0..200_u32 {
            let collector = collector.clone();
            tasks.push(tokio::spawn(async move { collector.submit((n % 5, n), PATIENCE).await }));
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.expect("no batch shared a user").expect("answered");
        }
        let order = order.lock().expect("order").clone();
        for user in 0..5 {
            let numbers: Vec<u32> = order.iter().filter(|request| request.0 == user).map(|request| request.1).collect();
            let mut sorted = numbers.clone();
            sorted.sort_unstable();
            assert_eq!(numbers, sorted, "user {user}'s requests ran in the order they were queued");
        }
    }

    #[tokio::test]
    async fn a_set_aside_user_waits_in_its_lane_while_other_users_are_served() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let (collector, _, lane) = recording(1, &[7], Arc::clone(&gate));
        let blocked = submit_all(&collector, [(7, 1)].into_iter());
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The lane holds user 7: a later request of 7 waits behind it, everyone else is answered.
        let later = submit_all(&collector, [(7, 2)].into_iter());
        for task in submit_all(&collector, (0..50).map(|n| (n % 5, n))) {
            let (request, answer) = task.await.expect("the task ran");
            assert_eq!(answer, Ok(request.1 * 2), "answered while user 7 waits");
        }
        assert!(lane.lock().expect("lane").is_empty(), "user 7 still waits for its lock");
        assert!(!later[0].is_finished() && !blocked[0].is_finished());
        gate.notify_one();
        let (_, first) = blocked.into_iter().next().expect("one").await.expect("ran");
        assert_eq!(first, Ok(2));
        // The later request ran only after the first was answered, through a batch that set it aside too.
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.notify_one();
        let (_, second) = later.into_iter().next().expect("one").await.expect("ran");
        assert_eq!(second, Ok(4));
        assert_eq!(*lane.lock().expect("lane"), [(7, 1), (7, 2)]);
    }

    #[tokio::test]
    async fn a_request_whose_caller_gave_up_while_its_user_was_busy_never_runs() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let (collector, batches, lane) = recording(1, &[7], Arc::clone(&gate));
        let blocked = submit_all(&collector, [(7, 1)].into_iter());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let gave_up = collector.submit((7, 2), Duration::from_millis(30)).await;
        assert_eq!(gave_up, Err(NotAnswered::NotTaken(Duration::from_millis(30))));
        gate.notify_one();
        blocked.into_iter().next().expect("one").await.expect("ran").1.expect("answered");
        assert_eq!(collector.submit((8, 3), PATIENCE).await, Ok(6));
        let ran: Vec<Numbered> = batches.lock().expect("batches").concat();
        assert!(!ran.contains(&(7, 2)) && !lane.lock().expect("lane").contains(&(7, 2)), "{ran:?}");
        assert_eq!(collector.waiting(), 0);
    }

    #[tokio::test]
    async fn a_batch_that_panics_loses_only_its_own_requests_and_frees_its_users() {
        let lanes = Lanes {
            in_flight: 1,
            max_batch: 64,
            aside_in_flight: 1,
            run: |requests: Vec<Numbered>| async move {
                assert!(!requests.contains(&(1, 13)), "a fault injected for the test");
                requests.into_iter().map(|request| Handled::Answered(request.1)).collect()
            },
            run_aside: |requests: Vec<Numbered>| async move { requests.into_iter().map(|request| request.1).collect() },
        };
        let collector = Collector::start(lanes, user_of);
        assert_eq!(collector.submit((1, 13), PATIENCE).await, Err(NotAnswered::Lost), "it may have run: unknown");
        assert_eq!(collector.submit((1, 14), PATIENCE).await, Ok(14), "user 1 was freed and the slot too");
    }
}
