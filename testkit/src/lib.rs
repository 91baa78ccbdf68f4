//! Test support shared by the crates' tests: the [`contract`] every `LedgerRepository` must meet, and
//! [`postgres`], which finds or starts a PostgreSQL server and gives each test a database of its own.

// Test support fails by panicking, as tests do; documenting each panic would repeat every assertion.
#![allow(clippy::missing_panics_doc)]

pub mod contract;
pub mod postgres;
