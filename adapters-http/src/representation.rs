//! The JSON bodies of successful responses. Money leaves as strings with two decimals.
//!
//! Each derives `ToSchema` too, so the OpenAPI document describes exactly what is serialized here.

use application::HistoryView;
use chrono::SecondsFormat;
use domain::{Balance, Transaction, UserId};
use serde::Serialize;
use utoipa::ToSchema;

/// A recorded transaction.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Transaction,
    example = json!({
        "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a",
        "user_id": "gopal",
        "amount": "500.00",
        "balance_after": "500.00",
        "created_at": "2026-11-29T10:00:00.123456Z"
    })
)]
pub struct TransactionBody {
    /// The transaction's id, a UUID (version 7).
    #[schema(format = "uuid")]
    id: String,
    /// The user whose balance it changed.
    #[schema(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")]
    user_id: String,
    /// The amount added.
    #[schema(pattern = r"^[0-9]+\.[0-9]{2}$")]
    amount: String,
    /// The user's balance right after this transaction, as on a bank statement.
    #[schema(pattern = r"^[0-9]+\.[0-9]{2}$")]
    balance_after: String,
    /// When the ledger recorded it: RFC 3339 in UTC, with microseconds.
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Transaction> for TransactionBody {
    fn from(transaction: &Transaction) -> Self {
        Self {
            id: transaction.id.to_string(),
            user_id: transaction.user_id.to_string(),
            amount: transaction.amount.to_string(),
            balance_after: transaction.balance_after.to_string(),
            created_at: transaction.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }
}

/// A user's balance; `0.00` for a user with no transactions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Balance, example = json!({"user_id": "gopal", "balance": "500.00", "currency": "USD"}))]
pub struct BalanceBody {
    /// The user.
    #[schema(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")]
    user_id: String,
    /// The balance.
    #[schema(pattern = r"^[0-9]+\.[0-9]{2}$")]
    balance: String,
    /// Always `USD`.
    #[schema(schema_with = usd)]
    currency: &'static str,
}

/// The only currency: `{"type": "string", "enum": ["USD"]}`.
fn usd() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["USD"]))
        .description(Some("Always `USD`."))
        .build()
}

impl BalanceBody {
    pub fn new(user_id: &UserId, balance: Balance) -> Self {
        Self { user_id: user_id.to_string(), balance: balance.to_string(), currency: "USD" }
    }
}

/// A page of a user's history, newest first; an empty list past the end or for a user with no transactions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = HistoryPage,
    example = json!({
        "user_id": "gopal",
        "page": 1,
        "per_page": 10,
        "transactions": [{
            "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a",
            "user_id": "gopal",
            "amount": "500.00",
            "balance_after": "500.00",
            "created_at": "2026-11-29T10:00:00.123456Z"
        }],
        "next_page": null,
        "next_cursor": null
    })
)]
pub struct HistoryBody {
    /// The user.
    #[schema(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")]
    user_id: String,
    /// This page's number, also when it was asked for by cursor.
    #[schema(minimum = 1)]
    page: u32,
    /// Transactions a page: 10.
    #[schema(minimum = 1)]
    per_page: u32,
    /// This page's transactions, newest first.
    transactions: Vec<TransactionBody>,
    /// The next page's number for `?page=`; `null` on the last page.
    #[schema(minimum = 1)]
    next_page: Option<u32>,
    /// The next page's cursor for `?cursor=`; `null` on the last page.
    next_cursor: Option<String>,
}

impl HistoryBody {
    pub fn new(user_id: &UserId, view: &HistoryView) -> Self {
        Self {
            user_id: user_id.to_string(),
            page: view.page.get(),
            per_page: view.per_page,
            transactions: view.transactions.iter().map(TransactionBody::from).collect(),
            next_page: view.next.map(|next| next.page.get()),
            next_cursor: view.next.map(|next| next.cursor.to_string()),
        }
    }
}

/// The body of the health and readiness probes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status, example = json!({"status": "ok"}))]
pub struct StatusBody {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    pub status: &'static str,
}
