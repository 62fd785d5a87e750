//! Limits on the public endpoints: a token bucket per client (its address) and per API key, so
//! one sender cannot crowd out the rest. A refused request gets `429` with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::model::LimitsConfig;

/// Most clients tracked at once; beyond this the idlest are forgotten (a forgotten client starts
/// again with a full bucket, which only ever errs on the generous side).
const MAX_TRACKED: usize = 100_000;

/// Token buckets by client.
#[derive(Clone)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute on average, up to `burst` at once; 0 turns limiting off.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Arc::default(),
        }
    }

    /// Takes one request for `client`; `Err` with the time to wait when its bucket is empty.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute <= 0.0 {
            return Ok(());
        }
        let rate = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(client) {
            // Forget the clients whose buckets are full again: they lose nothing.
            let burst = self.burst;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let b = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

/// The limiters of a stage's public endpoints, from `[limits]`.
#[derive(Clone)]
pub struct Limits {
    pub per_client: RateLimiter,
    pub per_key: RateLimiter,
    trust_forwarded_for: bool,
}

impl Limits {
    pub fn from_config(c: &LimitsConfig) -> Limits {
        Limits {
            per_client: RateLimiter::new(c.per_client_per_minute, c.per_client_burst),
            per_key: RateLimiter::new(c.per_key_per_minute, c.per_key_burst),
            trust_forwarded_for: c.trust_forwarded_for,
        }
    }

    /// No limits: for describing the routes, where no request is ever limited.
    pub fn off() -> Limits {
        Limits {
            per_client: RateLimiter::new(0, 0),
            per_key: RateLimiter::new(0, 0),
            trust_forwarded_for: false,
        }
    }

    /// Who is asking: the first address of `X-Forwarded-For` when the deployment says a proxy
    /// in front sets it, else the connection's own address.
    /// Takes one token from the budget of the client behind `headers` and `peer`, or says how
    /// long it has to wait.
    pub fn check_client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<(), Duration> {
        self.per_client.check(&self.client(headers, peer))
    }

    pub fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> String {
        let forwarded = self
            .trust_forwarded_for
            .then(|| headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        forwarded
            .or(peer)
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

/// The connection's peer address, when the server was started with connect info (the stages'
/// `serve` functions are; an in-process test router is not).
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The answer to a request over its limit: 429 with `Retry-After` and a sentence saying so.
pub fn too_many(wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"error": {
            "code": "rate_limited",
            "message": format!("Too many requests from this client; retry in {secs} s."),
        }})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// Middleware for the public routes: one token per request from the client's bucket.
pub async fn per_client(
    State(limits): State<Limits>,
    Peer(peer): Peer,
    req: Request,
    next: Next,
) -> Response {
    match limits.check_client(req.headers(), peer) {
        Ok(()) => next.run(req).await,
        Err(wait) => too_many(wait),
    }
}

/// Whole seconds to wait, at least one, for a `Retry-After` header.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at("a", t0).unwrap();
        }
        let wait = limiter.check_at("a", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        limiter.check_at("b", t0).unwrap();
        // One token a second comes back.
        limiter.check_at("a", t0 + Duration::from_secs(1)).unwrap();
        assert!(limiter.check_at("a", t0 + Duration::from_secs(1)).is_err());
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
    }

    #[test]
    fn zero_turns_limiting_off() {
        let limiter = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            limiter.check("a").unwrap();
        }
    }

    #[test]
    fn the_forwarded_address_counts_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let peer = Some("10.0.0.1".parse().unwrap());
        let mut c = crate::load::Settings::defaults().config.limits;
        assert_eq!(Limits::from_config(&c).client(&headers, peer), "10.0.0.1");
        c.trust_forwarded_for = true;
        assert_eq!(
            Limits::from_config(&c).client(&headers, peer),
            "203.0.113.7"
        );
    }
}
