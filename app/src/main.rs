//! `bitburst`: the ledger service. Reads its configuration, sets up logging, and runs [`bitburst::Application`]
//! until SIGTERM or Ctrl-C; the exit status says whether it stopped cleanly. `bitburst verify` checks the
//! ledger in PostgreSQL instead.

use std::process::ExitCode;

use bitburst::{Application, Command, Config, StartupError};
use clap::Parser;
use domain::error_chain;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Verify(args)) = &config.command {
        return bitburst::verify(config.database_url.as_deref(), args).await;
    }
    bitburst::init_logs(config.log_format);
    match serve(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "bitburst stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> Result<(), StartupError> {
    Application::build(config).await?.run_until_stopped().await
}
