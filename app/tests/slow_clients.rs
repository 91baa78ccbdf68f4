//! Clients that hold connections without finishing a request: they are cut off after the header-read
//! timeout, and a shutdown closes them at once instead of waiting for them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{spawn_app, start_app};

/// Sends a request's headers one line at a time, `pause` apart, until the server closes the connection;
/// how long it stayed open.
fn trickle_headers(stream: &mut TcpStream, pause: Duration, give_up_after: Duration) -> Duration {
    let started = Instant::now();
    stream.write_all(b"GET /users/gopal/balance HTTP/1.1\r\nHost: bitburst\r\n").expect("the request line is sent");
    let mut line = 0;
    while started.elapsed() < give_up_after {
        std::thread::sleep(pause);
        line += 1;
        if stream.write_all(format!("X-Trickle-{line}: {line}\r\n").as_bytes()).is_err() || closed(stream) {
            return started.elapsed();
        }
    }
    started.elapsed()
}

/// Whether the peer closed the connection (a read returns end of file or an error without waiting).
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0_u8; 1024];
    let closed = match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

#[test]
fn a_client_that_trickles_its_headers_is_cut_off_at_the_header_read_timeout() {
    let app = start_app(&["--header-read-timeout-ms", "1000"]);
    let mut stream = TcpStream::connect(app.address).expect("connects");
    let held = trickle_headers(&mut stream, Duration::from_millis(200), Duration::from_secs(15));
    assert!(held < Duration::from_secs(3), "a client sending a header line every 200 ms held on for {held:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let app = start_app(&["--header-read-timeout-ms", "1000"]);
    let mut stream = TcpStream::connect(app.address).expect("connects");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: bitburst\r\n\r\n").expect("sent");
    let mut buffer = [0_u8; 1024];
    let read = stream.read(&mut buffer).expect("an answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("a read timeout");
    let after_idle = stream.read(&mut buffer);
    assert!(matches!(after_idle, Ok(0)), "closed by the server: {after_idle:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "idle for {:?} before it was closed", started.elapsed());
}

// The binary: the test signals the process and reads its exit status.
#[test]
fn a_shutdown_closes_idle_and_half_sent_connections_at_once_and_exits_cleanly() {
    let mut app = spawn_app(&["--shutdown-timeout-ms", "20000"], &[]);
    let mut idle = TcpStream::connect(app.address).expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: bitburst\r\n\r\n").expect("sent");
    let mut buffer = [0_u8; 1024];
    assert!(idle.read(&mut buffer).expect("an answer") > 0);
    let mut half_sent = TcpStream::connect(app.address).expect("connects");
    half_sent.write_all(b"GET /users/gopal/balance HTTP/1.1\r\nHost: bitburst\r\n").expect("a part is sent");
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    app.terminate();
    let status = app.wait_for_exit(Duration::from_secs(25));
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "the shutdown waited {took:?} for clients that sent no request");
}
