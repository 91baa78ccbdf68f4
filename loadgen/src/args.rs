//! The command line: every option has a default, so `loadgen` alone loads a local instance for 10 s.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use reqwest::Url;

/// Used when neither --duration nor --requests is given.
const DEFAULT_DURATION_SECS: u64 = 10;

/// See `Args::verification_timeout`.
const MIN_VERIFICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest amount the API accepts, 1,000,000,000.00, in cents.
const MAX_AMOUNT_CENTS: u64 = 100_000_000_000;

/// A verifying load generator for the BitBurst HTTP API.
///
/// Closed-loop workers send adds, balance reads and history reads; every add the service acknowledges
/// is remembered, and at the end each user's balance and full history are checked against them.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// BitBurst instance(s) to load: repeat the flag or separate URLs with commas. Each worker spreads
    /// its requests over them round-robin.
    #[arg(
        long = "target",
        env = "LOADGEN_TARGET",
        value_name = "URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_target
    )]
    pub targets: Vec<Url>,

    /// Concurrent closed-loop workers, each with its own keep-alive connection per target: at most this
    /// many requests are in flight.
    #[arg(long, env = "LOADGEN_CONNECTIONS", value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// How long to send load, in seconds [default: 10 when --requests is not given]. With --requests
    /// too, the run stops at whichever limit comes first.
    #[arg(long, env = "LOADGEN_DURATION", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,

    /// Stop after this many requests in all (verification requests not counted).
    #[arg(long, env = "LOADGEN_REQUESTS", value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// How many distinct users the requests go to (at most 1,000,000: each costs the verifier memory).
    #[arg(long, env = "LOADGEN_USERS", value_name = "U", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,

    /// How requests pick their user: all alike, all to one user, or a few users get most of them.
    #[arg(long, env = "LOADGEN_DISTRIBUTION", value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,

    /// The exponent s of the zipf distribution: user k (from 1) is picked with weight 1 / k^s.
    #[arg(long, env = "LOADGEN_ZIPF_EXPONENT", value_name = "S", default_value_t = 1.0, value_parser = parse_zipf_exponent)]
    pub zipf_exponent: f64,

    /// Relative weights of the operations, e.g. `add=100` or `add=80,balance=15,history=5`. History
    /// reads ask for the first page.
    #[arg(long, env = "LOADGEN_MIX", value_name = "WEIGHTS", default_value = "add=80,balance=15,history=5")]
    pub mix: Mix,

    /// Whether adds carry an Idempotency-Key (`unique`: a fresh one each) or none. Without keys an add
    /// whose answer is lost cannot be resolved and is reported as ambiguous.
    #[arg(long, env = "LOADGEN_KEYS", value_enum, default_value_t = KeyMode::Unique)]
    pub keys: KeyMode,

    /// Share of adds (0 to 1) that deliberately re-send an earlier key of the same user with the same
    /// amount, possibly while the original is still in flight. Ignored with `--keys none`.
    #[arg(long, env = "LOADGEN_REPEAT_SHARE", value_name = "SHARE", default_value_t = 0.1, value_parser = parse_share)]
    pub repeat_share: f64,

    /// Each add's amount is a random whole number of cents from 1 to this, sent as a string ("12.34").
    #[arg(long, env = "LOADGEN_AMOUNT_CENTS_MAX", value_name = "CENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_AMOUNT_CENTS))]
    pub amount_cents_max: u64,

    /// Names this run's users `lg-{RUN_ID}-{n}`, so that runs never see each other's data [default:
    /// derived from the current time]. Reuse one to read the users an earlier run wrote.
    #[arg(long, env = "LOADGEN_RUN_ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,

    /// Seed of the workers' random choices, to repeat a run's sequence [default: from the clock].
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,

    /// Per-request timeout in milliseconds during the load; a timed-out add has an unknown outcome and is
    /// re-sent with its key before verification. Re-sends and verification reads wait at least 5 s, so a
    /// tight timeout can provoke unknown outcomes and still be verified.
    #[arg(long, env = "LOADGEN_TIMEOUT_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Seconds between progress lines on stderr; 0 turns them off.
    #[arg(long, env = "LOADGEN_PROGRESS_SECS", value_name = "SECS", default_value_t = 1)]
    pub progress_secs: u64,

    /// Skip verification: only measure.
    #[arg(long, env = "LOADGEN_NO_VERIFY")]
    pub no_verify: bool,

    /// Users checked at once during verification.
    #[arg(long, env = "LOADGEN_VERIFY_CONCURRENCY", value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub verify_concurrency: u32,

    /// Also print a one-line JSON summary, as the last line on stdout, for scripts.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: bool,
}

impl Args {
    /// How long to send load: none when only a request count bounds the run.
    pub fn duration_limit(&self) -> Option<Duration> {
        match (self.duration, self.requests) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(DEFAULT_DURATION_SECS)),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The timeout of re-sends and verification reads: those must get an answer to be of use.
    pub fn verification_timeout(&self) -> Duration {
        self.timeout().max(MIN_VERIFICATION_TIMEOUT)
    }
}

/// How a request picks its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// Every user equally likely.
    Uniform,
    /// Every request to the same user: the worst case for per-user locking.
    Hot,
    /// User k (from 1) with weight 1 / k^s (--zipf-exponent): a few users get most requests.
    Zipf,
}

/// Whether adds carry an Idempotency-Key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyMode {
    /// No key: every add is a new transaction.
    None,
    /// A fresh key for every add (repeats aside).
    Unique,
}

/// One of the API calls the workers make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Add,
    Balance,
    History,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Add, Operation::Balance, Operation::History];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Add => "add",
            Operation::Balance => "balance",
            Operation::History => "history",
        }
    }
}

/// Relative weights of the operations; at least one is above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub add: u32,
    pub balance: u32,
    pub history: u32,
}

impl Mix {
    pub fn weight(&self, operation: Operation) -> u32 {
        match operation {
            Operation::Add => self.add,
            Operation::Balance => self.balance,
            Operation::History => self.history,
        }
    }

    pub fn total(&self) -> u64 {
        Operation::ALL.iter().map(|&operation| u64::from(self.weight(operation))).sum()
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix { add: 0, balance: 0, history: 0 };
        let mut seen = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=WEIGHT (e.g. add=80)"))?;
            let name = name.trim();
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("the weight of `{name}` must be a whole number, not `{}`", weight.trim()))?;
            let slot = match name {
                "add" => &mut mix.add,
                "balance" => &mut mix.balance,
                "history" => &mut mix.history,
                other => return Err(format!("unknown operation `{other}`: use add, balance or history")),
            };
            if seen.contains(&name) {
                return Err(format!("`{name}` is given twice"));
            }
            seen.push(name);
            *slot = weight;
        }
        if mix.total() == 0 {
            return Err("at least one operation needs a weight above 0".to_owned());
        }
        Ok(mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "add={},balance={},history={}", self.add, self.balance, self.history)
    }
}

fn parse_target(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
    // Built without TLS: the service is measured on its own, behind no proxy.
    if url.scheme() != "http" {
        return Err(format!("`{text}`: only http:// targets are supported"));
    }
    if url.host().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url)
}

fn parse_share(text: &str) -> Result<f64, String> {
    let share: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&share) { Ok(share) } else { Err(format!("{share} is not between 0 and 1")) }
}

fn parse_zipf_exponent(text: &str) -> Result<f64, String> {
    let exponent: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    // Beyond 10 all but the first user are practically never picked: that is --distribution hot.
    if (0.0..=10.0).contains(&exponent) { Ok(exponent) } else { Err(format!("{exponent} is not between 0 and 10")) }
}

/// User ids are `lg-{run_id}-{n}`: the run id must keep them within the API's 128 characters of
/// `A-Z a-z 0-9 . _ ~ @ + -`.
fn parse_run_id(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._~@+-".contains(c);
    if text.is_empty() || text.len() > 100 || !text.chars().all(allowed) {
        return Err(format!("`{text}` must be 1 to 100 of A-Z a-z 0-9 . _ ~ @ + -"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_every_operation_and_leaves_the_rest_at_zero() {
        assert_eq!("add=80,balance=15,history=5".parse(), Ok(Mix { add: 80, balance: 15, history: 5 }));
        assert_eq!("add=100".parse(), Ok(Mix { add: 100, balance: 0, history: 0 }));
        assert_eq!(" balance = 3 , add=1 ".parse(), Ok(Mix { add: 1, balance: 3, history: 0 }));
    }

    #[test]
    fn mix_refuses_what_it_cannot_mean() {
        for (input, why) in [
            ("", "empty"),
            ("add=0,balance=0", "all zero"),
            ("add", "no weight"),
            ("add=-1", "negative"),
            ("add=1.5", "fraction"),
            ("deposit=10", "unknown operation"),
            ("add=1,add=2", "duplicate"),
        ] {
            assert!(input.parse::<Mix>().is_err(), "`{input}` ({why}) should be refused");
        }
    }

    #[test]
    fn mix_displays_as_it_parses() {
        let mix: Mix = "history=2,add=7".parse().expect("valid mix");
        assert_eq!(mix.to_string().parse(), Ok(mix));
    }

    #[test]
    fn duration_defaults_only_without_a_request_count() {
        let args = |extra: &[&str]| Args::parse_from(["loadgen"].iter().chain(extra));
        assert_eq!(args(&[]).duration_limit(), Some(Duration::from_secs(10)));
        assert_eq!(args(&["--requests", "5"]).duration_limit(), None);
        assert_eq!(args(&["--requests", "5", "--duration", "2"]).duration_limit(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn targets_can_be_repeated_or_comma_separated() {
        let args = Args::parse_from(["loadgen", "--target", "http://a:1,http://b:2", "--target", "http://c:3"]);
        let hosts: Vec<_> = args.targets.iter().filter_map(Url::host_str).collect();
        assert_eq!(hosts, ["a", "b", "c"]);
        assert!(Args::try_parse_from(["loadgen", "--target", "https://a"]).is_err());
    }

    #[test]
    fn run_ids_that_would_make_invalid_user_ids_are_refused() {
        assert!(parse_run_id("bench-42_a.b").is_ok());
        assert!(parse_run_id("has space").is_err());
        assert!(parse_run_id("slash/").is_err());
        assert!(parse_run_id(&"x".repeat(101)).is_err());
    }
}
