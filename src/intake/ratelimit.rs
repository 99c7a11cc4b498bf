//! Rate limiting in place of nginx's `limit_req`: a token bucket per client key (events per
//! minute with a burst, from the config or set per key through the CLI) and one for the whole
//! server. Checked as soon as the key is known, before the body is read. A refusal says how
//! long to wait, which intake sends as `Retry-After` and `X-Sentry-Rate-Limits`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::ids::RateLimit;

/// Which bucket refused, for the `scope` of `X-Sentry-Rate-Limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Server,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Server => "organization",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limit: RateLimit,
}

impl Bucket {
    fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: limit.capacity(),
            last: now,
            limit,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second()).min(self.limit.capacity());
        self.last = now;
    }

    /// Whole seconds until a token is available (at least 1).
    fn wait(&self) -> u64 {
        let missing = 1.0 - self.tokens;
        ((missing / self.limit.per_second()).ceil() as u64).max(1)
    }
}

/// Distinct keys tracked before idle buckets are forgotten.
const MAX_BUCKETS: usize = 100_000;

pub struct RateLimiter {
    server: Mutex<Option<Bucket>>,
    keys: Mutex<HashMap<String, Bucket>>,
    server_limit: RateLimit,
}

impl RateLimiter {
    pub fn new(server_limit: RateLimit) -> RateLimiter {
        RateLimiter {
            server: Mutex::new(None),
            keys: Mutex::new(HashMap::new()),
            server_limit,
        }
    }

    /// Takes one event's token from the key's bucket and the server's, or says how long to
    /// wait. A refusal takes nothing.
    pub fn admit(&self, key: &str, key_limit: RateLimit) -> Result<(), (Scope, u64)> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if !key_limit.unlimited() {
            if keys.len() >= MAX_BUCKETS && !keys.contains_key(key) {
                // Full buckets are the same as no bucket; dropping them loses nothing.
                keys.retain(|_, b| {
                    b.refill(now);
                    b.tokens < b.limit.capacity()
                });
            }
            let bucket = keys
                .entry(key.to_string())
                .or_insert_with(|| Bucket::new(key_limit, now));
            if bucket.limit != key_limit {
                *bucket = Bucket::new(key_limit, now);
            }
            bucket.refill(now);
            if bucket.tokens < 1.0 {
                return Err((Scope::Key, bucket.wait()));
            }
        }
        if !self.server_limit.unlimited() {
            let bucket = server.get_or_insert_with(|| Bucket::new(self.server_limit, now));
            bucket.refill(now);
            if bucket.tokens < 1.0 {
                return Err((Scope::Server, bucket.wait()));
            }
            bucket.tokens -= 1.0;
        }
        if let Some(bucket) = keys.get_mut(key).filter(|_| !key_limit.unlimited()) {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits() {
        let limiter = RateLimiter::new(RateLimit::default());
        let limit = RateLimit {
            per_minute: 6,
            burst: 3,
        };
        for _ in 0..3 {
            assert!(limiter.admit("k", limit).is_ok());
        }
        assert_eq!(limiter.admit("k", limit), Err((Scope::Key, 10)));
        assert!(
            limiter.admit("other", limit).is_ok(),
            "keys have their own buckets"
        );
        assert!(limiter.admit("free", RateLimit::default()).is_ok());
    }

    #[test]
    fn the_server_bucket_covers_every_key() {
        let limiter = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 2,
        });
        assert!(limiter.admit("a", RateLimit::default()).is_ok());
        assert!(limiter.admit("b", RateLimit::default()).is_ok());
        assert_eq!(
            limiter.admit("c", RateLimit::default()),
            Err((Scope::Server, 1))
        );
    }
}
