//! The hub: users, nicks, rooms, membership and every chat rule — pure state, no sockets.
//!
//! Protocol sessions call the hub's verbs (`register`, `join`, `say`, `kick`, …). The hub checks
//! the rules (nick taken? banned? `+m`? operator?), changes its state, and delivers the resulting
//! [`Event`] to each recipient's bounded [`Outbox`] without waiting (a room's messages through a
//! segment its members' queues share; another member's join, part or quit without waking the
//! member's connection, to go out with its next write: see [`outbox`]). Because every rule
//! lives here, a plain-text user and an IRC user in the same room are treated identically.
//!
//! A verb delivers its event to everyone concerned except the user who acted, and returns it:
//! the acting session shows it to its own user in the right place among its replies (an IRC
//! echo inside a labeled batch; plain text says "You …"). Joins are the exception: the joiner
//! is sent its own JOIN with everyone else's, so that it precedes the room's next messages.
//!
//! The hub is used behind a `std::sync::Mutex` ([`SharedHub`]); every verb is quick and never
//! awaits, so the lock is never held across an `.await`.
//!
//! Besides this file: [`accounts`] (who is logged in, the nicks accounts own), [`bans`] (server
//! bans), [`cluster`] (the users of other nodes, what is shared with them and applied from them), `monitor` (who watches which nick), [`users`] (real names, the bot and
//! wallops modes, WALLOPS), `redact` (who may take a message back), `history` (what is
//! stored, and how an event becomes records and a record an event again), [`modes`]. Names and
//! text ([`text`]), ids, topics and bans are the [`crate::chat`] vocabulary, shared with the
//! store.

pub mod accounts;
pub mod bans;
pub mod cluster;
pub mod event;
mod history;
pub mod limits;
pub mod list;
pub mod modes;
mod monitor;
mod oper;
pub mod outbox;
mod redact;
pub mod users;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use compact_str::CompactString;
use smallvec::SmallVec;

pub use crate::chat::text;
pub use crate::chat::{Ban, Topic};
use crate::chat::{MsgIdGen, now_millis};
pub use event::{Event, EventKind, MsgId, MsgKind, Source, Tags, Target};
pub use history::{History, HistoryNotice};
use limits::{HubLimits, RoomCreation};
pub use list::ListFilter;
use modes::{ModeChange, RoomMode, RoomModes, flip};
pub use monitor::{MONITOR_LIMIT, Monitored};
pub use outbox::{Closed, Deferred, Out, Outbox};
use outbox::{Log, Segment};
use text::fold;

/// Identifies one connected user for the life of its connection.
pub type ConnId = u64;

/// Maps keyed by [`ConnId`]. The hub hands the ids out itself, one after the other, so they need
/// no protection against crafted keys: a multiply spreads them well and costs far less than the
/// default SipHash, which every delivery to every member would otherwise pay.
type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<ConnId, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The room every plain-text user lands in.
pub const LOBBY: &str = "#lobby";

/// The longest ban list a room may have (`MAXLIST=b:100`).
pub const MAX_BANS: usize = 100;

/// The most ban masks all rooms together may have: with [`text::MASK_LEN`], at most a few MB.
pub const MAX_SERVER_BANS: usize = 10_000;

/// How many departed users `WHOWAS` remembers.
const WHOWAS_LEN: usize = 256;

/// A refused request, with a message a person can act on. Protocols map each variant to their
/// own form (IRC numerics, plain-text error lines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("nick '{0}' is taken, try /nick {0}_")]
    NickInUse(String),
    #[error("'{0}' is not a valid nick: use up to 30 letters, digits, - _ [ ] {{ }} \\ | ^ `, starting with a letter")]
    BadNick(String),
    #[error(
        "'{0}' is not a valid room name: start it with #, use up to 50 bytes, no spaces, commas or invisible characters, and the letters of one alphabet, e.g. #general"
    )]
    BadRoom(String),
    #[error("'{0}' looks too much like the room {1}; /join {1}, or choose a name that reads differently")]
    LookalikeRoom(String, String),
    #[error("no one called '{0}' is online; /who lists who is here")]
    NoSuchNick(String),
    #[error("there is no room '{0}'; /rooms lists them, /join {0} creates it")]
    NoSuchRoom(String),
    #[error("you are not in {0}; /join {0} first")]
    NotInRoom(String),
    #[error("{nick} is not in {room}")]
    UserNotInRoom { nick: String, room: String },
    #[error("{nick} is already in {room}")]
    UserInRoom { nick: String, room: String },
    #[error("you need to be an operator of {0} to do that")]
    NeedOps(String),
    #[error("you cannot speak in {0}: it is moderated (+m) and you have no voice")]
    Moderated(String),
    #[error("you cannot send to {0} from outside: /join it first")]
    External(String),
    #[error("you are banned from {0}")]
    Banned(String),
    #[error("{0} is invite-only (+i): ask an operator there to /invite you")]
    InviteOnly(String),
    #[error("{0} needs a key (+k): /join {0} KEY")]
    BadKey(String),
    #[error("{0} is full (+l)")]
    RoomFull(String),
    #[error(
        "{0} is for registered users only (+R): log in first (/login NAME PASSWORD, or /register PASSWORD to make an account)"
    )]
    NeedAccount(String),
    #[error("nothing to send: type some text after the command")]
    NoText,
    #[error("that needs server operator rights (/oper NAME PASSWORD)")]
    NotOper,
    #[error("wrong operator name or password")]
    BadOperLogin,
    #[error("too many failed operator logins from your address or for that name; wait {0} s before trying again")]
    OperThrottled(u64),
    #[error("the {0} mode is not known here; modes are +o +v +b +i +k +l +m +n +s +t +R")]
    UnknownMode(char),
    #[error("the {0} mode needs an argument, e.g. +{0} VALUE")]
    ModeNeedsArg(char),
    #[error("'{0}' is not a valid limit: give a number above 0")]
    BadLimit(String),
    #[error(
        "that cannot be a +{0} value: use no spaces, commas, control or invisible characters, and at most 23 bytes for a key, 113 for a ban mask"
    )]
    BadModeArg(char, String),
    #[error("you are in {1} rooms, the most one may be in at once; /part one before joining {0}")]
    TooManyRooms(String, usize),
    #[error("you are creating rooms too fast; wait {1} s before creating {0}, or join an existing room")]
    CreatingTooFast(String, u64),
    #[error("the ban list of {0} is full ({MAX_BANS} entries); remove one with /unban first")]
    BanListFull(String),
    #[error("the server holds as many bans as it may ({MAX_SERVER_BANS}); remove some with /unban first")]
    ServerBansFull,
    #[error("a real name must be some text of at most {} bytes", text::REALNAME_LEN)]
    BadRealname,
    #[error("you may remove your own messages, and anyone's only in a room you are an operator of")]
    NotYourMessage,
    #[error("the message was not sent: {0}")]
    History(String),
    #[error("the server is shutting down; try again in a moment")]
    ShuttingDown,
    #[error("you are banned from this server: {0}")]
    ServerBanned(String),
    /// A server ban's mask matches the user under that nick (`KLINE badguy!*@*`).
    #[error("the nick '{0}' is banned from this server ({1}); pick another with /nick")]
    NickBanned(String, String),
}

/// A member's status in one room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub op: bool,
    pub voice: bool,
    /// Joined a big room quietly and not yet shown to its other members (a delayed join, see
    /// [`HubConfig::quiet_joins_above`]): the other members were not told of the join and are
    /// not told of a part or quit; they are sent the JOIN just before the member's first
    /// message, topic, kick or mode change there, or when an operator gives them `+o`/`+v`.
    pub hidden: bool,
}

impl Status {
    /// IRC prefixes, highest first: `@` operator, `+` voice.
    pub fn prefixes(self, all: bool) -> &'static str {
        match (self.op, self.voice, all) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

#[derive(Debug)]
struct User {
    source: Source,
    realname: Arc<str>,
    /// Folded names of the rooms this user is in, in join order. The first inline, and kept
    /// short names too: most users are in one room (every plain-text user in `#lobby`), and
    /// idle connections are counted in bytes.
    rooms: SmallVec<[CompactString; 1]>,
    oper: bool,
    /// User mode `+i`: hidden from WHO and NAMES of those who share no room with the user.
    invisible: bool,
    /// User mode `+w`: receives WALLOPS.
    wallops: bool,
    /// Tell this user of the away and real-name changes of the nicks it monitors, even when it
    /// shares no room with them (IRC `extended-monitor`).
    monitor_updates: bool,
    signon: u64,
    /// When the user took its current nick (private history is shown from then on).
    nick_since: MsgId,
    last_spoke: u64,
    /// Told that history is paused, and not yet that it is written again.
    told_paused: bool,
    protocol: Protocol,
    secure: bool,
    /// What few users have, out of line: most connections pay 8 bytes for it.
    rare: Option<Box<Rare>>,
    outbox: Outbox,
    /// A user of another node of the cluster: its queue is there, delivering here is a no-op.
    remote: bool,
}

/// The parts of a [`User`] that most users never have.
#[derive(Debug, Default)]
struct Rare {
    away: Option<Box<str>>,
    /// The nicks this user monitors (IRC `MONITOR`), as they were given.
    monitoring: Vec<String>,
    /// The SHA-256 fingerprint of the client certificate it connected with.
    certfp: Option<Box<str>>,
    /// The rooms (folded) it was invited into since it connected (see [`Hub::invite_into`]).
    invited_to: Vec<String>,
}

impl User {
    fn away(&self) -> Option<&str> {
        self.rare.as_ref()?.away.as_deref()
    }

    fn monitoring(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |rare| &rare.monitoring)
    }

    fn certfp(&self) -> Option<&str> {
        self.rare.as_ref()?.certfp.as_deref()
    }

    /// Changes the rare parts. They are boxed only while one of them is set: a change that
    /// leaves them empty (clearing an away message nobody set, say) allocates nothing.
    fn change_rare<T>(&mut self, change: impl FnOnce(&mut Rare) -> T) -> T {
        match &mut self.rare {
            Some(rare) => {
                let changed = change(rare);
                if rare.is_empty() {
                    self.rare = None;
                }
                changed
            }
            None => {
                let mut rare = Rare::default();
                let changed = change(&mut rare);
                if !rare.is_empty() {
                    self.rare = Some(Box::new(rare));
                }
                changed
            }
        }
    }
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.away.is_none() && self.monitoring.is_empty() && self.certfp.is_none() && self.invited_to.is_empty()
    }
}

#[derive(Debug)]
struct Room {
    name: String,
    topic: Option<Topic>,
    created: u64,
    /// Change through [`Room::set_member`] and [`Room::remove_member`], which keep `shown`.
    members: IdMap<Status>,
    /// The members shown to the others: all but quiet joiners not yet shown. NAMES lists
    /// these, and in a big room of quiet joiners they are few.
    shown: IdSet,
    modes: RoomModes,
    bans: Vec<Ban>,
    /// Whether each member who has spoken since the ban list or their nick last changed is
    /// banned: a message then costs one lookup, not a match against every mask.
    banned_members: IdMap<bool>,
    invited: IdSet,
    /// Messages were said here: the room is kept when empty, for its history.
    has_history: bool,
    /// Its settings are in the store (to be forgotten there too when the room goes).
    saved: bool,
    /// Who created it and from where, paid for by [`RoomCreation`] and given back if the room
    /// is forgotten (`None` for rooms restored at start and the lobby). Boxed: most rooms of a
    /// busy server are old.
    creator: Option<Box<(ConnId, String)>>,
    /// Where its messages go in the segment its members' queues share.
    log: Log,
}

impl Room {
    fn new(name: &str, created: u64) -> Room {
        Room {
            name: name.into(),
            topic: None,
            created,
            members: IdMap::default(),
            shown: IdSet::default(),
            modes: RoomModes::default(),
            bans: Vec::new(),
            banned_members: IdMap::default(),
            invited: IdSet::default(),
            has_history: false,
            saved: false,
            creator: None,
            log: Log::default(),
        }
    }

    fn status(&self, id: ConnId) -> Option<Status> {
        self.members.get(&id).copied()
    }

    /// Puts `id` in the room with `status`, or gives it `status`; returns the status it had.
    fn set_member(&mut self, id: ConnId, status: Status) -> Option<Status> {
        match status.hidden {
            true => self.shown.remove(&id),
            false => self.shown.insert(id),
        };
        self.members.insert(id, status)
    }

    fn remove_member(&mut self, id: ConnId) {
        self.members.remove(&id);
        self.shown.remove(&id);
    }

    /// The members listed to `asker` (NAMES, WHO), with their status: those shown, and
    /// `asker` itself if it joined quietly. A big room's quiet joiners are not looked at.
    fn listed(&self, asker: ConnId) -> impl Iterator<Item = (ConnId, Status)> + '_ {
        let quiet_asker = self.status(asker).filter(|s| s.hidden).map(|s| (asker, s));
        self.shown.iter().map(|&id| (id, self.members[&id])).chain(quiet_asker)
    }

    /// May `asker` know this room exists? A secret (`+s`) room shows itself to members only.
    fn visible_to(&self, asker: ConnId) -> bool {
        !self.modes.secret || self.members.contains_key(&asker)
    }

    /// Is an empty room worth keeping? [`LOBBY`], where everyone lands, always; any other for
    /// its history or settings someone chose (a topic, modes other than the defaults, bans);
    /// any other empty room is forgotten, so that rooms made and left cost nothing.
    fn worth_keeping(&self) -> bool {
        self.has_history
            || self.topic.is_some()
            || self.modes != RoomModes::default()
            || !self.bans.is_empty()
            || self.name.eq_ignore_ascii_case(LOBBY)
    }

    fn is_op(&self, id: ConnId) -> bool {
        self.status(id).is_some_and(|s| s.op)
    }
    /// The members who see `id` come and go: every other member, unless `id` joined quietly
    /// and has not been shown yet (then none).
    fn witnesses(&self, id: ConnId) -> Vec<ConnId> {
        if self.status(id).is_some_and(|s| s.hidden) {
            return Vec::new();
        }
        self.others(id)
    }
    /// Every member but `id`, in one allocation of the right size: everything said in the room
    /// goes to this list, and collecting it from the filtered keys grew it five times over
    /// for a hundred members.
    fn others(&self, id: ConnId) -> Vec<ConnId> {
        let mut others = Vec::with_capacity(self.members.len());
        others.extend(self.members.keys().copied().filter(|&m| m != id));
        others
    }

    /// The room's modes as `asker` may see them: its key only if a member.
    fn modes_seen_by(&self, asker: ConnId) -> RoomModes {
        let mut modes = self.modes.clone();
        if !self.members.contains_key(&asker) {
            modes.key = modes.key.map(|_| "*".into());
        }
        modes
    }

    fn banned(&self, who: &Source) -> bool {
        if self.bans.is_empty() {
            return false;
        }
        let mask = format!("{}!{}@{}", who.nick, who.user, who.host);
        self.bans.iter().any(|b| text::wildcard_match(&b.mask, &mask))
    }

    /// [`Room::banned`] for a member, remembered until the ban list or their nick changes.
    fn member_banned(&mut self, who: &Source) -> bool {
        if self.bans.is_empty() {
            return false;
        }
        if let Some(&banned) = self.banned_members.get(&who.id) {
            return banned;
        }
        let banned = self.banned(who);
        self.banned_members.insert(who.id, banned);
        banned
    }
}

/// The protocol a user speaks, as WHOIS shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IRC, over TCP, TLS or the browser page's WebSocket.
    Irc,
    /// Plain text, as `nc` and `telnet` speak it.
    Plain,
    /// A user of another node of the cluster whose protocol this node does not know.
    Remote,
}

impl Protocol {
    /// Its name in WHOIS and on the cluster's bus.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Irc => "irc",
            Protocol::Plain => "plain",
            Protocol::Remote => "remote",
        }
    }

    /// The protocol [`Protocol::name`] names, as another node of the cluster tells it.
    pub fn named(name: &str) -> Protocol {
        match name {
            "irc" => Protocol::Irc,
            "plain" => Protocol::Plain,
            _ => Protocol::Remote,
        }
    }
}

/// What a new connection tells the hub about its user.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The wanted nick; `None` picks a free `guest-N`.
    pub nick: Option<String>,
    /// The user name (`~name` for IRC); shared, as all plain-text users have the same one.
    pub user: Arc<str>,
    pub host: String,
    /// The real name; shared like the user name.
    pub realname: Arc<str>,
    /// Which protocol the user speaks, as shown by WHOIS.
    pub protocol: Protocol,
    /// Whether the connection is encrypted (TLS): IRC user mode `+Z`, WHOIS 671.
    pub secure: bool,
    /// The SHA-256 fingerprint of the client certificate the user connected with, if any.
    pub certfp: Option<String>,
    pub outbox: Outbox,
}

/// What a joiner needs to show: the room as it is now (its join is already in its queue).
#[derive(Debug, Clone)]
pub struct Joined {
    pub room: String,
    pub topic: Option<Topic>,
}

/// A user as others may see them (WHO, WHOIS, NAMES).
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub id: ConnId,
    pub nick: CompactString,
    pub user: Arc<str>,
    pub host: Arc<str>,
    pub realname: Arc<str>,
    pub away: Option<String>,
    pub oper: bool,
    /// User mode `+i`.
    pub invisible: bool,
    /// User mode `+B`: the user says it is a bot.
    pub bot: bool,
    /// The account the user is logged in to.
    pub account: Option<String>,
    pub protocol: &'static str,
    /// Whether the user's connection is encrypted (TLS).
    pub secure: bool,
    /// The user's client certificate fingerprint: only for the user themself and operators.
    pub certfp: Option<String>,
    pub signon: u64,
    pub last_spoke: u64,
    /// Rooms with the user's status there; secret rooms only when the asker shares them. WHOIS
    /// has them all, WHO with a mask the first, a room's member list none.
    pub rooms: Vec<(String, Status)>,
}

/// A member of a room, for NAMES and WHO.
#[derive(Debug, Clone)]
pub struct Member {
    pub info: UserInfo,
    pub status: Status,
}

/// A room as listed by LIST and `/rooms`.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub name: String,
    pub members: usize,
    pub topic: Option<String>,
}

/// A room's full state, with each member's full information: WHO (NAMES and MODE take the
/// cheaper [`Hub::names`] and [`Hub::room_modes`]).
#[derive(Debug, Clone)]
pub struct RoomInfo {
    pub name: String,
    pub created: u64,
    pub topic: Option<Topic>,
    pub modes: RoomModes,
    pub members: Vec<Member>,
    /// Members left out of `members` because they joined quietly and have not spoken yet
    /// (delayed join, [`HubConfig::quiet_joins_above`]).
    pub unlisted: usize,
    pub secret: bool,
}

/// A room's NAMES ([`Hub::names`]).
#[derive(Debug, Clone)]
pub struct Names {
    /// The room's name as created.
    pub room: String,
    pub secret: bool,
    /// In no particular order.
    pub members: Vec<NamesEntry>,
}

/// A member in NAMES: its status, nick, and when asked for, its user and host.
#[derive(Debug, Clone)]
pub struct NamesEntry {
    pub status: Status,
    pub nick: CompactString,
    pub userhost: Option<(Arc<str>, Arc<str>)>,
}

/// A user who has left, for WHOWAS.
#[derive(Debug, Clone)]
pub struct Departed {
    pub nick: String,
    pub user: Arc<str>,
    pub host: Arc<str>,
    pub realname: Arc<str>,
    pub at: u64,
}

/// What [`Hub::say`] does with a text too long for one IRC line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Long {
    /// Several messages, cut between words.
    Split,
    /// One message, its end cut off.
    Cut,
    /// One message as it is: its lines reach IRC clients one by one (`draft/multiline`).
    Whole,
}

/// Result of a message: the event, and the target's away message when it was sent to an away user.
#[derive(Debug)]
pub struct Said {
    /// The message as said: one event, or several when the text was too long for one IRC
    /// line with its sender, command and target (512 bytes).
    pub events: Vec<Arc<Event>>,
    pub away: Option<String>,
    /// Whether history is written has changed since the sender was last told: tell them.
    pub history: Option<HistoryNotice>,
}

/// Result of a mode change: what was applied (and announced), and what was refused.
#[derive(Debug, Default)]
pub struct ModesApplied {
    pub applied: Vec<ModeChange>,
    pub errors: Vec<HubError>,
    /// The announcements of the applied changes (one, or several when their arguments are too
    /// long for one line).
    pub events: Vec<Arc<Event>>,
}

/// Settings the hub's rules depend on.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Server operators: name → password.
    pub opers: HashMap<String, String>,
    /// What one user or address may take: rooms at once, rooms created over time.
    pub limits: HubLimits,
    /// How long someone may keep a nick owned by an account without logging in to it.
    pub nick_grace: Duration,
    /// The server password (`serve --password`): a private server lets in only who gives it.
    pub password: Option<String>,
    /// Rooms with more members than this (`serve --quiet-joins-above`) take new members in
    /// quietly: their join, part and quit are not sent to the others until they first speak
    /// or act there (delayed join, as large IRC networks do), so that a crowd coming and going
    /// costs each member nothing. 0 turns it off.
    pub quiet_joins_above: usize,
}

/// [`HubConfig::quiet_joins_above`] when not configured. At 200 members one join already sends
/// 200 lines and a room that fills up to 200 has sent 20,000 join lines; a room that size is a
/// crowd in which few follow who comes and goes, and NAMES still lists everyone who spoke. Up
/// to it every join, part and quit is seen as before.
pub const DEFAULT_QUIET_JOINS_ABOVE: usize = 200;

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            opers: HashMap::new(),
            nick_grace: Duration::from_secs(30),
            password: None,
            limits: HubLimits::default(),
            quiet_joins_above: DEFAULT_QUIET_JOINS_ABOVE,
        }
    }
}

/// The hub, shared by every connection.
pub type SharedHub = Arc<Mutex<Hub>>;

/// Locks the shared hub. A poisoned lock means a panic left the chat state half-changed
/// (users in rooms they are not in, a nick held by no one): the process ends rather than serve
/// from it ([`crate::panics`]).
pub fn lock(hub: &SharedHub) -> MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|_| crate::panics::fatal("a panic left the chat state half-changed"))
}

/// All chat state.
#[derive(Debug, Default)]
pub struct Hub {
    config: HubConfig,
    /// Boxed: the table doubles as it grows, and empty slots then cost a pointer, not a `User`.
    users: IdMap<Box<User>>,
    /// Folded nick → user. The key inline (up to 24 bytes, which every usual nick fits): one
    /// allocation per user less, and idle connections are counted in bytes.
    nicks: HashMap<CompactString, ConnId>,
    rooms: HashMap<String, Room>,
    /// The [skeleton](text::skeleton) of every room's name → the room's key: no new room may
    /// look like one that exists.
    lookalikes: HashMap<String, String>,
    /// Ban masks in all rooms together (at most [`MAX_SERVER_BANS`]).
    bans_total: usize,
    whowas: VecDeque<Departed>,
    /// Folded nick → the users monitoring it.
    watchers: HashMap<Box<str>, IdSet>,
    ids: MsgIdGen,
    next_conn: ConnId,
    next_guest: u64,
    /// Set by [`Hub::shutdown`]: no one new gets in.
    closing: bool,
    /// Where messages and room events are stored.
    history: History,
    /// The id of the newest event handed to the store.
    last_recorded: MsgId,
    /// The id of the newest message (not a join, quit, …) handed to the store.
    last_said: MsgId,
    /// Most users ever connected at once, for LUSERS.
    pub max_users: usize,
    /// Server operators and invisible (`+i`) users among `users`, for LUSERS: kept in step as
    /// users come, go and change modes ([`Hub::mark_oper`], [`Hub::mark_invisible`]), so that
    /// the LUSERS of every registration does not visit every user under the hub's lock.
    opers: usize,
    invisible: usize,
    /// Pacing of room creation per user and per address.
    creation: RoomCreation,
    /// Failed operator logins per address and per name.
    oper_guard: oper::OperGuard,
    /// Folded names of the registered accounts: the nicks they own.
    registered: HashSet<Box<str>>,
    /// Users holding a nick an account owns without being logged in to it.
    claims: IdMap<accounts::Claim>,
    /// The read markers of the accounts logged in: folded account → folded target → time.
    read_markers: HashMap<Box<str>, HashMap<String, u64>>,
    /// The read markers of guests (users not logged in), for as long as their connection lasts.
    guest_read_markers: IdMap<HashMap<String, u64>>,
    /// Server bans (`KLINE`).
    server_bans: Vec<bans::ServerBan>,
    /// This node in a cluster (`serve --bus`); `None` alone.
    cluster: Option<Box<cluster::Cluster>>,
    /// The queues left waiting with comings and goings (see [`Hub::deliver`]).
    deferred: Arc<Deferred>,
}

impl Hub {
    pub fn new(config: HubConfig, history: History) -> Hub {
        let creation = RoomCreation::new(config.limits.room_creation);
        Hub { config, history, creation, ..Hub::default() }
    }

    /// The settings the hub was started with.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn event(&mut self, kind: EventKind) -> Arc<Event> {
        Event::new(self.ids.next_id(), kind)
    }

    /// The queues whose writers wait with someone's join, part or quit: the server runs its
    /// [`Deferred::run`] (see [`outbox`]).
    pub fn deferred(&self) -> Arc<Deferred> {
        self.deferred.clone()
    }

    /// Queues `event` for `to`. Another user's join, part or quit can wait a little: it goes
    /// out with the recipient's next write, or about [`outbox::DEFER`] later at the latest, so
    /// that comings and goings do not cost every member a write of their own.
    fn deliver(&self, to: impl IntoIterator<Item = ConnId>, event: &Arc<Event>) {
        let can_wait = matches!(event.kind, EventKind::Join { .. } | EventKind::Part { .. } | EventKind::Quit { .. });
        for outbox in self.local_outboxes(to) {
            match can_wait {
                true => outbox.push_deferred(Out::Event(event.clone()), &self.deferred),
                false => outbox.push(Out::Event(event.clone())),
            };
        }
    }

    /// [`Hub::deliver`] of the event in `slot` of `segment`, which the queues share.
    fn deliver_shared(&self, to: &[ConnId], segment: &Arc<Segment>, slot: usize) {
        for outbox in self.local_outboxes(to.iter().copied()) {
            outbox.push_shared(segment, slot);
        }
    }

    /// The queues of those of `to` who are connected to this node.
    fn local_outboxes(&self, to: impl IntoIterator<Item = ConnId>) -> impl Iterator<Item = &Outbox> {
        to.into_iter().filter_map(|id| self.users.get(&id)).filter(|user| !user.remote).map(|user| &user.outbox)
    }

    /// Everyone who shares at least one room with `id` in which `id` is shown (not a quiet
    /// join), without `id`, each once: who is told of its quit, nick change, away, ….
    fn peers(&self, id: ConnId) -> IdSet {
        let Some(user) = self.users.get(&id) else {
            return IdSet::default();
        };
        self.rooms_in(user)
            .filter(|r| r.status(id).is_some_and(|s| !s.hidden))
            .flat_map(|r| r.members.keys().copied())
            .filter(|&m| m != id)
            .collect()
    }

    /// Shows `id` to the other members of the room `key` (folded) if it joined quietly: they
    /// are sent its JOIN now, before whatever it does there next.
    fn reveal(&mut self, id: ConnId, key: &str) {
        let Some(room) = self.rooms.get_mut(key) else { return };
        let Some(status) = room.status(id).filter(|s| s.hidden) else { return };
        room.set_member(id, Status { hidden: false, ..status });
        let name = room.name.clone();
        let members: Vec<ConnId> = room.others(id);
        let user = self.user(id);
        let (who, realname, away) = (user.source.clone(), user.realname.to_string(), user.away().map(str::to_string));
        let event = self.event(EventKind::Join { who: who.clone(), room: name, realname });
        self.record_state(&event, &[]);
        let status = self.rooms[key].members[&id];
        self.share(&event, cluster::Extra::Status(status));
        self.deliver(members.iter().copied(), &event);
        if let Some(message) = away {
            let away = self.event(EventKind::Away { who, message: Some(message) });
            self.share(&away, cluster::Extra::None);
            self.deliver(members, &away);
        }
    }

    fn user(&self, id: ConnId) -> &User {
        &self.users[&id]
    }

    fn room(&self, name: &str) -> Result<&Room, HubError> {
        self.rooms.get(&fold(name)).ok_or_else(|| HubError::NoSuchRoom(name.into()))
    }

    /// A room `asker` may know of; a secret room is no such room to outsiders.
    fn visible_room(&self, asker: ConnId, name: &str) -> Result<&Room, HubError> {
        self.room(name).ok().filter(|r| r.visible_to(asker)).ok_or_else(|| HubError::NoSuchRoom(name.into()))
    }

    fn member_room(&self, id: ConnId, name: &str) -> Result<&Room, HubError> {
        let room = self.room(name)?;
        if room.members.contains_key(&id) { Ok(room) } else { Err(HubError::NotInRoom(room.name.clone())) }
    }

    fn room_mut(&mut self, name: &str) -> &mut Room {
        self.rooms.get_mut(&fold(name)).expect("room checked before")
    }

    fn id_of(&self, nick: &str) -> Result<ConnId, HubError> {
        self.nicks.get(fold(nick).as_str()).copied().ok_or_else(|| HubError::NoSuchNick(nick.into()))
    }

    /// Is `nick` valid and free?
    pub fn check_nick(&self, nick: &str) -> Result<(), HubError> {
        if !text::valid_nick(nick) {
            Err(HubError::BadNick(nick.into()))
        } else if self.nicks.contains_key(fold(nick).as_str()) || accounts::is_service(nick) {
            Err(HubError::NickInUse(nick.into()))
        } else {
            Ok(())
        }
    }

    /// Adds a connected user. Fails only if the asked-for nick is invalid or taken.
    pub fn register(&mut self, reg: Registration) -> Result<(ConnId, String), HubError> {
        if self.closing {
            return Err(HubError::ShuttingDown);
        }
        if let Some(reason) = self.server_banned(reg.nick.as_deref().unwrap_or("*"), &reg.user, &reg.host) {
            return Err(HubError::ServerBanned(reason));
        }
        let nick = match reg.nick {
            Some(nick) => {
                self.check_nick(&nick)?;
                nick
            }
            None => self.guest_nick(),
        };
        self.next_conn += 1;
        let id = self.next_conn;
        let now = now_millis();
        self.nicks.insert(CompactString::new(fold(&nick)), id);
        let mut user = Box::new(User {
            source: Source {
                id,
                nick: nick.as_str().into(),
                user: reg.user,
                host: reg.host.into(),
                bot: false,
                account: None,
            },
            realname: match text::clean(&reg.realname, text::REALNAME_LEN) {
                clean if *clean == *reg.realname => reg.realname,
                clean => clean.into(),
            },
            rooms: SmallVec::new(),
            oper: false,
            invisible: false,
            wallops: false,
            monitor_updates: false,
            signon: now,
            nick_since: MsgId(now << 20),
            last_spoke: now,
            told_paused: false,
            protocol: reg.protocol,
            secure: reg.secure,
            rare: None,
            outbox: reg.outbox,
            remote: false,
        });
        user.change_rare(|rare| rare.certfp = reg.certfp.map(Into::into));
        self.users.insert(id, user);
        self.max_users = self.max_users.max(self.users.len());
        crate::metrics::get().registrations.inc();
        self.tell_watchers(id, &nick, true);
        self.claim(id);
        self.share_user(id);
        Ok((id, nick))
    }

    /// A free `guest-N` nick.
    fn guest_nick(&mut self) -> String {
        loop {
            self.next_guest += 1;
            // In a cluster each node's guest numbers end in its own number (mod 256).
            let number = match self.node() {
                Some(node) => self.next_guest * 256 + u64::from(node),
                None => self.next_guest,
            };
            let nick = format!("guest-{number}");
            if !self.nicks.contains_key(nick.as_str()) {
                self.save_guest(self.next_guest);
                return nick;
            }
        }
    }

    /// Removes a user: tells everyone who shares a room, leaves every room, frees the nick.
    /// Safe to call for a user that is already gone.
    pub fn quit(&mut self, id: ConnId, reason: &str) {
        if !self.users.contains_key(&id) {
            return;
        }
        let user = self.user(id);
        let event =
            self.event(EventKind::Quit { who: user.source.clone(), reason: text::clean(reason, text::QUIT_LEN) });
        self.share(&event, cluster::Extra::None);
        self.depart(id, &event);
    }

    /// Removes user `id`, who quit with `event`: tells everyone who shares a room, leaves
    /// every room, frees the nick.
    fn depart(&mut self, id: ConnId, event: &Arc<Event>) {
        let peers = self.peers(id);
        self.record_state(event, &self.shown_rooms_of(id));
        self.deliver(peers, event);
        let nick = self.user(id).source.nick.clone();
        self.tell_watchers(id, &nick, false);
        self.unmonitor_all(id);
        self.claims.remove(&id);
        let user = *self.users.remove(&id).expect("checked above");
        self.opers -= usize::from(user.oper);
        self.invisible -= usize::from(user.invisible);
        self.creation.forget(id);
        for room in &user.rooms {
            self.leave_room(id, room);
        }
        // Invitations to rooms the user never joined go with the user.
        for key in user.rare.iter().flat_map(|rare| &rare.invited_to) {
            if let Some(room) = self.rooms.get_mut(key) {
                room.invited.remove(&id);
            }
        }
        self.nicks.remove(fold(&user.source.nick).as_str());
        if let Some(account) = &user.source.account {
            self.forget_read_markers(account);
        }
        self.guest_read_markers.remove(&id);
        self.whowas.push_front(Departed {
            nick: user.source.nick.to_string(),
            user: user.source.user,
            host: user.source.host,
            realname: user.realname,
            at: now_millis(),
        });
        self.whowas.truncate(WHOWAS_LEN);
    }

    /// Takes `id` out of the room `key` (folded); an empty room not [worth
    /// keeping](Room::worth_keeping) disappears.
    fn leave_room(&mut self, id: ConnId, key: &str) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove_member(id);
            room.banned_members.remove(&id);
            room.invited.remove(&id);
            if room.members.is_empty() && !room.worth_keeping() {
                let saved = room.saved;
                if let Some(creator) = room.creator.take() {
                    self.creation.refund(creator.0, &creator.1, std::time::Instant::now());
                }
                self.lookalikes.remove(&text::skeleton(&room.name));
                self.rooms.remove(key);
                if saved {
                    self.forget_room(key);
                }
            }
        }
        if let Some(user) = self.users.get_mut(&id) {
            user.rooms.retain(|r| r != key);
        }
    }

    /// Changes a nick; the user and everyone sharing a room with them are told.
    pub fn set_nick(&mut self, id: ConnId, new: &str) -> Result<Arc<Event>, HubError> {
        let old = self.user(id).source.nick.clone();
        if old == new {
            return Err(HubError::NickInUse(new.into()));
        }
        if fold(&old) != fold(new) {
            self.check_nick(new)?;
        } else if !text::valid_nick(new) {
            return Err(HubError::BadNick(new.into()));
        }
        // A ban is checked at registration; without this, a banned nick would be one /nick away.
        let source = &self.user(id).source;
        if let Some(reason) = self.server_banned(new, &source.user, &source.host) {
            return Err(HubError::NickBanned(new.into(), reason));
        }
        let event = self.event(EventKind::Nick { who: self.user(id).source.clone(), new: new.into() });
        self.share(&event, cluster::Extra::None);
        self.rename(id, new, &event);
        if fold(&old) != fold(new) {
            self.claim(id);
        }
        Ok(event)
    }

    /// Gives `id` the nick `new` by `event`; everyone sharing a room is told.
    fn rename(&mut self, id: ConnId, new: &str, event: &Arc<Event>) {
        let old = self.user(id).source.nick.clone();
        self.record_state(event, &self.shown_rooms_of(id));
        self.deliver(self.peers(id), event);
        self.nicks.remove(fold(&old).as_str());
        self.nicks.insert(CompactString::new(fold(new)), id);
        let user = self.users.get_mut(&id).expect("registered");
        user.source.nick = new.into();
        user.nick_since = event.id;
        for key in &user.rooms {
            if let Some(room) = self.rooms.get_mut(key.as_str()) {
                room.banned_members.remove(&id);
            }
        }
        if fold(&old) != fold(new) {
            self.tell_watchers(id, &old, false);
            self.tell_watchers(id, new, true);
        }
    }

    /// Joins a room, creating it (with the joiner as operator) if it does not exist; every
    /// member, the joiner included (unlike other verbs), receives the join in its queue. Joining
    /// a room one is in already does nothing (`Ok(None)`).
    pub fn join(&mut self, id: ConnId, name: &str, key: Option<&str>) -> Result<Option<Joined>, HubError> {
        self.join_as(id, name, key, |event| Out::Event(event.clone()))
    }

    /// [`Hub::join`], with what the joiner's queue receives made by `own` from the join: a
    /// session that answers a command as a whole (an IRC labeled response) renders its own
    /// JOIN as the start of that answer. `own` is called only if the join happens.
    pub fn join_as(
        &mut self,
        id: ConnId,
        name: &str,
        key: Option<&str>,
        own: impl FnOnce(&Arc<Event>) -> Out,
    ) -> Result<Option<Joined>, HubError> {
        if !text::valid_room(name) {
            return Err(HubError::BadRoom(name.into()));
        }
        let folded = fold(name);
        let who = self.user(id).source.clone();
        let max = self.config.limits.max_rooms_per_user;
        let full = max > 0 && self.user(id).rooms.len() >= max;
        match self.rooms.get(&folded) {
            Some(room) if room.members.contains_key(&id) => return Ok(None),
            Some(room) if full => return Err(HubError::TooManyRooms(room.name.clone(), max)),
            None if full => return Err(HubError::TooManyRooms(name.into(), max)),
            Some(room) => {
                let invited = room.invited.contains(&id);
                if room.banned(&who) && !invited {
                    return Err(HubError::Banned(room.name.clone()));
                }
                if room.modes.invite_only && !invited {
                    return Err(HubError::InviteOnly(room.name.clone()));
                }
                if room.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
                    return Err(HubError::BadKey(room.name.clone()));
                }
                if room.modes.limit.is_some_and(|l| room.members.len() >= l) {
                    return Err(HubError::RoomFull(room.name.clone()));
                }
                if room.modes.registered_only && who.account.is_none() && !invited {
                    return Err(HubError::NeedAccount(room.name.clone()));
                }
            }
            None => {
                let skeleton = text::skeleton(name);
                if let Some(other) = self.lookalikes.get(&skeleton).and_then(|key| self.rooms.get(key)) {
                    return Err(HubError::LookalikeRoom(name.into(), other.name.clone()));
                }
                // Everyone lands in the lobby: bringing it into being is no one's doing.
                if folded != LOBBY
                    && let Err(wait) = self.creation.create(id, &who.host, std::time::Instant::now())
                {
                    return Err(HubError::CreatingTooFast(name.into(), wait.as_secs_f64().ceil() as u64));
                }
                self.lookalikes.insert(skeleton, folded.clone());
                let mut room = Room::new(name, now_millis());
                if folded != LOBBY {
                    room.creator = Some(Box::new((id, who.host.to_string())));
                }
                self.rooms.insert(folded.clone(), room);
            }
        }
        let quiet_above = self.config.quiet_joins_above;
        let room = self.rooms.get_mut(&folded).expect("exists now");
        let first = room.members.is_empty();
        let hidden = quiet_above > 0 && room.members.len() >= quiet_above;
        room.set_member(id, Status { op: first, voice: false, hidden });
        room.invited.remove(&id);
        let (name, topic) = (room.name.clone(), room.topic.clone());
        let members = room.witnesses(id);
        self.users.get_mut(&id).expect("registered").rooms.push(folded.into());
        let realname = self.user(id).realname.to_string();
        let event = self.event(EventKind::Join { who, room: name.clone(), realname });
        self.share(&event, cluster::Extra::Status(Status { op: first, voice: false, hidden }));
        // History shows a quiet join where the members see it: when it is revealed.
        if !hidden {
            self.record_state(&event, &[]);
        }
        // The joiner too: its own JOIN must be queued before any message said in the room
        // from now on, and only the hub, under its lock, can put it there in time.
        self.user(id).outbox.push(own(&event));
        self.deliver(members.iter().copied(), &event);
        // A joiner who is away is away for the room's members too (IRC `away-notify`).
        if let Some(message) = self.user(id).away().map(str::to_string) {
            let away = self.event(EventKind::Away { who: self.user(id).source.clone(), message: Some(message) });
            self.share(&away, cluster::Extra::None);
            self.deliver(members, &away);
        }
        Ok(Some(Joined { room: name, topic }))
    }

    /// Leaves a room; the other members are told.
    pub fn part(&mut self, id: ConnId, name: &str, reason: &str) -> Result<Arc<Event>, HubError> {
        let room = self.member_room(id, name)?;
        let members = room.witnesses(id);
        let hidden = room.status(id).is_some_and(|s| s.hidden);
        let event = self.event(EventKind::Part {
            who: self.user(id).source.clone(),
            room: room.name.clone(),
            reason: text::clean(reason, text::PART_LEN),
        });
        self.share(&event, cluster::Extra::None);
        // A member never shown leaves no trace in history either, as it left none in the room.
        if !hidden {
            self.record_state(&event, &[]);
        }
        self.deliver(members, &event);
        self.leave_room(id, &fold(name));
        Ok(event)
    }

    /// Sends a message to a room or a nick. The sender does not receive it (sessions that want
    /// an echo write the returned event to themselves). Text is sanitised here, once, for all;
    /// client tags (`+typing`, …) are passed through as they are. A text too long for one IRC
    /// line with its sender, command and target is said as several messages, cut between words:
    /// a person's long line (plain text) loses nothing.
    pub fn say(&mut self, id: ConnId, target: &str, kind: MsgKind, text: &str, tags: Tags) -> Result<Said, HubError> {
        self.say_as(id, target, kind, text, tags, Long::Split)
    }

    /// [`Hub::say`] for a message an IRC client sent as one line: it stays one message. The
    /// client fitted its line into 512 bytes, but relayed with its `nick!user@host` in front it
    /// may no longer fit; then its end is cut off, on a character boundary, as InspIRCd and ergo
    /// do. Refusing it (417) instead would refuse a line the client had every reason to think
    /// valid, as no client knows for sure how its prefix looks to others; splitting it would
    /// make one message two, which IRC clients (and bots reading commands) do not expect.
    /// History keeps the text as it was relayed.
    pub fn say_line(
        &mut self,
        id: ConnId,
        target: &str,
        kind: MsgKind,
        text: &str,
        tags: Tags,
    ) -> Result<Said, HubError> {
        self.say_as(id, target, kind, text, tags, Long::Cut)
    }

    fn say_as(
        &mut self,
        id: ConnId,
        target: &str,
        kind: MsgKind,
        text: &str,
        tags: Tags,
        long: Long,
    ) -> Result<Said, HubError> {
        let text = text::sanitize(text);
        let tags = text::clean_tags(tags);
        if text.is_empty() && kind != MsgKind::TagMsg {
            return Err(HubError::NoText);
        }
        self.say_text(id, target, kind, text, tags, long)
    }

    /// Says several lines as ONE message (IRC `draft/multiline`): its text holds them joined by
    /// line feeds, and each client shows it as its protocol can (a batch, or one line after the
    /// other). Blank lines are kept between others; lines of nothing but blanks are refused.
    pub fn say_lines(&mut self, id: ConnId, target: &str, lines: &[String], tags: Tags) -> Result<Said, HubError> {
        let lines: Vec<String> = lines.iter().map(|line| text::sanitize(line)).collect();
        if lines.iter().all(|line| line.trim().is_empty()) {
            return Err(HubError::NoText);
        }
        self.say_text(id, target, MsgKind::Privmsg, lines.join("\n"), tags, Long::Whole)
    }

    /// [`Hub::say`] of a sanitised text; `long` says what becomes of a text too long for one
    /// IRC line.
    fn say_text(
        &mut self,
        id: ConnId,
        target: &str,
        kind: MsgKind,
        text: String,
        tags: Tags,
        long: Long,
    ) -> Result<Said, HubError> {
        let from = self.user(id).source.clone();
        // `@#room` / `+#room` (STATUSMSG): to the room's operators / voiced members and operators.
        let (status, target) = match target.split_at_checked(1) {
            Some((prefix @ ("@" | "+"), room)) if room.starts_with('#') => (prefix.chars().next(), room),
            _ => (None, target),
        };
        let (target, recipients, away, room_key) = if target.starts_with('#') {
            let key = fold(target);
            let room = self.rooms.get_mut(&key).ok_or_else(|| HubError::NoSuchRoom(target.into()))?;
            match room.status(id) {
                None if room.modes.no_external => {
                    return Err(HubError::External(room.name.clone()));
                }
                Some(s) if room.modes.moderated && !s.op && !s.voice => {
                    return Err(HubError::Moderated(room.name.clone()));
                }
                Some(s) if !s.op && !s.voice && room.member_banned(&from) => {
                    return Err(HubError::Banned(room.name.clone()));
                }
                _ => {}
            }
            self.reveal(id, &key);
            let room = self.rooms.get_mut(&key).expect("checked above");
            if let Some(prefix) = status {
                let members = room
                    .members
                    .iter()
                    .filter(|&(&m, s)| m != id && (s.op || (prefix == '+' && s.voice)))
                    .map(|(&m, _)| m)
                    .collect();
                (Target::RoomStatus(prefix, room.name.clone()), members, None, Some(key))
            } else {
                (Target::Room(room.name.clone()), room.others(id), None, Some(key))
            }
        } else {
            let to = self.id_of(target)?;
            let user = self.user(to);
            let away = user.away().filter(|_| kind != MsgKind::Notice).map(str::to_string);
            (Target::User(user.source.nick.to_string()), vec![to], away, None)
        };
        let room = line_room(&from, &target, kind);
        let mut pieces = match long {
            Long::Whole => vec![text],
            _ if text.len() <= room => vec![text],
            Long::Split => text::split_to_fit(&text, room).into_iter().map(str::to_string).collect(),
            Long::Cut => vec![text[..floor_char_boundary(&text, room)].to_string()],
        };
        let last = pieces.pop().expect("a text is at least one piece");
        let mut events = Vec::with_capacity(pieces.len() + 1);
        for text in pieces {
            let (from, target, tags) = (from.clone(), target.clone(), tags.clone());
            let message = EventKind::Message { from, target, kind, text, tags };
            events.push(self.deliver_message(message, &recipients, room_key.as_deref())?);
        }
        let message = EventKind::Message { from, target, kind, text: last, tags };
        events.push(self.deliver_message(message, &recipients, room_key.as_deref())?);
        // A room spoken in (not to its operators alone) has history now: keep it, and its
        // settings, across restarts.
        if status.is_none()
            && let Some(key) = &room_key
            && let Some(room) = self.rooms.get_mut(key)
            && !room.has_history
        {
            room.has_history = true;
            self.save_room(key);
        }
        self.users.get_mut(&id).expect("registered").last_spoke = now_millis();
        crate::metrics::get().messages_received.inc();
        let history = self.history_notice(id);
        Ok(Said { events, away, history })
    }

    /// Stores a message, then delivers it: no one receives a line that history will not have.
    /// A message to several members of `room` (folded) goes into the segment their queues share.
    fn deliver_message(
        &mut self,
        message: EventKind,
        to: &[ConnId],
        room: Option<&str>,
    ) -> Result<Arc<Event>, HubError> {
        let event = self.event(message);
        self.record(&event, &[])?;
        self.share(&event, cluster::Extra::None);
        match room.and_then(|key| self.rooms.get_mut(key)).filter(|_| to.len() > 1) {
            Some(room) => {
                let (segment, slot) = room.log.append(&event);
                self.deliver_shared(to, &segment, slot);
            }
            None => self.deliver(to.iter().copied(), &event),
        }
        crate::metrics::get().messages_delivered.inc_by(to.len() as u64);
        Ok(event)
    }

    /// A room's topic. Secret rooms answer only their members.
    pub fn topic(&self, id: ConnId, name: &str) -> Result<Option<Topic>, HubError> {
        let room = self.room(name)?;
        if !room.visible_to(id) {
            return Err(HubError::NotInRoom(room.name.clone()));
        }
        Ok(room.topic.clone())
    }

    /// Sets (or, with empty text, clears) a room's topic; needs ops when the room is `+t`.
    pub fn set_topic(&mut self, id: ConnId, name: &str, text: &str) -> Result<Arc<Event>, HubError> {
        let room = self.member_room(id, name)?;
        if room.modes.topic_ops && !room.is_op(id) {
            return Err(HubError::NeedOps(room.name.clone()));
        }
        let text = text::clean(text, text::TOPIC_LEN);
        self.reveal(id, &fold(name));
        let room = self.room(name)?;
        let who = self.user(id).source.clone();
        let topic =
            (!text.is_empty()).then(|| Topic { text: text.clone(), set_by: who.nick.to_string(), at: now_millis() });
        let event = self.event(EventKind::Topic { who, room: room.name.clone(), text });
        self.share(&event, cluster::Extra::None);
        let room = self.room_mut(name);
        room.topic = topic;
        let members: Vec<ConnId> = room.others(id);
        self.record_state(&event, &[]);
        self.save_room(&fold(name));
        self.deliver(members, &event);
        Ok(event)
    }

    /// Removes `target` from a room; needs ops. The other members, the target included, are told.
    pub fn kick(&mut self, id: ConnId, name: &str, target: &str, reason: &str) -> Result<Arc<Event>, HubError> {
        let room = self.member_room(id, name)?;
        if !room.is_op(id) {
            return Err(HubError::NeedOps(room.name.clone()));
        }
        let target_id = self.id_of(target)?;
        if !room.members.contains_key(&target_id) {
            return Err(HubError::UserNotInRoom { nick: target.into(), room: room.name.clone() });
        }
        self.reveal(id, &fold(name));
        let room = self.room(name)?;
        // A member who was never shown leaves as quietly: only they are told, history not.
        let hidden = room.status(target_id).is_some_and(|s| s.hidden);
        let members: Vec<ConnId> = match hidden {
            true => vec![target_id],
            false => room.others(id),
        };
        let event = self.event(EventKind::Kick {
            who: self.user(id).source.clone(),
            room: room.name.clone(),
            target: self.user(target_id).source.nick.to_string(),
            target_id,
            reason: text::clean(reason, text::KICK_LEN),
        });
        self.share(&event, cluster::Extra::None);
        if !hidden {
            self.record_state(&event, &[]);
        }
        self.deliver(members, &event);
        self.leave_room(target_id, &fold(name));
        Ok(event)
    }

    /// Invites `target` into a room; in a `+i` room only operators may. The target is told.
    pub fn invite(&mut self, id: ConnId, target: &str, name: &str) -> Result<String, HubError> {
        let target_id = self.id_of(target)?;
        let room = self.member_room(id, name)?;
        if room.modes.invite_only && !room.is_op(id) {
            return Err(HubError::NeedOps(room.name.clone()));
        }
        let target_nick = self.user(target_id).source.nick.to_string();
        if room.members.contains_key(&target_id) {
            return Err(HubError::UserInRoom { nick: target_nick, room: room.name.clone() });
        }
        // Besides the target, the members who may invite there themselves are told (IRC
        // `invite-notify`): everyone in an open room, the operators in a `+i` one.
        let invite_only = room.modes.invite_only;
        let witnesses: Vec<ConnId> =
            room.members.iter().filter(|&(&m, s)| m != id && (s.op || !invite_only)).map(|(&m, _)| m).collect();
        let event = self.event(EventKind::Invite {
            who: self.user(id).source.clone(),
            target: target_nick.clone(),
            target_id,
            room: room.name.clone(),
        });
        self.share(&event, cluster::Extra::None);
        self.invite_into(&fold(name), target_id);
        self.deliver(std::iter::once(target_id).chain(witnesses), &event);
        Ok(target_nick)
    }

    /// Lets `target` into the room `key` (folded) past `+i`, a key or a ban, until it joins,
    /// leaves it or quits. The user keeps the list of rooms too, so that its quit looks at
    /// those alone, not at every room the server keeps.
    fn invite_into(&mut self, key: &str, target: ConnId) {
        let (Some(room), Some(user)) = (self.rooms.get_mut(key), self.users.get_mut(&target)) else { return };
        room.invited.insert(target);
        user.change_rare(|rare| {
            if !rare.invited_to.iter().any(|k| k == key) {
                rare.invited_to.push(key.into());
            }
        });
    }

    /// Applies mode changes to a room; needs ops. Changes that fail (unknown nick, …) are
    /// reported one by one; the ones that succeed are announced to every member in one event.
    pub fn set_modes(&mut self, id: ConnId, name: &str, changes: Vec<ModeChange>) -> Result<ModesApplied, HubError> {
        let room = self.member_room(id, name)?;
        if !room.is_op(id) {
            return Err(HubError::NeedOps(room.name.clone()));
        }
        let room_name = room.name.clone();
        let setter = self.user(id).source.nick.clone();
        let mut result = ModesApplied::default();
        if !changes.is_empty() {
            self.reveal(id, &fold(name));
        }
        for change in changes {
            let member = match &change.mode {
                RoomMode::Op(nick) | RoomMode::Voice(nick) => match self.id_of(nick) {
                    Ok(m) if self.room(name)?.members.contains_key(&m) => Some((m, self.user(m).source.nick.clone())),
                    Ok(_) => {
                        result.errors.push(HubError::UserNotInRoom { nick: nick.clone(), room: room_name.clone() });
                        continue;
                    }
                    Err(e) => {
                        result.errors.push(e);
                        continue;
                    }
                },
                _ => None,
            };
            let bans_total = &mut self.bans_total;
            let room = self.rooms.get_mut(&fold(name)).expect("room checked before");
            let add = change.add;
            let changed = match (&change.mode, &member) {
                (RoomMode::Op(_), Some((m, _))) => flip(&mut room.members.get_mut(m).expect("member").op, add),
                (RoomMode::Voice(_), Some((m, _))) => flip(&mut room.members.get_mut(m).expect("member").voice, add),
                (RoomMode::Ban(mask), _) => {
                    let present = room.bans.iter().position(|b| b.mask.eq_ignore_ascii_case(mask));
                    let changed = match (add, present) {
                        (true, None) if room.bans.len() >= MAX_BANS => {
                            result.errors.push(HubError::BanListFull(room.name.clone()));
                            false
                        }
                        (true, None) if *bans_total >= MAX_SERVER_BANS => {
                            result.errors.push(HubError::ServerBansFull);
                            false
                        }
                        (true, None) => {
                            room.bans.push(Ban { mask: mask.clone(), set_by: setter.to_string(), at: now_millis() });
                            *bans_total += 1;
                            true
                        }
                        (false, Some(i)) => {
                            room.bans.remove(i);
                            *bans_total -= 1;
                            true
                        }
                        _ => false,
                    };
                    if changed {
                        room.banned_members.clear();
                    }
                    changed
                }
                (RoomMode::Op(_) | RoomMode::Voice(_), None) => false,
                _ => room.modes.apply(&change),
            };
            if changed {
                // A member given +o or +v stands out: the room is shown them first.
                if let Some((m, _)) = &member
                    && add
                {
                    self.reveal(*m, &fold(name));
                }
                // Announce the nick as it is spelled, not as the operator typed it.
                let mode = match (change.mode, member) {
                    (RoomMode::Op(_), Some((_, nick))) => RoomMode::Op(nick.to_string()),
                    (RoomMode::Voice(_), Some((_, nick))) => RoomMode::Voice(nick.to_string()),
                    (mode, _) => mode,
                };
                result.applied.push(ModeChange { add, mode });
            }
        }
        if !result.applied.is_empty() {
            let who = self.user(id).source.clone();
            let members: Vec<ConnId> = self.room(name)?.others(id);
            // `:nick!user@host MODE #room CHANGES\r\n` within 512 bytes: long masks go in
            // several announcements.
            let frame = 1 + who.nick.len() + 1 + who.user.len() + 1 + who.host.len() + " MODE ".len() + room_name.len();
            for changes in modes::render_within(&result.applied, text::MAX_LINE - frame - 3) {
                let event = self.event(EventKind::Mode { who: who.clone(), room: room_name.clone(), changes });
                if self.node().is_some() {
                    self.share(&event, self.room_extra(&fold(name)));
                }
                self.record_state(&event, &[]);
                self.deliver(members.iter().copied(), &event);
                result.events.push(event);
            }
            self.save_room(&fold(name));
        }
        Ok(result)
    }
}

/// The largest index `<= max` that is a char boundary of `s`.
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    (0..=max.min(s.len())).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

impl Hub {
    /// Marks a user away with a message, or back (`None` or empty); the users sharing a room
    /// are told (IRC `away-notify`) when that changes anything. Returns whether the user is now
    /// away.
    pub fn set_away(&mut self, id: ConnId, message: Option<&str>) -> bool {
        let away = message.map(|m| text::clean(m, text::AWAY_LEN)).filter(|m| !m.is_empty());
        if self.user(id).away() != away.as_deref() {
            let event = self.event(EventKind::Away { who: self.user(id).source.clone(), message: away.clone() });
            self.share(&event, cluster::Extra::None);
            self.deliver(self.peers_and_watchers(id), &event);
        }
        let user = self.users.get_mut(&id).expect("registered");
        user.change_rare(|rare| {
            rare.away = away.map(String::into_boxed_str);
            rare.away.is_some()
        })
    }

    /// Gives up server-operator rights (`MODE nick -o`); `false` if `id` had none.
    pub fn unoper(&mut self, id: ConnId) -> bool {
        let was = self.mark_oper(id, false);
        self.share_user(id);
        was
    }

    /// Disconnects `target` (server operators only). Its queue is closed with the reason; its
    /// session then ends and quits like any other, so everyone sharing a room sees why, and the
    /// user stays known to the hub until its own session is done with it.
    pub fn kill(&mut self, id: ConnId, target: &str, reason: &str) -> Result<(), HubError> {
        if !self.user(id).oper {
            return Err(HubError::NotOper);
        }
        let target_id = self.id_of(target)?;
        let (by, nick) = (self.user(id).source.clone(), self.nick(target_id).to_string());
        let reason = text::clean(reason, text::QUIT_LEN);
        if self.is_remote(target_id) {
            self.share_note(cluster::Note::Kill { id: target_id, by, nick, reason });
            return Ok(());
        }
        self.user(target_id).outbox.close_as(Closed::Killed { by, nick, reason });
        Ok(())
    }

    /// What one user or address may take (for ISUPPORT's `CHANLIMIT`).
    pub fn limits(&self) -> &HubLimits {
        &self.config.limits
    }

    /// A new cap on rooms per user (a reload): joins from now on are held to it, no one is
    /// made to leave a room.
    pub fn set_max_rooms_per_user(&mut self, max: usize) {
        self.config.limits.max_rooms_per_user = max;
    }

    /// A new size above which rooms take newcomers in quietly (a reload): joins from then on
    /// follow it; who joined quietly before stays so until they first speak, as before.
    pub fn set_quiet_joins_above(&mut self, above: usize) {
        self.config.quiet_joins_above = above;
    }

    /// New server operators (a reload): OPER from now on checks these. Whoever is an
    /// operator already stays one until they disconnect.
    pub fn set_opers(&mut self, opers: HashMap<String, String>) {
        self.config.opers = opers;
    }

    /// Refuses new users from now on (the server then closes every session).
    pub fn shutdown(&mut self) {
        self.closing = true;
    }

    /// The id of the newest event handed to the store (a message, a join, a topic, …): history
    /// reads wait until the store has committed it.
    pub fn last_recorded(&self) -> MsgId {
        self.last_recorded
    }

    /// The id of the newest message handed to the store: reads of messages alone (a replay on
    /// join) wait until the store has committed it, and never for joins and quits.
    pub fn last_said(&self) -> MsgId {
        self.last_said
    }

    /// The nick a connection has now.
    pub fn nick(&self, id: ConnId) -> &str {
        &self.user(id).source.nick
    }

    /// How a connection appears to others (`nick!user@host`).
    pub fn source(&self, id: ConnId) -> &Source {
        &self.user(id).source
    }

    /// The rooms a user is in, as spelled at creation, in join order.
    pub fn rooms_of(&self, id: ConnId) -> Vec<String> {
        self.rooms_in(self.user(id)).map(|r| r.name.clone()).collect()
    }

    /// The rooms `user` is in, in join order.
    fn rooms_in<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a Room> {
        user.rooms.iter().filter_map(|key| self.rooms.get(key.as_str()))
    }

    /// The rooms `id` is in and shown in (not a quiet join not yet revealed): where its quit
    /// and nick changes are recorded, as only there were they seen.
    fn shown_rooms_of(&self, id: ConnId) -> Vec<String> {
        self.rooms_in(self.user(id))
            .filter(|r| r.status(id).is_some_and(|s| !s.hidden))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Is `nick` online? Returns its current spelling.
    pub fn online(&self, nick: &str) -> Option<&str> {
        self.nicks.get(fold(nick).as_str()).map(|id| self.nick(*id))
    }

    /// Number of users and rooms, for LUSERS.
    pub fn counts(&self) -> (usize, usize) {
        (self.users.len(), self.rooms.len())
    }

    /// Number of invisible (`+i`) users, for LUSERS.
    pub fn invisible_count(&self) -> usize {
        self.invisible
    }

    /// Number of server operators online.
    pub fn oper_count(&self) -> usize {
        self.opers
    }

    /// What `asker` may know of user `id`, with at most `rooms` of its rooms: a list of members
    /// asks for none, so that its cost does not grow with how many rooms each member is in.
    fn info(&self, id: ConnId, asker: ConnId, rooms: usize) -> UserInfo {
        let user = self.user(id);
        let rooms = self
            .rooms_in(user)
            .filter(|r| r.visible_to(asker))
            .take(rooms)
            .map(|r| (r.name.clone(), r.members[&id]))
            .collect();
        UserInfo {
            id,
            nick: user.source.nick.clone(),
            user: user.source.user.clone(),
            host: user.source.host.clone(),
            realname: user.realname.clone(),
            away: user.away().map(str::to_string),
            oper: user.oper,
            invisible: user.invisible,
            bot: user.source.bot,
            account: user.source.account.as_deref().map(str::to_string),
            protocol: user.protocol.name(),
            secure: user.secure,
            certfp: user
                .certfp()
                .filter(|_| asker == id || self.users.get(&asker).is_some_and(|a| a.oper))
                .map(str::to_string),
            signon: user.signon,
            last_spoke: user.last_spoke,
            rooms,
        }
    }

    /// WHOIS: what `asker` may know about `nick`.
    pub fn user_info(&self, asker: ConnId, nick: &str) -> Result<UserInfo, HubError> {
        Ok(self.info(self.id_of(nick)?, asker, usize::MAX))
    }

    /// Every user online that `asker` may see (invisible users only when they share a room
    /// with `asker`), each with the first room `asker` may see them in, for WHO with a mask.
    pub fn all_users(&self, asker: ConnId) -> Vec<UserInfo> {
        self.users.keys().filter(|&&id| self.sees(asker, id)).map(|&id| self.info(id, asker, 1)).collect()
    }

    /// The users `asker` finds with `mask` (WHO): a nick without wildcards finds that user, even
    /// an invisible one (as InspIRCd answers); a mask with `*` or `?`, matched against nicks and
    /// `nick!user@host`, finds only the users `asker` may see.
    pub fn find_users(&self, asker: ConnId, mask: &str) -> Vec<UserInfo> {
        if !mask.contains(['*', '?'])
            && let Ok(user) = self.user_info(asker, mask)
        {
            return vec![user];
        }
        let matches = |u: &UserInfo| {
            text::wildcard_match(mask, &u.nick)
                || text::wildcard_match(mask, &format!("{}!{}@{}", u.nick, u.user, u.host))
        };
        self.all_users(asker).into_iter().filter(matches).collect()
    }

    /// A room with its members, sorted by nick. Secret rooms are visible to members only; to
    /// others, the members listed are those they may see (invisible ones only when they share
    /// another room).
    pub fn room_info(&self, asker: ConnId, name: &str) -> Result<RoomInfo, HubError> {
        let room = self.visible_room(asker, name)?;
        let knows = self.knows_member(asker, room);
        let mut members: Vec<Member> = room
            .listed(asker)
            .filter(|&(id, _)| knows(id))
            .map(|(id, status)| Member { info: self.info(id, asker, 0), status })
            .collect();
        let unlisted = room.members.iter().filter(|&(&id, s)| s.hidden && id != asker && knows(id)).count();
        members.sort_by(|a, b| text::cmp_folded(&a.info.nick, &b.info.nick));
        Ok(RoomInfo {
            name: room.name.clone(),
            created: room.created,
            topic: room.topic.clone(),
            modes: room.modes_seen_by(asker),
            members,
            unlisted,
            secret: room.modes.secret,
        })
    }

    /// A room's NAMES as `asker` may see them (the members [`Hub::room_info`] lists), in no
    /// particular order, with each member's user and host only when `userhost` asks for them.
    /// Every join sends NAMES, so this looks only at the members [listed](Room::listed),
    /// copies no more than a nick of each, and leaves the sorting to be done once the hub's
    /// lock is let go.
    pub fn names(&self, asker: ConnId, name: &str, userhost: bool) -> Result<Names, HubError> {
        let room = self.visible_room(asker, name)?;
        let knows = self.knows_member(asker, room);
        let members = room
            .listed(asker)
            .filter(|&(id, _)| knows(id))
            .map(|(id, status)| {
                let source = &self.user(id).source;
                let userhost = userhost.then(|| (source.user.clone(), source.host.clone()));
                NamesEntry { status, nick: source.nick.clone(), userhost }
            })
            .collect();
        Ok(Names { room: room.name.clone(), secret: room.modes.secret, members })
    }

    /// A room's name, creation time and modes as `asker` may see them, for MODE: IRC clients
    /// ask after every join, and need no member list for it.
    pub fn room_modes(&self, asker: ConnId, name: &str) -> Result<(String, u64, RoomModes), HubError> {
        let room = self.visible_room(asker, name)?;
        Ok((room.name.clone(), room.created, room.modes_seen_by(asker)))
    }

    /// Whether `asker` may know that member `id` is in `room`: a member knows all the others,
    /// anyone else those it [sees](Hub::sees).
    fn knows_member<'a>(&'a self, asker: ConnId, room: &Room) -> impl Fn(ConnId) -> bool + 'a {
        let is_member = room.members.contains_key(&asker);
        move |id| is_member || self.sees(asker, id)
    }

    /// How many others are in a room `id` is in, and the nicks of up to `max` of them (in
    /// no particular order): cheap even for a room of thousands.
    pub fn some_members(&self, id: ConnId, name: &str, max: usize) -> (usize, Vec<String>) {
        let Ok(room) = self.room(name) else { return (0, Vec::new()) };
        let others = room.members.iter().filter(|&(&m, _)| m != id);
        let names =
            others.clone().filter(|(_, s)| !s.hidden).take(max).map(|(m, _)| self.nick(*m).to_string()).collect();
        (others.count(), names)
    }

    /// A room's ban list, as `asker` may see it: a secret room's only by its members.
    pub fn bans(&self, asker: ConnId, name: &str) -> Result<Vec<Ban>, HubError> {
        Ok(self.visible_room(asker, name)?.bans.clone())
    }

    /// Rooms `asker` may see (secret ones only if a member) that `filter` keeps, in no
    /// particular order: sorting a long list is the caller's, outside the hub's lock.
    pub fn list_rooms(&self, asker: ConnId, filter: &ListFilter) -> Vec<RoomSummary> {
        let now = now_millis();
        self.rooms
            .values()
            .filter(|r| r.visible_to(asker))
            .filter(|r| filter.keeps(&r.name, r.members.len(), r.created, r.topic.as_ref().map(|t| t.at), now))
            .map(|r| RoomSummary {
                name: r.name.clone(),
                members: r.members.len(),
                topic: r.topic.as_ref().map(|t| t.text.clone()),
            })
            .collect()
    }

    /// WHOWAS: the most recent departures under `nick`, newest first.
    pub fn whowas(&self, nick: &str, count: usize) -> Vec<Departed> {
        self.whowas.iter().filter(|d| d.nick.eq_ignore_ascii_case(nick)).take(count).cloned().collect()
    }
}

/// How many bytes of text one message may carry: with its sender's `nick!user@host`, the
/// command and the target, each message must fit the shortest line limit among clients (IRC's
/// [`text::MAX_LINE`]), so any longer text is said as several messages; nothing is cut off.
fn line_room(from: &Source, target: &Target, kind: MsgKind) -> usize {
    let target = match target {
        Target::Room(name) | Target::User(name) => name.len(),
        Target::RoomStatus(_, name) => 1 + name.len(),
    };
    // `:nick!user@host PRIVMSG target :text\r\n`, and `\x01ACTION text\x01` for an action.
    let frame = 1 + from.nick.len() + 1 + from.user.len() + 1 + from.host.len() + " PRIVMSG ".len() + target + 4;
    let action = if kind == MsgKind::Action { "\x01ACTION \x01".len() } else { 0 };
    text::MAX_LINE.saturating_sub(frame + action).max(64)
}

#[cfg(test)]
mod tests;
