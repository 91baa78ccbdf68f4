//! `loadgen`: a verifying load generator for the BitBurst HTTP API.
//!
//! N closed-loop workers send adds, balance reads and history reads for a while; every acknowledged add
//! is remembered, adds with an unknown outcome are re-sent with their key, and then every user's balance
//! and full history are checked against what was acknowledged. Exit status: 0 when the ledger holds
//! exactly that, 1 when it does not (or nothing succeeded), 2 when the run could not start.

mod api;
mod args;
mod expected;
mod money;
mod report;
mod resolve;
mod rng;
mod sampling;
mod stats;
mod verify;
mod workers;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::api::Api;
use crate::args::Args;
use crate::expected::Expectations;
use crate::report::{RunReport, Verification};
use crate::sampling::{OperationSampler, UserSampler};
use crate::stats::{LiveCounters, RunStats};
use crate::workers::{RunPlan, Worker};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs the load and the verification; `Ok(false)` when verification failed or nothing succeeded.
async fn run(args: &Args) -> Result<bool, Box<dyn Error>> {
    let clock = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let run_id = args.run_id.clone().unwrap_or_else(|| clock.as_millis().to_string());
    let seed = args.seed.unwrap_or_else(|| u64::try_from(clock.as_nanos() & u128::from(u64::MAX)).unwrap_or(0));
    check_targets_answer(args).await?;

    let started = Instant::now();
    let plan = Arc::new(RunPlan {
        run_id: run_id.clone(),
        users: UserSampler::new(args.distribution, args.users, args.zipf_exponent),
        operations: OperationSampler::new(args.mix),
        keys: args.keys,
        repeat_share: args.repeat_share,
        amount_cents_max: args.amount_cents_max,
        deadline: args.duration_limit().map(|limit| started + limit),
        request_budget: args.requests,
        issued: AtomicU64::new(0),
    });
    let expectations = Arc::new(Expectations::new(args.users));
    let live = Arc::new(LiveCounters::default());
    eprintln!(
        "loadgen: run {run_id} (seed {seed}): {} connections, {} users ({:?}), mix {}, keys {:?}, {}",
        args.connections,
        args.users,
        args.distribution,
        args.mix,
        args.keys,
        match (args.duration_limit(), args.requests) {
            (Some(limit), None) => format!("{} s", limit.as_secs()),
            (None, Some(count)) => format!("{count} requests"),
            (Some(limit), Some(count)) => format!("{} s or {count} requests", limit.as_secs()),
            (None, None) => "no limit".to_owned(), // not reached: the duration has a default
        }
    );

    let mut workers = tokio::task::JoinSet::new();
    for index in 0..args.connections {
        let api = Api::new(&args.targets, args.timeout(), index as usize)?;
        let worker = Worker::new(index, Arc::clone(&plan), Arc::clone(&expectations), Arc::clone(&live), api, seed);
        workers.spawn(worker.run());
    }
    let progress = (args.progress_secs > 0).then(|| {
        let every = std::time::Duration::from_secs(args.progress_secs);
        tokio::spawn(stats::report_progress(Arc::clone(&live), every, started))
    });
    let mut stats = RunStats::default();
    while let Some(worker_stats) = workers.join_next().await {
        stats.merge(&worker_stats?);
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }

    let verification = if args.no_verify { None } else { Some(verify(args, &run_id, &expectations).await?) };
    let report = RunReport {
        run_id: &run_id,
        targets: args.targets.iter().map(|url| url.as_str().trim_end_matches('/').to_owned()).collect(),
        connections: args.connections,
        elapsed,
        stats: &stats,
        verification: verification.as_ref(),
    };
    print!("{}", report.table());
    if let Some(verification) = &verification {
        for example in &verification.findings.examples {
            eprintln!("verify: {example}");
        }
        println!("{}", verification.summary_line());
    }
    let succeeded = stats.successes() > 0;
    if !succeeded {
        eprintln!("loadgen: no request succeeded");
    }
    if args.json {
        let mut summary = report.json();
        summary["ok"] = (succeeded && verification.as_ref().is_none_or(Verification::passed)).into();
        println!("{summary}");
    }
    Ok(succeeded && verification.as_ref().is_none_or(Verification::passed))
}

async fn verify(args: &Args, run_id: &str, expectations: &Arc<Expectations>) -> Result<Verification, Box<dyn Error>> {
    let verify_started = Instant::now();
    let resolution = resolve::resolve_unknown_outcomes(
        expectations,
        run_id,
        &args.targets,
        args.verification_timeout(),
        args.verify_concurrency,
    )
    .await?;
    let findings = verify::verify_ledger(
        expectations,
        run_id,
        &args.targets,
        args.verification_timeout(),
        args.verify_concurrency,
    )
    .await?;
    eprintln!("loadgen: verified {} users in {:.1} s", findings.users, verify_started.elapsed().as_secs_f64());
    let counters = &expectations.counters;
    let mut findings = findings;
    // Violations seen in the answers during the run count with those found in the ledger.
    findings.doubled += counters.doubled.load(Ordering::Relaxed);
    findings.unexpected += counters.unexpected.load(Ordering::Relaxed);
    Ok(Verification {
        adds_acknowledged: counters.acknowledged.load(Ordering::Relaxed),
        replays: counters.replays.load(Ordering::Relaxed),
        resolution,
        findings,
    })
}

/// Fails fast, with the reason, when a target does not answer at all: better than a run of errors.
async fn check_targets_answer(args: &Args) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::builder().timeout(args.verification_timeout()).no_proxy().build()?;
    for target in &args.targets {
        let url = format!("{}/healthz", target.as_str().trim_end_matches('/'));
        let response = client.get(&url).send().await.map_err(|error| format!("{url} does not answer: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()).into());
        }
    }
    Ok(())
}
