//! The JSON bodies of successful responses. Money leaves as strings with two decimals.
//!
//! Each derives `ToSchema` too, so the OpenAPI document describes exactly what is serialized here.

use application::HistoryView;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{Balance, Transaction, UserId, format_recording_time};
use serde::Serialize;
use utoipa::ToSchema;

/// A recorded transaction.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Transaction,
    example = json!({
        "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a",
        "user_id": "gopal",
        "sequence": 1,
        "amount": "500.00",
        "balance_after": "500.00",
        "created_at": "2026-11-29T10:00:00.123456Z",
        "hash": "0a2483e750cdf009ebbf32562432b4e95e7102c1ad480e00370858c02f41de82"
    })
)]
pub struct TransactionBody {
    /// The transaction's id, a UUID (version 7).
    #[schema(format = "uuid")]
    id: String,
    /// The user whose balance it changed.
    #[schema(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")]
    user_id: String,
    /// Its place in the user's history: 1, 2, 3, ... with no gaps, in the order the ledger recorded them.
    #[schema(minimum = 1)]
    sequence: u64,
    /// The amount added.
    #[schema(pattern = r"^[0-9]+\.[0-9]{2}$")]
    amount: String,
    /// The user's balance right after this transaction, as on a bank statement.
    #[schema(pattern = r"^[0-9]+\.[0-9]{2}$")]
    balance_after: String,
    /// When the ledger recorded it: RFC 3339 in UTC, with microseconds. Never earlier than the user's
    /// transaction before it.
    #[schema(format = DateTime)]
    created_at: String,
    /// Lowercase hex SHA-256 of the previous transaction's `hash` (64 zeros for sequence 1) and this
    /// transaction's fields, as the API documentation spells out: the link of the user's hash chain.
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    hash: String,
}

impl From<&Transaction> for TransactionBody {
    fn from(transaction: &Transaction) -> Self {
        Self {
            id: transaction.id.to_string(),
            user_id: transaction.user_id.to_string(),
            sequence: transaction.sequence.get(),
            amount: transaction.amount.to_string(),
            balance_after: transaction.balance_after.to_string(),
            created_at: format_recording_time(&transaction.created_at),
            hash: transaction.hash.to_string(),
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
    /// With `?at=`: the time the balance is for, in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    as_of: Option<String>,
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
    pub fn new(user_id: &UserId, balance: Balance, as_of: Option<DateTime<Utc>>) -> Self {
        Self {
            user_id: user_id.to_string(),
            balance: balance.to_string(),
            currency: "USD",
            as_of: as_of.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
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
            "sequence": 1,
            "amount": "500.00",
            "balance_after": "500.00",
            "created_at": "2026-11-29T10:00:00.123456Z",
            "hash": "0a2483e750cdf009ebbf32562432b4e95e7102c1ad480e00370858c02f41de82"
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
    /// The next page's cursor for `?cursor=` (with the same `from` and `to`); `null` on the last page.
    /// Opaque, and valid only for this user and time range.
    #[schema(pattern = r"^[0-9a-f]{56}$")]
    next_cursor: Option<String>,
}

impl HistoryBody {
    /// The body of `view`, with `next_cursor` the text of the next page's cursor.
    pub fn new(user_id: &UserId, view: &HistoryView, next_cursor: Option<String>) -> Self {
        Self {
            user_id: user_id.to_string(),
            page: view.page.get(),
            per_page: view.per_page,
            transactions: view.transactions.iter().map(TransactionBody::from).collect(),
            next_page: view.next.map(|next| next.page.get()),
            next_cursor,
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
