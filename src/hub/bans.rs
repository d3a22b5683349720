//! Server bans (`KLINE`): server operators keep users out of the whole server by mask
//! (`nick!user@host` with `*` and `?`, `user@host`, or an address alone), with a reason and,
//! if they like, an expiry. A ban applies at once: users it matches are disconnected, and
//! anyone it matches is refused when connecting. [`crate::accounts`] keeps the bans in the
//! store so that they survive restarts.

use super::outbox::Closed;
use super::{ConnId, Hub, HubError, text};
pub use crate::chat::ServerBan;
use crate::chat::now_millis;

/// A mask as typed, in full: `1.2.3.4` → `*!*@1.2.3.4`, `user@host` → `*!user@host`.
pub fn full_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (true, _) => mask.to_string(),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("*!*@{mask}"),
    }
}

impl Hub {
    /// Learns the bans kept in the store (at start-up).
    pub fn restore_server_bans(&mut self, bans: Vec<ServerBan>) {
        let now = now_millis();
        self.server_bans = bans.into_iter().filter(|b| b.active(now)).collect();
    }

    /// The reason `nick!user@host` is banned from the server, if it is.
    pub fn server_banned(&self, nick: &str, user: &str, host: &str) -> Option<String> {
        if self.server_bans.is_empty() {
            return None;
        }
        let now = now_millis();
        let who = format!("{nick}!{user}@{host}");
        self.server_bans.iter().find(|b| b.active(now) && text::wildcard_match(&b.mask, &who)).map(|b| b.reason.clone())
    }

    /// Bans `mask` from the server (operators only) for `minutes` (`None`: for good), replacing
    /// any ban of the same mask; users it matches are disconnected now. Returns the ban and
    /// how many users it removed.
    pub fn kline(
        &mut self,
        id: ConnId,
        mask: &str,
        reason: &str,
        minutes: Option<u64>,
    ) -> Result<(ServerBan, usize), HubError> {
        if !self.user(id).oper {
            return Err(HubError::NotOper);
        }
        let mask = full_mask(mask);
        if mask.contains(' ') || mask.len() > 200 {
            return Err(HubError::BadModeArg('K', mask));
        }
        let now = now_millis();
        let reason = if reason.trim().is_empty() { "banned".to_string() } else { text::sanitize(reason) };
        let ban = ServerBan {
            mask: mask.clone(),
            reason: reason.clone(),
            set_by: self.user(id).source.nick.to_string(),
            at: now,
            until: minutes.map(|m| now.saturating_add(m.saturating_mul(60_000))),
        };
        self.server_bans.retain(|b| !b.mask.eq_ignore_ascii_case(&mask));
        self.server_bans.push(ban.clone());
        let by = self.user(id).source.clone();
        self.share_note(super::cluster::Note::Kline { ban: ban.clone(), by: by.clone() });
        let mut removed = 0;
        for user in self.users.values() {
            let source = &user.source;
            let who = format!("{}!{}@{}", source.nick, source.user, source.host);
            if source.id != id && text::wildcard_match(&mask, &who) {
                let closed = Closed::Killed {
                    by: by.clone(),
                    nick: source.nick.to_string(),
                    reason: format!("Banned: {reason}"),
                };
                user.outbox.close_as(closed);
                removed += 1;
            }
        }
        Ok((ban, removed))
    }

    /// Lifts the server ban of `mask` (operators only); `false` if there was none.
    pub fn unkline(&mut self, id: ConnId, mask: &str) -> Result<bool, HubError> {
        if !self.user(id).oper {
            return Err(HubError::NotOper);
        }
        let mask = full_mask(mask);
        let before = self.server_bans.len();
        self.server_bans.retain(|b| !b.mask.eq_ignore_ascii_case(&mask));
        let lifted = self.server_bans.len() < before;
        if lifted {
            self.share_note(super::cluster::Note::Unkline { mask });
        }
        Ok(lifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_match_masks_until_they_expire() {
        let now = now_millis();
        let ban = |mask: &str, until| ServerBan {
            mask: full_mask(mask),
            reason: format!("{mask} out"),
            set_by: "op".into(),
            at: now,
            until,
        };
        let mut hub = Hub::default();
        hub.restore_server_bans(vec![
            ban("10.0.0.9", None),
            ban("spam*!*@*", Some(now + 60_000)),
            ban("old!*@*", Some(now - 1)),
        ]);
        assert_eq!(full_mask("~u@host"), "*!~u@host");
        assert_eq!(hub.server_banned("anyone", "~x", "10.0.0.9").as_deref(), Some("10.0.0.9 out"));
        assert_eq!(hub.server_banned("spammer", "~x", "10.0.0.1").as_deref(), Some("spam*!*@* out"));
        assert_eq!(hub.server_banned("old", "~x", "10.0.0.1"), None, "an expired ban is gone");
        assert_eq!(hub.server_banned("fine", "~x", "10.0.0.1"), None);
    }
}
