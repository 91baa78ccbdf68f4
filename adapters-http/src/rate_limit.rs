//! Per-client rate limiting: a bucket per API key for requests that presented a valid one, else per client
//! address. Requests refused for a missing or wrong key are counted per address too, so that guessing keys
//! costs what any other request costs.
//!
//! The buckets are `governor`'s (GCRA) in a sharded map, so that clients do not wait on one lock. Buckets
//! that have refilled completely hold nothing a new one would not: a background task forgets them.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;

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

/// Which of the configured keys a request presented (the key check says); buckets are kept per key by
/// this, so that the key itself is never kept anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyIndex(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    Key(ApiKeyIndex),
    Address(IpAddr),
    Unknown,
}

type Buckets<C> = governor::RateLimiter<Client, DashMapStateStore<Client>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// How often buckets that have refilled completely are forgotten. Memory holds the clients of the last
/// `SWEEP_EVERY` plus the time a bucket takes to refill.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The longest a bucket may take to refill completely: `governor` counts in `u64` nanoseconds, which a
/// rate near zero times a large burst would overflow. A century is "never" for a rate limit.
const LONGEST_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The buckets of every client; clones share them.
pub struct RateLimiter<C: Clock = DefaultClock> {
    buckets: Arc<Buckets<C>>,
    trust_forwarded_for: bool,
    sweep_every: Duration,
    sweeper: Arc<Once>,
}

impl<C: Clock> Clone for RateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            buckets: Arc::clone(&self.buckets),
            trust_forwarded_for: self.trust_forwarded_for,
            sweep_every: self.sweep_every,
            sweeper: Arc::clone(&self.sweeper),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("clients", &self.buckets.len())
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self::with_clock(settings, DefaultClock::default(), SWEEP_EVERY)
    }
}

impl<C> RateLimiter<C>
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn with_clock(settings: RateLimitSettings, clock: C, sweep_every: Duration) -> Self {
        Self {
            buckets: Arc::new(Buckets::dashmap_with_clock(quota(settings), clock)),
            trust_forwarded_for: settings.trust_forwarded_for,
            sweep_every,
            sweeper: Arc::new(Once::new()),
        }
    }

    /// Takes a token from `client`'s bucket, or answers 429 with how long until one is there.
    fn admit(&self, client: &Client) -> Result<(), ApiError> {
        self.start_sweeping();
        self.buckets.check_key(client).map_err(|not_until| ApiError::RateLimited {
            retry_after: not_until.wait_time_from(self.buckets.clock().now()),
        })
    }

    /// Starts the task that forgets refilled buckets, once, on the runtime serving the first request (so
    /// that a limiter built outside a runtime still gets one). It holds the buckets weakly and ends with
    /// them.
    fn start_sweeping(&self) {
        if self.sweeper.is_completed() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        self.sweeper.call_once(|| {
            runtime.spawn(sweep(Arc::downgrade(&self.buckets), self.sweep_every));
        });
    }

    fn client_of(&self, request: &Request) -> Client {
        match request.extensions().get::<ApiKeyIndex>() {
            Some(key) => Client::Key(*key),
            None => self.address_of(request),
        }
    }

    /// The trusted proxy's last `X-Forwarded-For` entry when there is one to trust, else the peer address.
    fn address_of(&self, request: &Request) -> Client {
        let forwarded = if self.trust_forwarded_for { last_forwarded_for(request.headers()) } else { None };
        forwarded
            .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip()))
            // An IPv4 client seen through a dual-stack socket is the same client.
            .map_or(Client::Unknown, |address| Client::Address(address.to_canonical()))
    }
}

/// `per_second` tokens a second, at most `burst` (at least 1) kept. A rate that is not a positive number
/// never refills; an unbounded one refills every nanosecond.
fn quota(settings: RateLimitSettings) -> Quota {
    let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
    let period = Duration::try_from_secs_f64(settings.per_second.recip())
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_nanos(1), LONGEST_REFILL / burst.get());
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX)).allow_burst(burst)
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

/// Every `every`, forgets the buckets that have refilled completely, off the async workers (it walks the
/// whole map), until the limiter is dropped.
async fn sweep<C>(buckets: Weak<Buckets<C>>, every: Duration)
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(buckets) = buckets.upgrade() else { return };
        let swept = tokio::task::spawn_blocking(move || {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        });
        if swept.await.is_err() {
            return;
        }
    }
}

/// The middleware: 429 with `Retry-After` once a client's bucket is empty.
pub async fn limit_rate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = &state.rate_limiter else { return next.run(request).await };
    match limiter.admit(&limiter.client_of(&request)) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The answer to a request refused for its key: `refusal`, or 429 once its client address has spent its
/// bucket, so that guessing keys is as limited as any other request.
pub fn refuse_key(state: &AppState, request: &Request, refusal: ApiError) -> Response {
    let limited = state.rate_limiter.as_ref().and_then(|limiter| limiter.admit(&limiter.address_of(request)).err());
    limited.unwrap_or(refusal).into_response()
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(per_second: f64, burst: u32) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let settings = RateLimitSettings { per_second, burst, trust_forwarded_for: false };
        (RateLimiter::with_clock(settings, clock.clone(), SWEEP_EVERY), clock)
    }

    fn wait_of(limited: Result<(), ApiError>) -> Duration {
        match limited {
            Err(ApiError::RateLimited { retry_after }) => retry_after,
            other => panic!("not limited: {other:?}"),
        }
    }

    #[test]
    fn a_client_may_burst_then_waits_for_tokens() {
        let (limiter, clock) = limiter(2.0, 3);
        let client = Client::Address([10, 0, 0, 1].into());
        for _ in 0..3 {
            assert!(limiter.admit(&client).is_ok());
        }
        assert_eq!(wait_of(limiter.admit(&client)), Duration::from_millis(500));
        clock.advance(Duration::from_millis(500));
        assert!(limiter.admit(&client).is_ok(), "one token per 0.5 s");
        assert!(limiter.admit(&client).is_err());
    }

    #[test]
    fn clients_have_buckets_of_their_own() {
        let (limiter, _) = limiter(1.0, 1);
        assert!(limiter.admit(&Client::Key(ApiKeyIndex(0))).is_ok());
        assert!(limiter.admit(&Client::Key(ApiKeyIndex(0))).is_err());
        assert!(limiter.admit(&Client::Key(ApiKeyIndex(1))).is_ok());
        assert!(limiter.admit(&Client::Address([127, 0, 0, 1].into())).is_ok());
    }

    #[test]
    fn any_setting_makes_a_limiter_that_answers() {
        for (per_second, burst) in
            [(0.0, 0), (-1.0, 5), (f64::NAN, 5), (f64::INFINITY, 5), (1e-30, u32::MAX), (1e30, 1), (0.5, 1)]
        {
            let (limiter, _) = limiter(per_second, burst);
            let client = Client::Unknown;
            assert!(limiter.admit(&client).is_ok(), "{per_second} {burst}: the first request passes");
            if burst <= 5 && per_second < 1e30 {
                let spent = (0..burst.max(1)).map(|_| limiter.admit(&client)).find(Result::is_err);
                assert!(spent.is_some(), "{per_second} {burst}: the burst runs out");
            }
        }
        let (limiter, _) = limiter(0.5, 1);
        assert!(limiter.admit(&Client::Unknown).is_ok());
        assert_eq!(wait_of(limiter.admit(&Client::Unknown)), Duration::from_secs(2));
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn refilled_buckets_are_forgotten_in_the_background() {
        let clock = FakeRelativeClock::default();
        let settings = RateLimitSettings { per_second: 10.0, burst: 5, trust_forwarded_for: false };
        let limiter = RateLimiter::with_clock(settings, clock.clone(), Duration::from_millis(10));
        for n in 0..1000_u32 {
            assert!(limiter.admit(&Client::Address(IpAddr::from(n.to_be_bytes()))).is_ok());
        }
        assert_eq!(limiter.buckets.len(), 1000);
        clock.advance(Duration::from_secs(1));
        let busy = Client::Key(ApiKeyIndex(0));
        for _ in 0..5 {
            assert!(limiter.admit(&busy).is_ok());
        }
        for _ in 0..100 {
            if limiter.buckets.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(limiter.buckets.len(), 1, "only the bucket in use is kept");
        assert!(limiter.admit(&busy).is_err(), "and it is still empty");
    }
}
