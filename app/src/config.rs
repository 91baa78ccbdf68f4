use std::net::SocketAddr;
use std::time::Duration;

/// BitBurst's configuration: every setting is a flag and an environment variable.
#[derive(Debug, clap::Parser)]
#[command(name = "bitburst", version, about = "BitBurst: a ledger of user balances in USD, over HTTP.")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BITBURST_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,

    /// How long a request waits for the store before it is answered 503 storage-unavailable.
    #[arg(long, env = "BITBURST_STORE_TIMEOUT_MS", default_value_t = 5000, value_name = "MILLISECONDS")]
    pub store_timeout_ms: u64,

    /// After SIGTERM, how long the instance keeps serving new requests while /readyz already answers 503,
    /// so that a load balancer takes it out first; then it stops accepting and finishes what is in flight.
    #[arg(long, env = "BITBURST_DRAIN_GRACE_MS", default_value_t = 0, value_name = "MILLISECONDS")]
    pub drain_grace_ms: u64,
}

impl Config {
    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.store_timeout_ms)
    }

    pub fn drain_grace(&self) -> Duration {
        Duration::from_millis(self.drain_grace_ms)
    }
}
