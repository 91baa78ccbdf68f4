//! Clients that send keyed adds the way a careful caller does: every transfer has its own
//! `Idempotency-Key`, and whatever fails is sent again with the same key, to another instance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

/// Per user, per key: the amount and the transaction id of every acknowledged add.
type Acknowledged = BTreeMap<String, BTreeMap<String, (Decimal, String)>>;

/// Everything the clients saw, for the final check and the printed figures.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    acknowledged: Mutex<Acknowledged>,
}

impl Tally {
    /// Notes that `transfer` was acknowledged as `transaction_id`; a key acknowledged again must name the
    /// same transaction.
    pub fn acknowledge(&self, transfer: &Transfer, transaction_id: &str) {
        let mut acknowledged = self.acknowledged.lock().expect("tally");
        let previous = acknowledged
            .entry(transfer.user.clone())
            .or_default()
            .insert(transfer.key.clone(), (transfer.amount(), transaction_id.to_owned()));
        if let Some((_, earlier)) = previous {
            assert_eq!(earlier, *transaction_id, "a key acknowledged twice names one transaction");
        }
    }

    /// The transaction an acknowledged transfer was answered with.
    pub fn transaction_id(&self, transfer: &Transfer) -> Option<String> {
        let acknowledged = self.acknowledged.lock().expect("tally");
        acknowledged.get(&transfer.user)?.get(&transfer.key).map(|(_, id)| id.clone())
    }

    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().expect("tally").values().map(BTreeMap::len).sum()
    }
}

/// One transfer: who gets how much, under which key.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub user: String,
    pub key: String,
    pub cents: i64,
}

impl Transfer {
    pub fn amount(&self) -> Decimal {
        Decimal::new(self.cents, 2)
    }
}

/// What sending to one instance gave.
pub enum Sent {
    Acknowledged { transaction_id: String },
    Failed(String),
}

pub async fn send_once(client: &reqwest::Client, base: &str, transfer: &Transfer) -> Sent {
    let response = client
        .post(format!("{base}/users/{}/add", transfer.user))
        .header("idempotency-key", &transfer.key)
        .json(&json!({"amount": transfer.amount().to_string()}))
        .send()
        .await;
    match response {
        Ok(response) if response.status() == 200 => match response.json::<Value>().await {
            Ok(body) => Sent::Acknowledged { transaction_id: body["id"].as_str().unwrap_or_default().to_owned() },
            Err(error) => Sent::Failed(format!("unreadable answer: {error}")),
        },
        Ok(response) => Sent::Failed(format!("status {}", response.status())),
        Err(error) => Sent::Failed(error.to_string()),
    }
}

/// Sends `transfer` to `bases[first]`, and on any failure to the next instance, with the same key, until
/// one acknowledges it. Panics after 100 attempts: the service never came back.
pub async fn send_until_acknowledged(
    client: &reqwest::Client,
    bases: &[String],
    first: usize,
    transfer: Transfer,
    tally: &Tally,
) {
    let mut target = first;
    for attempt in 0..100 {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            tally.retried.fetch_add(1, Ordering::Relaxed);
        }
        match send_once(client, &bases[target % bases.len()], &transfer).await {
            Sent::Acknowledged { transaction_id } => return tally.acknowledge(&transfer, &transaction_id),
            Sent::Failed(_) => {
                target += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    panic!("{transfer:?} was never acknowledged");
}

/// Like [`send_until_acknowledged`], for outages longer than its hundred quick attempts (a database
/// failover): tries again every 100 ms, each time at the next instance, until `patience` has passed.
pub async fn send_until_acknowledged_within(
    client: &reqwest::Client,
    bases: &[String],
    first: usize,
    transfer: Transfer,
    tally: &Tally,
    patience: Duration,
) {
    let deadline = std::time::Instant::now() + patience;
    let mut target = first;
    for attempt in 0_u64.. {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            tally.retried.fetch_add(1, Ordering::Relaxed);
        }
        match send_once(client, &bases[target % bases.len()], &transfer).await {
            Sent::Acknowledged { transaction_id } => return tally.acknowledge(&transfer, &transaction_id),
            Sent::Failed(_) if std::time::Instant::now() < deadline => {
                target += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Sent::Failed(why) => panic!("{transfer:?} was not acknowledged within {patience:?}; last: {why}"),
        }
    }
}

/// What the ledger holds against what the clients were told: acknowledged adds missing from the history
/// (lost), and history entries beyond the acknowledged ones, or listed twice (doubled).
pub async fn lost_and_doubled(client: &reqwest::Client, base: &str, tally: &Tally) -> (usize, usize) {
    let acknowledged = tally.acknowledged.lock().expect("tally").clone();
    let (mut lost, mut doubled) = (0, 0);
    for (user, adds) in &acknowledged {
        let ids = history_ids_at(client, base, user).await;
        let recorded: BTreeSet<&String> = ids.iter().collect();
        let expected: BTreeSet<&String> = adds.values().map(|(_, id)| id).collect();
        lost += expected.difference(&recorded).count();
        doubled += ids.len() - recorded.len() + recorded.difference(&expected).count();
    }
    (lost, doubled)
}

/// A user's balance as the service at `base` answers it.
pub async fn balance_at(client: &reqwest::Client, base: &str, user: &str) -> String {
    let body: Value = client
        .get(format!("{base}/users/{user}/balance"))
        .send()
        .await
        .expect("balance answers")
        .json()
        .await
        .expect("JSON");
    body["balance"].as_str().expect("a balance").to_owned()
}

/// The ids of a user's whole history, newest first, read through keyset pages.
pub async fn history_ids_at(client: &reqwest::Client, base: &str, user: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut query = "page=1".to_owned();
    loop {
        let page: Value = client
            .get(format!("{base}/users/{user}/history?{query}"))
            .send()
            .await
            .expect("history answers")
            .json()
            .await
            .expect("JSON");
        for transaction in page["transactions"].as_array().expect("a list") {
            ids.push(transaction["id"].as_str().expect("an id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("cursor={cursor}"),
            None => return ids,
        }
    }
}

/// The check that matters: every user's balance is exactly the sum of the acknowledged amounts, and
/// the history holds exactly the acknowledged transactions, once each.
pub async fn assert_money_is_exact(client: &reqwest::Client, base: &str, tally: &Arc<Tally>) {
    let acknowledged = tally.acknowledged.lock().expect("tally").clone();
    for (user, adds) in &acknowledged {
        let expected: Decimal = adds.values().map(|(amount, _)| *amount).sum();
        let balance: Decimal = balance_at(client, base, user).await.parse().expect("a decimal balance");
        assert_eq!(balance, expected, "{user}: the balance is the sum of the acknowledged adds");

        let ids = history_ids_at(client, base, user).await;
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{user}: no transaction twice in history");
        let expected_ids: BTreeSet<&String> = adds.values().map(|(_, id)| id).collect();
        assert_eq!(distinct, expected_ids, "{user}: history holds exactly one entry per acknowledged key");
    }
}
