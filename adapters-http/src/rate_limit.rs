//! Per-client rate limiting: a token bucket per API key for requests that presented a valid one, else per
//! client address. Requests refused for a missing or wrong key are counted per address too, so that
//! guessing keys costs what any other request costs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::ApiKeyIndex;
use crate::{ApiError, AppState};

/// How fast each client may send.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests a client may send at once after being quiet.
    pub burst: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (the one the trusted proxy in front
    /// appended) instead of the peer address. Only safe behind such a proxy: clients can write the header.
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    Key(ApiKeyIndex),
    Address(IpAddr),
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Beyond this many clients, buckets that have refilled completely are forgotten: they hold nothing a
/// new bucket would not.
const MAX_REMEMBERED_CLIENTS: usize = 100_000;

/// The buckets of every client.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    buckets: Arc<Mutex<HashMap<Client, Bucket>>>,
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self { settings, buckets: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Takes a token for `client`, or says how long until one is there.
    fn take(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.settings.burst.max(1));
        let rate = self.settings.per_second.max(f64::MIN_POSITIVE);
        // Nothing panics while the map is held, so a poisoned lock still holds consistent buckets.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > MAX_REMEMBERED_CLIENTS {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.refilled_at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: burst, refilled_at: now });
        bucket.tokens =
            (bucket.tokens + now.saturating_duration_since(bucket.refilled_at).as_secs_f64() * rate).min(burst);
        // `now` was read before the lock: another request may have refilled later already.
        bucket.refilled_at = bucket.refilled_at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::try_from_secs_f64((1.0 - bucket.tokens) / rate).unwrap_or(Duration::MAX))
        }
    }

    fn client_of(&self, request: &Request) -> Client {
        match request.extensions().get::<ApiKeyIndex>() {
            Some(key) => Client::Key(*key),
            None => self.address_of(request),
        }
    }

    /// The trusted proxy's last `X-Forwarded-For` entry when there is one to trust, else the peer address.
    fn address_of(&self, request: &Request) -> Client {
        let forwarded = if self.settings.trust_forwarded_for { last_forwarded_for(request.headers()) } else { None };
        forwarded
            .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip()))
            // An IPv4 client seen through a dual-stack socket is the same client.
            .map_or(Client::Unknown, |address| Client::Address(address.to_canonical()))
    }
}

/// The address the trusted proxy appended: the last entry of the last `X-Forwarded-For` line. Every
/// earlier entry may have been written by the client, so none is ever used; when the last one is not an
/// address, there is none.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last_line = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    parse_forwarded_address(last_line.rsplit(',').next()?.trim())
}

/// `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711`, `[2001:db8::1]:4711` or `[2001:db8::1]`.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// The middleware: 429 with `Retry-After` once a client's bucket is empty.
pub async fn limit_rate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = &state.rate_limiter else { return next.run(request).await };
    match limiter.take(limiter.client_of(&request), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::RateLimited { retry_after: wait }.into_response(),
    }
}

/// The answer to a request refused for its key: `refusal`, or 429 once its client address has spent its
/// bucket, so that guessing keys is as limited as any other request.
pub fn refuse_key(state: &AppState, request: &Request, refusal: ApiError) -> Response {
    let limited =
        state.rate_limiter.as_ref().and_then(|limiter| limiter.take(limiter.address_of(request), Instant::now()).err());
    limited.map_or(refusal, |wait| ApiError::RateLimited { retry_after: wait }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimitSettings { per_second, burst, trust_forwarded_for: false })
    }

    #[test]
    fn a_client_may_burst_then_waits_for_tokens() {
        let limiter = limiter(2.0, 3);
        let start = Instant::now();
        let client = Client::Address([10, 0, 0, 1].into());
        for _ in 0..3 {
            assert_eq!(limiter.take(client, start), Ok(()));
        }
        let wait = limiter.take(client, start).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(limiter.take(client, start + Duration::from_millis(500)), Ok(()), "one token per 0.5 s");
        assert!(limiter.take(client, start + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn clients_have_buckets_of_their_own() {
        let limiter = limiter(1.0, 1);
        let now = Instant::now();
        assert_eq!(limiter.take(Client::Key(ApiKeyIndex(0)), now), Ok(()));
        assert!(limiter.take(Client::Key(ApiKeyIndex(0)), now).is_err());
        assert_eq!(limiter.take(Client::Key(ApiKeyIndex(1)), now), Ok(()));
        assert_eq!(limiter.take(Client::Address([127, 0, 0, 1].into()), now), Ok(()));
    }

    #[test]
    fn only_the_last_forwarded_entry_is_an_address() {
        let v4 = |a, b, c, d| Some(IpAddr::from([a, b, c, d]));
        let v6 = |text: &str| Some(IpAddr::V6(text.parse().expect("an IPv6 address")));
        for (lines, expected) in [
            (&["203.0.113.7"][..], v4(203, 0, 113, 7)),
            (&["10.0.0.1, 203.0.113.7"], v4(203, 0, 113, 7)),
            (&["10.0.0.1,203.0.113.7:4711"], v4(203, 0, 113, 7)),
            (&["10.0.0.1, 2001:db8::7"], v6("2001:db8::7")),
            (&["10.0.0.1, [2001:db8::7]:443"], v6("2001:db8::7")),
            (&["[2001:db8::7]"], v6("2001:db8::7")),
            (&["10.0.0.1", "203.0.113.7"], v4(203, 0, 113, 7)),
            (&["10.0.0.1, 9.9.9.9:99999"], None),
            (&["10.0.0.1, unknown"], None),
            (&["10.0.0.1, "], None),
            (&["10.0.0.1,"], None),
            (&["203.0.113.7", "garbage"], None),
            (&["10.0.0.1, _hidden"], None),
            (&[], None),
        ] {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append("x-forwarded-for", line.parse().expect("a header value"));
            }
            assert_eq!(last_forwarded_for(&headers), expected, "{lines:?}");
        }
    }
}
