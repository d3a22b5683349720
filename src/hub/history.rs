//! The hub's side of persistent history: every message and room event is handed to the
//! [`Store`] as it happens, room settings are saved when they change, and rooms come back from
//! the store after a restart.
//!
//! A message is stored *before* anyone receives it: if the store refuses it (its writer has
//! fallen behind), the sender gets an error and no one sees a line that history will not have.
//! State events (joins, parts, topics, …) are stored after the fact; a refusal there is logged.
//!
//! While the store cannot write (a full disk), messages still go through and wait in the
//! store's memory; each sender is told once that history is paused ([`HistoryNotice`]), and
//! once more, when they next speak, that it is written again.
//!
//! The store knows nothing of events: [`Event::records`] turns an event into the records that
//! keep it, and [`Event::from_record`] turns a record back into an event for replay.

use std::sync::Arc;

use super::modes::RoomModes;
use super::text::fold;
use super::{ConnId, Event, EventKind, Hub, HubError, MsgId, MsgKind, Room, Source, Tags, Target};
use crate::store::{Include, Record, RecordKind, RoomState, Selector, Store, StoreError, dm_key};

/// The client-only tag that is relayed but never kept: a typing notice is stale at once.
pub const TYPING_TAG: &str = "+typing";

impl Event {
    /// The event `record` keeps, as far as it was kept (typing notices are not stored, and the
    /// users' connection ids are gone). Replays render it like any live event, so a line reads
    /// the same whether it arrives live or from history.
    pub fn from_record(record: &Record) -> Arc<Event> {
        let who = Source {
            id: 0,
            nick: record.nick.clone(),
            user: record.user.clone(),
            host: record.host.clone(),
            bot: false,
            account: None,
        };
        let room = record.target.clone();
        let text = record.text.clone();
        let message = |kind| {
            // A private message is kept under the pair's key; on the wire it names its recipient.
            let target =
                if room.starts_with('#') { Target::Room(room.clone()) } else { Target::User(record.extra.clone()) };
            EventKind::Message { from: who.clone(), target, kind, text: text.clone(), tags: record.tags.clone() }
        };
        let kind = match record.kind {
            RecordKind::Privmsg => message(MsgKind::Privmsg),
            RecordKind::Notice => message(MsgKind::Notice),
            RecordKind::Action => message(MsgKind::Action),
            RecordKind::TagMsg => message(MsgKind::TagMsg),
            RecordKind::Join => EventKind::Join { who, room, realname: text },
            RecordKind::Part => EventKind::Part { who, room, reason: text },
            RecordKind::Quit => EventKind::Quit { who, reason: text },
            RecordKind::Nick => EventKind::Nick { who, new: text },
            RecordKind::Topic => EventKind::Topic { who, room, text },
            RecordKind::Kick => EventKind::Kick { who, room, target: record.extra.clone(), target_id: 0, reason: text },
            RecordKind::Mode => EventKind::Mode { who, room, changes: text },
        };
        Event::new(record.id, kind)
    }

    /// The records that keep this event in history: one for a message or a room event; for a
    /// quit or a nick change, which the hub announces once to everyone who shared a room with
    /// the user, one per room in `rooms` (the rooms the user was in). Invites, away and presence
    /// changes, new real names, wallops and messages to a room's operators are not history. A
    /// private message is kept under [`dm_key`] of its sender's and recipient's nicks.
    pub fn records<S: AsRef<str>>(&self, rooms: impl IntoIterator<Item = S>) -> Vec<Record> {
        let record = |who: &Source, target: &str, kind, text: &str, extra: &str| Record {
            id: self.id,
            target: target.to_owned(),
            kind,
            nick: who.nick.clone(),
            user: who.user.clone(),
            host: who.host.clone(),
            text: text.to_owned(),
            extra: extra.to_owned(),
            tags: Vec::new(),
            redacted: false,
        };
        let per_room = |kind, text: &str| {
            rooms.into_iter().map(|room| record(self.actor(), room.as_ref(), kind, text, "")).collect()
        };
        let one = match &self.kind {
            EventKind::Message { from, target, kind, text, tags } => {
                let kept = || -> Tags { tags.iter().filter(|(key, _)| key != TYPING_TAG).cloned().collect() };
                let (kind, tags) = match kind {
                    MsgKind::Privmsg => (RecordKind::Privmsg, kept()),
                    MsgKind::Notice => (RecordKind::Notice, kept()),
                    MsgKind::Action => (RecordKind::Action, kept()),
                    // Tags alone are history only with something besides a typing notice.
                    MsgKind::TagMsg => match kept() {
                        tags if tags.is_empty() => return Vec::new(),
                        tags => (RecordKind::TagMsg, tags),
                    },
                };
                let one = match target {
                    Target::Room(room) => record(from, room, kind, text, ""),
                    Target::User(to) => record(from, &dm_key(&from.nick, to), kind, text, to),
                    // Said to a room's operators or voiced members: not for everyone's history.
                    Target::RoomStatus(..) => return Vec::new(),
                };
                Record { tags, ..one }
            }
            EventKind::Join { who, room, realname } => record(who, room, RecordKind::Join, realname, ""),
            EventKind::Part { who, room, reason } => record(who, room, RecordKind::Part, reason, ""),
            EventKind::Topic { who, room, text } => record(who, room, RecordKind::Topic, text, ""),
            EventKind::Kick { who, room, target, reason, .. } => record(who, room, RecordKind::Kick, reason, target),
            EventKind::Mode { who, room, changes } => record(who, room, RecordKind::Mode, changes, ""),
            EventKind::Quit { reason, .. } => return per_room(RecordKind::Quit, reason),
            EventKind::Nick { new, .. } => return per_room(RecordKind::Nick, new),
            EventKind::Invite { .. }
            | EventKind::Away { .. }
            | EventKind::Presence { .. }
            | EventKind::SetName { .. }
            | EventKind::Wallops { .. }
            | EventKind::Account { .. }
            | EventKind::ReadMarker { .. } => return Vec::new(),
            // A redaction changes the record it names (see [`Store::redact`]).
            EventKind::Redact { .. } => return Vec::new(),
        };
        vec![one]
    }
}

/// What a sender is told when whether history is written has changed since they last spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryNotice {
    Paused,
    Resumed,
}

impl std::fmt::Display for HistoryNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HistoryNotice::Paused => {
                "History is paused: the server cannot store it right now (a full disk, or its database unreachable). Your messages are still \
                 delivered, and kept in memory to be stored when it can; the operators have been told."
            }
            HistoryNotice::Resumed => "History is being written again: what you said meanwhile is stored.",
        })
    }
}

/// The store the hub writes to, if any (unit tests run without one).
#[derive(Clone, Default)]
pub struct History(Option<Arc<dyn Store>>);

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "History(store)" } else { "History(none)" })
    }
}

impl History {
    pub fn new(store: Arc<dyn Store>) -> History {
        History(Some(store))
    }
}

impl Hub {
    /// Continues guest numbers after `last`, the highest given out before a restart
    /// ([`Store::last_guest`]): a new guest must not find history lines under its nick that
    /// someone else wrote.
    pub fn restore_guests(&mut self, last: u64) {
        self.next_guest = self.next_guest.max(last);
    }

    /// Notes in the store that guest number `number` was given out.
    pub(super) fn save_guest(&self, number: u64) {
        let Some(store) = &self.history.0 else { return };
        if let Err(e) = store.save_guest(number) {
            tracing::warn!("history: guest number {number} not saved: {e}");
        }
    }

    /// Sends every record of `event` to the store. `rooms` are the rooms a quit or nick change
    /// is recorded in.
    /// History reads wait for the newest event or message recorded (see [`Hub::last_recorded`]
    /// and [`Hub::last_said`]).
    pub(super) fn record(&mut self, event: &Event, rooms: &[String]) -> Result<(), HubError> {
        let Some(store) = &self.history.0 else { return Ok(()) };
        // A private message is kept under its parties: accounts where logged in (see
        // [`Hub::party`]), so that it follows them.
        let private = match &event.kind {
            EventKind::Message { from, target: Target::User(to), .. } => {
                let from = match &from.account {
                    Some(account) => format!("~{account}"),
                    None => from.nick.to_string(),
                };
                let to = self.id_of(to).map_or_else(|_| to.clone(), |id| self.party(id));
                Some(dm_key(&from, &to))
            }
            _ => None,
        };
        for mut record in event.records(rooms) {
            if let Some(key) = &private {
                record.target.clone_from(key);
            }
            let said = record.kind.is_message();
            store.append(record).map_err(|e| {
                // The client hears what happened in a few words; the log gets the details (a
                // backlog comes from a pause or an overload the writer reports itself).
                if !matches!(e, StoreError::Backlog(_)) {
                    tracing::warn!("history: a record was refused: {e}");
                }
                HubError::History(e.brief().to_string())
            })?;
            self.last_recorded = event.id;
            if said {
                self.last_said = event.id;
            }
        }
        Ok(())
    }

    /// Records a state event; a failure is not returned: the change has happened.
    pub(super) fn record_state(&mut self, event: &Event, rooms: &[String]) {
        let _ = self.record(event, rooms);
    }

    /// What `id`, who just spoke, is to be told about history, if it has been paused or has
    /// resumed since they were last told: one notice per sender and change, not per message.
    pub(super) fn history_notice(&mut self, id: ConnId) -> Option<HistoryNotice> {
        let paused = self.history.0.as_ref().is_some_and(|store| store.degraded());
        let user = self.users.get_mut(&id)?;
        if user.told_paused == paused {
            return None;
        }
        user.told_paused = paused;
        Some(if paused { HistoryNotice::Paused } else { HistoryNotice::Resumed })
    }

    /// Has the store redact the record `id` of `key` (a room name or a [`dm_key`]) for the
    /// redaction `by`; history reads wait for it as for a message.
    pub(super) fn record_redaction(&mut self, key: &str, id: MsgId, by: MsgId) -> Result<(), HubError> {
        let Some(store) = &self.history.0 else { return Ok(()) };
        store.redact(key, id, by).map_err(|e| HubError::History(e.to_string()))?;
        self.last_recorded = by;
        self.last_said = by;
        Ok(())
    }

    /// Saves a room's settings so they survive a restart.
    pub(super) fn save_room(&mut self, key: &str) {
        let Some(room) = self.rooms.get_mut(key) else { return };
        room.saved = true;
        let Some(store) = &self.history.0 else { return };
        let state = RoomState {
            name: room.name.clone(),
            created: room.created,
            topic: room.topic.clone(),
            modes: room.modes.render(true),
            bans: room.bans.clone(),
        };
        if let Err(e) = store.save_room(state) {
            tracing::warn!("history: the settings of {} were not saved: {e}", room.name);
        }
    }

    /// Forgets the saved settings of a room that is gone (its history, if any, stays).
    pub(super) fn forget_room(&mut self, key: &str) {
        let Some(store) = &self.history.0 else { return };
        if let Err(e) = store.forget_room(key) {
            tracing::warn!("history: {key} was not forgotten: {e}");
        }
    }

    /// Brings back rooms saved before a restart: name, creation time, topic and modes. A room
    /// whose name is not valid, or with nothing worth keeping (no history, no topic, default modes, no bans: saved by an
    /// older version, or its settings were undone) is forgotten instead.
    pub fn restore_rooms(&mut self, rooms: Vec<RoomState>) {
        for state in rooms {
            let mut room = Room::new(&state.name, state.created);
            room.topic = state.topic;
            room.modes = RoomModes::from_rendered(&state.modes);
            room.bans = state.bans;
            room.saved = true;
            room.has_history = self.history.0.as_ref().is_some_and(|store| {
                store
                    .history(&state.name, &Selector::Latest(None), 1, Include::Messages)
                    .map_or(true, |found| !found.is_empty())
            });
            let key = fold(&state.name);
            if !super::text::valid_room(&state.name) {
                // Saved before names were checked as they are now (an invisible character, a
                // bidi override, mixed alphabets): not brought back, its history stays.
                tracing::warn!("history: the room {:?} is not restored: its name is no longer valid", state.name);
                self.forget_room(&key);
            } else if room.worth_keeping() && !self.rooms.contains_key(&key) {
                self.bans_total += room.bans.len();
                self.lookalikes.insert(super::text::skeleton(&room.name), key.clone());
                self.rooms.insert(key, room);
            } else {
                self.forget_room(&key);
            }
        }
    }

    /// Where `id` may read the history of `target`: a room they are in (its name, all of its
    /// history), or their private conversation with `target` (the key of the two parties, see
    /// [`Hub::party`]; all of it for a logged-in user, else from [`Hub::private_since`] on).
    pub fn history_target(&self, id: ConnId, target: &str) -> Result<(String, Option<MsgId>), HubError> {
        if target.starts_with('#') {
            Ok((self.member_room(id, target)?.name.clone(), None))
        } else if super::text::valid_nick(target) {
            let (me, since) = self.history_owner(id);
            Ok((dm_key(&me, &self.party_named(target)), since))
        } else {
            Err(HubError::NoSuchNick(target.into()))
        }
    }

    /// Whose private conversations `id` may read, as the store names their owner (see
    /// [`Hub::party`]), and from when on: all of an account's, a nick's only from the moment
    /// this connection took it.
    pub fn history_owner(&self, id: ConnId) -> (String, Option<MsgId>) {
        let party = self.party(id);
        let since = self.user(id).source.account.is_none().then(|| self.private_since(id));
        (party, since)
    }

    /// The oldest private message `id` may read: none from before it took its nick. Without
    /// accounts a nick proves nothing about who held it earlier, so the private history kept
    /// under it is shown only from the moment this connection took it.
    pub fn private_since(&self, id: ConnId) -> MsgId {
        self.user(id).nick_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of the first event made in some millisecond of 2023.
    const ID: MsgId = MsgId(1_700_000_000_000 << 20);

    fn alice() -> Source {
        Source { id: 1, nick: "alice".into(), user: "a".into(), host: "h".into(), bot: false, account: None }
    }

    #[test]
    fn events_become_records() {
        let event = |kind| Event::new(ID, kind);
        let quit = event(EventKind::Quit { who: alice(), reason: "bye".into() });
        let records = quit.records(["#a", "#b"]);
        assert_eq!(
            records.iter().map(|r| (r.target.as_str(), r.kind, r.text.as_str())).collect::<Vec<_>>(),
            [("#a", RecordKind::Quit, "bye"), ("#b", RecordKind::Quit, "bye")]
        );
        let kick = event(EventKind::Kick {
            who: alice(),
            room: "#a".into(),
            target: "bob".into(),
            target_id: 2,
            reason: "spam".into(),
        });
        let records = kick.records(["#ignored"]);
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].target.as_str(), records[0].kind, records[0].text.as_str(), records[0].extra.as_str()),
            ("#a", RecordKind::Kick, "spam", "bob")
        );
        let invite = event(EventKind::Invite { who: alice(), target: "bob".into(), target_id: 2, room: "#a".into() });
        assert!(invite.records(["#a"]).is_empty());
    }

    #[test]
    fn a_private_message_is_kept_under_its_pair_and_replayed_to_its_recipient() {
        let tags = vec![("+typing".to_string(), Some("active".to_string())), ("+draft/reply".into(), Some("x".into()))];
        let said = Event::new(
            ID,
            EventKind::Message {
                from: alice(),
                target: Target::User("Bob".into()),
                kind: MsgKind::Privmsg,
                text: "hi".into(),
                tags,
            },
        );
        let records = said.records([] as [&str; 0]);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].target, dm_key("bob", "alice"));
        assert_eq!(records[0].tags, [("+draft/reply".to_string(), Some("x".to_string()))], "typing is not kept");
        let replayed = Event::from_record(&records[0]);
        assert_eq!(replayed.id, ID);
        assert!(
            matches!(&replayed.kind, EventKind::Message { target: Target::User(to), text, .. } if to == "Bob" && text == "hi"),
            "{replayed:?}"
        );
    }
}
