use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use adapters_http::Readiness;

/// Resolves when the server should stop accepting connections: once `stop` resolved (with what stopped the
/// service, for the log) and the drain grace period has passed. Readiness turns 503 when `stop` resolves,
/// before the grace period, so a load balancer stops routing here while requests that still arrive are
/// served.
pub async fn drained(
    stop: impl Future<Output = &'static str>,
    readiness: Readiness,
    grace: Duration,
    stopped_accepting: Arc<Notify>,
) {
    let signal = stop.await;
    readiness.start_draining();
    tracing::info!(signal, grace_ms = grace.as_millis(), "shutting down: /readyz answers 503, draining");
    tokio::time::sleep(grace).await;
    tracing::info!("no longer accepting connections; finishing requests in flight");
    stopped_accepting.notify_one();
}

/// Resolves at SIGTERM or Ctrl-C, with the signal's name.
pub async fn signal() -> &'static str {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "Ctrl-C",
        () = terminate => "SIGTERM",
    }
}
