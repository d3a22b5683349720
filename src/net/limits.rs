//! Connection and flood limits: the [`Limits`] a server is given, per-IP and total connection
//! caps, and the per-connection token bucket that paces a client sending faster than
//! `--flood-limit`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::accounts::LoginLimit;

/// Limits that protect the server and everyone on it from one client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest plain-text line accepted, in bytes.
    pub max_line: usize,
    /// Most connections open at once (0: no cap).
    pub max_conns: usize,
    /// Most connections from one IP address (0: no cap).
    pub max_conns_per_ip: usize,
    /// Lines per second a client may send; `None` turns flood control off.
    pub flood: Option<FloodLimit>,
    /// Items a client's outbound queue holds before the client is dropped as too slow.
    pub sendq: usize,
    /// How long a silent new client is given before it is taken for a plain-text client.
    pub sniff_timeout: Duration,
    /// How long an IRC client may be silent before it is pinged (and as long again before it
    /// is dropped).
    pub ping_interval: Duration,
    /// Failed logins allowed per address and per account before further attempts wait.
    pub logins: LoginLimit,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            max_conns: 16_384,
            max_conns_per_ip: 64,
            flood: Some(FloodLimit { per_second: 10.0, burst: 30.0 }),
            sendq: 4096,
            sniff_timeout: Duration::from_millis(250),
            ping_interval: Duration::from_secs(90),
            logins: LoginLimit::default(),
        }
    }
}

/// A flood limit: sustained lines per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl std::str::FromStr for FloodLimit {
    type Err = String;
    /// `RATE` or `RATE/BURST` (lines per second, burst in lines).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a flood limit: use RATE or RATE/BURST (lines per second), or 'off'");
        let (rate, burst) = s.split_once('/').unwrap_or((s, ""));
        let per_second: f64 = rate.parse().map_err(|_| bad())?;
        let burst: f64 =
            if burst.is_empty() { (per_second * 2.0).max(1.0) } else { burst.parse().map_err(|_| bad())? };
        if per_second > 0.0 && burst >= 1.0 { Ok(FloodLimit { per_second, burst }) } else { Err(bad()) }
    }
}

/// Paces one connection: each line takes a token; with none left, the reader waits for the next
/// instead of reading on. Nothing is dropped: the client's own TCP buffers fill and slow it.
///
/// Kept as the moment the bucket will be full again (the generic cell rate algorithm's
/// "theoretical arrival time"), which is the same as counting tokens, in one field; and the
/// limit in `f32`s: every connection carries a bucket, and idle connections are counted in
/// bytes.
#[derive(Debug)]
pub struct TokenBucket {
    /// Seconds per line: how long one token takes to come back.
    interval: f32,
    burst: f32,
    /// When the bucket will be full again; in the past, it is full.
    full_at: Instant,
}

impl TokenBucket {
    pub fn new(limit: FloodLimit) -> TokenBucket {
        TokenBucket { interval: (1.0 / limit.per_second) as f32, burst: limit.burst as f32, full_at: Instant::now() }
    }

    /// How long to wait before the next line may be handled (zero if a token is ready).
    pub fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.full_at = self.full_at.max(now) + Duration::from_secs_f32(self.interval);
        // Empty is `burst` tokens before full; past that, the line waits for its token.
        let empty_at = self.full_at.checked_sub(Duration::from_secs_f32(self.burst * self.interval));
        empty_at.map_or(Duration::ZERO, |empty_at| empty_at.saturating_duration_since(now))
    }
}

/// Why a connection was turned away at the door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections from your address (limit {0}); close one and try again")]
    PerIp(usize),
    #[error("the server is full ({0} connections); try again later")]
    Total(usize),
}

/// Counts open connections, in total and per IP address.
#[derive(Debug)]
pub struct ConnLimiter {
    /// The caps: total, per IP; changed by a reload ([`ConnLimiter::set_caps`]).
    caps: Mutex<(usize, usize)>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Holds one connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    /// The address, IPv4 as IPv4-mapped IPv6: an `IpAddr` would take 8 more bytes in every
    /// connection's future with its padding, and idle connections are counted in bytes.
    ip: Ipv6Addr,
}

impl ConnLimiter {
    /// `0` for either limit means no limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter { caps: Mutex::new((max_total, max_per_ip)), open: Mutex::default() })
    }

    /// New caps, for connections from now on; connections already open stay (a lower cap
    /// only refuses new ones until enough have closed).
    pub fn set_caps(&self, max_total: usize, max_per_ip: usize) {
        *self.caps.lock().unwrap_or_else(|e| e.into_inner()) = (max_total, max_per_ip);
    }

    /// Counts a connection from `ip` in, if the caps allow it. An IPv4 client on a dual-stack
    /// listener (`::ffff:a.b.c.d`) counts as its IPv4 address.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let ip = ip.to_canonical();
        let (max_total, max_per_ip) = *self.caps.lock().unwrap_or_else(|e| e.into_inner());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        if max_total != 0 && *total >= max_total {
            return Err(Refused::Total(max_total));
        }
        if max_per_ip != 0 && per_ip.get(&ip).is_some_and(|&count| count >= max_per_ip) {
            return Err(Refused::PerIp(max_per_ip));
        }
        let count = per_ip.entry(ip).or_default();
        *count += 1;
        *total += 1;
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Ok(ConnPermit { limiter: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// An admitted connection's place: under the connection limits, in the server's count of live
/// connections (shutdown waits for every `alive` to be dropped) and in the metrics. All are
/// given back when it is dropped, with the connection.
#[derive(Debug)]
pub struct Admission {
    pub permit: ConnPermit,
    pub alive: tokio::sync::mpsc::Sender<()>,
    pub open: crate::metrics::OpenConn,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        crate::memory::connection_closed();
        let mut open = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        *total -= 1;
        let ip = self.ip.to_canonical();
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flood_limits() {
        assert_eq!("5/10".parse(), Ok(FloodLimit { per_second: 5.0, burst: 10.0 }));
        assert_eq!("4".parse(), Ok(FloodLimit { per_second: 4.0, burst: 8.0 }));
        assert!("0".parse::<FloodLimit>().is_err());
        assert!("fast".parse::<FloodLimit>().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces() {
        let mut bucket = TokenBucket::new(FloodLimit { per_second: 2.0, burst: 3.0 });
        for _ in 0..3 {
            assert_eq!(bucket.take(), Duration::ZERO);
        }
        assert_eq!(bucket.take(), Duration::from_millis(500));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(bucket.take(), Duration::ZERO);
    }

    #[test]
    fn caps_per_ip_and_total() {
        let limiter = ConnLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = limiter.admit(a).unwrap();
        let _p2 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).unwrap_err(), Refused::PerIp(2));
        let _p3 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).unwrap_err(), Refused::Total(3));
        drop(p1);
        assert!(limiter.admit(a).is_ok());
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_listener_counts_as_its_ipv4_address() {
        let limiter = ConnLimiter::new(0, 2);
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = limiter.admit(v4).unwrap();
        let second = limiter.admit(mapped).unwrap();
        assert_eq!(limiter.admit(v4).unwrap_err(), Refused::PerIp(2));
        drop((first, second));
        assert_eq!(limiter.open(), 0);
        assert!(limiter.open.lock().unwrap().1.is_empty(), "no count left behind");
    }
}
