//! The closed-loop workers: each sends one request, waits for its answer, records it, and sends the
//! next, until the run's time or request budget is spent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::api::{Api, Failure, PageRequest};
use crate::args::{KeyMode, Operation};
use crate::expected::{AddKey, Expectations};
use crate::money::format_cents;
use crate::rng::SplitMix64;
use crate::sampling::{OperationSampler, UserSampler, amount_cents};
use crate::stats::{LiveCounters, RunStats};

/// What every worker of a run shares: the choices to make and when to stop.
#[derive(Debug)]
pub struct RunPlan {
    pub run_id: String,
    pub users: UserSampler,
    pub operations: OperationSampler,
    pub keys: KeyMode,
    pub repeat_share: f64,
    pub amount_cents_max: u64,
    pub deadline: Option<Instant>,
    pub request_budget: Option<u64>,
    /// Requests started so far, against `request_budget`.
    pub issued: AtomicU64,
}

impl RunPlan {
    pub fn user_id(&self, user: u32) -> String {
        user_id(&self.run_id, user)
    }
}

/// The id of user `index` of run `run_id`: runs never share users.
pub fn user_id(run_id: &str, index: u32) -> String {
    format!("lg-{run_id}-{index}")
}

#[derive(Debug)]
pub struct Worker {
    index: u32,
    plan: Arc<RunPlan>,
    expectations: Arc<Expectations>,
    live: Arc<LiveCounters>,
    api: Api,
    rng: SplitMix64,
    /// The sequence number of this worker's next fresh Idempotency-Key.
    next_key: u64,
    stats: RunStats,
}

impl Worker {
    pub fn new(
        index: u32,
        plan: Arc<RunPlan>,
        expectations: Arc<Expectations>,
        live: Arc<LiveCounters>,
        api: Api,
        run_seed: u64,
    ) -> Self {
        let rng = SplitMix64::for_worker(run_seed, index);
        Self { index, plan, expectations, live, api, rng, next_key: 0, stats: RunStats::default() }
    }

    pub async fn run(mut self) -> RunStats {
        while self.may_send() {
            let operation = self.plan.operations.sample(&mut self.rng);
            let user = self.plan.users.sample(&mut self.rng);
            match operation {
                Operation::Add => self.add(user).await,
                Operation::Balance => self.balance(user).await,
                Operation::History => self.history(user).await,
            }
        }
        self.stats
    }

    fn may_send(&self) -> bool {
        if self.plan.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return false;
        }
        match self.plan.request_budget {
            Some(budget) => self.plan.issued.fetch_add(1, Ordering::Relaxed) < budget,
            None => true,
        }
    }

    async fn add(&mut self, user: u32) {
        match self.plan.keys {
            KeyMode::Unique => self.keyed_add(user).await,
            KeyMode::None => self.unkeyed_add(user).await,
        }
    }

    /// A fresh key, or (with the repeat share) an earlier key of the same user with its amount, which
    /// may still be in flight in another worker: either way the service must record it once.
    async fn keyed_add(&mut self, user: u32) {
        let repeat = if self.rng.chance(self.plan.repeat_share) {
            self.expectations.earlier_key(user, &mut self.rng)
        } else {
            None
        };
        let (index, key, cents) = repeat.unwrap_or_else(|| {
            let key = AddKey { worker: self.index, seq: self.next_key };
            self.next_key += 1;
            let cents = amount_cents(&mut self.rng, self.plan.amount_cents_max);
            (self.expectations.begin_keyed(user, key, cents), key, cents)
        });
        let user_id = self.plan.user_id(user);
        let started = Instant::now();
        let result = self.api.add(&user_id, Some(&key.header_value()), &format_cents(cents)).await;
        self.record(Operation::Add, started.elapsed(), result.as_ref().err());
        match result {
            Ok(answer) => self.expectations.acknowledge_keyed(user, index, &answer),
            Err(failure) if failure.outcome_unknown() => self.expectations.mark_keyed_unknown(user, index),
            // Refused or never sent: nothing was recorded by this request.
            Err(_) => {}
        }
    }

    async fn unkeyed_add(&mut self, user: u32) {
        let cents = amount_cents(&mut self.rng, self.plan.amount_cents_max);
        let user_id = self.plan.user_id(user);
        let started = Instant::now();
        let result = self.api.add(&user_id, None, &format_cents(cents)).await;
        self.record(Operation::Add, started.elapsed(), result.as_ref().err());
        match result {
            Ok(answer) => self.expectations.acknowledge_unkeyed(user, cents, &answer),
            // Without a key there is no safe way to ask again: it stays ambiguous.
            Err(failure) if failure.outcome_unknown() => self.expectations.mark_unkeyed_ambiguous(user, cents),
            Err(_) => {}
        }
    }

    async fn balance(&mut self, user: u32) {
        let user_id = self.plan.user_id(user);
        let started = Instant::now();
        let result = self.api.balance(&user_id).await;
        self.record(Operation::Balance, started.elapsed(), result.as_ref().err());
    }

    async fn history(&mut self, user: u32) {
        let user_id = self.plan.user_id(user);
        let started = Instant::now();
        let result = self.api.history(&user_id, PageRequest::Number(1)).await;
        self.record(Operation::History, started.elapsed(), result.as_ref().err());
    }

    fn record(&mut self, operation: Operation, latency: Duration, failure: Option<&Failure>) {
        let stats = self.stats.operation_mut(operation);
        match failure {
            None => stats.record_success(latency),
            Some(failure) => stats.record_failure(failure),
        }
        self.live.record(failure.is_none());
    }
}
