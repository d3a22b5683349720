//! What one user, or one address, may take from the hub: how many rooms a user is in at once
//! (`CHANLIMIT`) and how fast users and addresses create rooms.
//!
//! Without these, one client could join tens of thousands of rooms (making every NAMES, WHO
//! and quit that touches it slow for everyone under the hub lock) or fill the server with
//! rooms that each cost memory. Creation is paced per user and per address, so reconnecting
//! or opening many connections from one address does not reset the allowance.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Rooms one user may be in at once when not configured (`--max-rooms-per-user`): between
/// InspIRCd's default of 20 and ergo's 100, enough for anyone's autojoin list.
pub const DEFAULT_MAX_ROOMS: usize = 50;

/// The hub's limits, from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct HubLimits {
    /// Rooms one user may be in at once; 0 is no cap.
    pub max_rooms_per_user: usize,
    /// How fast one user, and separately one address, may create rooms; `None` is no pacing.
    pub room_creation: Option<Rate>,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits { max_rooms_per_user: DEFAULT_MAX_ROOMS, room_creation: Some(Rate::ROOM_CREATION) }
    }
}

/// A token bucket's shape: `burst` at once, then one every `every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

impl Rate {
    /// Rooms created: 20 at once, then one every 3 seconds (20 a minute) per user and per
    /// address — a person creates a handful, a script 100,000.
    pub const ROOM_CREATION: Rate = Rate { burst: 20, every: Duration::from_secs(3) };
}

/// One token bucket per key (a user, an address).
#[derive(Debug)]
pub struct Throttle<K> {
    rate: Rate,
    buckets: HashMap<K, (f64, Instant)>,
}

/// Buckets kept before full ones are dropped (a full bucket is the same as none).
const PRUNE_AT: usize = 4096;

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(rate: Rate) -> Throttle<K> {
        Throttle { rate, buckets: HashMap::new() }
    }

    /// How long `key` must wait before it may act, or `None` if it may act now.
    pub fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let tokens = self.tokens(key, now);
        (tokens < 1.0).then(|| self.rate.every.mul_f64(1.0 - tokens))
    }

    /// Takes a token from `key` (which [`Throttle::wait`] found ready).
    pub fn take(&mut self, key: &K, now: Instant) {
        let tokens = self.tokens(key, now) - 1.0;
        if self.buckets.len() >= PRUNE_AT {
            let (rate, full) = (self.rate, f64::from(self.rate.burst));
            self.buckets.retain(|_, (t, at)| refill(rate, *t, *at, now) < full);
        }
        self.buckets.insert(key.clone(), (tokens, now));
    }

    /// Gives `key` back a token it took: what it paid for did not last.
    pub fn refund(&mut self, key: &K, now: Instant) {
        if let Some(bucket) = self.buckets.get_mut(key) {
            let tokens = (refill(self.rate, bucket.0, bucket.1, now) + 1.0).min(f64::from(self.rate.burst));
            *bucket = (tokens, now);
        }
    }

    fn tokens(&self, key: &K, now: Instant) -> f64 {
        self.buckets.get(key).map_or(f64::from(self.rate.burst), |&(t, at)| refill(self.rate, t, at, now))
    }
}

/// Room creation, paced per user and per address.
#[derive(Debug, Default)]
pub struct RoomCreation(Option<(Throttle<super::ConnId>, Throttle<Box<str>>)>);

impl RoomCreation {
    pub fn new(rate: Option<Rate>) -> RoomCreation {
        RoomCreation(rate.map(|rate| (Throttle::new(rate), Throttle::new(rate))))
    }

    /// Counts one room created by `user` from `host`, or says how long they must wait first.
    pub fn create(&mut self, user: super::ConnId, host: &str, now: Instant) -> Result<(), Duration> {
        let Some((users, hosts)) = &mut self.0 else { return Ok(()) };
        let host: Box<str> = host.into();
        match users.wait(&user, now).max(hosts.wait(&host, now)) {
            Some(wait) => Err(wait),
            None => {
                users.take(&user, now);
                hosts.take(&host, now);
                Ok(())
            }
        }
    }

    /// Gives back what creating a room cost its creator and their address, when the room is
    /// forgotten (empty, with nothing worth keeping): a room made and left costs nothing once
    /// it is gone, so only rooms that stay are paced, and people who come and go through a
    /// room of their own (a bot, a class behind one address) are never refused.
    pub fn refund(&mut self, user: super::ConnId, host: &str, now: Instant) {
        if let Some((users, hosts)) = &mut self.0 {
            users.refund(&user, now);
            hosts.refund(&host.into(), now);
        }
    }

    /// Forgets a user who has left (its address keeps its count).
    pub fn forget(&mut self, user: super::ConnId) {
        if let Some((users, _)) = &mut self.0 {
            users.buckets.remove(&user);
        }
    }
}

fn refill(rate: Rate, tokens: f64, at: Instant, now: Instant) -> f64 {
    let earned = now.saturating_duration_since(at).as_secs_f64() / rate.every.as_secs_f64();
    (tokens + earned).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_paces() {
        let mut throttle = Throttle::new(Rate { burst: 2, every: Duration::from_secs(10) });
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(throttle.wait(&"a", t0), None);
            throttle.take(&"a", t0);
        }
        assert_eq!(throttle.wait(&"a", t0), Some(Duration::from_secs(10)));
        assert_eq!(throttle.wait(&"b", t0), None, "another key has its own bucket");
        assert_eq!(throttle.wait(&"a", t0 + Duration::from_secs(4)), Some(Duration::from_secs(6)));
        assert_eq!(throttle.wait(&"a", t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn a_refund_gives_a_token_back_up_to_the_burst() {
        let mut throttle = Throttle::new(Rate { burst: 1, every: Duration::from_secs(10) });
        let t0 = Instant::now();
        throttle.take(&"a", t0);
        assert!(throttle.wait(&"a", t0).is_some());
        throttle.refund(&"a", t0);
        assert_eq!(throttle.wait(&"a", t0), None);
        throttle.refund(&"a", t0);
        throttle.take(&"a", t0);
        assert!(throttle.wait(&"a", t0).is_some(), "no more than the burst is given back");
    }
}
