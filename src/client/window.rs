//! One window of the terminal client: the server window, a room, a private conversation or the
//! room list.
//!
//! A window holds its [`Entry`]s in order, the msgids it has seen (so a message that arrives
//! live and again in a history batch is shown once), its unread count, for rooms the topic
//! and the [`Members`], and for the room list the [`RoomList`] that `/list` fetched.
//!
//! # Order
//!
//! Each entry has a sort key. A live entry is appended with the key `max(its time, the last
//! key)`, so arrival order is kept even when the local clock and the server's disagree; an
//! entry from history gets its server time as key and is inserted where that puts it. Keys
//! never decrease along the window, so a catch-up batch that arrives after the first live
//! lines of a reconnect still lands before them, and an older page lands on top.

use std::collections::{BTreeMap, HashSet};

use crate::chat::text::{cmp_folded, fold};

/// Most entries a window keeps; older ones are dropped (and can be fetched again from history).
pub const MAX_ENTRIES: usize = 10_000;

/// What a window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Server notices, the MOTD, replies that belong to no room.
    Server,
    Room,
    /// A private conversation with one nick.
    Query,
    /// The rooms on the server (`/list`), to pick one and join it.
    Rooms,
}

/// The name of the room list's window: with a space, so no room or nick can have it.
pub const ROOM_LIST: &str = "room list";

/// One room of a `LIST` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub users: usize,
    /// Already sanitised, without the `[+modes]` some servers put in front.
    pub topic: String,
}

/// The rooms the server listed, busiest first, and the one chosen with ↑ and ↓.
#[derive(Debug, Clone, Default)]
pub struct RoomList {
    pub rooms: Vec<Listed>,
    /// A `LIST` reply is arriving (between its start and its end).
    pub loading: bool,
    /// Index of the chosen room among those matching the filter.
    pub selected: usize,
}

impl RoomList {
    /// The rooms whose name or topic contains `filter`, case-insensitively.
    pub fn matching(&self, filter: &str) -> Vec<&Listed> {
        let filter = filter.trim().to_lowercase();
        self.rooms
            .iter()
            .filter(|r| {
                filter.is_empty() || r.name.to_lowercase().contains(&filter) || r.topic.to_lowercase().contains(&filter)
            })
            .collect()
    }

    /// The chosen room among those matching `filter`.
    pub fn chosen(&self, filter: &str) -> Option<&Listed> {
        let rooms = self.matching(filter);
        rooms.get(self.selected.min(rooms.len().saturating_sub(1))).copied()
    }

    /// Orders the rooms busiest first, then by name.
    pub fn sort(&mut self) {
        self.rooms.sort_by(|a, b| b.users.cmp(&a.users).then_with(|| cmp_folded(&a.name, &b.name)));
    }
}

/// What kind of line an entry is; decides how it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// `<nick> text`
    Message { nick: String },
    /// `* nick text` (CTCP ACTION, `/me`)
    Action { nick: String },
    /// `-nick- text`
    Notice { nick: String },
    /// Joins, parts, nick changes, topics: drawn dim.
    Event,
    /// Server replies and client information.
    Info,
    /// Something went wrong: drawn in red.
    Error,
}

/// One line in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch: the `time` tag when there was one, else local time.
    pub time: u64,
    /// Where the entry sorts in its window (see the module docs); set when it is added.
    pub key: u64,
    /// Whether `time` came from the server (`server-time`), so it can anchor a history request.
    pub server_time: bool,
    pub msgid: Option<String>,
    pub kind: EntryKind,
    /// Already sanitised: no control characters except IRC formatting codes.
    pub text: String,
    /// Mentions our nick.
    pub highlight: bool,
}

impl Entry {
    /// A line made by the client itself (information, errors) at local time `now`.
    pub fn local(kind: EntryKind, text: impl Into<String>, now: u64) -> Entry {
        Entry { time: now, key: now, server_time: false, msgid: None, kind, text: text.into(), highlight: false }
    }

    /// Whether this is something someone said (counts as unread), not an event or info.
    pub fn is_message(&self) -> bool {
        matches!(self.kind, EntryKind::Message { .. } | EntryKind::Action { .. } | EntryKind::Notice { .. })
    }
}

/// One member of a room, with its status prefixes in rank order (`@+` for an op with voice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nick: String,
    pub prefixes: String,
}

/// The members of a room, keyed by folded nick.
#[derive(Debug, Clone, Default)]
pub struct Members(BTreeMap<String, Member>);

impl Members {
    pub fn insert(&mut self, nick: &str, prefixes: &str) {
        self.0.insert(fold(nick), Member { nick: nick.to_string(), prefixes: prefixes.to_string() });
    }

    pub fn remove(&mut self, nick: &str) -> bool {
        self.0.remove(&fold(nick)).is_some()
    }

    pub fn get_mut(&mut self, nick: &str) -> Option<&mut Member> {
        self.0.get_mut(&fold(nick))
    }

    /// Renames a member, keeping its prefixes; false if `old` is not a member.
    pub fn rename(&mut self, old: &str, new: &str) -> bool {
        match self.0.remove(&fold(old)) {
            Some(member) => {
                self.insert(new, &member.prefixes);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Members for display: highest status first (by position of the first prefix in
    /// `prefix_order`), then by nick, case-insensitively.
    pub fn sorted(&self, prefix_order: &str) -> Vec<&Member> {
        let rank = |m: &Member| m.prefixes.chars().next().and_then(|c| prefix_order.find(c)).unwrap_or(usize::MAX);
        let mut members: Vec<&Member> = self.0.values().collect();
        members.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| cmp_folded(&a.nick, &b.nick)));
        members
    }

    /// Nicks, in key order.
    pub fn nicks(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(|m| m.nick.as_str())
    }
}

/// Where older history stands for a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryState {
    /// A request for this window is in flight.
    pub pending: bool,
    /// The server said there is nothing older.
    pub exhausted: bool,
}

/// One window.
#[derive(Debug, Clone)]
pub struct Window {
    /// The room name, the other nick, or the server's name.
    pub name: String,
    pub kind: WindowKind,
    pub entries: Vec<Entry>,
    msgids: HashSet<String>,
    /// Messages arrived since the window was last shown.
    pub unread: usize,
    /// One of the unread messages mentions our nick.
    pub highlight: bool,
    pub topic: Option<String>,
    pub members: Members,
    /// Names from 353 replies, collected until the 366 that ends them.
    pub names_pending: Option<Members>,
    /// We are in the room right now.
    pub joined: bool,
    /// Join this room whenever the connection is (re)registered.
    pub rejoin: bool,
    /// Rows scrolled up from the bottom of the message pane (0: following new lines).
    pub scroll: usize,
    pub history: HistoryState,
    /// The rooms `/list` fetched (the room list's window only).
    pub list: RoomList,
}

impl Window {
    pub fn new(name: &str, kind: WindowKind) -> Window {
        Window {
            name: name.to_string(),
            kind,
            entries: Vec::new(),
            msgids: HashSet::new(),
            unread: 0,
            highlight: false,
            topic: None,
            members: Members::default(),
            names_pending: None,
            joined: false,
            rejoin: false,
            scroll: 0,
            history: HistoryState::default(),
            list: RoomList::default(),
        }
    }

    /// Whether `name` names this window (case-insensitively).
    pub fn is(&self, name: &str) -> bool {
        fold(&self.name) == fold(name)
    }

    /// Appends a live entry; returns its index, or `None` if its msgid was seen already.
    pub fn push(&mut self, mut entry: Entry) -> Option<usize> {
        if !self.remember(&entry) {
            return None;
        }
        entry.key = entry.time.max(self.entries.last().map_or(0, |last| last.key));
        self.entries.push(entry);
        Some(self.trim(self.entries.len() - 1))
    }

    /// Inserts an entry from history where its time puts it; returns its index, or `None` if
    /// its msgid was seen already. Times are in milliseconds and a burst shares them, so ties
    /// are common: an entry goes after the entries of the same time, or with `older` (a page
    /// older than the window: `LATEST`, `BEFORE`, whose entries are inserted newest first)
    /// before them, where it belongs.
    pub fn insert_by_time(&mut self, mut entry: Entry, older: bool) -> Option<usize> {
        if !self.remember(&entry) {
            return None;
        }
        entry.key = entry.time;
        let at = if older {
            self.entries.partition_point(|e| e.key < entry.key)
        } else {
            self.entries.partition_point(|e| e.key <= entry.key)
        };
        self.entries.insert(at, entry);
        Some(self.trim(at))
    }

    fn remember(&mut self, entry: &Entry) -> bool {
        match &entry.msgid {
            Some(id) => self.msgids.insert(id.clone()),
            None => true,
        }
    }

    /// Drops the oldest entries beyond [`MAX_ENTRIES`]; maps `index` to its new position.
    fn trim(&mut self, index: usize) -> usize {
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        if excess == 0 {
            return index;
        }
        for old in self.entries.drain(..excess) {
            if let Some(id) = old.msgid {
                self.msgids.remove(&id);
            }
        }
        // What was dropped can be fetched again.
        self.history.exhausted = false;
        index.saturating_sub(excess)
    }

    /// The newest entry that can anchor `CHATHISTORY AFTER`: `msgid=…` or `timestamp=…`.
    pub fn newest_anchor(&self) -> Option<String> {
        anchor(self.entries.iter().rev())
    }

    /// The oldest entry that can anchor `CHATHISTORY BEFORE`.
    pub fn oldest_anchor(&self) -> Option<String> {
        anchor(self.entries.iter())
    }
}

/// The first entry with a msgid (`msgid=…`) or, failing that, with a server time (`timestamp=…`).
fn anchor<'a>(mut entries: impl Iterator<Item = &'a Entry> + Clone) -> Option<String> {
    if let Some(id) = entries.clone().find_map(|e| e.msgid.as_deref()) {
        return Some(format!("msgid={id}"));
    }
    entries.find(|e| e.server_time).map(|e| format!("timestamp={}", crate::proto::irc::render::iso_time(e.time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(time: u64, id: Option<&str>, text: &str) -> Entry {
        Entry {
            time,
            key: time,
            server_time: true,
            msgid: id.map(str::to_string),
            kind: EntryKind::Message { nick: "a".into() },
            text: text.into(),
            highlight: false,
        }
    }

    #[test]
    fn msgids_are_shown_once() {
        let mut w = Window::new("#r", WindowKind::Room);
        assert_eq!(w.push(said(1, Some("x"), "one")), Some(0));
        assert_eq!(w.push(said(1, Some("x"), "one")), None);
        assert_eq!(w.insert_by_time(said(1, Some("x"), "one"), false), None);
        assert_eq!(w.push(said(2, None, "no id")), Some(1));
        assert_eq!(w.push(said(2, None, "no id")), Some(2));
    }

    #[test]
    fn history_is_inserted_by_time() {
        let mut w = Window::new("#r", WindowKind::Room);
        w.push(said(10, Some("a"), "ten"));
        w.push(said(40, Some("d"), "forty"));
        w.insert_by_time(said(20, Some("b"), "twenty"), false);
        w.insert_by_time(said(5, Some("z"), "five"), false);
        w.insert_by_time(said(40, Some("e"), "forty too"), false);
        let texts: Vec<&str> = w.entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["five", "ten", "twenty", "forty", "forty too"]);
        assert_eq!(w.oldest_anchor().as_deref(), Some("msgid=z"));
        assert_eq!(w.newest_anchor().as_deref(), Some("msgid=e"));
        // A live line keeps arrival order even when its clock is behind.
        w.push(said(30, Some("f"), "late clock"));
        assert_eq!(w.entries.last().map(|e| (e.time, e.key)), Some((30, 40)));
        w.insert_by_time(said(35, Some("g"), "thirty-five"), false);
        assert_eq!(w.entries[3].text, "thirty-five");
    }

    #[test]
    fn an_older_page_goes_before_lines_of_the_same_millisecond() {
        let mut w = Window::new("#r", WindowKind::Room);
        w.push(said(7, Some("c"), "third"));
        w.push(said(7, Some("d"), "fourth"));
        // BEFORE msgid=c, inserted newest first.
        w.insert_by_time(said(7, Some("b"), "second"), true);
        w.insert_by_time(said(7, Some("a"), "first"), true);
        w.insert_by_time(said(6, Some("z"), "zeroth"), true);
        let texts: Vec<&str> = w.entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["zeroth", "first", "second", "third", "fourth"]);
        assert_eq!(w.oldest_anchor().as_deref(), Some("msgid=z"));
    }

    #[test]
    fn anchors_fall_back_to_timestamps() {
        let mut w = Window::new("#r", WindowKind::Room);
        assert_eq!(w.newest_anchor(), None);
        w.push(Entry::local(EntryKind::Info, "local only", 5));
        assert_eq!(w.newest_anchor(), None);
        w.push(said(1_764_000_000_123, None, "timed"));
        assert_eq!(w.newest_anchor().as_deref(), Some("timestamp=2025-11-24T16:00:00.123Z"));
    }

    #[test]
    fn old_entries_are_dropped_beyond_the_cap() {
        let mut w = Window::new("#r", WindowKind::Room);
        w.history.exhausted = true;
        for i in 0..MAX_ENTRIES as u64 + 2 {
            w.push(said(i, Some(&i.to_string()), "x"));
        }
        assert_eq!(w.entries.len(), MAX_ENTRIES);
        // Dropped ids are forgotten (a later copy shows again); kept ones are still known.
        assert_eq!(w.push(said(2, Some("2"), "x")), None);
        assert!(w.push(said(0, Some("0"), "x")).is_some());
        assert!(!w.history.exhausted);
    }

    #[test]
    fn members_sort_by_rank_then_nick() {
        let mut m = Members::default();
        m.insert("zed", "");
        m.insert("Bob", "+");
        m.insert("alice", "@+");
        m.insert("carol", "");
        assert!(m.rename("carol", "Carla"));
        let order: Vec<&str> = m.sorted("@+").iter().map(|m| m.nick.as_str()).collect();
        assert_eq!(order, ["alice", "Bob", "Carla", "zed"]);
        assert!(m.remove("BOB") && !m.remove("bob"));
    }
}
