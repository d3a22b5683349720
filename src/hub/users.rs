//! What users change about themselves besides their nick and rooms: their real name, the user
//! modes others see (`+B`, a bot) or that decide what they receive (`+w`, wallops), and the
//! server operators' WALLOPS.

use std::sync::Arc;

use super::{ConnId, Event, EventKind, Hub, HubError, text};

/// A user's own modes, as `MODE nick` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserModes {
    /// `+B`: a bot.
    pub bot: bool,
    /// `+o`: a server operator.
    pub oper: bool,
    /// `+w`: receives WALLOPS.
    pub wallops: bool,
}

impl Hub {
    /// The modes of `id`.
    pub fn user_modes(&self, id: ConnId) -> UserModes {
        let user = self.user(id);
        UserModes { bot: user.source.bot, oper: user.oper, wallops: user.wallops }
    }

    /// Marks `id` a bot or not; returns whether that changed anything. From now on what it
    /// says and does carries the mark (IRC clients see the `bot` tag).
    pub fn set_bot(&mut self, id: ConnId, on: bool) -> bool {
        let user = self.users.get_mut(&id).expect("registered");
        std::mem::replace(&mut user.source.bot, on) != on
    }

    /// Whether `id` receives WALLOPS; returns whether that changed anything.
    pub fn set_wallops(&mut self, id: ConnId, on: bool) -> bool {
        let user = self.users.get_mut(&id).expect("registered");
        std::mem::replace(&mut user.wallops, on) != on
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
        self.deliver(self.peers_and_watchers(id), &event);
        self.users.get_mut(&id).expect("registered").realname = realname.into();
        Ok(event)
    }
}
