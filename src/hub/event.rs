//! What the hub emits: one [`Event`] per thing that happened, stamped with a unique, time-ordered
//! [`MsgId`] and the server time, shared by every recipient behind an `Arc`.
//!
//! Each protocol encodes an event once per wire format, as a rule: the first writer to need a
//! format fills [`Event::encoded`]'s slot and every other recipient reuses the same `Bytes`.
//! Writers that need it at the same moment (one on each core, as the event reaches the first
//! of its recipients) each encode it and keep whichever copy was stored first, so no worker
//! thread ever waits for another's encoding. A slot is one pointer (`OnceBox`), where a
//! `OnceLock<Bytes>` took 40 bytes: every event is 544 bytes smaller for it.

use std::sync::Arc;

use bytes::Bytes;
use compact_str::CompactString;
use once_cell::race::OnceBox;

use super::ConnId;
pub use crate::chat::{MsgId, Tags};

/// Who did something, as other users see them: `nick!user@host`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub id: ConnId,
    /// Inline up to 24 bytes (every usual nick): an event copies it, with no allocation.
    pub nick: CompactString,
    pub user: Arc<str>,
    pub host: Arc<str>,
    /// The user marked itself a bot (user mode `+B`): IRC clients see a `bot` tag on what it does.
    pub bot: bool,
    /// The account the user is logged in to: IRC clients see it in an `account` tag.
    pub account: Option<Arc<str>>,
}

/// What a message is: a normal line, a notice (never answered automatically), an action
/// (`/me`), or tags alone (IRC `TAGMSG`, e.g. a typing indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MsgKind {
    Privmsg,
    Notice,
    Action,
    TagMsg,
}

/// Where a message goes: a room, or one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    Room(String),
    User(String),
    /// The members of a room with at least a status (IRC `STATUSMSG`): `@` its operators, `+`
    /// those with voice and its operators. Such a message is not kept in the room's history,
    /// which every member may read.
    RoomStatus(char, String),
}

impl Target {
    /// The target as IRC writes it: `#room`, `nick`, `@#room`.
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Target::Room(name) | Target::User(name) => name.as_str().into(),
            Target::RoomStatus(prefix, room) => format!("{prefix}{room}").into(),
        }
    }
}

/// Something that happened, from the point of view of everyone who is told about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A line said to a room or to one user.
    Message {
        from: Source,
        target: Target,
        kind: MsgKind,
        text: String,
        tags: Tags,
    },
    Join {
        who: Source,
        room: String,
        realname: String,
    },
    Part {
        who: Source,
        room: String,
        reason: String,
    },
    Quit {
        who: Source,
        reason: String,
    },
    Nick {
        who: Source,
        new: String,
    },
    Topic {
        who: Source,
        room: String,
        text: String,
    },
    /// `target` (connection `target_id`) was removed from `room`.
    Kick {
        who: Source,
        room: String,
        target: String,
        target_id: ConnId,
        reason: String,
    },
    /// A change of room modes, already rendered as IRC mode string and arguments (`+o bob`).
    Mode {
        who: Source,
        room: String,
        changes: String,
    },
    /// `who` invited `target` (connection `target_id`) into `room`; told to the target and to
    /// the members who may invite there themselves.
    Invite {
        who: Source,
        target: String,
        target_id: ConnId,
        room: String,
    },
    /// `who` went away (with a message) or came back (`None`).
    Away {
        who: Source,
        message: Option<String>,
    },
    /// A nick someone monitors came online (`who` took it) or went offline (`who` left it):
    /// told to the users monitoring that nick.
    Presence {
        who: Source,
        online: bool,
    },
    /// `who` changed its real name (IRC `SETNAME`).
    SetName {
        who: Source,
        realname: String,
    },
    /// A server operator's message to the users who receive such messages (user mode `+w`).
    Wallops {
        who: Source,
        text: String,
    },
    /// `who` logged in to an account (`who.account`) or out of one (`None`); told to the users
    /// sharing a room (IRC `account-notify`).
    Account {
        who: Source,
    },
    /// `who` has read `target` up to `at` (milliseconds since the Unix epoch): told to the
    /// other connections logged in to the same account, never to anyone else (IRC
    /// `draft/read-marker`).
    ReadMarker {
        who: Source,
        target: String,
        at: u64,
    },
    /// `who` redacted the message `msgid` that `author` had said to `target` (IRC `REDACT`).
    Redact {
        who: Source,
        target: Target,
        msgid: MsgId,
        author: String,
        reason: String,
    },
}

/// One event, shared by all its recipients.
#[derive(Debug)]
pub struct Event {
    pub id: MsgId,
    /// Server time in milliseconds since the Unix epoch.
    pub time: u64,
    pub kind: EventKind,
    encoded: [OnceBox<Bytes>; FORMATS],
}

/// How many distinct wire formats an event can be cached in (see [`Event::encoded`]).
pub const FORMATS: usize = 17;

impl Event {
    pub fn new(id: MsgId, kind: EventKind) -> Arc<Event> {
        Arc::new(Event { id, time: id.millis(), kind, encoded: Default::default() })
    }

    /// The user who caused this event.
    pub fn actor(&self) -> &Source {
        match &self.kind {
            EventKind::Message { from: who, .. }
            | EventKind::Join { who, .. }
            | EventKind::Part { who, .. }
            | EventKind::Quit { who, .. }
            | EventKind::Nick { who, .. }
            | EventKind::Topic { who, .. }
            | EventKind::Kick { who, .. }
            | EventKind::Mode { who, .. }
            | EventKind::Invite { who, .. }
            | EventKind::Away { who, .. }
            | EventKind::Presence { who, .. }
            | EventKind::SetName { who, .. }
            | EventKind::Wallops { who, .. }
            | EventKind::Redact { who, .. }
            | EventKind::Account { who }
            | EventKind::ReadMarker { who, .. } => who,
        }
    }

    /// This event in wire format number `format` (`< FORMATS`), encoded by `encode` the first
    /// time a recipient asks (by each of those asking at that moment, the first copy stored
    /// kept) and shared afterwards.
    pub fn encoded(&self, format: usize, encode: impl FnOnce(&Event) -> Bytes) -> &Bytes {
        self.encoded[format].get_or_init(|| Box::new(encode(self)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn wallops() -> Arc<Event> {
        let who = Source {
            id: 1,
            nick: "oper".into(),
            user: "~o".into(),
            host: "127.0.0.1".into(),
            bot: false,
            account: None,
        };
        Event::new(MsgId(1), EventKind::Wallops { who, text: "hello".into() })
    }

    #[test]
    fn writers_encoding_at_the_same_moment_do_not_wait_for_each_other_and_share_one_copy() {
        let event = &wallops();
        let (first_encodes, second_hears) = mpsc::channel();
        let (second_encodes, first_hears) = mpsc::channel();
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(move || {
                let bytes = event.encoded(0, |_| {
                    first_encodes.send(()).unwrap();
                    // The other writer must get as far as encoding too, not wait for this one.
                    first_hears.recv_timeout(Duration::from_secs(10)).expect("the other writer was held up");
                    Bytes::from_static(b"first\r\n")
                });
                bytes.clone()
            });
            let second = scope.spawn(move || {
                second_hears.recv().unwrap();
                let bytes = event.encoded(0, |_| {
                    second_encodes.send(()).unwrap();
                    Bytes::from_static(b"second\r\n")
                });
                bytes.clone()
            });
            (first.join().unwrap(), second.join().unwrap())
        });
        assert_eq!(first, second, "both writers send the copy stored first");
        assert_eq!(event.encoded(0, |_| unreachable!("encoded already")), &first);
    }
}
