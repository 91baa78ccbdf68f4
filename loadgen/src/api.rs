//! The BitBurst HTTP API as this client sees it: three calls, their answers, and how a call can fail.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// A transaction as the service shows it; the fields the checks need, money kept as its exact string.
#[derive(Debug, Clone, Deserialize)]
pub struct Transaction {
    pub id: String,
    pub amount: String,
    pub balance_after: String,
}

/// The answer to an add: the recorded transaction, and whether it was recorded by an earlier request.
#[derive(Debug, Clone)]
pub struct AddAnswer {
    pub transaction: Transaction,
    pub replayed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BalanceAnswer {
    pub balance: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryPage {
    pub transactions: Vec<Transaction>,
    pub next_cursor: Option<String>,
}

/// Which history page to ask for.
#[derive(Debug, Clone, Copy)]
pub enum PageRequest<'a> {
    Number(u32),
    After(&'a str),
}

/// Why a call did not yield a 2xx answer with a body we could read.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No answer within the timeout: the request may or may not have been applied.
    Timeout,
    /// The connection could not be made: the request never reached the service.
    Connect,
    /// The connection broke, or some other client error: the request may have been applied.
    Transport,
    /// A 2xx whose body was not what the contract says.
    BadBody,
    /// An answer outside 2xx.
    Status { status: StatusCode, retry_after: Option<Duration> },
}

impl Failure {
    /// A short name to count failures by in the report, e.g. `timeout` or `http-503`.
    pub fn kind(&self) -> String {
        match self {
            Failure::Timeout => "timeout".to_owned(),
            Failure::Connect => "connect".to_owned(),
            Failure::Transport => "transport".to_owned(),
            Failure::BadBody => "bad-body".to_owned(),
            Failure::Status { status, .. } => format!("http-{}", status.as_u16()),
        }
    }

    /// Whether the service may have applied the request anyway. A connection that was never made
    /// applied nothing; a 4xx is a refusal (nothing recorded), except 408 and 429 which say "try again".
    /// Everything else (timeouts, broken connections, 5xx, a 2xx we could not read) might have.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Failure::Connect => false,
            Failure::Timeout | Failure::Transport | Failure::BadBody => true,
            Failure::Status { status, .. } => {
                !status.is_client_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// How long the service asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Failure::Timeout
        } else if error.is_connect() {
            Failure::Connect
        } else if error.is_decode() {
            Failure::BadBody
        } else {
            Failure::Transport
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind())
    }
}

/// One worker's view of the service: its own HTTP client (so its own keep-alive connections) and its
/// own round-robin position over the targets.
#[derive(Debug)]
pub struct Api {
    client: Client,
    /// The targets without a trailing slash, so that paths can be appended as text.
    bases: Arc<[String]>,
    next_base: usize,
}

impl Api {
    /// `first_target` staggers the round-robin start, so that N workers spread evenly over the targets.
    pub fn new(targets: &[Url], timeout: Duration, first_target: usize) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // One connection per target: the worker is closed-loop, so it never needs a second.
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            // The targets are the service itself; a proxy from the environment would be measured too.
            .no_proxy()
            .build()?;
        let bases: Arc<[String]> = targets.iter().map(|url| url.as_str().trim_end_matches('/').to_owned()).collect();
        let next_base = first_target % bases.len().max(1);
        Ok(Self { client, bases, next_base })
    }

    fn base(&mut self) -> &str {
        let index = self.next_base;
        self.next_base = (self.next_base + 1) % self.bases.len();
        &self.bases[index]
    }

    pub async fn add(&mut self, user: &str, key: Option<&str>, amount: &str) -> Result<AddAnswer, Failure> {
        let url = format!("{}/users/{user}/add", self.base());
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::json!({ "amount": amount }).to_string());
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        let response = request.send().await.map_err(|error| Failure::from_reqwest(&error))?;
        let replayed = response
            .headers()
            .get(IDEMPOTENT_REPLAYED)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
        let transaction = read_json(response).await?;
        Ok(AddAnswer { transaction, replayed })
    }

    pub async fn balance(&mut self, user: &str) -> Result<BalanceAnswer, Failure> {
        let url = format!("{}/users/{user}/balance", self.base());
        let response = self.client.get(url).send().await.map_err(|error| Failure::from_reqwest(&error))?;
        read_json(response).await
    }

    pub async fn history(&mut self, user: &str, page: PageRequest<'_>) -> Result<HistoryPage, Failure> {
        let url = format!("{}/users/{user}/history", self.base());
        let request = match page {
            PageRequest::Number(number) => self.client.get(url).query(&[("page", number)]),
            PageRequest::After(cursor) => self.client.get(url).query(&[("cursor", cursor)]),
        };
        let response = request.send().await.map_err(|error| Failure::from_reqwest(&error))?;
        read_json(response).await
    }
}

async fn read_json<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the problem document to its end, so that the connection can be kept alive.
        let _ = response.bytes().await;
        return Err(Failure::Status { status, retry_after });
    }
    let body = response.bytes().await.map_err(|error| Failure::from_reqwest(&error))?;
    serde_json::from_slice(&body).map_err(|_| Failure::BadBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_and_unmade_connections_have_a_known_outcome() {
        let status = |code: u16| Failure::Status {
            status: StatusCode::from_u16(code).expect("valid status"),
            retry_after: None,
        };
        for (failure, unknown) in [
            (Failure::Timeout, true),
            (Failure::Transport, true),
            (Failure::BadBody, true),
            (Failure::Connect, false),
            (status(400), false),
            (status(422), false),
            (status(408), true),
            (status(429), true),
            (status(500), true),
            (status(503), true),
        ] {
            assert_eq!(failure.outcome_unknown(), unknown, "{failure}");
        }
    }
}
