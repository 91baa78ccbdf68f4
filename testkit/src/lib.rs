//! Test support shared by the crates' tests: the [`contract`] every `LedgerRepository` must meet, and
//! [`postgres`], which finds or starts a PostgreSQL server and gives each test a database of its own.

// Test support fails by panicking, as tests do; documenting each panic would repeat every assertion.
#![allow(clippy::missing_panics_doc)]

pub mod contract;
pub mod postgres;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago. Another process may take it before
/// the caller does; for tests, that race is rare enough.
pub fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port can be bound");
    listener.local_addr().expect("a bound listener has an address").port()
}
