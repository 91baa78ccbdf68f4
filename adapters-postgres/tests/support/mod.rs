//! A migrated, empty ledger database per test.

use adapters_postgres::{PgLedger, PgSettings};
use testkit::postgres::{TestDatabase, fresh_database};

/// A new database with the schema applied, and a ledger on it.
pub async fn migrated_ledger() -> Option<(TestDatabase, PgLedger)> {
    let database = fresh_database().await?;
    let ledger = ledger_on(&database.url);
    ledger.migrate().await.expect("the migrations apply");
    Some((database, ledger))
}

/// Another ledger (another pool, as another instance would have) on a database.
pub fn ledger_on(url: &str) -> PgLedger {
    PgLedger::connect_lazy(&PgSettings::new(url)).expect("a valid URL")
}
