//! Rate limiting as clients meet it: whom a request is counted against, and what a limited one gets.

use std::net::SocketAddr;
use std::sync::Arc;

use adapters_http::{ApiKeys, AppState, HttpSettings, RateLimitSettings, Readiness, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

const KEY: &str = "the-right-key";
const BURST: u32 = 10;

/// A router whose buckets hold `BURST` requests and refill too slowly to matter during a test.
fn app(api_keys: bool, trust_forwarded_for: bool) -> Router {
    let settings = HttpSettings {
        api_keys: api_keys.then(|| ApiKeys::new([KEY]).expect("one key")),
        rate_limit: Some(RateLimitSettings { per_second: 0.001, burst: BURST, trust_forwarded_for }),
        ..HttpSettings::default()
    };
    router(AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), Readiness::default(), settings))
}

/// A balance read from `peer`, as the server sees it, with the given headers.
fn balance_read(peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get("/users/gopal/balance");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).expect("a valid request");
    let peer: SocketAddr = peer.parse().expect("a socket address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn status_of(app: &Router, request: Request<Body>) -> StatusCode {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response.headers()["retry-after"].to_str().expect("ASCII");
        assert!(retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1), "Retry-After: {retry_after}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    response.status()
}

/// How many of `requests` were answered 429.
async fn limited_among(app: &Router, requests: impl IntoIterator<Item = Request<Body>>) -> usize {
    let mut limited = 0;
    for request in requests {
        if status_of(app, request).await == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    limited
}

#[tokio::test]
async fn only_the_entry_the_proxy_appended_names_the_client() {
    let app = app(false, true);
    // The client wrote a new first entry each time; the proxy appended its peer, which carries a port.
    let spoofed = (0..100).map(|n| {
        let forwarded = format!("10.0.0.{n}, 9.9.9.9:4711");
        balance_read("127.0.0.1:40000", &[("x-forwarded-for", &forwarded)])
    });
    assert_eq!(limited_among(&app, spoofed).await, 90, "one client, one bucket of {BURST}");
    let same_client_other_forms = ["9.9.9.9", "1.2.3.4,9.9.9.9", "::ffff:9.9.9.9"]
        .map(|forwarded| balance_read("127.0.0.1:40001", &[("x-forwarded-for", forwarded)]));
    assert_eq!(limited_among(&app, same_client_other_forms).await, 3);
}

#[tokio::test]
async fn distinct_proxied_clients_have_buckets_of_their_own() {
    let app = app(false, true);
    for client in ["203.0.113.7", "203.0.113.8:5000", "2001:db8::1", "[2001:db8::2]:443", "[2001:db8::3]"] {
        let requests = (0..=BURST)
            .map(|_| balance_read("127.0.0.1:40000", &[("x-forwarded-for", &format!("198.51.100.1, {client}"))]));
        assert_eq!(limited_among(&app, requests).await, 1, "{client}");
    }
    let two_header_lines = (0..=BURST).map(|_| {
        balance_read("127.0.0.1:40000", &[("x-forwarded-for", "203.0.113.99"), ("x-forwarded-for", "203.0.113.100")])
    });
    assert_eq!(limited_among(&app, two_header_lines).await, 1, "the last line's last entry, a client of its own");
}

#[tokio::test]
async fn without_a_usable_last_entry_the_peer_address_is_the_client() {
    let app = app(false, true);
    let peer = "192.0.2.1:40000";
    let requests = [
        vec![("x-forwarded-for", "203.0.113.1, not-an-address")],
        vec![("x-forwarded-for", "203.0.113.2,")],
        vec![("x-forwarded-for", "203.0.113.3, unknown")],
        vec![],
    ]
    .into_iter()
    .cycle()
    .take(BURST as usize + 2)
    .map(|headers| balance_read(peer, &headers));
    assert_eq!(limited_among(&app, requests).await, 2, "every one counted against the peer");
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_trusted() {
    let app = app(false, false);
    let requests = (0..BURST + 5).map(|n| {
        let forwarded = format!("203.0.113.{n}");
        balance_read("192.0.2.1:40000", &[("x-forwarded-for", &forwarded)])
    });
    assert_eq!(limited_among(&app, requests).await, 5);
}

#[tokio::test]
async fn wrong_and_missing_keys_are_limited_per_address() {
    let app = app(true, false);
    let guesses = (0..100).map(|n| {
        let authorization = format!("Bearer guess-{n}");
        if n % 10 == 0 {
            balance_read("192.0.2.1:40000", &[])
        } else {
            balance_read("192.0.2.1:40000", &[("authorization", &authorization)])
        }
    });
    let mut statuses = Vec::new();
    for request in guesses {
        statuses.push(status_of(&app, request).await);
    }
    assert!(statuses[..BURST as usize].iter().all(|status| *status == StatusCode::UNAUTHORIZED), "{statuses:?}");
    let limited = statuses.iter().filter(|status| **status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(limited, 90, "{statuses:?}");

    let bearer = format!("Bearer {KEY}");
    let with_the_key = balance_read("192.0.2.1:40000", &[("authorization", &bearer)]);
    assert_eq!(status_of(&app, with_the_key).await, StatusCode::OK, "a valid key has a bucket of its own");
    let elsewhere = balance_read("192.0.2.2:40000", &[("authorization", "Bearer guess")]);
    assert_eq!(status_of(&app, elsewhere).await, StatusCode::UNAUTHORIZED, "another address, another bucket");
}

#[tokio::test]
async fn a_valid_key_is_limited_per_key_wherever_it_comes_from() {
    let app = app(true, false);
    let bearer = format!("Bearer {KEY}");
    let requests = (0..BURST + 3).map(|n| balance_read(&format!("192.0.2.{n}:40000"), &[("authorization", &bearer)]));
    assert_eq!(limited_among(&app, requests).await, 3);
}

#[tokio::test]
async fn wrong_keys_for_the_metrics_share_the_address_bucket() {
    let settings = HttpSettings {
        api_keys: ApiKeys::new([KEY]),
        metrics_require_key: true,
        rate_limit: Some(RateLimitSettings { per_second: 0.001, burst: BURST, trust_forwarded_for: false }),
        ..HttpSettings::default()
    };
    let app = router(AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), Readiness::default(), settings));
    let scrape = |authorization: &str| {
        let mut request =
            Request::get("/metrics").header("authorization", authorization).body(Body::empty()).expect("valid");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000))));
        request
    };
    let guesses = (0..BURST / 2).map(|n| balance_read("192.0.2.1:40000", &[("authorization", &format!("Bearer {n}"))]));
    assert_eq!(limited_among(&app, guesses).await, 0);
    let guesses = (0..BURST).map(|n| scrape(&format!("Bearer metrics-{n}")));
    assert_eq!(limited_among(&app, guesses).await, (BURST / 2) as usize, "one bucket for the guesses of an address");
    assert_eq!(status_of(&app, scrape(&format!("Bearer {KEY}"))).await, StatusCode::OK, "the key is not limited here");
}
