//! Server-operator logins (`OPER`, `/oper`), and the guard that makes guessing the password
//! slow: after a few failures from one address, or for one operator name, each further
//! attempt must wait twice as long as the one before (10 s, 20 s, … up to an hour), whatever
//! connection it comes from. While locked, an attempt is refused without the password being
//! checked, so a right guess then tells the guesser nothing. Every failure and success is
//! logged with the address.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ConnId, Hub, HubError};

/// Failures allowed before attempts are paced.
const FREE_FAILURES: u32 = 3;
/// The first wait once they are used up; each further failure doubles it.
const FIRST_WAIT: Duration = Duration::from_secs(10);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Entries kept before the ones no longer locked and idle for [`MAX_WAIT`] are dropped.
const PRUNE_AT: usize = 4096;
/// Operator names are remembered cut to this length (a guesser chooses them).
const NAME_KEY_LEN: usize = 64;

/// Failed logins per address and per operator name.
#[derive(Debug, Default)]
pub struct OperGuard {
    failures: HashMap<Box<str>, (u32, Instant)>,
}

impl OperGuard {
    /// How long `key` must still wait, if it is locked.
    fn locked(&self, key: &str, now: Instant) -> Option<Duration> {
        let &(count, last) = self.failures.get(key)?;
        let until = last + wait_after(count);
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: Box<str>, now: Instant) -> u32 {
        if self.failures.len() >= PRUNE_AT {
            self.failures.retain(|_, &mut (count, last)| now < last + wait_after(count) + MAX_WAIT);
        }
        let entry = self.failures.entry(key).or_insert((0, now));
        *entry = (entry.0 + 1, now);
        entry.0
    }
}

/// How long to wait after `count` failures.
fn wait_after(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(n) => FIRST_WAIT.saturating_mul(1 << n.min(16)).min(MAX_WAIT),
    }
}

impl Hub {
    /// Grants server-operator rights if `name`/`password` match a configured operator, unless
    /// the user's address or that name has failed too often lately.
    pub fn oper(&mut self, id: ConnId, name: &str, password: &str) -> Result<(), HubError> {
        self.oper_at(id, name, password, Instant::now())
    }

    fn oper_at(&mut self, id: ConnId, name: &str, password: &str, now: Instant) -> Result<(), HubError> {
        let source = self.user(id).source.clone();
        let keys: [Box<str>; 2] = [
            format!("address {}", source.host).into(),
            format!("name {}", name.chars().take(NAME_KEY_LEN).collect::<String>()).into(),
        ];
        let guard = &mut self.oper_guard;
        if let Some(wait) = keys.iter().filter_map(|k| guard.locked(k, now)).max() {
            tracing::warn!("OPER as {name:?} by {} from {} refused: too many failures", source.nick, source.host);
            return Err(HubError::OperThrottled(wait.as_secs_f64().ceil() as u64));
        }
        if self.config.opers.get(name).is_some_and(|p| p == password) {
            for key in &keys {
                self.oper_guard.failures.remove(key);
            }
            tracing::info!("{} from {} is now server operator {name:?}", source.nick, source.host);
            self.mark_oper(id, true);
            self.share_user(id);
            Ok(())
        } else {
            let [address, name_key] = keys;
            let failures = self.oper_guard.fail(address, now).max(self.oper_guard.fail(name_key, now));
            tracing::warn!("OPER as {name:?} by {} from {} failed ({failures} lately)", source.nick, source.host);
            Err(HubError::BadOperLogin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{History, HubConfig, Outbox, Registration};

    fn user(hub: &mut Hub, nick: &str, host: &str) -> ConnId {
        let outbox = Outbox::new(8);
        let reg = Registration {
            nick: Some(nick.into()),
            user: "u".into(),
            host: host.into(),
            realname: "".into(),
            protocol: crate::hub::Protocol::Plain,
            secure: false,
            certfp: None,
            outbox,
        };
        hub.register(reg).unwrap().0
    }

    #[test]
    fn guessing_is_paced_per_address_and_per_name() {
        let mut config = HubConfig::default();
        config.opers.insert("admin".into(), "secret".into());
        let mut hub = Hub::new(config, History::default());
        let guesser = user(&mut hub, "guesser", "10.0.0.1");
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(hub.oper_at(guesser, "admin", "guess", t0), Err(HubError::BadOperLogin));
        }
        // Locked now: even the right password is not looked at.
        assert_eq!(hub.oper_at(guesser, "admin", "secret", t0), Err(HubError::OperThrottled(10)));
        // The name is locked from another address too, and the address for another name.
        let other = user(&mut hub, "other", "10.0.0.2");
        assert_eq!(hub.oper_at(other, "admin", "secret", t0), Err(HubError::OperThrottled(10)));
        assert_eq!(hub.oper_at(guesser, "root", "x", t0), Err(HubError::OperThrottled(10)));
        // After the wait one more guess is allowed; failing it doubles the wait.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(hub.oper_at(guesser, "admin", "guess", t1), Err(HubError::BadOperLogin));
        assert_eq!(hub.oper_at(guesser, "admin", "secret", t1), Err(HubError::OperThrottled(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(hub.oper_at(other, "admin", "secret", t2), Ok(()));
        assert_eq!(hub.oper_at(other, "admin", "secret", t2), Ok(()), "success clears the name");
    }

    #[test]
    fn waits_double_up_to_an_hour() {
        assert_eq!(wait_after(2), Duration::ZERO);
        assert_eq!(wait_after(3), FIRST_WAIT);
        assert_eq!(wait_after(5), FIRST_WAIT * 4);
        assert_eq!(wait_after(40), MAX_WAIT);
    }
}
