//! Who watches whom: each user's list of monitored nicks (IRC `MONITOR`), and the
//! [`EventKind::Presence`] events that tell the watchers when a nick comes online (someone
//! connects with it or takes it) or goes offline (its user leaves or drops it).
//!
//! A watcher that asked for updates (IRC `extended-monitor`) is also told of the away and
//! real-name changes of the users it monitors, as if it shared a room with them.
//!
//! The hub keeps, per folded nick, the set of its watchers, so telling them costs one lookup;
//! while no one monitors anything it costs nothing at all.

use super::text::{fold, valid_nick};
use super::{ConnId, EventKind, Hub, IdSet, Source};

/// The most nicks one user may monitor (`MONITOR=` in ISUPPORT).
pub const MONITOR_LIMIT: usize = 100;

/// The state of monitored nicks: who is online (as they appear), and the nicks that are not.
#[derive(Debug, Default)]
pub struct Monitored {
    pub online: Vec<Source>,
    pub offline: Vec<String>,
    /// Nicks not added because the list was full (`MONITOR +` only).
    pub refused: Vec<String>,
}

impl Hub {
    /// Adds nicks to `id`'s monitor list (nicks already there, and words that cannot be nicks,
    /// are skipped) and says which of them are online; what would go beyond [`MONITOR_LIMIT`] is
    /// refused.
    pub fn monitor_add<'a>(&mut self, id: ConnId, nicks: impl IntoIterator<Item = &'a str>) -> Monitored {
        let mut result = Monitored::default();
        for nick in nicks {
            if !valid_nick(nick) {
                continue;
            }
            let folded = fold(nick);
            let user = self.users.get_mut(&id).expect("registered");
            if user.monitoring().iter().any(|m| fold(m) == folded) {
                continue;
            }
            if user.monitoring().len() >= MONITOR_LIMIT {
                result.refused.push(nick.to_string());
                continue;
            }
            user.change_rare(|rare| rare.monitoring.push(nick.to_string()));
            self.watchers.entry(folded.into()).or_default().insert(id);
            self.status_into(nick, &mut result);
        }
        result
    }

    /// Takes nicks off `id`'s monitor list.
    pub fn monitor_remove<'a>(&mut self, id: ConnId, nicks: impl IntoIterator<Item = &'a str>) {
        for nick in nicks {
            let folded = fold(nick);
            let user = self.users.get_mut(&id).expect("registered");
            user.change_rare(|rare| rare.monitoring.retain(|m| fold(m) != folded));
            self.unwatch(id, &folded);
        }
    }

    /// Empties `id`'s monitor list.
    pub fn unmonitor_all(&mut self, id: ConnId) {
        let Some(user) = self.users.get_mut(&id) else { return };
        for nick in user.change_rare(|rare| std::mem::take(&mut rare.monitoring)) {
            self.unwatch(id, &fold(&nick));
        }
    }

    fn unwatch(&mut self, id: ConnId, folded: &str) {
        if let Some(watchers) = self.watchers.get_mut(folded) {
            watchers.remove(&id);
            if watchers.is_empty() {
                self.watchers.remove(folded);
            }
        }
    }

    /// The nicks `id` monitors, as given.
    pub fn monitor_list(&self, id: ConnId) -> Vec<String> {
        self.user(id).monitoring().to_vec()
    }

    /// Which of the nicks `id` monitors are online.
    pub fn monitor_status(&self, id: ConnId) -> Monitored {
        let mut result = Monitored::default();
        for nick in self.user(id).monitoring() {
            self.status_into(nick, &mut result);
        }
        result
    }

    fn status_into(&self, nick: &str, result: &mut Monitored) {
        match self.nicks.get(fold(nick).as_str()) {
            Some(online) => result.online.push(self.user(*online).source.clone()),
            None => result.offline.push(nick.to_string()),
        }
    }

    /// Whether `id` is told of the away and real-name changes of the nicks it monitors.
    pub fn set_monitor_updates(&mut self, id: ConnId, on: bool) {
        self.users.get_mut(&id).expect("registered").monitor_updates = on;
    }

    /// Tells the watchers of `nick` that `id` now has it (`online`) or no longer has it.
    pub(super) fn tell_watchers(&mut self, id: ConnId, nick: &str, online: bool) {
        if self.watchers.is_empty() {
            return;
        }
        let Some(watchers) = self.watchers.get(fold(nick).as_str()) else { return };
        let watchers: Vec<ConnId> = watchers.iter().copied().filter(|&w| w != id).collect();
        let mut who = self.user(id).source.clone();
        who.nick = nick.into();
        let event = self.event(EventKind::Presence { who, online });
        self.deliver(watchers, &event);
    }

    /// Everyone told of a change to `id` itself (away, real name): the users sharing a room with
    /// it, and those monitoring it who asked for such updates; each once, `id` left out.
    pub(super) fn peers_and_watchers(&self, id: ConnId) -> IdSet {
        let mut told = self.peers(id);
        if self.watchers.is_empty() {
            return told;
        }
        if let Some(watchers) = self.watchers.get(fold(&self.user(id).source.nick).as_str()) {
            told.extend(
                watchers.iter().copied().filter(|&w| w != id && self.users.get(&w).is_some_and(|u| u.monitor_updates)),
            );
        }
        told
    }
}
