//! `start_app`: the service inside the test process, as `bitburst::Application` builds it, on a free port. It
//! runs on a runtime and a thread of its own, so that a test may block (on a socket, a browser) while it
//! serves, and it reads nothing from the environment: its settings are the test's arguments alone.

use std::net::SocketAddr;
use std::sync::{Once, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bitburst::{Application, Config, LogFormat};
use domain::error_chain;
use tokio::sync::oneshot;

use super::{TestApp, http_client};

/// How an app started in the test process runs. Dropping it stops the app as SIGTERM would (the drain
/// grace period, then the requests in flight finish) and waits for it.
pub struct InProcess {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// Builds the service from `args` (flags of `bitburst`, after `--addr 127.0.0.1:0`) and starts serving;
/// returns once it listens. Its logs are printed when `TEST_LOG` is set, filtered by `RUST_LOG`.
pub fn start_app(args: &[&str]) -> TestApp<InProcess> {
    print_logs_when_asked();
    let args = ["bitburst", "--addr", "127.0.0.1:0"].iter().chain(args);
    let config = Config::from_args_alone(args).expect("the test's arguments are flags of bitburst");
    let (address_sender, address_receiver) = mpsc::channel::<Result<SocketAddr, String>>();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the app");
        runtime.block_on(async move {
            let application = match Application::build(&config).await {
                Ok(application) => application,
                Err(error) => {
                    let why = error_chain(&error);
                    let _ = address_sender.send(Err(why.clone()));
                    return Err(why);
                }
            };
            let _ = address_sender.send(Ok(application.address()));
            let end_of_test = async {
                // A dropped sender stops the app too.
                let _ = stopped.await;
                "the end of the test"
            };
            application.run_until(end_of_test).await.map_err(|error| error_chain(&error))
        })
    });
    let address = address_receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("bitburst listens within a minute")
        .unwrap_or_else(|why| panic!("bitburst did not start: {why}"));
    TestApp { address, client: http_client(), runner: InProcess { stop: Some(stop), thread: Some(thread) } }
}

/// Logs of every app of the process on stdout, when `TEST_LOG` is set; the subscriber is global, so once.
fn print_logs_when_asked() {
    static LOGS: Once = Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        LOGS.call_once(|| bitburst::init_logs(LogFormat::Text));
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else { return };
        let stopped = thread.join();
        if std::thread::panicking() {
            return;
        }
        if let Err(why) = stopped.expect("the thread of bitburst does not panic") {
            panic!("bitburst stopped on an error: {why}");
        }
    }
}
