//! The hub's side of a cluster (`serve --bus`): several nodes, one chat.
//!
//! A node's own users are its connections; the users of the other nodes are *remote* users,
//! hub users like any other (NAMES, WHO, WHOIS, LUSERS and MONITOR see them) whose queue is on
//! their own node: delivering to one here is a no-op. Every verb a local user does is decided
//! here, by the same rules as on one node, and what others must see of it is handed to the bus
//! as a [`Note`] (once, whoever the recipients); every node [applies](Hub::apply) the notes of
//! the others to its own state and delivers them to its own users as the origin would have
//! (the same recipients are computed from the same state, and deliveries to remote users are
//! no-ops). Receivers do not check rules: the origin did.
//!
//! Ids: a node's [`ConnId`]s carry its number above bit 48 and its [`MsgId`]s in their low 8
//! bits (see [`crate::chat::MsgIdGen`]), so both are unique across the nodes alive, and an id
//! tells its node. Notes of one node arrive in the order it made them (the bus keeps a
//! publisher's order), so a note whose id is not above the last applied from its node is a
//! duplicate and is dropped: no connection is given the same message twice.
//!
//! A node that learns of another ([`Snapshot`]s, sent when nodes meet or meet again) takes its
//! users and their rooms; a node that goes silent is [dropped](Hub::drop_node): its users are
//! seen quitting.
//!
//! Without a bus none of this runs: sharing an event is one test of an `Option`.

use std::collections::HashMap;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::modes::RoomModes;
use super::text::{self, fold};
use super::{ConnId, Event, EventKind, Hub, MsgId, Room, Source, Status, Target, User};
use crate::chat::{Ban, MsgIdGen, ServerBan, Topic};
use crate::hub::outbox::Outbox;

/// A node's number in the cluster (1–255), claimed uniquely on the bus.
pub type NodeId = u8;

/// Where a node's connection ids start: its number sits above bit 48.
const NODE_SHIFT: u32 = 48;

/// The node a connection id belongs to (0: a single server's).
pub fn node_of(id: ConnId) -> NodeId {
    (id >> NODE_SHIFT) as NodeId
}

/// A user as the other nodes need to know them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserState {
    pub source: Source,
    pub realname: String,
    pub away: Option<String>,
    pub oper: bool,
    pub invisible: bool,
    pub wallops: bool,
    pub protocol: String,
    pub secure: bool,
    pub signon: u64,
    /// The rooms the user is in (as named) with their status there.
    pub rooms: Vec<(String, Status)>,
}

/// A room's settings, as the other nodes need them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSettings {
    pub name: String,
    pub created: u64,
    pub topic: Option<Topic>,
    /// As [`RoomModes::render`] writes them, key and limit included.
    pub modes: String,
    pub bans: Vec<Ban>,
}

/// What a receiver needs besides an event to apply it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Extra {
    None,
    /// A join: the member's status in the room.
    Status(Status),
    /// A mode change: the room's settings after it, and the statuses of its members.
    Room(RoomSettings, Vec<(ConnId, Status)>),
}

/// What one node tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Note {
    /// A user came (registered) or changed a mode of its own (`+i`, `+w`, `+B`, oper).
    User(UserState),
    /// Something a local user did, stamped with its id.
    Event { id: MsgId, kind: EventKind, extra: Extra },
    /// A server operator disconnects a user of another node (`KILL`); its node does it.
    Kill { id: ConnId, by: Source, nick: String, reason: String },
    /// An account was registered: its nick is owned on every node.
    Account { name: String },
    /// A server ban was set (`KLINE`): every node applies it to its own users.
    Kline { ban: ServerBan, by: Source },
    /// A server ban was lifted (`UNKLINE`).
    Unkline { mask: String },
}

/// Everything a node has: its users with their rooms, and the settings of those rooms. Sent
/// in parts (see [`Snapshot::parts`]): one NATS message holds at most 1 MB.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub users: Vec<UserState>,
    pub rooms: Vec<RoomSettings>,
    /// Which part this is (0: the first, which starts a snapshot anew).
    pub part: u32,
    /// More parts follow.
    pub more: bool,
}

/// Users or rooms per part of a snapshot: a few hundred bytes each, well under NATS's 1 MB.
const PART: usize = 500;

impl Snapshot {
    /// This snapshot cut into parts of at most 500 users and 500 rooms.
    pub fn parts(self) -> Vec<Snapshot> {
        let mut users = self.users.into_iter();
        let mut rooms = self.rooms.into_iter();
        let mut parts = Vec::new();
        loop {
            let users: Vec<UserState> = users.by_ref().take(PART).collect();
            let rooms: Vec<RoomSettings> = rooms.by_ref().take(PART).collect();
            let done = users.len() < PART && rooms.len() < PART;
            parts.push(Snapshot { users, rooms, part: parts.len() as u32, more: !done });
            if done {
                return parts;
            }
        }
    }

    /// Adds the next part to what came before; whether the snapshot is complete.
    pub fn gather(&mut self, part: Snapshot) -> bool {
        if part.part == 0 {
            *self = Snapshot::default();
        }
        self.users.extend(part.users);
        self.rooms.extend(part.rooms);
        !part.more
    }
}

/// Where the hub hands its notes: the bus's queue. Never waits; a full queue drops the note
/// (counted, and the bus says degraded).
pub type NoteSink = tokio::sync::mpsc::Sender<Note>;

/// This node in the cluster.
#[derive(Debug)]
pub(super) struct Cluster {
    node: NodeId,
    sink: NoteSink,
    /// The last event id applied from each node: what is not above it was applied already.
    applied: HashMap<NodeId, MsgId>,
}

impl Hub {
    /// Makes this hub node `node` of a cluster: its ids carry the number, and what its users do
    /// goes to `sink`. Called once, before anyone connects.
    pub fn join_cluster(&mut self, node: NodeId, sink: NoteSink) {
        self.ids = MsgIdGen::for_node(node);
        self.next_conn = u64::from(node) << NODE_SHIFT;
        self.cluster = Some(Box::new(Cluster { node, sink, applied: HashMap::new() }));
    }

    /// This node's number in its cluster (`None` alone).
    pub fn node(&self) -> Option<NodeId> {
        self.cluster.as_ref().map(|c| c.node)
    }

    /// Whether `id` is a user of another node.
    pub fn is_remote(&self, id: ConnId) -> bool {
        self.users.get(&id).is_some_and(|u| u.remote)
    }

    /// Whether `id` is a user (still) known to the hub.
    pub fn has_user(&self, id: ConnId) -> bool {
        self.users.contains_key(&id)
    }

    /// Whether a user of this node has `nick` now.
    pub fn holds_here(&self, nick: &str) -> bool {
        self.nicks.get(fold(nick).as_str()).is_some_and(|id| !self.is_remote(*id))
    }

    /// Hands what a local user did to the bus, for the other nodes.
    pub(super) fn share(&self, event: &Arc<Event>, extra: Extra) {
        let Some(cluster) = &self.cluster else { return };
        if self.is_remote(event.actor().id) {
            return;
        }
        send(cluster, Note::Event { id: event.id, kind: event.kind.clone(), extra });
    }

    /// Tells the other nodes who `id` is now (after a registration or a mode change).
    pub(super) fn share_user(&self, id: ConnId) {
        let Some(cluster) = &self.cluster else { return };
        if let Some(user) = self.users.get(&id).filter(|u| !u.remote) {
            send(cluster, Note::User(self.user_state(user)));
        }
    }

    /// Hands `note` (a kill, an account, a server ban) to the other nodes.
    pub(super) fn share_note(&self, note: Note) {
        if let Some(cluster) = &self.cluster {
            send(cluster, note);
        }
    }

    fn user_state(&self, user: &User) -> UserState {
        UserState {
            source: user.source.clone(),
            realname: user.realname.to_string(),
            away: user.away().map(str::to_string),
            oper: user.oper,
            invisible: user.invisible,
            wallops: user.wallops,
            protocol: user.protocol.name().to_string(),
            secure: user.secure,
            signon: user.signon,
            rooms: self.rooms_in(user).map(|room| (room.name.clone(), room.members[&user.source.id])).collect(),
        }
    }

    fn room_settings(room: &Room) -> RoomSettings {
        RoomSettings {
            name: room.name.clone(),
            created: room.created,
            topic: room.topic.clone(),
            modes: room.modes.render(true),
            bans: room.bans.clone(),
        }
    }

    /// The settings of room `key` and its members' statuses, for a mode change.
    pub(super) fn room_extra(&self, key: &str) -> Extra {
        match self.rooms.get(key) {
            Some(room) => Extra::Room(Hub::room_settings(room), room.members.iter().map(|(&id, &s)| (id, s)).collect()),
            None => Extra::None,
        }
    }

    /// This node's users and their rooms, for a node that has just met this one.
    pub fn snapshot(&self) -> Snapshot {
        let users: Vec<UserState> = self.users.values().filter(|u| !u.remote).map(|u| self.user_state(u)).collect();
        let keys: std::collections::HashSet<String> =
            users.iter().flat_map(|u| u.rooms.iter().map(|(name, _)| fold(name))).collect();
        let rooms = keys.iter().filter_map(|key| self.rooms.get(key)).map(Hub::room_settings).collect();
        Snapshot { users, rooms, part: 0, more: false }
    }

    /// Applies what another node tells.
    pub fn apply(&mut self, note: Note) {
        match note {
            Note::User(state) => self.apply_user(state, false),
            Note::Event { id, kind, extra } => {
                let Some(cluster) = self.cluster.as_mut() else { return };
                let last = cluster.applied.entry(id.node()).or_default();
                if id <= *last {
                    return;
                }
                *last = id;
                self.ids.observe(id);
                self.apply_event(Event::new(id, kind), extra);
            }
            Note::Kill { id, by, nick, reason } => {
                if let Some(user) = self.users.get(&id).filter(|u| !u.remote) {
                    user.outbox.close_as(super::Closed::Killed { by, nick, reason });
                }
            }
            Note::Account { name } => {
                self.registered.insert(fold(&name).into());
            }
            Note::Kline { ban, by } => {
                self.server_bans.retain(|b| !b.mask.eq_ignore_ascii_case(&ban.mask));
                for user in self.users.values().filter(|u| !u.remote) {
                    let source = &user.source;
                    let who = format!("{}!{}@{}", source.nick, source.user, source.host);
                    if text::wildcard_match(&ban.mask, &who) {
                        let reason = format!("Banned: {}", ban.reason);
                        user.outbox.close_as(super::Closed::Killed {
                            by: by.clone(),
                            nick: source.nick.to_string(),
                            reason,
                        });
                    }
                }
                self.server_bans.push(ban);
            }
            Note::Unkline { mask } => self.server_bans.retain(|b| !b.mask.eq_ignore_ascii_case(&mask)),
        }
    }

    /// Takes in (or updates) a user of another node; new room memberships are told to the
    /// local members as joins. From a snapshot (`whole`), the rooms listed are all the user's:
    /// those it left meanwhile (a part lost while the bus was down) are told as parts.
    fn apply_user(&mut self, state: UserState, whole: bool) {
        let id = state.source.id;
        if self.cluster.as_ref().is_none_or(|c| node_of(id) == c.node) {
            return;
        }
        match self.users.get_mut(&id) {
            Some(user) => {
                user.wallops = state.wallops;
                user.source.bot = state.source.bot;
                user.change_rare(|rare| rare.away = state.away.clone().map(String::into_boxed_str));
            }
            None => {
                // The same nick on two nodes (each gave it while they were cut off from each
                // other): whoever took it first keeps it, the other is renamed by its own node.
                if let Some(&holder) = self.nicks.get(fold(&state.source.nick).as_str()) {
                    let newcomer_first = (state.signon, id) < (self.user(holder).signon, holder);
                    if self.is_remote(holder) || !newcomer_first {
                        tracing::warn!(
                            "cluster: {} of node {} has a nick taken here; its node renames it",
                            state.source.nick,
                            node_of(id)
                        );
                        return;
                    }
                    let guest = self.guest_nick();
                    if let Ok(event) = self.set_nick(holder, &guest) {
                        self.user(holder).outbox.push(super::Out::Event(event));
                        self.share_user(holder);
                        tracing::info!(
                            "cluster: {} renamed to {guest}: node {} gave the nick first",
                            state.source.nick,
                            node_of(id)
                        );
                    }
                }
                self.nicks.insert(CompactString::new(fold(&state.source.nick)), id);
                let mut user = Box::new(User {
                    source: state.source.clone(),
                    realname: state.realname.clone().into(),
                    rooms: SmallVec::new(),
                    // Set below with the counts LUSERS reads.
                    oper: false,
                    invisible: false,
                    wallops: state.wallops,
                    monitor_updates: false,
                    signon: state.signon,
                    nick_since: MsgId(state.signon << 20),
                    last_spoke: state.signon,
                    told_paused: false,
                    protocol: super::Protocol::named(&state.protocol),
                    secure: state.secure,
                    rare: None,
                    outbox: Outbox::new(1),
                    remote: true,
                });
                user.change_rare(|rare| rare.away = state.away.clone().map(String::into_boxed_str));
                self.users.insert(id, user);
                self.max_users = self.max_users.max(self.users.len());
                self.tell_watchers(id, &state.source.nick, true);
            }
        }
        self.mark_oper(id, state.oper);
        self.mark_invisible(id, state.invisible);
        if whole {
            let listed: Vec<String> = state.rooms.iter().map(|(name, _)| fold(name)).collect();
            let left: Vec<String> = self.users[&id]
                .rooms
                .iter()
                .filter(|key| !listed.iter().any(|l| l == *key))
                .map(|k| k.to_string())
                .collect();
            for key in left {
                let Some(room) = self.rooms.get(&key) else { continue };
                let (members, name) = (room.witnesses(id), room.name.clone());
                let event =
                    self.event(EventKind::Part { who: state.source.clone(), room: name, reason: String::new() });
                self.deliver(members, &event);
                self.leave_room(id, &key);
            }
        }
        // Rooms it is in that this node did not know of: as if it joined now.
        for (name, status) in state.rooms {
            let key = fold(&name);
            if self.rooms.get(&key).is_some_and(|r| r.members.contains_key(&id)) {
                continue;
            }
            let realname = state.realname.clone();
            let event = self.event(EventKind::Join { who: state.source.clone(), room: name, realname });
            self.apply_join(&event, &state.source, status);
        }
    }

    /// A room named `name` here, made if this node did not have it.
    fn ensure_room(&mut self, name: &str, created: u64) -> String {
        let key = fold(name);
        if !self.rooms.contains_key(&key) {
            self.lookalikes.insert(text::skeleton(name), key.clone());
            self.rooms.insert(key.clone(), Room::new(name, created));
        }
        key
    }

    fn apply_settings(&mut self, settings: &RoomSettings) {
        let key = self.ensure_room(&settings.name, settings.created);
        let room = self.rooms.get_mut(&key).expect("made above");
        room.topic.clone_from(&settings.topic);
        room.modes = RoomModes::from_rendered(&settings.modes);
        self.bans_total = self.bans_total + settings.bans.len() - room.bans.len().min(self.bans_total);
        room.bans.clone_from(&settings.bans);
        room.banned_members.clear();
    }

    fn apply_join(&mut self, event: &Arc<Event>, who: &Source, status: Status) {
        let EventKind::Join { room, .. } = &event.kind else { return };
        if !self.users.contains_key(&who.id) {
            return;
        }
        let key = self.ensure_room(room, event.time);
        let room = self.rooms.get_mut(&key).expect("made above");
        let was = room.set_member(who.id, status);
        room.invited.remove(&who.id);
        let witnesses = room.witnesses(who.id);
        match was {
            None => self.users.get_mut(&who.id).expect("checked").rooms.push(key.into()),
            // Already a member: a quiet member shown now is news; anything else is not.
            Some(old) if !old.hidden || status.hidden => return,
            Some(_) => {}
        }
        // As on the origin: a quiet join is in history from when it is shown.
        if !status.hidden {
            self.record_state(event, &[]);
        }
        self.deliver(witnesses, event);
    }

    fn apply_event(&mut self, event: Arc<Event>, extra: Extra) {
        let who = event.actor().clone();
        if !self.users.contains_key(&who.id) {
            // Not known yet (its snapshot is on the way): a message is still shown.
            if !matches!(event.kind, EventKind::Message { .. }) {
                return;
            }
        }
        match &event.kind {
            EventKind::Message { target, .. } => {
                let to: Vec<ConnId> = match target {
                    // A room this node does not know (yet) still has the message in its history.
                    Target::Room(name) => match self.rooms.get_mut(&fold(name)) {
                        Some(room) => {
                            room.has_history = true;
                            room.others(who.id)
                        }
                        None => Vec::new(),
                    },
                    Target::RoomStatus(prefix, name) => {
                        let Some(room) = self.rooms.get(&fold(name)) else { return };
                        room.members
                            .iter()
                            .filter(|&(&m, s)| m != who.id && (s.op || (*prefix == '+' && s.voice)))
                            .map(|(&m, _)| m)
                            .collect()
                    }
                    Target::User(nick) => self.id_of(nick).ok().into_iter().collect(),
                };
                self.record_state(&event, &[]);
                self.deliver(to.iter().copied(), &event);
                crate::metrics::get().messages_delivered.inc_by(to.len() as u64);
            }
            EventKind::Join { .. } => {
                let status = match extra {
                    Extra::Status(status) => status,
                    _ => Status::default(),
                };
                self.apply_join(&event, &who, status);
            }
            EventKind::Part { room, .. } => {
                let Ok(room) = self.member_room(who.id, room) else { return };
                let members = room.witnesses(who.id);
                let key = fold(&room.name);
                if room.status(who.id).is_some_and(|s| !s.hidden) {
                    self.record_state(&event, &[]);
                }
                self.deliver(members, &event);
                self.leave_room(who.id, &key);
            }
            EventKind::Quit { .. } => self.depart(who.id, &event),
            EventKind::Nick { new, .. } => self.rename(who.id, new, &event),
            EventKind::Topic { room, text, .. } => {
                let Ok(found) = self.member_room(who.id, room) else { return };
                let key = fold(&found.name);
                let topic = (!text.is_empty()).then(|| Topic {
                    text: text.clone(),
                    set_by: who.nick.to_string(),
                    at: event.time,
                });
                let room = self.rooms.get_mut(&key).expect("found above");
                room.topic = topic;
                let members: Vec<ConnId> = room.others(who.id);
                self.record_state(&event, &[]);
                self.save_room(&key);
                self.deliver(members, &event);
            }
            EventKind::Kick { room, target_id, .. } => {
                let Ok(found) = self.member_room(who.id, room) else { return };
                let key = fold(&found.name);
                let Some(target) = found.status(*target_id) else { return };
                // A quiet member never shown is kicked before its own eyes only, and not in
                // history, as on the origin.
                let members: Vec<ConnId> = match target.hidden {
                    true => vec![*target_id],
                    false => found.others(who.id),
                };
                if !target.hidden {
                    self.record_state(&event, &[]);
                }
                self.deliver(members, &event);
                self.leave_room(*target_id, &key);
            }
            EventKind::Mode { room, .. } => {
                if let Extra::Room(settings, statuses) = &extra {
                    self.apply_settings(settings);
                    if let Some(room) = self.rooms.get_mut(&fold(room)) {
                        for (id, status) in statuses {
                            if room.members.contains_key(id) {
                                room.set_member(*id, *status);
                            }
                        }
                    }
                }
                let Some(room) = self.rooms.get(&fold(room)) else { return };
                let members: Vec<ConnId> = room.others(who.id);
                let key = fold(&room.name);
                self.record_state(&event, &[]);
                self.save_room(&key);
                self.deliver(members, &event);
            }
            EventKind::Invite { target_id, room, .. } => {
                let key = fold(room);
                self.invite_into(&key, *target_id);
                let Some(found) = self.rooms.get(&key) else { return };
                let invite_only = found.modes.invite_only;
                let witnesses: Vec<ConnId> = found
                    .members
                    .iter()
                    .filter(|&(&m, s)| m != who.id && (s.op || !invite_only))
                    .map(|(&m, _)| m)
                    .collect();
                self.deliver(std::iter::once(*target_id).chain(witnesses), &event);
            }
            EventKind::Away { message, .. } => {
                let away = message.clone().map(String::into_boxed_str);
                self.users.get_mut(&who.id).expect("checked").change_rare(|rare| rare.away = away);
                self.deliver(self.peers_and_watchers(who.id), &event);
            }
            EventKind::SetName { realname, .. } => {
                self.users.get_mut(&who.id).expect("checked").realname = realname.as_str().into();
                self.deliver(self.peers_and_watchers(who.id), &event);
            }
            EventKind::Account { .. } => {
                self.users.get_mut(&who.id).expect("checked").source.account.clone_from(&who.account);
                self.deliver(self.peers(who.id), &event);
            }
            EventKind::Wallops { .. } => {
                let to: Vec<ConnId> =
                    self.users.iter().filter(|(_, u)| u.wallops && !u.remote).map(|(&id, _)| id).collect();
                self.deliver(to, &event);
            }
            EventKind::Redact { target, msgid, .. } => {
                let to: Vec<ConnId> = match target {
                    Target::Room(name) | Target::RoomStatus(_, name) => match self.rooms.get(&fold(name)) {
                        Some(room) => {
                            let _ = self.record_redaction(&room.name.clone(), *msgid, event.id);
                            let room = &self.rooms[&fold(name)];
                            room.others(who.id)
                        }
                        None => Vec::new(),
                    },
                    Target::User(nick) => self.id_of(nick).ok().into_iter().collect(),
                };
                self.deliver(to, &event);
            }
            EventKind::ReadMarker { target, at, .. } => {
                let Some(account) = who.account.as_deref() else { return };
                if let Some(markers) = self.read_markers.get_mut(fold(account).as_str()) {
                    markers.insert(fold(target), *at);
                }
                let devices: Vec<ConnId> = self
                    .users
                    .iter()
                    .filter(|&(&other, user)| other != who.id && user.source.account.as_deref() == Some(account))
                    .map(|(&other, _)| other)
                    .collect();
                self.deliver(devices, &event);
            }
            EventKind::Presence { .. } => {}
        }
    }

    /// Applies a node's snapshot: its users are those in it. Users of that node this hub knew
    /// and the snapshot has not are seen quitting; new ones and their rooms are taken in.
    pub fn apply_snapshot(&mut self, node: NodeId, snapshot: Snapshot) {
        if self.cluster.as_ref().is_none_or(|c| c.node == node) {
            return;
        }
        let present: std::collections::HashSet<ConnId> = snapshot.users.iter().map(|u| u.source.id).collect();
        let gone: Vec<ConnId> =
            self.users.keys().copied().filter(|&id| node_of(id) == node && !present.contains(&id)).collect();
        for id in gone {
            self.lose(id, "lost in a split between nodes");
        }
        for settings in &snapshot.rooms {
            // Settings this node has of its own win: the snapshot may be older than they are.
            if !self.rooms.contains_key(&fold(&settings.name)) {
                self.apply_settings(settings);
            }
        }
        for user in snapshot.users {
            self.apply_user(user, true);
        }
    }

    /// A node went silent: its users are seen quitting. Returns their nicks.
    pub fn drop_node(&mut self, node: NodeId, reason: &str) -> Vec<String> {
        let gone: Vec<ConnId> =
            self.users.keys().copied().filter(|&id| node_of(id) == node && self.is_remote(id)).collect();
        let nicks = gone.iter().map(|&id| self.nick(id).to_string()).collect();
        for id in gone {
            self.lose(id, reason);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.applied.remove(&node);
        }
        nicks
    }

    /// A remote user seen quitting because its node is gone.
    fn lose(&mut self, id: ConnId, reason: &str) {
        let who = self.user(id).source.clone();
        let event = self.event(EventKind::Quit { who, reason: reason.into() });
        self.depart(id, &event);
    }
}

fn send(cluster: &Cluster, note: Note) {
    if cluster.sink.try_send(note).is_err() {
        crate::metrics::get().bus_dropped.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{History, HubConfig, MsgKind, Out, Registration};
    use tokio::sync::mpsc;

    fn node(n: NodeId) -> (Hub, mpsc::Receiver<Note>) {
        let mut hub = Hub::new(HubConfig::default(), History::default());
        let (sink, notes) = mpsc::channel(64);
        hub.join_cluster(n, sink);
        (hub, notes)
    }

    fn user(hub: &mut Hub, nick: &str) -> (ConnId, Outbox) {
        let outbox = Outbox::new(64);
        let registration = Registration {
            nick: Some(nick.into()),
            user: "u".into(),
            host: "127.0.0.1".into(),
            realname: nick.into(),
            protocol: crate::hub::Protocol::Irc,
            secure: false,
            certfp: None,
            outbox: outbox.clone(),
        };
        (hub.register(registration).unwrap().0, outbox)
    }

    fn pass(notes: &mut mpsc::Receiver<Note>, to: &mut Hub) -> Vec<Note> {
        let mut passed = Vec::new();
        while let Ok(note) = notes.try_recv() {
            to.apply(note.clone());
            passed.push(note);
        }
        passed
    }

    fn messages(outbox: &Outbox) -> Vec<(MsgId, String)> {
        let mut batch = std::collections::VecDeque::new();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        outbox.release();
        let _ = std::pin::pin!(outbox.next_batch(&mut batch)).poll(&mut cx);
        batch
            .iter()
            .flat_map(Out::events)
            .filter_map(|e| match &e.kind {
                EventKind::Message { text, .. } => Some((e.id, text.clone())),
                _ => None,
            })
            .collect()
    }

    use std::future::Future;

    #[test]
    fn a_message_reaches_the_other_node_once_and_ids_stay_ordered() {
        let ((mut a, mut from_a), (mut b, mut from_b)) = (node(1), node(2));
        let (alice, _) = user(&mut a, "alice");
        let (bob, bob_box) = user(&mut b, "bob");
        assert_eq!((node_of(alice), node_of(bob)), (1, 2));
        a.join(alice, "#r", None).unwrap();
        b.join(bob, "#r", None).unwrap();
        pass(&mut from_a, &mut b);
        pass(&mut from_b, &mut a);
        // Both see both: bob is a remote member of #r on A, with no queue there.
        assert!(a.is_remote(bob) && b.is_remote(alice));
        assert_eq!(a.room_info(alice, "#r").unwrap().members.len(), 2);
        let said = a.say(alice, "#r", MsgKind::Privmsg, "hi", Vec::new()).unwrap();
        let id = said.events[0].id;
        assert_eq!(id.node(), 1);
        let notes = pass(&mut from_a, &mut b);
        assert_eq!(messages(&bob_box), vec![(id, "hi".to_string())]);
        // The same note again (a duplicate on the bus) is not delivered twice.
        for note in notes {
            b.apply(note);
        }
        assert!(messages(&bob_box).is_empty());
        // B's next id is above what it delivered.
        let reply = b.say(bob, "#r", MsgKind::Privmsg, "hello", Vec::new()).unwrap();
        assert!(reply.events[0].id > id && reply.events[0].id.node() == 2);
        // A nick held on A is taken on B, and a silent node's users go.
        assert_eq!(b.check_nick("alice"), Err(crate::hub::HubError::NickInUse("alice".into())));
        assert_eq!(b.drop_node(1, "node 1 stopped answering"), vec!["alice".to_string()]);
        assert!(b.check_nick("alice").is_ok());
    }

    #[test]
    fn a_big_snapshot_goes_in_parts_and_comes_back_whole() {
        let (mut a, _notes) = node(1);
        for n in 0..1234 {
            user(&mut a, &format!("u{n}"));
        }
        let parts = a.snapshot().parts();
        assert_eq!(parts.len(), 3);
        let mut gathered = Snapshot::default();
        let done: Vec<bool> = parts.into_iter().map(|part| gathered.gather(part)).collect();
        assert_eq!(done, [false, false, true]);
        assert_eq!(gathered.users.len(), 1234);
    }

    #[test]
    fn a_snapshot_mends_what_was_lost_while_the_bus_was_down() {
        let ((mut a, mut from_a), (mut b, mut from_b)) = (node(1), node(2));
        let (alice, alice_box) = user(&mut a, "alice");
        let (bob, _) = user(&mut b, "bob");
        a.join(alice, "#r", None).unwrap();
        b.join(bob, "#r", None).unwrap();
        b.join(bob, "#s", None).unwrap();
        pass(&mut from_a, &mut b);
        pass(&mut from_b, &mut a);
        let _ = messages(&alice_box);
        // Bob leaves #r while the bus is down: A never hears of it…
        b.part(bob, "#r", "").unwrap();
        while from_b.try_recv().is_ok() {}
        assert!(a.room_info(alice, "#r").unwrap().members.iter().any(|m| m.info.nick == "bob"));
        // …until B's snapshot comes.
        a.apply_snapshot(2, b.snapshot());
        assert!(!a.room_info(alice, "#r").unwrap().members.iter().any(|m| m.info.nick == "bob"));
        assert_eq!(a.room_info(alice, "#s").unwrap().members.len(), 1);
    }

    #[test]
    fn a_nick_given_on_two_cut_off_nodes_stays_with_who_took_it_first() {
        let ((mut a, mut from_a), (mut b, mut from_b)) = (node(1), node(2));
        let (first, _) = user(&mut a, "sam");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (second, second_box) = user(&mut b, "sam");
        pass(&mut from_a, &mut b);
        // B renamed its own sam, who is told, and knows A's.
        assert!(b.nick(second).starts_with("guest-"));
        assert!(drain_nicks(&second_box).iter().any(|n| n.starts_with("guest-")));
        assert_eq!(b.online("sam"), Some("sam"));
        assert!(b.is_remote(b.nicks["sam"]) && b.nicks["sam"] == first);
        // A ignored B's sam at first, and learns the renamed one.
        pass(&mut from_b, &mut a);
        assert_eq!(a.nick(first), "sam");
        assert!(a.has_user(second) && a.nick(second).starts_with("guest-"));
    }

    #[test]
    fn lusers_counts_the_other_nodes_users_as_their_modes_change() {
        let ((mut a, mut from_a), (mut b, _)) = (node(1), node(2));
        let (alice, _) = user(&mut a, "alice");
        assert!(a.set_invisible(alice, true));
        pass(&mut from_a, &mut b);
        assert_eq!(b.invisible_count(), 1, "a remote user comes in counted");
        assert!(a.set_invisible(alice, false));
        pass(&mut from_a, &mut b);
        assert_eq!(b.invisible_count(), 0, "and its change is counted");
        assert!(a.set_invisible(alice, true));
        pass(&mut from_a, &mut b);
        assert_eq!(b.drop_node(1, "node 1 stopped answering"), vec!["alice".to_string()]);
        assert_eq!((b.invisible_count(), b.oper_count()), (0, 0), "its node's end takes it out");
    }

    fn drain_nicks(outbox: &Outbox) -> Vec<String> {
        let mut batch = std::collections::VecDeque::new();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        outbox.release();
        let _ = std::pin::pin!(outbox.next_batch(&mut batch)).poll(&mut cx);
        batch
            .iter()
            .flat_map(Out::events)
            .filter_map(|e| match &e.kind {
                EventKind::Nick { new, .. } => Some(new.clone()),
                _ => None,
            })
            .collect()
    }
}
