//! BitBurst, the ledger service, as a library: [`Config`] read from flags and the environment, and an
//! [`Application`] built from it (store, router, bound listener) that serves until stopped. The `bitburst`
//! binary parses the configuration, sets up logging and runs it; tests start it in their own process.

mod config;
mod process_metrics;
mod shutdown;
mod startup;
mod telemetry;
mod verify;

pub use config::{Command, Config, LogFormat, Milliseconds, VerifyArgs};
pub use startup::{Application, StartupError};
pub use telemetry::{init_logs, keep_drained};
pub use verify::verify;
