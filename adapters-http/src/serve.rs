//! Serving the router on a socket, with the bounds axum's own `serve` does not set: a client must send
//! a request's headers within a time limit (so a client that trickles them cannot hold a connection, or
//! a shutdown, for as long as it likes), an idle keep-alive connection is closed after the same time, and
//! a shutdown closes idle and half-sent connections at once while requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How connections are kept.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// How long a client may take to send a request's headers; also how long a keep-alive connection
    /// may sit idle between requests. Past it the connection is closed.
    pub header_read_timeout: Duration,
}

impl ServeSettings {
    /// The default of [`ServeSettings::header_read_timeout`].
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self { header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT }
    }
}

/// After a shutdown began, how long a connection with no request in flight may take to finish writing
/// what it has (a response just sent) before it is closed.
const QUIET_CONNECTION_GRACE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `stop_accepting` resolves, then finishes the requests in flight and
/// returns once every connection is closed. Each request carries its peer's [`ConnectInfo`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    stop_accepting: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop_accepting = std::pin::pin!(stop_accepting);
    loop {
        tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, app.clone(), http.clone(), stopping.clone()));
                }
                // A connection reset before it was accepted costs only itself. Anything else (out of file
                // descriptors, most likely) lasts a while: wait rather than spin on the error.
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    mut stopping: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&in_flight);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(Body::new);
        let app = app.clone();
        let in_flight = InFlight::enter(&counted);
        async move {
            let response = app.oneshot(request).await;
            // The request stays in flight until its body is written: the body holds the guard.
            response.map(|response| {
                response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _still_in_flight = &in_flight;
                        frame
                    }))
                })
            })
        }
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => log_connection_end(served),
        () = stopped(&mut stopping) => {
            // Closes an idle keep-alive connection now; one with a request in flight closes after it.
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(QUIET_CONNECTION_GRACE, connection.as_mut()).await {
                Ok(served) => log_connection_end(served),
                // Still open with nothing in flight: a client still sending its first request's headers.
                Err(_) if in_flight.load(Ordering::Acquire) == 0 => {}
                Err(_) => log_connection_end(connection.await),
            }
        }
    }
}

async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error means the server is gone, which stops this connection too.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

fn log_connection_end(served: Result<(), hyper::Error>) {
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Counts a request as in flight on its connection until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
