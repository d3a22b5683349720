//! Login throttling: after a few failed logins from one IP address, or to one account, within
//! a window, further attempts are refused until that window has passed, without even checking
//! the password (which costs a hash). A success clears the account's count, not the address's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many failed logins are allowed, per address and per account, within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    pub failures: u32,
    pub window: Duration,
}

impl Default for LoginLimit {
    fn default() -> Self {
        LoginLimit { failures: 5, window: Duration::from_secs(60) }
    }
}

/// Whose failures are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    /// A folded account name.
    Account(String),
}

/// Failures since a moment.
#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    since: Instant,
}

/// Most keys remembered before the expired ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Failed logins per address and per account.
#[derive(Debug)]
pub struct Throttle {
    limit: LoginLimit,
    counts: HashMap<Key, Count>,
}

impl Throttle {
    pub fn new(limit: LoginLimit) -> Throttle {
        Throttle { limit, counts: HashMap::new() }
    }

    /// `Err(wait)` while `ip` or `account` has used up its failures: how long until it may try
    /// again.
    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        let wait = [Key::Ip(ip), Key::Account(account.to_ascii_lowercase())]
            .iter()
            .filter_map(|key| self.counts.get(key))
            .filter(|c| c.failures >= self.limit.failures)
            .filter_map(|c| (c.since + self.limit.window).checked_duration_since(now))
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed login; returns the failures of the account within the window so far.
    pub fn failed(&mut self, ip: IpAddr, account: &str, now: Instant) -> u32 {
        if self.counts.len() >= PRUNE_AT {
            let window = self.limit.window;
            self.counts.retain(|_, c| now.duration_since(c.since) < window);
        }
        let mut count = 0;
        for key in [Key::Ip(ip), Key::Account(account.to_ascii_lowercase())] {
            let entry = self.counts.entry(key).or_insert(Count { failures: 0, since: now });
            if now.duration_since(entry.since) >= self.limit.window {
                *entry = Count { failures: 0, since: now };
            }
            entry.failures += 1;
            count = entry.failures;
        }
        count
    }

    /// A successful login clears the account's failures.
    pub fn succeeded(&mut self, account: &str) {
        self.counts.remove(&Key::Account(account.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let limit = LoginLimit { failures: 3, window: Duration::from_secs(60) };
        let mut throttle = Throttle::new(limit);
        let (ip, other_ip) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check(ip, "alice", start), Ok(()));
            throttle.failed(ip, "alice", start);
        }
        assert!(throttle.check(ip, "bob", start).is_err(), "the address is throttled for every account");
        assert!(throttle.check(other_ip, "Alice", start).is_err(), "the account is throttled from every address");
        assert_eq!(throttle.check(other_ip, "bob", start), Ok(()));
        let later = start + Duration::from_secs(61);
        assert_eq!(throttle.check(ip, "alice", later), Ok(()));
        assert_eq!(throttle.failed(ip, "alice", later), 1, "a new window counts anew");
        throttle.succeeded("ALICE");
        assert_eq!(throttle.failed(other_ip, "alice", later), 1);
    }
}
