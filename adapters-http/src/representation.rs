//! The JSON bodies of successful responses. Money leaves as strings with two decimals.

use application::HistoryView;
use chrono::SecondsFormat;
use domain::{Balance, Transaction, UserId};
use serde::Serialize;

/// A recorded transaction.
#[derive(Debug, Serialize)]
pub struct TransactionBody {
    id: String,
    user_id: String,
    amount: String,
    balance_after: String,
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

/// A user's balance.
#[derive(Debug, Serialize)]
pub struct BalanceBody {
    user_id: String,
    balance: String,
    currency: &'static str,
}

impl BalanceBody {
    pub fn new(user_id: &UserId, balance: Balance) -> Self {
        Self { user_id: user_id.to_string(), balance: balance.to_string(), currency: "USD" }
    }
}

/// A page of a user's history.
#[derive(Debug, Serialize)]
pub struct HistoryBody {
    user_id: String,
    page: u32,
    per_page: u32,
    transactions: Vec<TransactionBody>,
    next_page: Option<u32>,
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
#[derive(Debug, Serialize)]
pub struct StatusBody {
    pub status: &'static str,
}
