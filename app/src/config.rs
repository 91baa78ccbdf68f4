use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::num::ParseIntError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use adapters_http::{ApiKeys, CursorKey, HttpSettings, RateLimitSettings, ServeSettings};
use adapters_postgres::{GroupCommitSettings, PgSettings};
use clap::{CommandFactory, FromArgMatches};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A duration given in whole milliseconds, as every `..-ms` flag takes it and `--help` shows its default; so a
/// flag's default can be the `Duration` constant of the settings type it feeds, written there once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Milliseconds(pub Duration);

impl FromStr for Milliseconds {
    type Err = ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(|millis| Self(Duration::from_millis(millis)))
    }
}

impl fmt::Display for Milliseconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_millis())
    }
}

/// BitBurst's configuration: every setting is a flag and an environment variable.
#[derive(clap::Parser)]
#[command(name = "bitburst", version, about = "BitBurst: a ledger of user balances in USD, over HTTP.")]
pub struct Config {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on.
    #[arg(long, env = "BITBURST_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,

    /// PostgreSQL to keep the ledger in, as a `postgres://` URL. Without it the ledger lives in memory
    /// and is lost when the process stops. Several hosts in libpq's syntax
    /// (`postgres://user:pass@host1:5432,host2:5432/db?target_session_attrs=read-write`): the ledger
    /// writes to whichever is the primary, and finds the new one by itself after a failover.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL", global = true)]
    pub database_url: Option<String>,

    /// Connections to PostgreSQL this instance may hold. Instances x pool size must stay below the
    /// server's connection limit (100 by default); put PgBouncer in front beyond that.
    #[arg(
        long,
        env = "BITBURST_PG_POOL_SIZE",
        default_value_t = PgSettings::DEFAULT_POOL_SIZE,
        value_name = "CONNECTIONS"
    )]
    pub pg_pool_size: u32,

    /// How long a request waits for a PostgreSQL connection (a free one, or a new one being made).
    #[arg(
        long,
        env = "BITBURST_PG_ACQUIRE_TIMEOUT_MS",
        default_value_t = Milliseconds(PgSettings::DEFAULT_ACQUIRE_TIMEOUT),
        value_name = "MILLISECONDS"
    )]
    pub pg_acquire_timeout_ms: Milliseconds,

    /// PostgreSQL's statement timeout for this instance's statements.
    #[arg(
        long,
        env = "BITBURST_PG_STATEMENT_TIMEOUT_MS",
        default_value_t = Milliseconds(PgSettings::DEFAULT_STATEMENT_TIMEOUT),
        value_name = "MILLISECONDS"
    )]
    pub pg_statement_timeout_ms: Milliseconds,

    /// Group commit: how many batches of adds may be in flight at once (each holds a connection). Fewer
    /// make bigger batches; batches in flight never share a user.
    #[arg(
        long,
        env = "BITBURST_PG_BATCHES_IN_FLIGHT",
        default_value_t = GroupCommitSettings::DEFAULT_IN_FLIGHT,
        value_name = "BATCHES"
    )]
    pub pg_batches_in_flight: usize,

    /// Group commit: the most adds recorded in one database transaction.
    #[arg(
        long,
        env = "BITBURST_PG_BATCH_MAX",
        default_value_t = GroupCommitSettings::DEFAULT_MAX_BATCH,
        value_name = "ADDS"
    )]
    pub pg_batch_max: usize,

    /// How many coalesced balance reads may be in flight at once (each holds a connection).
    #[arg(
        long,
        env = "BITBURST_PG_READ_WORKERS",
        default_value_t = PgSettings::DEFAULT_READ_WORKERS,
        value_name = "READS"
    )]
    pub pg_read_workers: usize,

    /// At start-up, how long to wait for PostgreSQL to answer (retrying with backoff) before giving up.
    #[arg(
        long,
        env = "BITBURST_DB_WAIT_MS",
        default_value_t = Milliseconds(Duration::from_secs(60)),
        value_name = "MILLISECONDS"
    )]
    pub db_wait_ms: Milliseconds,

    /// How long a request may wait to reach the store. Past it, a read is answered 503
    /// storage-unavailable, and so is an add, which is then withdrawn and never recorded. An add that
    /// reached the database is answered with its outcome, however long its transaction takes.
    #[arg(
        long,
        env = "BITBURST_STORE_TIMEOUT_MS",
        default_value_t = Milliseconds(HttpSettings::DEFAULT_STORE_TIMEOUT),
        value_name = "MILLISECONDS"
    )]
    pub store_timeout_ms: Milliseconds,

    /// How long an add may take in all before it is answered 503 outcome-unknown: a backstop for a
    /// database connection that stops answering mid-transaction. Keep it well above the statement timeout,
    /// and below a proxy's read timeout (nginx's is 30 s by default) so that the client gets this answer.
    #[arg(
        long,
        env = "BITBURST_ADD_TIMEOUT_MS",
        default_value_t = Milliseconds(HttpSettings::DEFAULT_ADD_TIMEOUT),
        value_name = "MILLISECONDS"
    )]
    pub add_timeout_ms: Milliseconds,

    /// Log lines as human-readable text or as JSON objects (one per line, for log shippers).
    #[arg(long, env = "BITBURST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// API keys, comma-separated. With keys (here or in the keys file), every /users/... request needs
    /// Authorization: Bearer KEY. Without any, anyone who can reach the service can add money.
    #[arg(long, env = "BITBURST_API_KEYS", hide_env_values = true, value_delimiter = ',', value_name = "KEYS")]
    pub api_keys: Vec<String>,

    /// A file of API keys, one per line (blank lines ignored); added to those of --api-keys.
    #[arg(long, env = "BITBURST_API_KEYS_FILE", value_name = "PATH")]
    pub api_keys_file: Option<PathBuf>,

    /// Require an API key for /metrics too (when keys are configured); health and readiness stay open.
    #[arg(long, env = "BITBURST_METRICS_REQUIRE_KEY", default_value_t = false)]
    pub metrics_require_key: bool,

    /// Rate limit per client (per API key when keys are on, else per client address), in requests per
    /// second, for /users/... requests. Requests refused for a missing or wrong key are limited per
    /// client address. Off when not set.
    #[arg(long, env = "BITBURST_RATE_LIMIT_PER_SECOND", value_name = "REQUESTS")]
    pub rate_limit_per_second: Option<f64>,

    /// Rate limit: how many requests a client may send at once after being quiet.
    #[arg(long, env = "BITBURST_RATE_LIMIT_BURST", default_value_t = 50, value_name = "REQUESTS")]
    pub rate_limit_burst: u32,

    /// Take the client address for rate limiting from the last X-Forwarded-For entry (an address, with or
    /// without a port; earlier entries are never used), else the peer address. Only behind a proxy that
    /// appends it (such as the nginx of docker-compose.yml): clients can write the header.
    #[arg(long, env = "BITBURST_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// How long a client may take to send a request's headers, and how long an idle keep-alive connection
    /// is kept open. Past it the connection is closed. Keep a proxy's upstream keep-alive timeout below it.
    #[arg(
        long,
        env = "BITBURST_HEADER_READ_TIMEOUT_MS",
        default_value_t = Milliseconds(ServeSettings::DEFAULT_HEADER_READ_TIMEOUT),
        value_name = "MILLISECONDS"
    )]
    pub header_read_timeout_ms: Milliseconds,

    /// The secret that signs history cursors (at least 16 characters; 32 random ones are wise). Give every
    /// instance behind one load balancer the same one. Without it each instance makes its own at start, and
    /// a cursor works only on the instance that issued it, until it restarts.
    #[arg(long, env = "BITBURST_CURSOR_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub cursor_secret: Option<String>,

    /// After SIGTERM, how long the instance keeps serving new requests while /readyz already answers 503,
    /// so that a load balancer takes it out first; then it stops accepting and finishes what is in flight.
    #[arg(
        long,
        env = "BITBURST_DRAIN_GRACE_MS",
        default_value_t = Milliseconds(Duration::ZERO),
        value_name = "MILLISECONDS"
    )]
    pub drain_grace_ms: Milliseconds,

    /// After the drain grace period, how long requests in flight may take to finish before the process
    /// exits anyway (with a non-zero status).
    #[arg(
        long,
        env = "BITBURST_SHUTDOWN_TIMEOUT_MS",
        default_value_t = Milliseconds(Duration::from_secs(30)),
        value_name = "MILLISECONDS"
    )]
    pub shutdown_timeout_ms: Milliseconds,
}

/// The fewest characters a cursor secret may have.
const MIN_CURSOR_SECRET_CHARS: usize = 16;

/// What the binary can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Check the whole ledger in the PostgreSQL of --database-url from one consistent snapshot: each
    /// user's transactions numbered without gaps, each balance after a transaction the one before plus its
    /// amount, no transaction timed before the one before it, each hash chain intact, each stored balance
    /// equal to its transactions. Prints each user and transaction that breaks a rule; exits 0 if none
    /// does, 1 if one does, 2 if the ledger could not be read.
    Verify(VerifyArgs),
}

/// How `bitburst verify` reports.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Print one JSON object (clean, users, transactions, seconds, findings) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Config {
    /// Parses `args` (the program name first) and nothing else: unlike [`clap::Parser::parse`], it reads no
    /// environment variable, so a test or an embedding program gets exactly the settings it names.
    pub fn from_args_alone<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Self::command().mut_args(|arg| arg.env(None)).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }

    /// The PostgreSQL settings, when a database is configured.
    pub fn postgres(&self) -> Option<PgSettings> {
        let url = self.database_url.as_ref()?;
        Some(PgSettings {
            url: url.clone(),
            pool_size: self.pg_pool_size,
            acquire_timeout: self.pg_acquire_timeout_ms.0,
            statement_timeout: self.pg_statement_timeout_ms.0,
            queue_timeout: self.store_timeout(),
            group_commit: GroupCommitSettings { in_flight: self.pg_batches_in_flight, max_batch: self.pg_batch_max },
            read_workers: self.pg_read_workers,
        })
    }

    /// The API keys of the flag and the file together; `None` when there are none.
    pub fn api_keys(&self) -> std::io::Result<Option<ApiKeys>> {
        let mut keys = self.api_keys.clone();
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                std::io::Error::new(error.kind(), format!("cannot read the API keys file {}: {error}", path.display()))
            })?;
            keys.extend(text.lines().map(str::to_owned));
        }
        Ok(ApiKeys::new(keys))
    }

    /// The router's settings. Reads the API keys file, when one is named.
    pub fn http(&self) -> std::io::Result<HttpSettings> {
        // Checked here rather than by clap, whose error would print the (secret) value.
        if self.cursor_secret.as_ref().is_some_and(|secret| secret.chars().count() < MIN_CURSOR_SECRET_CHARS) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("BITBURST_CURSOR_SECRET needs at least {MIN_CURSOR_SECRET_CHARS} characters"),
            ));
        }
        Ok(HttpSettings {
            store_timeout: self.store_timeout(),
            add_timeout: self.add_timeout(),
            api_keys: self.api_keys()?,
            metrics_require_key: self.metrics_require_key,
            rate_limit: self.rate_limit(),
            cursor_key: self.cursor_secret.as_deref().map_or_else(CursorKey::random, CursorKey::from_secret),
            ..HttpSettings::default()
        })
    }

    /// How the server keeps connections.
    pub fn serve(&self) -> ServeSettings {
        ServeSettings { header_read_timeout: self.header_read_timeout_ms.0 }
    }

    pub fn rate_limit(&self) -> Option<RateLimitSettings> {
        self.rate_limit_per_second.filter(|rate| *rate > 0.0).map(|per_second| RateLimitSettings {
            per_second,
            burst: self.rate_limit_burst,
            trust_forwarded_for: self.trust_forwarded_for,
        })
    }

    pub fn db_wait(&self) -> Duration {
        self.db_wait_ms.0
    }

    pub fn store_timeout(&self) -> Duration {
        self.store_timeout_ms.0
    }

    pub fn add_timeout(&self) -> Duration {
        self.add_timeout_ms.0
    }

    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout_ms.0
    }

    pub fn drain_grace(&self) -> Duration {
        self.drain_grace_ms.0
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &self.database_url.as_ref().map(|_| "<redacted>"))
            .field("pg_pool_size", &self.pg_pool_size)
            .field("api_keys", &format!("{} keys", self.api_keys.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::from_args_alone(args).expect("the arguments parse")
    }

    #[test]
    fn without_flags_the_settings_are_the_defaults_of_the_settings_types() {
        let config = parse(&["bitburst", "--database-url", "postgres://ledger"]);
        // One flag, --store-timeout-ms, feeds both the router's store timeout and the store's queue timeout.
        let postgres = config.postgres().expect("a database is configured");
        assert_eq!(format!("{postgres:?}"), format!("{:?}", PgSettings::new("postgres://ledger")));
        let http = config.http().expect("no keys file to read");
        assert_eq!(format!("{http:?}"), format!("{:?}", HttpSettings::default()));
        assert_eq!(format!("{:?}", config.serve()), format!("{:?}", ServeSettings::default()));
    }

    #[test]
    fn a_short_cursor_secret_is_refused_without_being_shown() {
        let config = parse(&["bitburst", "--cursor-secret", "fifteen-chars!!"]);
        let refused = config.http().expect_err("15 characters are too few");
        assert!(!refused.to_string().contains("fifteen"), "{refused}");
        assert!(parse(&["bitburst", "--cursor-secret", "sixteen-chars!!!"]).http().is_ok());
    }

    #[test]
    fn a_milliseconds_flag_reads_and_shows_whole_milliseconds() {
        let config = parse(&["bitburst", "--store-timeout-ms", "1500"]);
        assert_eq!(config.store_timeout(), Duration::from_millis(1500));
        assert_eq!(config.store_timeout_ms.to_string(), "1500");
        assert!("1.5".parse::<Milliseconds>().is_err());
    }
}
