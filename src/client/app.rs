//! The terminal client's state, with no I/O: windows, their lines and members, the input line,
//! what the server offers, and the state of the link. Everything that happens reaches it as a
//! call: [`App::handle_irc`] for a line from the server, [`App::handle_key`] for a key press,
//! [`App::connected`] / [`App::disconnected`] / [`App::waiting`] for the link. Each call returns
//! what to send, so a test can drive it with scripted messages and check the state.
//!
//! # History
//!
//! When the server offers `draft/chathistory` (the capability, or ISUPPORT `CHATHISTORY=N`) the
//! client asks for `LATEST` when it first joins a room, `BEFORE` the oldest line when scrolling
//! reaches the top, and `AFTER` the newest line it saw when it rejoins after a dropped
//! connection, page after page until a page comes back short. Lines are deduplicated by msgid,
//! so a message seen live and again in a batch is shown once. A server without chathistory gets
//! none of these requests; the window says that messages sent while away may be missing.
//! `/history N` asks for `N` lines before the oldest one shown, page after page.
//!
//! # Where lines go
//!
//! Lines of a room or a conversation go to its window. The registration burst (welcome, MOTD)
//! goes to the server window; replies to what the user asked for go to the window they are
//! looking at (or the window of the room or nick a reply is about, when one is open), read as
//! [`replies`](super::replies) says. `/help` shows in the server window, which it switches to;
//! `/list` fills the room list's window of its own.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use time::UtcOffset;

use super::input::Input;
use super::replies::{self, ERR_NOMOTD};
use super::text::{clean, mentions, plain};
use super::ui;
use super::window::{Entry, EntryKind, Listed, ROOM_LIST, Window, WindowKind};
use crate::chat::now_millis;
use crate::chat::text::fold;
use crate::hub::text::split_to_fit;
use crate::proto::irc::caps::{self, CAPS, Cap};
use crate::proto::irc::message::Message;
use crate::proto::irc::numeric::*;
use crate::proto::irc::render::parse_time;

/// Capabilities the client uses, requested when the server offers them.
pub const WANTED_CAPS: &[Cap] = &[
    Cap::ServerTime,
    Cap::MessageTags,
    Cap::EchoMessage,
    Cap::Batch,
    Cap::MultiPrefix,
    Cap::AwayNotify,
    Cap::Chathistory,
    Cap::EventPlayback,
];

/// A capability's name in `CAP` lines.
fn cap_name(cap: Cap) -> &'static str {
    CAPS.iter().find(|(c, _, _)| *c == cap).map_or("", |(_, name, _)| name)
}

/// Lines asked for when joining a room, and when scrolling past the oldest line.
pub const HISTORY_PAGE: usize = 50;
/// Lines asked for per page when catching up after a reconnect.
pub const CATCH_UP_PAGE: usize = 100;
/// Lines `/history` loads without a count, and the most it loads at once (as for plain-text
/// users).
pub const DEFAULT_HISTORY: usize = 20;
pub const MAX_HISTORY: usize = 500;

/// Longest text put in one PRIVMSG, in bytes: 512 minus the command, the target and the
/// `:nick!user@host` the server puts in front when relaying it.
const MAX_TEXT: usize = 400;

/// The slash commands: name, usage, what it does (in 25 columns, so `/help` fits an 80×24
/// terminal without wrapping).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("/join", "/join #ROOM [KEY]", "join a room"),
    ("/part", "/part [#ROOM]", "leave a room (and window)"),
    ("/msg", "/msg NICK TEXT", "private message"),
    ("/query", "/query NICK", "open a private window"),
    ("/me", "/me TEXT", "action: * you TEXT"),
    ("/nick", "/nick NAME", "change your nick"),
    ("/topic", "/topic [TEXT]", "show or set the topic"),
    ("/who", "/who [#ROOM]", "who is there"),
    ("/whois", "/whois NICK", "who someone is"),
    ("/list", "/list", "rooms here, to join one"),
    ("/rooms", "/rooms", "the same as /list"),
    ("/history", "/history [N]", "load N earlier lines here"),
    ("/away", "/away [TEXT]", "set away; no text: back"),
    ("/register", "/register PASS", "make your nick an account"),
    ("/login", "/login NAME PASS", "log in to an account"),
    ("/close", "/close", "close this window"),
    ("/quote", "/quote LINE", "send a raw IRC line"),
    ("/help", "/help", "this list"),
    ("/quit", "/quit [WHY]", "leave"),
];

/// Keys, shown by `/help`.
const KEYS: &[(&str, &str)] = &[
    ("Alt-1..9 Alt-0", "show window 1..10"),
    ("Ctrl-N/P Alt-←/→", "next/previous window"),
    ("PgUp PgDn", "scroll; loads older lines"),
    ("↑ ↓ Enter", "room list: choose, join"),
    ("Tab", "complete nick, room, /cmd"),
    ("↑ ↓", "lines sent before"),
    ("Home/End Ctrl-A/E", "start/end of the line"),
    ("Ctrl-W/U/K", "delete word/to start/end"),
    ("Ctrl-C", "quit"),
];

/// What the I/O side should do after a key press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these lines to the server.
    Send(Vec<Message>),
    /// Send `QUIT :reason` (when connected) and exit.
    Quit(String),
}

/// The state of the connection, as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    /// Connected, registration (CAP, NICK, USER) in progress.
    Registering,
    /// Registered: lines can be sent.
    Ready,
    /// The connection dropped; a reconnect is being scheduled.
    Lost(String),
    /// Reconnecting after this many seconds.
    Waiting {
        secs: u64,
        reason: String,
    },
}

/// What the client knows about the server from `CAP` and ISUPPORT.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Capabilities offered (`CAP LS`), names only.
    pub offered: HashSet<String>,
    pub enabled: HashSet<String>,
    /// Most messages per CHATHISTORY request (0: no limit); `None` without chathistory.
    pub chathistory: Option<usize>,
    /// Status modes and their prefixes, highest first: `ov` and `@+` by default.
    pub prefix_modes: String,
    pub prefix_chars: String,
    pub chantypes: String,
    /// CHANMODES: list modes, modes that always take a parameter, modes that take one when set.
    pub chanmodes: [String; 3],
}

impl Default for ServerInfo {
    fn default() -> ServerInfo {
        ServerInfo {
            offered: HashSet::new(),
            enabled: HashSet::new(),
            chathistory: None,
            prefix_modes: "ov".into(),
            prefix_chars: "@+".into(),
            chantypes: "#&".into(),
            chanmodes: ["beI".into(), "k".into(), "l".into()],
        }
    }
}

impl ServerInfo {
    pub fn has(&self, cap: Cap) -> bool {
        self.enabled.contains(cap_name(cap))
    }

    pub fn is_room(&self, name: &str) -> bool {
        name.chars().next().is_some_and(|c| self.chantypes.contains(c))
    }

    /// Applies one ISUPPORT token.
    fn isupport(&mut self, token: &str) {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        match key.to_ascii_uppercase().as_str() {
            "PREFIX" => {
                if let Some((modes, chars)) = value.strip_prefix('(').and_then(|v| v.split_once(')'))
                    && modes.len() == chars.len()
                {
                    self.prefix_modes = modes.to_string();
                    self.prefix_chars = chars.to_string();
                }
            }
            "CHANTYPES" => self.chantypes = value.to_string(),
            "CHANMODES" => {
                let mut parts = value.split(',');
                for slot in &mut self.chanmodes {
                    *slot = parts.next().unwrap_or("").to_string();
                }
            }
            "CHATHISTORY" | "DRAFT/CHATHISTORY" => self.chathistory = Some(value.parse().unwrap_or(0)),
            _ => {}
        }
    }
}

/// What the client was started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub nick: String,
    /// Rooms to join on connect.
    pub join: Vec<String>,
    /// The local time zone, for timestamps.
    pub utc_offset: UtcOffset,
    /// Passwords: a private server's, and an account to log in to.
    pub credentials: Credentials,
}

/// What the client proves when it connects.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The server's password (`charla serve --password`), sent as `PASS`.
    pub server_password: Option<String>,
    /// An account and its password, logged in to with SASL PLAIN before registration ends.
    pub login: Option<(String, String)>,
}

/// Which CHATHISTORY subcommand a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HistoryKind {
    Latest,
    Before,
    After,
}

/// A CHATHISTORY request waiting for its batch.
#[derive(Debug, Clone)]
struct HistoryRequest {
    kind: HistoryKind,
    limit: usize,
    anchor: String,
    /// Asked for with `/history`: how many more lines to ask for after this page, and how many
    /// the pages before it loaded.
    asked: Option<Asked>,
}

/// What `/history N` still wants.
#[derive(Debug, Clone, Copy)]
struct Asked {
    more: usize,
    loaded: usize,
}

/// A `chathistory` batch being received.
#[derive(Debug, Clone)]
struct Batch {
    target: String,
    messages: Vec<Message>,
}

/// The whole state of the terminal client.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    /// Our nick as the server knows it.
    pub nick: String,
    /// The nick to ask for on (re)connect: `--nick`, or the last one `/nick` got.
    preferred_nick: String,
    pub windows: Vec<Window>,
    pub current: usize,
    pub input: Input,
    pub link: Link,
    pub server: ServerInfo,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Folded nicks known to be away.
    pub away: HashSet<String>,
    registered: bool,
    /// `CAP LS` words collected over a multi-line reply.
    cap_ls: Vec<String>,
    batches: HashMap<String, Batch>,
    /// By folded target: at most one request in flight per window.
    history_requests: HashMap<String, HistoryRequest>,
    /// Show this room once our JOIN arrives (it was joined with /join).
    show_on_join: Option<String>,
    /// The connection has dropped at least once, so joins are rejoins.
    reconnecting: bool,
    /// Registration is under way, up to the end of the MOTD: its replies go to the server window.
    burst: bool,
    /// WHO replies since the last end of a WHO list.
    who_replies: usize,
    /// The local clock (milliseconds since the Unix epoch); tests set a fixed one.
    pub clock: fn() -> u64,
    /// Lines to send, collected while one call runs and returned by it.
    outgoing: Vec<Message>,
}

/// The nick in a `nick!user@host` source.
fn nick_of(source: Option<&str>) -> &str {
    let source = source.unwrap_or("");
    source.split(['!', '@']).next().unwrap_or(source)
}

fn param(message: &Message, i: usize) -> &str {
    message.params.get(i).map_or("", |p| p.as_str())
}

impl App {
    pub fn new(config: Config) -> App {
        let mut windows = vec![Window::new(&config.host, WindowKind::Server)];
        for room in &config.join {
            let mut window = Window::new(room, WindowKind::Room);
            window.rejoin = true;
            windows.push(window);
        }
        let mut app = App {
            nick: config.nick.clone(),
            preferred_nick: config.nick.clone(),
            current: usize::from(windows.len() > 1),
            windows,
            config,
            input: Input::default(),
            link: Link::Connecting,
            server: ServerInfo::default(),
            size: (80, 24),
            away: HashSet::new(),
            registered: false,
            cap_ls: Vec::new(),
            batches: HashMap::new(),
            history_requests: HashMap::new(),
            show_on_join: None,
            reconnecting: false,
            burst: false,
            who_replies: 0,
            clock: now_millis,
            outgoing: Vec::new(),
        };
        let hello = format!("charla connect: {}:{} — /help lists commands and keys", app.config.host, app.config.port);
        let hello = app.local(EntryKind::Info, hello);
        app.windows[0].push(hello);
        app
    }

    pub fn window(&self) -> &Window {
        &self.windows[self.current]
    }

    pub fn resize(&mut self, columns: u16, rows: u16) {
        self.size = (columns, rows);
    }

    // ---- the link ----

    /// A connection attempt starts.
    pub fn connecting(&mut self) {
        self.link = Link::Connecting;
    }

    /// The connection is up: forget what belonged to the last one and register.
    pub fn connected(&mut self) -> Vec<Message> {
        self.link = Link::Registering;
        self.registered = false;
        self.burst = true;
        self.server = ServerInfo::default();
        self.cap_ls.clear();
        self.batches.clear();
        self.history_requests.clear();
        self.nick = self.preferred_nick.clone();
        let user: String = self.nick.chars().filter(char::is_ascii_alphanumeric).take(10).collect();
        let user = if user.is_empty() { "charla".to_string() } else { user };
        let pass = self.config.credentials.server_password.as_deref().map(|p| Message::new("PASS", &[p]));
        pass.into_iter()
            .chain([
                Message::new("CAP", &["LS", "302"]),
                Message::new("NICK", &[&self.nick]),
                Message::new("USER", &[&user, "0", "*", "charla connect"]),
            ])
            .collect()
    }

    /// The connection dropped (or could not be made).
    pub fn disconnected(&mut self, reason: &str) {
        let was_up = matches!(self.link, Link::Registering | Link::Ready);
        self.link = Link::Lost(reason.to_string());
        self.registered = false;
        self.reconnecting = true;
        if !was_up {
            return;
        }
        let line = format!("Disconnected: {reason}. Reconnecting…");
        for i in 0..self.windows.len() {
            let window = &mut self.windows[i];
            window.history.pending = false;
            if window.kind == WindowKind::Query || i == 0 || window.joined {
                window.joined = false;
                self.add(i, self.local(EntryKind::Error, line.clone()));
            }
        }
    }

    /// The next connection attempt is `secs` seconds away.
    pub fn waiting(&mut self, secs: u64) {
        let reason = match &self.link {
            Link::Lost(reason) | Link::Waiting { reason, .. } => reason.clone(),
            _ => String::new(),
        };
        self.link = Link::Waiting { secs, reason };
    }

    // ---- lines from the server ----

    /// Applies one message from the server; returns the lines to send in answer.
    pub fn handle_irc(&mut self, message: &Message) -> Vec<Message> {
        if let Some(Some(reference)) = message.tag("batch")
            && let Some(batch) = self.batches.get_mut(reference)
        {
            batch.messages.push(message.clone());
            return Vec::new();
        }
        let source = nick_of(message.source.as_deref()).to_string();
        match message.command.to_ascii_uppercase().as_str() {
            "PING" => {
                self.send(Message { command: "PONG".into(), params: message.params.clone(), ..Message::default() })
            }
            "CAP" => self.on_cap(message),
            "AUTHENTICATE" if param(message, 0) == "+" => {
                if let Some((account, password)) = &self.config.credentials.login {
                    let plain = format!("{account}\0{account}\0{password}");
                    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
                    self.send(Message::new("AUTHENTICATE", &[&encoded]));
                }
            }
            RPL_LOGGEDIN => {
                let text = format!("Logged in as {}", clean(param(message, 2)));
                self.add(0, self.local(EntryKind::Info, text));
            }
            RPL_SASLSUCCESS if !self.registered => self.send(Message::new("CAP", &["END"])),
            ERR_SASLFAIL | ERR_SASLTOOLONG | ERR_SASLABORTED | ERR_NICKLOCKED => {
                let why = clean(message.params.last().map_or("", |p| p.as_str()));
                self.add(0, self.local(EntryKind::Error, format!("Login failed: {why}. Going on as a guest")));
                if !self.registered {
                    self.send(Message::new("CAP", &["END"]));
                }
            }
            ERR_PASSWDMISMATCH if !self.registered => {
                let text = "This server is private and refused the password: give it with --password-file FILE \
                            or CHARLA_SERVER_PASSWORD";
                self.add(0, self.local(EntryKind::Error, text.to_string()));
            }
            RPL_WELCOME => self.on_welcome(message),
            RPL_ISUPPORT => {
                let tokens = message.params.iter().skip(1).take(message.params.len().saturating_sub(2));
                for token in tokens {
                    self.server.isupport(token);
                }
            }
            RPL_ENDOFMOTD | ERR_NOMOTD => {
                self.burst = false;
                self.catch_up_queries();
            }
            ERR_ERRONEUSNICKNAME | ERR_NICKNAMEINUSE if !self.registered => {
                let taken = param(message, 1);
                self.nick =
                    if message.command == ERR_NICKNAMEINUSE { format!("{taken}_") } else { "guest".to_string() };
                let text = format!("Nick {taken} is not available; trying {}", self.nick);
                self.add(0, self.local(EntryKind::Info, clean(&text)));
                self.send(Message::new("NICK", &[&self.nick]));
            }
            ERR_NICKNAMEINUSE => {
                let taken = clean(param(message, 1));
                self.error(format!("Nick {taken} is taken; try /nick {taken}_"));
            }
            "JOIN" => self.on_join(&source, message),
            "PART" => self.on_part(&source, message),
            "QUIT" => self.on_quit(&source, message),
            "NICK" => self.on_nick(&source, message),
            "KICK" => self.on_kick(&source, message),
            "TOPIC" => {
                let room = param(message, 0);
                let i = self.room_window(room);
                let topic = clean(param(message, 1));
                self.windows[i].topic = (!topic.is_empty()).then(|| topic.clone());
                self.add_event(i, message);
            }
            RPL_TOPIC => {
                let i = self.room_window(param(message, 1));
                let topic = clean(param(message, 2));
                self.windows[i].topic = Some(topic.clone());
                self.add(i, self.local(EntryKind::Event, format!("Topic: {topic}")));
            }
            RPL_NOTOPIC => {
                let i = self.room_window(param(message, 1));
                self.windows[i].topic = None;
                self.on_numeric(message);
            }
            RPL_NAMREPLY => {
                let i = self.room_window(param(message, 2));
                let prefixes = self.server.prefix_chars.clone();
                let pending = self.windows[i].names_pending.get_or_insert_default();
                for name in param(message, 3).split(' ').filter(|n| !n.is_empty()) {
                    let status: String = name.chars().take_while(|c| prefixes.contains(*c)).collect();
                    let nick = nick_of(Some(&name[status.len()..]));
                    pending.insert(&clean(nick), &status);
                }
            }
            RPL_ENDOFNAMES => {
                if let Some(i) = self.find(param(message, 1)) {
                    let window = &mut self.windows[i];
                    window.members = window.names_pending.take().unwrap_or_default();
                }
            }
            "PRIVMSG" | "NOTICE" => self.on_privmsg(&source, message),
            "AWAY" => {
                if message.params.is_empty() {
                    self.away.remove(&fold(&source));
                } else {
                    self.away.insert(fold(&source));
                }
            }
            "MODE" => self.on_mode(message),
            "INVITE" => {
                let room = clean(param(message, 1));
                self.info(format!("{source} invites you to {room}: /join {room} to accept"));
            }
            "BATCH" => self.on_batch(message),
            "FAIL" => self.on_fail(message),
            "WARN" | "NOTE" => self.info(clean(&message.params.join(" "))),
            "ERROR" => self.add(0, self.local(EntryKind::Error, clean(param(message, 0)))),
            RPL_WHOREPLY => self.on_who_reply(message),
            RPL_ENDOFWHO => {
                let mask = clean(param(message, 1));
                let text = match std::mem::take(&mut self.who_replies) {
                    0 if self.server.is_room(&mask) => format!("No one is in {mask}."),
                    0 => format!("No one matches {mask}."),
                    n if self.server.is_room(&mask) => format!("{n} in {mask}"),
                    n => format!("{n} found for {mask}"),
                };
                self.info(text);
            }
            RPL_LISTSTART => self.on_list_start(),
            RPL_LIST => self.on_list(message),
            RPL_LISTEND => self.on_list_end(),
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => self.on_numeric(message),
            _ => {}
        }
        std::mem::take(&mut self.outgoing)
    }

    /// Queues a line for the server; the current call returns it.
    fn send(&mut self, message: Message) {
        self.outgoing.push(message);
    }

    fn send_all(&mut self, messages: impl IntoIterator<Item = Message>) {
        self.outgoing.extend(messages);
    }

    fn on_cap(&mut self, message: &Message) {
        let words = |i: usize| -> Vec<String> {
            param(message, i)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| w.split('=').next().unwrap_or(w).to_ascii_lowercase())
                .collect()
        };
        match param(message, 1).to_ascii_uppercase().as_str() {
            "LS" => {
                let more = param(message, 2) == "*";
                self.cap_ls.extend(words(if more { 3 } else { 2 }));
                if more || self.registered {
                    return;
                }
                self.server.offered = self.cap_ls.drain(..).collect();
                let mut wanted: Vec<&str> =
                    WANTED_CAPS.iter().map(|c| cap_name(*c)).filter(|c| self.server.offered.contains(*c)).collect();
                if self.config.credentials.login.is_some() {
                    if self.server.offered.contains("sasl") {
                        wanted.push("sasl");
                    } else {
                        self.error("This server offers no SASL: not logged in".into());
                    }
                }
                if wanted.is_empty() {
                    self.send(Message::new("CAP", &["END"]));
                } else {
                    self.send(Message::new("CAP", &["REQ", &wanted.join(" ")]));
                }
            }
            "ACK" => {
                for cap in words(2) {
                    match cap.strip_prefix('-') {
                        Some(off) => {
                            self.server.enabled.remove(off);
                        }
                        None => {
                            if caps::by_name(&cap) == Some(Cap::Chathistory) && self.server.chathistory.is_none() {
                                self.server.chathistory = Some(0);
                            }
                            self.server.enabled.insert(cap);
                        }
                    }
                }
                if !self.registered {
                    // Logging in first: the server's answer ends the negotiation.
                    let login = self.config.credentials.login.is_some() && self.server.enabled.contains("sasl");
                    self.send(Message::new(
                        if login { "AUTHENTICATE" } else { "CAP" },
                        &[if login { "PLAIN" } else { "END" }],
                    ));
                }
            }
            "NAK" if !self.registered => self.send(Message::new("CAP", &["END"])),
            "NEW" => {
                let new: Vec<String> = words(2)
                    .into_iter()
                    .filter(|c| caps::by_name(c).is_some_and(|c| WANTED_CAPS.contains(&c)))
                    .filter(|c| !self.server.enabled.contains(c))
                    .collect();
                self.server.offered.extend(new.iter().cloned());
                if !new.is_empty() {
                    self.send(Message::new("CAP", &["REQ", &new.join(" ")]));
                }
            }
            "DEL" => {
                for cap in words(2) {
                    self.server.enabled.remove(&cap);
                    self.server.offered.remove(&cap);
                }
            }
            _ => {}
        }
    }

    fn on_welcome(&mut self, message: &Message) {
        self.registered = true;
        self.link = Link::Ready;
        self.nick = clean(param(message, 0));
        self.add(0, self.local(EntryKind::Info, clean(param(message, 1))));
        let rooms: Vec<String> =
            self.windows.iter().filter(|w| w.kind == WindowKind::Room && w.rejoin).map(|w| w.name.clone()).collect();
        let mut line = String::new();
        for room in rooms {
            if !line.is_empty() && line.len() + room.len() > MAX_TEXT {
                self.send(Message::new("JOIN", &[&line]));
                line.clear();
            }
            if !line.is_empty() {
                line.push(',');
            }
            line.push_str(&room);
        }
        if !line.is_empty() {
            self.send(Message::new("JOIN", &[&line]));
        }
    }

    /// After a reconnect, asks for what private conversations missed.
    fn catch_up_queries(&mut self) {
        if !self.reconnecting {
            return;
        }
        for i in 0..self.windows.len() {
            if self.windows[i].kind == WindowKind::Query {
                self.catch_up(i, self.windows[i].newest_anchor());
            }
        }
    }

    /// Asks for what window `i` missed after `anchor` (its newest line before the connection
    /// dropped; without one, its latest lines), or says it cannot.
    fn catch_up(&mut self, i: usize, anchor: Option<String>) {
        if self.server.chathistory.is_none() {
            if self.reconnecting && self.windows[i].entries.iter().any(Entry::is_message) {
                let text = "Rejoined. This server keeps no history: anything said while you were away is not shown.";
                self.add(i, self.local(EntryKind::Info, text));
            }
            return;
        }
        let request = match anchor {
            Some(anchor) => self.history_request(i, HistoryKind::After, anchor, CATCH_UP_PAGE),
            None => self.history_request(i, HistoryKind::Latest, "*".into(), HISTORY_PAGE),
        };
        self.send_all(request);
    }

    /// Builds a CHATHISTORY request for window `i` and remembers it; `None` if one is in flight.
    fn history_request(&mut self, i: usize, kind: HistoryKind, anchor: String, want: usize) -> Option<Message> {
        let limit = match self.server.chathistory? {
            0 => want,
            max => want.min(max),
        };
        let window = &mut self.windows[i];
        if window.history.pending {
            return None;
        }
        window.history.pending = true;
        let target = window.name.clone();
        self.history_requests
            .insert(fold(&target), HistoryRequest { kind, limit, anchor: anchor.clone(), asked: None });
        let sub = match kind {
            HistoryKind::Latest => "LATEST",
            HistoryKind::Before => "BEFORE",
            HistoryKind::After => "AFTER",
        };
        Some(Message::new("CHATHISTORY", &[sub, &target, &anchor, &limit.to_string()]))
    }

    fn on_join(&mut self, source: &str, message: &Message) {
        let room = param(message, 0);
        let i = self.room_window(room);
        if fold(source) == fold(&self.nick) {
            let window = &mut self.windows[i];
            window.joined = true;
            window.rejoin = true;
            window.members.clear();
            window.name = clean(room);
            if self.show_on_join.as_deref().is_some_and(|r| fold(r) == fold(room)) {
                self.show_on_join = None;
                self.show(i);
            }
            // What was seen before this join, not the join itself, anchors the catch-up.
            let anchor = self.windows[i].newest_anchor();
            // With the JOIN's msgid and time, so the same join coming back in a history batch
            // (LATEST on a first join, AFTER on a rejoin) is recognised and not shown again.
            if let Some(mut entry) = self.describe(message) {
                entry.text = format!("You joined {}", clean(room));
                self.add(i, entry);
            }
            self.catch_up(i, anchor);
        } else {
            self.windows[i].members.insert(&clean(source), "");
            self.away.remove(&fold(source));
            self.add_event(i, message);
        }
    }

    /// One line of a WHO reply: `@ana is ~ana@host (Ana)`, noting who is away.
    fn on_who_reply(&mut self, message: &Message) {
        let (user, host, nick, flags) = (param(message, 2), param(message, 3), param(message, 5), param(message, 6));
        let away = flags.starts_with('G');
        if away {
            self.away.insert(fold(nick));
        } else {
            self.away.remove(&fold(nick));
        }
        self.who_replies += 1;
        let status: String = flags.chars().filter(|c| self.server.prefix_chars.contains(*c)).collect();
        // The trailing parameter is `HOPCOUNT REALNAME`.
        let real = param(message, 7).split_once(' ').map_or("", |(_, r)| r);
        let away = if away { ", away" } else { "" };
        self.info(clean(&format!("{status}{nick} is {user}@{host} ({real}){away}")));
    }

    /// The room list's window, opened if needed.
    fn rooms_window(&mut self) -> usize {
        match self.windows.iter().position(|w| w.kind == WindowKind::Rooms) {
            Some(i) => i,
            None => {
                self.windows.push(Window::new(ROOM_LIST, WindowKind::Rooms));
                self.windows.len() - 1
            }
        }
    }

    fn on_list_start(&mut self) {
        let i = self.rooms_window();
        let window = &mut self.windows[i];
        window.list.rooms.clear();
        window.list.loading = true;
        window.list.selected = 0;
        window.entries.clear();
    }

    /// `322 me #room USERS :topic`; some servers send no 321 before the first.
    fn on_list(&mut self, message: &Message) {
        let i = self.rooms_window();
        if !self.windows[i].list.loading {
            self.on_list_start();
        }
        let topic = clean(param(message, 3));
        // `[+nt] topic`: the room's modes, which some servers put in front.
        let topic = match topic.strip_prefix("[+").and_then(|t| t.split_once("] ")) {
            Some((_, rest)) => rest.to_string(),
            None if topic.starts_with("[+") && topic.ends_with(']') => String::new(),
            None => topic,
        };
        let users = param(message, 2).parse().unwrap_or(0);
        self.windows[i].list.rooms.push(Listed { name: clean(param(message, 1)), users, topic });
    }

    fn on_list_end(&mut self) {
        let i = self.rooms_window();
        let list = &mut self.windows[i].list;
        list.loading = false;
        list.sort();
    }

    fn on_part(&mut self, source: &str, message: &Message) {
        let Some(i) = self.find(param(message, 0)) else {
            return;
        };
        if fold(source) == fold(&self.nick) {
            self.close(i);
        } else {
            self.windows[i].members.remove(source);
            self.add_event(i, message);
        }
    }

    fn on_quit(&mut self, source: &str, message: &Message) {
        for i in 0..self.windows.len() {
            let window = &mut self.windows[i];
            let here = match window.kind {
                WindowKind::Room => window.members.remove(source),
                WindowKind::Query => window.is(source),
                WindowKind::Server | WindowKind::Rooms => false,
            };
            if here {
                self.add_event(i, message);
            }
        }
        self.away.remove(&fold(source));
    }

    fn on_nick(&mut self, source: &str, message: &Message) {
        let new = clean(param(message, 0));
        let me = fold(source) == fold(&self.nick);
        if me {
            self.nick = new.clone();
            self.preferred_nick = new.clone();
        }
        let renamed_window_exists = self.find(&new).is_some();
        for i in 0..self.windows.len() {
            let window = &mut self.windows[i];
            let here = match window.kind {
                WindowKind::Room => window.members.rename(source, &new),
                WindowKind::Query if window.is(source) => {
                    if !renamed_window_exists {
                        window.name = new.clone();
                    }
                    true
                }
                WindowKind::Query | WindowKind::Rooms => false,
                WindowKind::Server => me,
            };
            if here {
                self.add_event(i, message);
            }
        }
        if self.away.remove(&fold(source)) {
            self.away.insert(fold(&new));
        }
    }

    fn on_kick(&mut self, source: &str, message: &Message) {
        let Some(i) = self.find(param(message, 0)) else {
            return;
        };
        let target = param(message, 1);
        if fold(target) == fold(&self.nick) {
            let window = &mut self.windows[i];
            window.joined = false;
            window.rejoin = false;
            window.members.clear();
            let text = format!("You were kicked by {} ({})", clean(source), clean(param(message, 2)));
            self.add(i, self.local(EntryKind::Error, text));
        } else {
            self.windows[i].members.remove(target);
            self.add_event(i, message);
        }
    }

    fn on_privmsg(&mut self, source: &str, message: &Message) {
        let from_server = !message.source.as_deref().unwrap_or("").contains('!');
        let target = param(message, 0).trim_start_matches(|c| self.server.prefix_chars.contains(c));
        let text = param(message, 1);
        if let Some(ctcp) = text.strip_prefix('\x01').filter(|t| !t.starts_with("ACTION")) {
            return self.on_ctcp(source, message.command == "PRIVMSG", ctcp.trim_end_matches('\x01'));
        }
        let i = if from_server || !self.registered || target == "*" {
            0
        } else if self.server.is_room(target) {
            self.room_window(target)
        } else if fold(source) == fold(&self.nick) {
            self.query_window(target)
        } else {
            self.query_window(source)
        };
        let Some(mut entry) = self.describe(message) else {
            return;
        };
        let private = self.windows[i].kind == WindowKind::Query;
        entry.highlight = fold(source) != fold(&self.nick) && (private || mentions(&entry.text, &self.nick));
        self.add(i, entry);
    }

    /// A CTCP request or reply other than ACTION: answers VERSION and PING, shows the rest.
    fn on_ctcp(&mut self, source: &str, request: bool, ctcp: &str) {
        let (command, args) = ctcp.split_once(' ').unwrap_or((ctcp, ""));
        let source = clean(source);
        if !request {
            return self.info(clean(&format!("CTCP {command} reply from {source}: {args}")));
        }
        let reply = match command.to_ascii_uppercase().as_str() {
            "VERSION" => format!("VERSION charla-{}", env!("CARGO_PKG_VERSION")),
            "PING" => format!("PING {args}"),
            _ => return,
        };
        self.add(0, self.local(EntryKind::Info, clean(&format!("CTCP {command} from {source}"))));
        self.send(Message::new("NOTICE", &[&source, &format!("\x01{reply}\x01")]));
    }

    fn on_mode(&mut self, message: &Message) {
        let target = param(message, 0);
        if !self.server.is_room(target) {
            return;
        }
        let i = self.room_window(target);
        let mut args = message.params.iter().skip(2);
        let mut adding = true;
        for c in param(message, 1).chars() {
            match c {
                '+' | '-' => adding = c == '+',
                c if self.server.prefix_modes.contains(c) => {
                    let Some(nick) = args.next() else { break };
                    let order = self.server.prefix_chars.clone();
                    let prefix = self.server.prefix_modes.find(c).and_then(|p| order.chars().nth(p));
                    if let (Some(prefix), Some(member)) = (prefix, self.windows[i].members.get_mut(nick)) {
                        let mut set: String = member.prefixes.chars().filter(|&p| p != prefix).collect();
                        if adding {
                            set.push(prefix);
                        }
                        member.prefixes = order.chars().filter(|p| set.contains(*p)).collect();
                    }
                }
                c if self.server.chanmodes[0].contains(c) || self.server.chanmodes[1].contains(c) => {
                    args.next();
                }
                c if adding && self.server.chanmodes[2].contains(c) => {
                    args.next();
                }
                _ => {}
            }
        }
        self.add_event(i, message);
    }

    fn on_batch(&mut self, message: &Message) {
        let reference = param(message, 0);
        if let Some(reference) = reference.strip_prefix('+') {
            if param(message, 1).eq_ignore_ascii_case("chathistory") {
                let batch = Batch { target: param(message, 2).to_string(), messages: Vec::new() };
                self.batches.insert(reference.to_string(), batch);
            }
        } else if let Some(batch) = reference.strip_prefix('-').and_then(|r| self.batches.remove(r)) {
            self.end_history(batch);
        }
    }

    /// A chathistory batch is complete: puts its lines in place and asks for the next page
    /// when a catch-up page came back full.
    fn end_history(&mut self, batch: Batch) {
        let request = self.history_requests.remove(&fold(&batch.target));
        let i = if self.server.is_room(&batch.target) {
            self.room_window(&batch.target)
        } else {
            self.query_window(&batch.target)
        };
        let count = batch.messages.len();
        let mut inserted = 0;
        let kind = request.as_ref().map(|r| r.kind);
        // A page older than the window goes in newest first, each line before the ones of the
        // same time (see `Window::insert_by_time`).
        let older = matches!(kind, Some(HistoryKind::Latest | HistoryKind::Before));
        let mut messages: Vec<&Message> = batch.messages.iter().collect();
        if older {
            messages.reverse();
        }
        for message in messages {
            let Some(mut entry) = self.describe(message) else {
                continue;
            };
            let source = nick_of(message.source.as_deref());
            entry.highlight = kind == Some(HistoryKind::After)
                && fold(source) != fold(&self.nick)
                && (self.windows[i].kind == WindowKind::Query || mentions(&entry.text, &self.nick));
            let rows = self.rows(i, &entry);
            let window = &mut self.windows[i];
            if window.insert_by_time(entry.clone(), older).is_none() {
                continue;
            }
            inserted += 1;
            // What was missed counts as unread; what is older than the window does not.
            if kind == Some(HistoryKind::After) {
                if i != self.current && entry.is_message() {
                    window.unread += 1;
                    window.highlight |= entry.highlight;
                }
                if window.scroll > 0 {
                    window.scroll += rows;
                }
            }
        }
        self.windows[i].history.pending = false;
        let Some(request) = request else {
            return;
        };
        let full = count >= request.limit;
        match request.kind {
            HistoryKind::After if full => {
                // The next page starts after this one's newest line, not after the window's
                // newest: live lines may have arrived since the rejoin.
                let next = batch.messages.iter().rev().find_map(|m| match (m.tag("msgid"), m.tag("time")) {
                    (Some(Some(id)), _) => Some(format!("msgid={id}")),
                    (_, Some(Some(time))) => Some(format!("timestamp={time}")),
                    _ => None,
                });
                if let Some(anchor) = next.filter(|a| *a != request.anchor) {
                    let request = self.history_request(i, HistoryKind::After, anchor, CATCH_UP_PAGE);
                    self.send_all(request);
                }
            }
            HistoryKind::Before | HistoryKind::Latest if !full => self.windows[i].history.exhausted = true,
            _ => {}
        }
        if let Some(asked) = request.asked {
            let loaded = asked.loaded + inserted;
            let next = if full && asked.more > 0 { self.history_page(i, asked.more, loaded) } else { None };
            match next {
                Some(next) => self.send(next),
                None => self.history_loaded(i, loaded),
            }
        }
    }

    /// `/history N` in window `i`: asks for up to `N` lines before the oldest one shown (the
    /// latest `N` when none is), or says why it cannot.
    fn load_history(&mut self, i: usize, n: usize) -> Option<Action> {
        let window = &self.windows[i];
        let name = window.name.clone();
        if !matches!(window.kind, WindowKind::Room | WindowKind::Query) {
            self.error("/history loads earlier lines of a room or a conversation: use it in its window.".into());
        } else if self.server.chathistory.is_none() {
            self.error(format!(
                "This server keeps no history for clients (it does not offer {}): there are no earlier lines to load.",
                cap_name(Cap::Chathistory)
            ));
        } else if window.history.pending {
            self.info(format!("Earlier lines of {name} are already on their way…"));
        } else if window.history.exhausted {
            self.info(format!("Nothing earlier: this is where the history of {name} starts."));
        } else {
            return self.history_page(i, n, 0).map(|request| Action::Send(vec![request]));
        }
        None
    }

    /// One page of a `/history` request: up to `more` lines before the oldest one in window
    /// `i`, after `loaded` lines the pages before it loaded.
    fn history_page(&mut self, i: usize, more: usize, loaded: usize) -> Option<Message> {
        let window = &self.windows[i];
        let (kind, anchor) = match window.oldest_anchor() {
            Some(anchor) => (HistoryKind::Before, anchor),
            None => (HistoryKind::Latest, "*".to_string()),
        };
        let target = fold(&window.name);
        let request = self.history_request(i, kind, anchor, more)?;
        if let Some(pending) = self.history_requests.get_mut(&target) {
            pending.asked = Some(Asked { more: more - pending.limit.min(more), loaded });
        }
        Some(request)
    }

    /// A `/history` request is done: shows the first line it loaded at the top of the pane, or
    /// says there was nothing.
    fn history_loaded(&mut self, i: usize, loaded: usize) {
        if loaded == 0 {
            let text = format!("Nothing earlier: this is where the history of {} starts.", self.windows[i].name);
            return self.add(i, self.local(EntryKind::Info, text));
        }
        let width = ui::message_width(self.size.0, self.size.1);
        let total = ui::total_rows(&self.windows[i], width, self.config.utc_offset);
        self.windows[i].scroll = total.saturating_sub(self.page());
    }

    /// `FAIL COMMAND CODE [context…] :description` (IRCv3 standard replies).
    fn on_fail(&mut self, message: &Message) {
        let description = clean(message.params.last().map_or("", |p| p.as_str()));
        if param(message, 0).eq_ignore_ascii_case("CHATHISTORY") {
            // The target is among the context params; stop asking for it.
            let failed: Vec<String> =
                message.params.iter().map(|p| fold(p)).filter(|p| self.history_requests.contains_key(p)).collect();
            let failed = if failed.is_empty() { self.history_requests.keys().cloned().collect() } else { failed };
            for key in failed {
                self.history_requests.remove(&key);
                if let Some(i) = self.find(&key) {
                    self.windows[i].history = super::window::HistoryState { pending: false, exhausted: true };
                }
            }
            let text = format!("History is not available: {description}");
            return self.add(0, self.local(EntryKind::Error, text));
        }
        self.error(description);
    }

    /// A numeric reply without state of its own, as [`replies`] reads it: in the window of the
    /// room or nick it is about if one is open, else the server window during registration and
    /// the window the user is looking at after it.
    fn on_numeric(&mut self, message: &Message) {
        let Some(reply) = replies::read(message, self.config.utc_offset) else {
            return;
        };
        let i = match reply.about.as_deref().and_then(|name| self.find(name)) {
            Some(i) => i,
            None if reply.kind == EntryKind::Error => self.current,
            None if self.burst => 0,
            None => self.looking_at(),
        };
        self.add(i, self.local(reply.kind, reply.text));
    }

    /// The window the user is looking at, or the server window for the room list (whose pane
    /// shows rooms, not lines).
    fn looking_at(&self) -> usize {
        if self.window().kind == WindowKind::Rooms { 0 } else { self.current }
    }

    /// The entry a message shows as, without changing any state (used for live lines and
    /// for history, where a JOIN from last week must not add a member today).
    fn describe(&self, message: &Message) -> Option<Entry> {
        let nick = clean(nick_of(message.source.as_deref()));
        let reason = |i: usize| {
            let text = clean(param(message, i));
            if text.is_empty() { String::new() } else { format!(" ({text})") }
        };
        let (kind, text) = match message.command.to_ascii_uppercase().as_str() {
            "PRIVMSG" | "NOTICE" => {
                let text = param(message, 1);
                match text.strip_prefix("\x01ACTION") {
                    Some(action) => {
                        (EntryKind::Action { nick }, clean(action.trim_start_matches(' ').trim_end_matches('\x01')))
                    }
                    None if text.starts_with('\x01') => return None,
                    None if message.command.eq_ignore_ascii_case("NOTICE") => (EntryKind::Notice { nick }, clean(text)),
                    None => (EntryKind::Message { nick }, clean(text)),
                }
            }
            "JOIN" => (EntryKind::Event, format!("--> {nick} joined {}", clean(param(message, 0)))),
            "PART" => (EntryKind::Event, format!("<-- {nick} left {}{}", clean(param(message, 0)), reason(1))),
            "QUIT" => (EntryKind::Event, format!("<-- {nick} quit{}", reason(0))),
            "NICK" => (EntryKind::Event, format!("{nick} is now known as {}", clean(param(message, 0)))),
            "KICK" => (EntryKind::Event, format!("{nick} kicked {}{}", clean(param(message, 1)), reason(2))),
            "TOPIC" if param(message, 1).is_empty() => (EntryKind::Event, format!("{nick} removed the topic")),
            "TOPIC" => (EntryKind::Event, format!("{nick} changed the topic to: {}", clean(param(message, 1)))),
            "MODE" => {
                let changes = message.params.get(1..).unwrap_or_default().join(" ");
                (EntryKind::Event, format!("{nick} sets mode {}", clean(&changes)))
            }
            _ => return None,
        };
        let time = message.tag("time").flatten().and_then(parse_time);
        Some(Entry {
            time: time.unwrap_or_else(self.clock),
            key: 0,
            server_time: time.is_some(),
            msgid: message.tag("msgid").flatten().map(str::to_string),
            kind,
            text,
            highlight: false,
        })
    }

    fn add_event(&mut self, i: usize, message: &Message) {
        if let Some(entry) = self.describe(message) {
            self.add(i, entry);
        }
    }

    /// Appends a live entry to window `i`: counts it as unread there, and keeps the view still
    /// when the window is scrolled up.
    fn add(&mut self, i: usize, entry: Entry) {
        let rows = self.rows(i, &entry);
        let current = i == self.current;
        let window = &mut self.windows[i];
        let (message, highlight) = (entry.is_message(), entry.highlight);
        if window.push(entry).is_none() {
            return;
        }
        if !current && message {
            window.unread += 1;
            window.highlight |= highlight;
        }
        if window.scroll > 0 {
            window.scroll += rows;
        }
    }

    /// How many rows `entry` takes in window `i`'s message pane at the current size.
    fn rows(&self, i: usize, entry: &Entry) -> usize {
        let width = ui::message_width(self.size.0, self.size.1);
        ui::entry_rows(self.windows[i].entries.last(), entry, width, self.config.utc_offset)
    }

    /// A line of the client's own, stamped with the local clock.
    fn local(&self, kind: EntryKind, text: impl Into<String>) -> Entry {
        Entry::local(kind, text, (self.clock)())
    }

    /// Shows a problem of the client's own (not from the server) in the current window.
    pub fn report(&mut self, text: &str) {
        self.error(text.to_string());
    }

    /// Information for the user, in the window they are looking at.
    /// Something the user should read, in the server window.
    pub fn notice(&mut self, text: String) {
        self.add(0, self.local(EntryKind::Info, text));
    }

    fn info(&mut self, text: String) {
        self.add(self.looking_at(), self.local(EntryKind::Info, text));
    }

    /// A problem, in the window the user is looking at; in the room list, at its foot.
    fn error(&mut self, text: String) {
        self.add(self.current, self.local(EntryKind::Error, text));
    }

    // ---- windows ----

    /// The index of the room or conversation window named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        let mut windows = self.windows.iter().enumerate().skip(1);
        windows.find(|(_, w)| w.kind != WindowKind::Rooms && w.is(name)).map(|(i, _)| i)
    }

    fn window_for(&mut self, name: &str, kind: WindowKind) -> usize {
        match self.find(name) {
            Some(i) => i,
            None => {
                self.windows.push(Window::new(&clean(name), kind));
                self.windows.len() - 1
            }
        }
    }

    fn room_window(&mut self, room: &str) -> usize {
        self.window_for(room, WindowKind::Room)
    }

    /// The private conversation with `nick`, opened (and its recent history asked for) if new.
    fn query_window(&mut self, nick: &str) -> usize {
        if let Some(i) = self.find(nick) {
            return i;
        }
        let i = self.window_for(nick, WindowKind::Query);
        let request = self.history_request(i, HistoryKind::Latest, "*".into(), HISTORY_PAGE);
        self.send_all(request);
        i
    }

    /// Shows window `i` and marks it read.
    pub fn show(&mut self, i: usize) {
        if i < self.windows.len() {
            self.current = i;
            self.windows[i].unread = 0;
            self.windows[i].highlight = false;
        }
    }

    /// Removes window `i` (never the server window), showing a neighbour if it was current.
    fn close(&mut self, i: usize) {
        if i == 0 || i >= self.windows.len() {
            return;
        }
        let window = self.windows.remove(i);
        self.history_requests.remove(&fold(&window.name));
        if self.current == i {
            self.show(i - 1);
        } else if self.current > i {
            self.current -= 1;
        }
    }
}

// ---- keys and commands ----

impl App {
    /// Applies one key press; returns what to send, or that it is time to quit.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if self.window().kind == WindowKind::Rooms && !self.input.text().starts_with('/') {
            return self.room_list_key(key);
        }
        self.edit_key(key)
    }

    /// A key in the room list: ↑ ↓ PgUp PgDn choose a room, Enter joins it, and what is typed
    /// filters the list (the choice starts again at the first room that matches).
    fn room_list_key(&mut self, key: KeyEvent) -> Option<Action> {
        let page = self.page().saturating_sub(3).max(1);
        let filter = self.input.text();
        let i = self.current;
        let list = &mut self.windows[i].list;
        let last = list.matching(&filter).len().saturating_sub(1);
        let plain = key.modifiers.difference(KeyModifiers::SHIFT).is_empty();
        match key.code {
            KeyCode::Up if plain => list.selected = list.selected.min(last).saturating_sub(1),
            KeyCode::Down if plain => list.selected = (list.selected + 1).min(last),
            KeyCode::PageUp => list.selected = list.selected.min(last).saturating_sub(page),
            KeyCode::PageDown => list.selected = (list.selected + page).min(last),
            KeyCode::Enter => return self.join_chosen(),
            _ => {
                let action = self.edit_key(key);
                if self.input.text() != filter {
                    self.windows[i].list.selected = 0;
                }
                return action;
            }
        }
        None
    }

    /// Any other key: window switching and editing the input line.
    fn edit_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Enter => return self.submit(),
            KeyCode::Tab => self.complete(),
            KeyCode::PageUp => return self.scroll_up(),
            KeyCode::PageDown => self.scroll_down(),
            KeyCode::Char('c') if ctrl => return Some(Action::Quit("Leaving".into())),
            KeyCode::Char('n') if ctrl => self.show((self.current + 1) % self.windows.len()),
            KeyCode::Char('p') if ctrl => self.show((self.current + self.windows.len() - 1) % self.windows.len()),
            KeyCode::Right if alt => self.show((self.current + 1) % self.windows.len()),
            KeyCode::Left if alt => self.show((self.current + self.windows.len() - 1) % self.windows.len()),
            KeyCode::Char(digit @ '0'..='9') if alt => {
                let n = digit.to_digit(10).unwrap_or(0) as usize;
                self.show(if n == 0 { 9 } else { n - 1 });
            }
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word(),
            KeyCode::Char('u') if ctrl => self.input.delete_to_start(),
            KeyCode::Char('k') if ctrl => self.input.delete_to_end(),
            KeyCode::Char(c) if !ctrl && !alt => self.input.insert(&c.to_string()),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.history_up(),
            KeyCode::Down => self.input.history_down(),
            _ => {}
        }
        None
    }

    /// Enter in the room list: joins the chosen room (or shows it, if joined), or the room
    /// typed when none matches it.
    fn join_chosen(&mut self) -> Option<Action> {
        let typed = self.input.text();
        let room = match self.window().list.chosen(&typed) {
            Some(room) => room.name.clone(),
            None if typed.trim().is_empty() => return None,
            None if typed.trim().contains(' ') => {
                self.error(
                    "A room's name has no spaces: type part of one to find it, or a new name to create it.".into(),
                );
                return None;
            }
            None => typed.trim().to_string(),
        };
        if self.link != Link::Ready {
            self.error("Not connected: press Enter again once reconnected.".into());
            return None;
        }
        self.input.set("");
        self.command(&format!("join {room}"))
    }

    /// Pasted text goes into the input line, line breaks as spaces: a paste never sends.
    pub fn handle_paste(&mut self, text: &str) {
        let text: String = text.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
        self.input.insert(&plain(&text));
    }

    /// Enter: runs a command or says the line in the current window.
    fn submit(&mut self) -> Option<Action> {
        let line = self.input.text();
        if line.trim().is_empty() {
            return None;
        }
        let command = line.strip_prefix('/').filter(|rest| !rest.starts_with('/'));
        let offline_ok = command
            .and_then(|c| c.split(' ').next())
            .is_some_and(|c| matches!(c.to_ascii_lowercase().as_str(), "help" | "quit" | "close" | "query"));
        if self.link != Link::Ready && !offline_ok {
            self.error("Not connected: your line is kept; press Enter again once reconnected.".into());
            return None;
        }
        let line = self.input.submit();
        self.windows[self.current].scroll = 0;
        let action = match command {
            Some(command) => self.command(command),
            None => {
                let text = line.strip_prefix('/').unwrap_or(&line).to_string();
                self.say(&text, false)
            }
        };
        let mut lines = std::mem::take(&mut self.outgoing);
        match action {
            Some(Action::Send(more)) => {
                lines.extend(more);
                Some(Action::Send(lines))
            }
            Some(quit) => Some(quit),
            None if lines.is_empty() => None,
            None => Some(Action::Send(lines)),
        }
    }

    /// Says `text` (or does it, for `/me`) in the current window.
    fn say(&mut self, text: &str, action: bool) -> Option<Action> {
        let window = self.window();
        let target = window.name.clone();
        match window.kind {
            WindowKind::Server => {
                self.error(
                    "This is the server window: /join #ROOM to talk in a room, /msg NICK TEXT in private.".into(),
                );
                return None;
            }
            WindowKind::Room if !window.joined => {
                self.error(format!("You are not in {target}: /join {target}"));
                return None;
            }
            WindowKind::Rooms => {
                self.error("This is the room list: choose a room with ↑ ↓ and press Enter to join it.".into());
                return None;
            }
            _ => {}
        }
        self.message_to(self.current, &target, text, action)
    }

    /// PRIVMSGs carrying `text` to `target`, shown at once in window `i` unless the server
    /// will echo them (echo-message), in which case they appear with their msgid and time.
    fn message_to(&mut self, i: usize, target: &str, text: &str, action: bool) -> Option<Action> {
        let room = self.server.is_room(target);
        let mut lines = Vec::new();
        for piece in split_to_fit(text, MAX_TEXT.saturating_sub(target.len())) {
            let wire = if action { format!("\x01ACTION {piece}\x01") } else { piece.to_string() };
            lines.push(Message::new("PRIVMSG", &[target, &wire]).with_trailing_colon());
            if !self.server.has(Cap::EchoMessage) {
                let nick = self.nick.clone();
                let kind = if action { EntryKind::Action { nick } } else { EntryKind::Message { nick } };
                self.add(i, self.local(kind, clean(piece)));
            }
        }
        if !room && i != self.current {
            self.show(i);
        }
        Some(Action::Send(lines))
    }

    /// Runs a slash command (given without its `/`).
    fn command(&mut self, line: &str) -> Option<Action> {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let (first, after) = rest.split_once(' ').map_or((rest, ""), |(a, b)| (a, b.trim()));
        let window = self.window();
        let here = (window.kind == WindowKind::Room).then(|| window.name.clone());
        let send = |messages: Vec<Message>| Some(Action::Send(messages));
        match name.to_ascii_lowercase().as_str() {
            "join" | "j" if !first.is_empty() => {
                let room = if self.server.is_room(first) { first.to_string() } else { format!("#{first}") };
                match self.find(&room) {
                    Some(i) if self.windows[i].joined => {
                        self.show(i);
                        None
                    }
                    _ => {
                        self.show_on_join = Some(room.clone());
                        let mut params = vec![room.as_str()];
                        params.extend((!after.is_empty()).then_some(after));
                        send(vec![Message::new("JOIN", &params)])
                    }
                }
            }
            "part" | "leave" => {
                let (room, reason) =
                    if self.server.is_room(first) { (Some(first.to_string()), after) } else { (here, rest) };
                match room {
                    Some(room) => {
                        let mut params = vec![room.as_str()];
                        params.extend((!reason.is_empty()).then_some(reason));
                        self.forget(&room);
                        send(vec![Message::new("PART", &params)])
                    }
                    None => {
                        self.error("Not in a room: /part #ROOM".into());
                        None
                    }
                }
            }
            "close" => {
                let i = self.current;
                match self.window().kind {
                    WindowKind::Server => {
                        self.error("The server window stays; /quit to leave.".into());
                        None
                    }
                    WindowKind::Room if self.window().joined && self.link == Link::Ready => {
                        let room = self.window().name.clone();
                        self.forget(&room);
                        send(vec![Message::new("PART", &[&room])])
                    }
                    _ => {
                        self.close(i);
                        None
                    }
                }
            }
            "msg" | "m" if !first.is_empty() && !after.is_empty() => {
                let i = if self.server.is_room(first) { self.room_window(first) } else { self.query_window(first) };
                self.message_to(i, first, after, false)
            }
            "query" | "q" if !first.is_empty() && !self.server.is_room(first) => {
                let i = self.query_window(first);
                self.show(i);
                None
            }
            "me" if !rest.is_empty() => self.say(rest, true),
            "nick" if !first.is_empty() => send(vec![Message::new("NICK", &[first])]),
            "topic" | "t" => match here {
                Some(room) if rest.is_empty() => send(vec![Message::new("TOPIC", &[&room])]),
                Some(room) => send(vec![Message::new("TOPIC", &[&room, rest]).with_trailing_colon()]),
                None => {
                    self.error("Not in a room: /topic works in a room's window.".into());
                    None
                }
            },
            "who" | "names" => {
                let target = if first.is_empty() { here.unwrap_or_else(|| "*".into()) } else { first.to_string() };
                send(vec![Message::new("WHO", &[&target])])
            }
            "whois" | "wi" if !first.is_empty() => send(vec![Message::new("WHOIS", &[first])]),
            "list" | "rooms" => {
                let i = self.rooms_window();
                self.show(i);
                self.windows[i].list.loading = true;
                let mut params = Vec::new();
                params.extend((!first.is_empty()).then_some(first));
                send(vec![Message::new("LIST", &params)])
            }
            "history" => match rest.parse::<usize>() {
                Ok(n) if (1..=MAX_HISTORY).contains(&n) => self.load_history(self.current, n),
                _ if rest.is_empty() => self.load_history(self.current, DEFAULT_HISTORY),
                _ => {
                    self.error(format!("Usage: /history [N], N from 1 to {MAX_HISTORY} (default {DEFAULT_HISTORY})"));
                    None
                }
            },
            "away" if rest.is_empty() => send(vec![Message::new("AWAY", &[])]),
            "away" => send(vec![Message::new("AWAY", &[rest]).with_trailing_colon()]),
            "register" if !first.is_empty() && after.is_empty() => {
                send(vec![Message::new("REGISTER", &["*", "*", first])])
            }
            "login" if !first.is_empty() && !after.is_empty() && !after.contains(' ') => {
                // Kept for the connection's life: a reconnect logs in again.
                self.config.credentials.login = Some((first.to_string(), after.to_string()));
                send(vec![Message::new("AUTHENTICATE", &["PLAIN"])])
            }
            "quote" | "raw" if !rest.is_empty() => match Message::parse(rest) {
                Ok(message) => send(vec![message]),
                Err(error) => {
                    self.error(format!("Not sent: {error}"));
                    None
                }
            },
            "help" | "h" => {
                self.help();
                None
            }
            "quit" | "exit" => Some(Action::Quit(if rest.is_empty() { "Leaving".into() } else { rest.into() })),
            other => {
                let usage = COMMANDS.iter().find(|(n, _, _)| n[1..] == *other);
                match usage {
                    Some((_, usage, what)) => self.error(format!("Usage: {usage} ({what})")),
                    None => self.error(format!(
                        "Unknown command /{other}: /help lists commands; /quote sends a raw IRC line; //text says text"
                    )),
                }
                None
            }
        }
    }

    /// `/help`: commands and keys in the server window, which it shows with the start of the
    /// help at the top of the pane; its last line says how to get back.
    fn help(&mut self) {
        let from = self.current;
        let mut lines = vec!["Commands (Tab completes them):".to_string()];
        lines.extend(COMMANDS.iter().map(|(_, usage, what)| format!(" {usage:<17} {what}")));
        lines.push("Keys:".into());
        lines.extend(KEYS.iter().map(|(keys, what)| format!(" {keys:<17} {what}")));
        if from != 0 {
            let name = &self.windows[from].name;
            lines.push(match from {
                1..=8 => format!("Alt-{} goes back to {name}.", from + 1),
                9 => format!("Alt-0 goes back to {name}."),
                _ => format!("Ctrl-N and Ctrl-P lead back to {name} (window {}).", from + 1),
            });
        }
        let width = ui::message_width(self.size.0, self.size.1);
        let mut rows = 0;
        for line in lines {
            let entry = self.local(EntryKind::Info, line);
            rows += ui::entry_rows(self.windows[0].entries.last(), &entry, width, self.config.utc_offset);
            self.add(0, entry);
        }
        self.show(0);
        self.windows[0].scroll = rows.saturating_sub(self.page());
    }

    /// Stops rejoining a room the user is leaving.
    fn forget(&mut self, room: &str) {
        if let Some(i) = self.find(room) {
            self.windows[i].rejoin = false;
        }
    }

    /// Tab: completes a command at the start of the line, a room after `#`, else a nick of
    /// the current room (with `: ` after it at the start of the line); Tab again cycles.
    fn complete(&mut self) {
        if self.input.completing() {
            return self.input.next_completion();
        }
        let (start, word) = self.input.word_before_cursor();
        if word.is_empty() {
            return;
        }
        let lower = word.to_ascii_lowercase();
        let matching = |s: &&str| s.to_ascii_lowercase().starts_with(&lower);
        let (candidates, suffix): (Vec<String>, &'static str) = if start == 0 && word.starts_with('/') {
            (COMMANDS.iter().map(|(n, _, _)| *n).filter(matching).map(str::to_string).collect(), " ")
        } else if self.server.is_room(&word) {
            let rooms = self.windows.iter().filter(|w| w.kind == WindowKind::Room).map(|w| w.name.as_str());
            (rooms.filter(matching).map(str::to_string).collect(), " ")
        } else {
            let window = self.window();
            let mut nicks: Vec<String> = match window.kind {
                WindowKind::Room => window.members.nicks().map(str::to_string).collect(),
                WindowKind::Query => vec![window.name.clone()],
                WindowKind::Server | WindowKind::Rooms => Vec::new(),
            };
            nicks.retain(|n| fold(n) != fold(&self.nick) && matching(&n.as_str()));
            nicks.sort_by_key(|n| fold(n));
            (nicks, if start == 0 { ": " } else { " " })
        };
        self.input.start_completion(candidates, suffix);
    }

    /// Rows the message pane shows at once.
    fn page(&self) -> usize {
        ui::message_height(self.size.1).max(1)
    }

    /// PgUp: scrolls a page up; at the top of what is loaded, asks the server for older lines.
    fn scroll_up(&mut self) -> Option<Action> {
        let width = ui::message_width(self.size.0, self.size.1);
        let total = ui::total_rows(self.window(), width, self.config.utc_offset);
        let page = self.page();
        let top = total.saturating_sub(page);
        let window = &mut self.windows[self.current];
        window.scroll = (window.scroll + page.saturating_sub(1).max(1)).min(top);
        let has_history = matches!(window.kind, WindowKind::Room | WindowKind::Query);
        if window.scroll < top || window.history.exhausted || !has_history {
            return None;
        }
        let anchor = window.oldest_anchor();
        let request = match anchor {
            Some(anchor) => self.history_request(self.current, HistoryKind::Before, anchor, HISTORY_PAGE),
            None if window.entries.iter().any(Entry::is_message) => None,
            None => self.history_request(self.current, HistoryKind::Latest, "*".into(), HISTORY_PAGE),
        };
        request.map(|r| Action::Send(vec![r]))
    }

    /// PgDn: scrolls a page down, back to following new lines at the bottom.
    fn scroll_down(&mut self) {
        let page = self.page().saturating_sub(1).max(1);
        let window = &mut self.windows[self.current];
        window.scroll = window.scroll.saturating_sub(page);
    }
}
