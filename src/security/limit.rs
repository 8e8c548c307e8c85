//! Rate limits: a token bucket per client and policy (GCRA), in this
//! process's memory (governor) or, with Redis, shared by every replica.
//!
//! Redis answers one script per decision: one round trip, atomic, on the
//! server's clock. A decision takes a lease of up to 1% of the burst from
//! the shared bucket and spends it here, so a busy client costs one round
//! trip per lease, not per request; the replicas together never allow more
//! than the quota (a lease left unspent when it lapses is lost, not given
//! twice). With a burst under 200 every lease is one request: exact. A
//! refusal is remembered until its `Retry-After`, so a client over its
//! quota costs no round trip until it may send again. When
//! Redis does not answer within [`REDIS_DEADLINE`], decisions fall back to
//! memory at once and a probe watches for Redis to return; the fallback is
//! logged once and shown by `/health/ready`.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use app_kernel::module::Access;
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as Gcra, RateLimiter};

/// How long a decision waits for Redis before it is made in memory.
pub const REDIS_DEADLINE: Duration = Duration::from_millis(50);
/// How often a limiter that fell back asks whether Redis is back.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// The share of a bucket's burst one lease takes from Redis, at least 1.
const LEASE_DIVISOR: u32 = 100;
/// How long an unspent lease stays here, at most.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// `N/s`, `N/min` or `N/h`, optionally `,burst=B` (default: N, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// One request's worth is regained every `interval`.
    pub interval: Duration,
    /// Requests that may come at once.
    pub burst: NonZeroU32,
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a rate like 100/s, 600/min or 100/s,burst=200");
        let (rate, burst) = match raw.split_once(',') {
            Some((rate, burst)) => (rate, Some(burst.trim())),
            None => (raw, None),
        };
        let (count, unit) = rate.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(bad)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let burst = match burst {
            Some(burst) => {
                let value = burst.strip_prefix("burst=").ok_or_else(bad)?;
                value.parse::<NonZeroU32>().map_err(|_| bad())?
            }
            None => count,
        };
        let interval = period / count.get();
        // Buckets count in microseconds, in Redis as in memory.
        if interval < Duration::from_micros(1) {
            return Err(format!("{raw:?} is more than 1000000/s"));
        }
        Ok(Self { interval, burst })
    }
}

impl Quota {
    /// The time a full bucket takes to refill, whole seconds, at least 1.
    pub fn window_seconds(&self) -> u64 {
        (self.interval * self.burst.get())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64
    }

    fn gcra(&self) -> Gcra {
        Gcra::with_period(self.interval)
            .expect("a quota's interval is not zero")
            .allow_burst(self.burst)
    }
}

/// One decision, and what the `RateLimit` headers say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests the client may still send at once.
    pub remaining: u32,
    /// Until a refused request may be sent again.
    pub retry_after: Duration,
    /// Until the bucket is full again.
    pub reset: Duration,
}

type Memory =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The quotas of a process, for every client.
pub struct Limiter {
    read: Option<Bucket>,
    write: Option<Bucket>,
    shared: Option<Arc<Shared>>,
}

struct Bucket {
    quota: Quota,
    memory: Memory,
}

/// The buckets in Redis.
struct Shared {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    /// True while Redis does not answer and decisions are made in memory.
    fallen_back: AtomicBool,
    /// Where it lives, for health, without credentials.
    location: String,
    /// Per bucket: requests already taken from Redis and not yet spent,
    /// or Redis' refusal, until its `Retry-After`.
    leases: moka::sync::Cache<String, Arc<Held>>,
}

/// What this process holds of a shared bucket.
enum Held {
    Lease(Lease),
    /// Empty until then: asking Redis sooner would be refused too.
    Refused {
        until: Instant,
        reset: Duration,
    },
}

/// Requests taken from a shared bucket at once, spent one by one here.
struct Lease {
    left: std::sync::atomic::AtomicU32,
    /// What Redis said was left in the bucket beside this lease.
    remaining: u32,
    reset: Duration,
}

impl Lease {
    fn take(&self) -> Option<u32> {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()
            .map(|before| before - 1)
    }
}

/// GCRA on Redis' clock: KEYS[1] is the bucket (its theoretical arrival
/// time, µs), ARGV the emission interval (µs), the burst and the most
/// requests to take at once. Takes as many as the bucket holds, up to that,
/// and answers {taken, remaining, retry after µs, reset µs}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local held = math.floor((now + interval * burst - tat) / interval)
if held < 1 then
  return {0, 0, tat + interval - interval * burst - now, tat - now}
end
local taken = math.min(wanted, held)
local next_tat = tat + interval * taken
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
return {taken, held - taken, 0, next_tat - now}
";

impl Limiter {
    /// Limits for `read` and `write`, in Redis at `redis` when given. A
    /// Redis that is down now is not an error: decisions start in memory.
    pub fn new(
        read: Option<Quota>,
        write: Option<Quota>,
        redis: Option<&str>,
    ) -> anyhow::Result<Self> {
        let bucket = |quota: Quota| Bucket {
            quota,
            memory: RateLimiter::keyed(quota.gcra())
                .with_middleware::<StateInformationMiddleware>(),
        };
        let shared = match redis {
            Some(url) => {
                let client = redis::Client::open(url).map_err(|error| {
                    anyhow::anyhow!("--rate-limit-redis is not a Redis URL: {error}")
                })?;
                let location = {
                    let info = client.get_connection_info();
                    format!("{}", info.addr())
                };
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_DEADLINE))
                    .set_response_timeout(Some(REDIS_DEADLINE))
                    .set_number_of_retries(1)
                    .set_max_delay(PROBE_INTERVAL);
                let connection =
                    redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
                Some(Arc::new(Shared {
                    connection,
                    script: redis::Script::new(GCRA),
                    fallen_back: AtomicBool::new(false),
                    location,
                    leases: moka::sync::Cache::builder()
                        .max_capacity(100_000)
                        .time_to_live(LEASE_LIFETIME)
                        .build(),
                }))
            }
            None => None,
        };
        Ok(Self {
            read: read.map(bucket),
            write: write.map(bucket),
            shared,
        })
    }

    pub fn quota(&self, policy: Access) -> Option<Quota> {
        self.bucket(policy).map(|bucket| bucket.quota)
    }

    fn bucket(&self, policy: Access) -> Option<&Bucket> {
        match policy {
            Access::Read => self.read.as_ref(),
            Access::Write => self.write.as_ref(),
        }
    }

    /// `None` when `policy` has no limit.
    pub async fn decide(&self, policy: Access, client: &str) -> Option<Decision> {
        let bucket = self.bucket(policy)?;
        if let Some(shared) = &self.shared
            && !shared.fallen_back.load(Ordering::Relaxed)
        {
            match shared.decide(policy, bucket.quota, client).await {
                Ok(decision) => return Some(decision),
                Err(reason) => shared.fall_back(&reason),
            }
        }
        Some(bucket.decide(client))
    }

    /// Where the buckets are now, for `/health/ready`.
    pub fn store(&self) -> Store {
        match &self.shared {
            None => Store::Memory,
            Some(shared) if shared.fallen_back.load(Ordering::Relaxed) => Store::FallenBack {
                redis: shared.location.clone(),
            },
            Some(shared) => Store::Redis {
                redis: shared.location.clone(),
            },
        }
    }

    pub fn is_active(&self) -> bool {
        self.read.is_some() || self.write.is_some()
    }

    /// Forgets buckets that are full again, so memory stays bounded by the
    /// clients of the last minute; run now and then.
    pub fn forget_idle(&self) {
        for bucket in [&self.read, &self.write].into_iter().flatten() {
            bucket.memory.retain_recent();
            bucket.memory.shrink_to_fit();
        }
    }

    /// Starts the upkeep: forgetting idle buckets, and probing Redis while
    /// decisions are made in memory. Ends when the limiter is dropped.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let limiter = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                ticks += 1;
                if ticks.is_multiple_of(120) {
                    limiter.forget_idle();
                }
                if let Some(shared) = &limiter.shared
                    && shared.fallen_back.load(Ordering::Relaxed)
                {
                    shared.probe().await;
                }
            }
        });
    }
}

/// Where a limiter keeps its buckets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "store", rename_all = "kebab-case")]
pub enum Store {
    Memory,
    Redis {
        redis: String,
    },
    /// Redis is configured but does not answer: this process limits alone.
    FallenBack {
        redis: String,
    },
}

impl Bucket {
    fn decide(&self, client: &str) -> Decision {
        let key = client.to_owned();
        match self.memory.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: self.quota.interval * (self.quota.burst.get() - remaining),
                }
            }
            Err(refused) => {
                let wait = refused.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    retry_after: wait,
                    reset: wait + self.quota.interval * (self.quota.burst.get() - 1),
                }
            }
        }
    }
}

impl Shared {
    async fn decide(&self, policy: Access, quota: Quota, client: &str) -> Result<Decision, String> {
        let bucket = format!("app:ratelimit:{}:{client}", policy.as_str());
        match self.leases.get(&bucket).as_deref() {
            Some(Held::Lease(lease)) => {
                if let Some(left) = lease.take() {
                    return Ok(Decision {
                        allowed: true,
                        remaining: lease.remaining.saturating_add(left),
                        retry_after: Duration::ZERO,
                        reset: lease.reset,
                    });
                }
            }
            Some(Held::Refused { until, reset }) => {
                let wait = until.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    return Ok(Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after: wait,
                        reset: *reset,
                    });
                }
            }
            None => {}
        }
        let wanted = (quota.burst.get() / LEASE_DIVISOR).max(1);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(&bucket);
        invocation
            .arg(quota.interval.as_micros() as u64)
            .arg(quota.burst.get())
            .arg(wanted);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut connection);
        let (taken, remaining, retry_after, reset) =
            match tokio::time::timeout(REDIS_DEADLINE, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err(format!("no answer within {REDIS_DEADLINE:?}")),
            };
        let remaining = remaining.clamp(0, u32::MAX.into()) as u32;
        let reset = micros(reset);
        let retry_after = micros(retry_after);
        if taken > 1 {
            let lease = Lease {
                left: (taken as u32 - 1).into(),
                remaining,
                reset,
            };
            self.leases.insert(bucket, Arc::new(Held::Lease(lease)));
        } else if taken < 1 {
            let until = Instant::now() + retry_after;
            self.leases
                .insert(bucket, Arc::new(Held::Refused { until, reset }));
        }
        let left = (taken.max(1) - 1) as u32;
        Ok(Decision {
            allowed: taken >= 1,
            remaining: remaining.saturating_add(left),
            retry_after,
            reset,
        })
    }

    fn fall_back(&self, reason: &str) {
        if !self.fallen_back.swap(true, Ordering::Relaxed) {
            tracing::warn!(redis = %self.location, %reason, "rate limits fall back to this process's memory until Redis answers");
        }
    }

    async fn probe(&self) {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut connection);
        if let Ok(Ok(_)) = tokio::time::timeout(REDIS_DEADLINE, ping).await {
            self.fallen_back.store(false, Ordering::Relaxed);
            tracing::info!(redis = %self.location, "rate limits are shared in Redis again");
        }
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(value.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_as_written() {
        let quota: Quota = "100/s".parse().unwrap();
        assert_eq!(quota.interval, Duration::from_millis(10));
        assert_eq!(quota.burst.get(), 100);
        assert_eq!(quota.window_seconds(), 1);
        let quota: Quota = "60/min,burst=5".parse().unwrap();
        assert_eq!(quota.interval, Duration::from_secs(1));
        assert_eq!(quota.burst.get(), 5);
        for bad in [
            "",
            "100",
            "0/s",
            "100/d",
            "100/s,burst=0",
            "100/s,200",
            "x/s",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_bucket_in_memory_allows_the_burst_then_refuses() {
        let limiter = Limiter::new(None, Some("10/s,burst=3".parse().unwrap()), None).unwrap();
        assert_eq!(limiter.decide(Access::Read, "a").await, None);
        let remaining: Vec<u32> = [
            limiter.decide(Access::Write, "a").await.unwrap(),
            limiter.decide(Access::Write, "a").await.unwrap(),
            limiter.decide(Access::Write, "a").await.unwrap(),
        ]
        .iter()
        .map(|d| {
            assert!(d.allowed);
            d.remaining
        })
        .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.decide(Access::Write, "a").await.unwrap();
        assert!(!refused.allowed);
        assert!(
            refused.retry_after > Duration::ZERO
                && refused.retry_after <= Duration::from_millis(100)
        );
        // Another client has a bucket of its own.
        assert!(limiter.decide(Access::Write, "b").await.unwrap().allowed);
    }
}
