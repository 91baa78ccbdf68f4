//! `bitburst verify`: runs the PostgreSQL adapter's check of the whole ledger and reports it, as text with
//! a progress bar on a terminal, or as one JSON object for machines.

use std::process::ExitCode;
use std::time::Instant;

use adapters_postgres::{LedgerVerification, VerifyReport};
use domain::error_chain;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::config::VerifyArgs;

/// Checks the ledger at `database_url`: 0 when every rule holds, 1 when one does not, 2 when the ledger
/// could not be read.
pub async fn verify(database_url: Option<&str>, args: &VerifyArgs) -> ExitCode {
    let Some(url) = database_url else {
        eprintln!("bitburst verify: set DATABASE_URL (or --database-url) to the ledger's PostgreSQL");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let checked = match LedgerVerification::begin(url).await {
        Ok(verification) => {
            // Hidden by indicatif itself when stderr is not a terminal, and with --json.
            let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(verification.transactions) };
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} transactions, {per_sec}, {eta} left")
            {
                bar.set_style(style);
            }
            let report = verification.run(|read| bar.set_position(read)).await;
            bar.finish_and_clear();
            report
        }
        Err(error) => Err(error),
    };
    let seconds = started.elapsed().as_secs_f64();
    match checked {
        Ok(report) if args.json => {
            println!("{}", summary_json(&report, seconds));
            exit_code(&report)
        }
        Ok(report) => {
            for finding in &report.findings {
                println!("{finding}");
            }
            let verdict = if report.is_clean() { "ledger ok" } else { "ledger BROKEN" };
            println!(
                "{verdict}: {} users, {} transactions, {} findings, checked in {seconds:.1} s",
                report.users,
                report.transactions,
                report.findings.len()
            );
            exit_code(&report)
        }
        Err(error) => {
            eprintln!("bitburst verify: {}", error_chain(&error));
            ExitCode::from(2)
        }
    }
}

fn exit_code(report: &VerifyReport) -> ExitCode {
    if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn summary_json(report: &VerifyReport, seconds: f64) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|finding| {
            json!({
                "user_id": finding.user_id.as_str(),
                "sequence": finding.entry.map(|(sequence, _)| sequence.get()),
                "transaction_id": finding.entry.map(|(_, id)| id.to_string()),
                "problem": finding.problem.to_string(),
            })
        })
        .collect();
    json!({
        "clean": report.is_clean(),
        "users": report.users,
        "transactions": report.transactions,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "findings": findings,
    })
}
