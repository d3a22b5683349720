//! What users change about themselves besides their nick and rooms: their real name, the user
//! modes others see (`+B`, a bot), that hide them (`+i`, invisible) or that decide what they
//! receive (`+w`, wallops), and the server operators' WALLOPS.

use std::sync::Arc;

use super::{ConnId, Event, EventKind, Hub, HubError, text};

/// A user's own modes, as `MODE nick` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserModes {
    /// `+B`: a bot.
    pub bot: bool,
    /// `+i`: invisible (see [`Hub::set_invisible`]).
    pub invisible: bool,
    /// `+o`: a server operator.
    pub oper: bool,
    /// `+w`: receives WALLOPS.
    pub wallops: bool,
    /// `+Z`: connected over TLS (set by the server, not the user).
    pub secure: bool,
}

impl Hub {
    /// The modes of `id`.
    pub fn user_modes(&self, id: ConnId) -> UserModes {
        let user = self.user(id);
        UserModes {
            bot: user.source.bot,
            invisible: user.invisible,
            oper: user.oper,
            wallops: user.wallops,
            secure: user.secure,
        }
    }

    /// The SHA-256 fingerprint of the client certificate `id` connected with, if any.
    pub fn certfp(&self, id: ConnId) -> Option<&str> {
        self.users.get(&id).and_then(|user| user.certfp())
    }

    /// Marks `id` a bot or not; returns whether that changed anything. From now on what it
    /// says and does carries the mark (IRC clients see the `bot` tag).
    pub fn set_bot(&mut self, id: ConnId, on: bool) -> bool {
        let user = self.users.get_mut(&id).expect("registered");
        let changed = std::mem::replace(&mut user.source.bot, on) != on;
        if changed {
            self.share_user(id);
        }
        changed
    }

    /// Sets or clears user mode `+i` (invisible); returns whether that changed anything.
    pub fn set_invisible(&mut self, id: ConnId, on: bool) -> bool {
        let changed = self.mark_invisible(id, on);
        if changed {
            self.share_user(id);
        }
        changed
    }

    /// Sets or clears `id`'s `+i`, counted in [`Hub::invisible_count`]; returns whether that
    /// changed it.
    pub(super) fn mark_invisible(&mut self, id: ConnId, on: bool) -> bool {
        self.mark(id, on, |hub, id| (&mut hub.users.get_mut(&id).expect("registered").invisible, &mut hub.invisible))
    }

    /// Sets or clears `id`'s `+o`, counted in [`Hub::oper_count`]; returns whether that
    /// changed it.
    pub(super) fn mark_oper(&mut self, id: ConnId, on: bool) -> bool {
        self.mark(id, on, |hub, id| (&mut hub.users.get_mut(&id).expect("registered").oper, &mut hub.opers))
    }

    /// Sets or clears a mode the hub counts: `mode` gives the user's flag and its count.
    fn mark(&mut self, id: ConnId, on: bool, mode: fn(&mut Hub, ConnId) -> (&mut bool, &mut usize)) -> bool {
        let (flag, count) = mode(self, id);
        let changed = std::mem::replace(flag, on) != on;
        if changed {
            *count = if on { *count + 1 } else { *count - 1 };
        }
        changed
    }

    /// May `asker` see `id` in WHO and NAMES? An invisible user (`+i`) shows only to those who
    /// share a room with them, and to themselves.
    pub(super) fn sees(&self, asker: ConnId, id: ConnId) -> bool {
        let user = self.user(id);
        !user.invisible || asker == id || self.rooms_in(user).any(|room| room.members.contains_key(&asker))
    }

    /// Whether `id` receives WALLOPS; returns whether that changed anything.
    pub fn set_wallops(&mut self, id: ConnId, on: bool) -> bool {
        let user = self.users.get_mut(&id).expect("registered");
        let changed = std::mem::replace(&mut user.wallops, on) != on;
        if changed {
            self.share_user(id);
        }
        changed
    }

    /// A server operator's message to every user who receives WALLOPS (`+w`), the sender aside.
    pub fn wallops(&mut self, id: ConnId, message: &str) -> Result<Arc<Event>, HubError> {
        if !self.user(id).oper {
            return Err(HubError::NotOper);
        }
        let message = text::sanitize(message);
        if message.is_empty() {
            return Err(HubError::NoText);
        }
        let event = self.event(EventKind::Wallops { who: self.user(id).source.clone(), text: message });
        self.share(&event, super::cluster::Extra::None);
        let to: Vec<ConnId> = self.users.iter().filter(|(m, u)| **m != id && u.wallops).map(|(m, _)| *m).collect();
        self.deliver(to, &event);
        Ok(event)
    }

    /// Changes the real name of `id` (IRC `SETNAME`); the users sharing a room with it, and
    /// those monitoring it who asked for such updates, are told.
    pub fn set_realname(&mut self, id: ConnId, realname: &str) -> Result<Arc<Event>, HubError> {
        let realname = text::sanitize(realname);
        if realname.trim().is_empty() || realname.len() > text::REALNAME_LEN {
            return Err(HubError::BadRealname);
        }
        let event = self.event(EventKind::SetName { who: self.user(id).source.clone(), realname: realname.clone() });
        self.share(&event, super::cluster::Extra::None);
        self.deliver(self.peers_and_watchers(id), &event);
        self.users.get_mut(&id).expect("registered").realname = realname.into();
        Ok(event)
    }
}
