//! The `LedgerRepository` contract, against a real PostgreSQL.

mod support;

use std::sync::Arc;

use testkit::contract::Subject;

testkit::ledger_contract_tests!(async || support::migrated_ledger()
    .await
    .map(|(_, ledger)| Arc::new(ledger) as Subject));
