//! Taking back what was said (IRC `draft/message-redaction`): a sender may redact its own
//! messages, a room's operator any message of the room. The stored copy loses its text and tags,
//! so history shows the message as removed; the members who saw it are told.

use std::sync::Arc;

use super::text::fold;
use super::{ConnId, Event, EventKind, Hub, HubError, Target};
use crate::store::Record;

impl Hub {
    /// Redacts `message`, a record of `target` (a room `id` is in, or the nick of the other party
    /// of a private conversation) that the caller read from the store. Returns the redaction,
    /// already delivered to the others who could see the message.
    pub fn redact(&mut self, id: ConnId, target: &str, message: &Record, reason: &str) -> Result<Arc<Event>, HubError> {
        let me = self.user(id);
        // Without accounts, a message is one's own if it was said under one's nick since taking it.
        let own = fold(&message.nick) == fold(&me.source.nick) && message.id >= me.nick_since;
        let (to, recipients, key) = if target.starts_with('#') {
            let room = self.member_room(id, target)?;
            if !own && !room.is_op(id) {
                return Err(HubError::NotYourMessage);
            }
            let members: Vec<ConnId> = room.others(id);
            (Target::Room(room.name.clone()), members, room.name.clone())
        } else {
            if !own {
                return Err(HubError::NotYourMessage);
            }
            let other = self.id_of(target).ok().into_iter().collect();
            (Target::User(target.to_string()), other, self.history_target(id, target)?.0)
        };
        let event = self.event(EventKind::Redact {
            who: self.user(id).source.clone(),
            target: to,
            msgid: message.id,
            author: message.nick.to_string(),
            reason: super::text::sanitize(reason),
        });
        self.record_redaction(&key, message.id, event.id)?;
        self.share(&event, super::cluster::Extra::None);
        self.deliver(recipients, &event);
        Ok(event)
    }
}
