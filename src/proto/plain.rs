//! The plain-text protocol: what `nc`, `telnet` and the original lab client speak.
//!
//! A line is said to the user's room; a line starting with `/` is a command (`//` sends a line
//! that starts with `/`). Output is for a human at a terminal: `<nick> text`, `* nick action`
//! and `-nick- notice` from users, `*** …` from the server (which no user's text can begin
//! with), `error: …` with a hint. A plain-text user is in one room at a time (`/join` moves them), so
//! every line they see belongs to the room they are typing into.
//!
//! A client that stays silent while the server sniffs is greeted as plain text, but bots and
//! some IRC clients wait for the server to speak first: when the first lines such a client
//! sends are an IRC registration ([`Late`]), its guest quits and the connection goes on as IRC.

mod accounts;
mod gate;

use crate::net::Peer;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::pin::pin;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;

use crate::chat::now_millis;
use crate::hub::event::FORMATS;
use crate::hub::modes::{self, ModeChange};
use crate::hub::text::{fold, strip_formatting};
use crate::hub::{
    self, Closed, ConnId, Event, EventKind, HubError, LOBBY, ListFilter, MsgKind, Out, Outbox, Registration, Target,
};
use crate::metrics::Speaks;
use crate::net::{Conn, Input, Limits, Line, Render};
use crate::proto::Shared;
use crate::proto::irc::sniff::Late;
use crate::store::{Include, RecordKind, Selector};

/// The greeting of the original lab server, kept word for word.
pub const WELCOME: &str = "Welcome to the chatroom!";

/// How long the first half of what may be an IRC registration (`NICK x` without its `USER …`)
/// is held back before it is taken for a person's line: an IRC client sends both at once.
const REGISTRATION_PAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The cache slot of plain-text renderings in [`Event::encoded`].
const FORMAT: usize = FORMATS - 1;

const HELP: &str = "\
commands:
  /nick NAME            change your nick
  /join #ROOM [KEY]     move to a room (created if new)
  /part [REASON]        leave your room (back to #lobby)
  /rooms [MASK]         list rooms (the first 100; #a* lists those starting with #a)
  /who [#ROOM]          list who is in your room (or another)
  /history [N]          the last N lines of your room (default 20), with times (UTC)
  /redact [REASON]      remove your last message in your room (from everyone's history)
  /msg NICK TEXT        private message
  /me TEXT              action (* you TEXT)
  /topic [TEXT]         show or set the room topic
  /away [MESSAGE]       mark yourself away (no message: back)
  /invite NICK [#ROOM]  invite someone to your room (or another)
  /kick NICK [REASON]   remove someone (room operators)
  /ban MASK, /unban MASK, /op NICK, /deop NICK, /voice NICK, /devoice NICK
  /mode [+i|+m|+k KEY|+l N|...]  show or change room modes (operators)
  /register PASSWORD    register your nick as an account (then it is yours alone)
  /login NAME PASSWORD  log in to your account (also /msg NickServ IDENTIFY NAME PASSWORD)
  /logout               log out of your account
  /cert add [FP], /cert list, /cert del FP  client certificates that log you in (SASL EXTERNAL)
  /oper NAME PASSWORD, /kill NICK [REASON]  server operators (see serve --oper)
  /kline [MINUTES] MASK [REASON], /unkline MASK  server operators: ban from the server
  /wallops TEXT         server operators: tell the IRC users who receive wallops (+w)
  /quit [REASON]        leave
  //TEXT                say a line that starts with /";

/// What a plain-text client is told when the server takes only TLS connections from its
/// address: one `***` line (`port`: ` to port N`, or empty).
pub fn tls_required(port: &str) -> String {
    format!(
        "*** This server accepts only encrypted connections: connect with TLS{port} (charla connect --tls HOST PORT, or openssl s_client -connect HOST:PORT).\n"
    )
}

/// The longest line a plain-text client may send: `--max-line`.
pub fn max_line(limits: &Limits) -> usize {
    limits.max_line
}

/// Runs a plain-text session with the client at `peer` until it leaves or the server closes it.
// An async block that owns `conn`, not an `async fn`: one would keep its arguments twice in its
// future, and every connection waits in it.
#[allow(clippy::manual_async_fn)]
pub fn run(mut conn: Conn, shared: Arc<Shared>, peer: Peer) -> impl Future<Output = ()> + Send {
    async move {
        // A private server greets first and lets in only those who give its password.
        let private = !hub::lock(&shared.hub).admits(None);
        if private {
            conn.outbox().push(Out::line(format!("{WELCOME}\n")));
            // Boxed: only private servers wait here, and every connection's future would carry it.
            match Box::pin(gate::wait(&mut conn, &shared)).await {
                gate::Door::Open => {}
                gate::Door::Gone => return conn.close("Closed".into(), &PlainRender { me: 0 }).await,
                gate::Door::Irc(held) => {
                    tracing::info!("{peer} registers with IRC");
                    conn.reopen(crate::proto::irc::MAX_LINE, Speaks::Irc, &held);
                    drop(tokio::spawn(crate::panics::connection(crate::proto::irc::run(conn, shared, peer))));
                    return;
                }
            }
        }
        // Registered and greeted in a function of its own, not here: a local borrowed here would
        // stay in every connection's future (see `Conn`'s module docs for why bytes count).
        let id = match register(&shared, &peer, conn.outbox(), private) {
            Ok(id) => id,
            Err(reason) => return conn.close(reason, &PlainRender { me: 0 }).await,
        };
        let render = PlainRender { me: id };
        let present = Present { id, shared: &shared };
        let session = Session { id, shared: &shared, outbox: conn.outbox().clone() };
        if let Some(motd) = shared.motd().filter(|motd| !motd.lines.is_empty()) {
            session.reply(motd.lines.join("\n"));
        }
        conn.writing_during(&render, shared.settled(Include::Messages)).await;
        session.join(LOBBY, None);

        let reason = 'session: {
            // Boxed: it happens once, and every connection's future would carry it.
            let mut next = match Box::pin(opening(&mut conn, &render)).await {
                Opening::Irc(lines) => {
                    tracing::info!("{peer} ({}) registers with IRC", hub::lock(&shared.hub).nick(id));
                    hub::lock(&shared.hub).quit(id, "Switched to IRC");
                    drop(present);
                    conn.reopen(crate::proto::irc::MAX_LINE, Speaks::Irc, &lines);
                    drop(tokio::spawn(crate::panics::connection(crate::proto::irc::run(conn, shared, peer))));
                    return;
                }
                Opening::Plain(lines, next) => {
                    if let Some(reason) = lines.iter().find_map(|line| session.handle(line)) {
                        break 'session reason;
                    }
                    next
                }
            };
            loop {
                let input = match next.take() {
                    Some(input) => input,
                    None => conn.next(&render).await,
                };
                let quit = match session.step(input) {
                    Step::Done(quit) => quit,
                    // Boxed: its waits are rare, and every connection's future would carry them.
                    Step::Wait(wait) => Box::pin(session.wait_then_handle(&mut conn, &render, wait)).await,
                };
                if let Some(reason) = quit {
                    break reason;
                }
                conn.writing_during(&render, shared.pace()).await;
            }
        };
        tracing::info!("{peer} ({}) left: {reason}", hub::lock(&shared.hub).nick(id));
        hub::lock(&shared.hub).quit(id, &reason);
        conn.close(reason, &render).await;
    }
}

/// Registers the plain-text client at `peer` with a guest nick and greets it; the id, or why
/// it was refused (said to the client too).
fn register(shared: &Shared, peer: &Peer, outbox: &Outbox, private: bool) -> Result<ConnId, String> {
    /// Every plain-text user's user name and real name, one copy for all of them (idle
    /// connections are counted in bytes).
    static NAMES: LazyLock<(Arc<str>, Arc<str>)> = LazyLock::new(|| ("plain".into(), "plain-text client".into()));
    let registration = Registration {
        nick: None,
        user: NAMES.0.clone(),
        host: peer.ip().to_string(),
        realname: NAMES.1.clone(),
        protocol: hub::Protocol::Plain,
        secure: peer.secure(),
        certfp: peer.client_cert().map(|fp| fp.to_string()),
        outbox: outbox.clone(),
    };
    let registered = hub::lock(&shared.hub).register(registration);
    let (id, nick) = registered.map_err(|e| {
        outbox.push(Out::line(format!("error: {e}\n")));
        e.to_string()
    })?;
    tracing::info!("{peer} connected as {nick}");
    let welcome = if private { "Welcome in." } else { WELCOME };
    let session = Session { id, shared, outbox: outbox.clone() };
    session.reply(format!("{welcome}\nYou are {nick} in {LOBBY}. Type to talk; /help lists commands."));
    Ok(id)
}

/// Handles one line from the plain-text user `id`, whose queue is `outbox`, as its session
/// does once the connection is open; returns the quit reason when the line ends the session.
/// Without a connection, so that the commands can be fuzzed (`fuzz/`).
pub fn handle_line(shared: &Shared, id: ConnId, outbox: &Outbox, line: &str) -> Option<String> {
    Session { id, shared, outbox: outbox.clone() }.handle(line)
}

/// What a session does with what its connection brought.
enum Step {
    /// Handled; the quit reason if the session ends.
    Done(Option<String>),
    /// To handle once a wait is over (see [`Session::wait_then_handle`]).
    Wait(Wait),
}

/// A line whose handling waits for something.
enum Wait {
    /// An account command (`/register`, `/login`, …): a password is hashed. Boxed: the step
    /// is kept in every connection's future while it waits.
    Account(Box<accounts::Command>),
    /// A history read (`/history`, `/join` with its replay, `/redact`): the store must hold
    /// everything said so far.
    Read(String),
}

/// How a greeted connection's first lines turned out (see [`Late`]).
enum Opening {
    /// An IRC client's registration: the lines go to its IRC session.
    Irc(Vec<String>),
    /// A person: the lines are said, then what came after them (if anything) is handled.
    Plain(Vec<String>, Option<Input>),
}

/// Reads a greeted connection's first lines until they tell an IRC registration from a
/// person's text. A separate future, not a variable of the session's loop: what it holds is
/// gone once it has answered, and every connection's future stays as small as before.
async fn opening(conn: &mut Conn, render: &PlainRender) -> Opening {
    let mut held: Vec<String> = Vec::new();
    loop {
        let input = if held.is_empty() {
            conn.next(render).await
        } else {
            // Boxed: a rare wait should not make every connection's future bigger.
            match Box::pin(tokio::time::timeout(REGISTRATION_PAIR_WAIT, conn.next(render))).await {
                Ok(input) => input,
                // Only half a registration came: it was a person's line after all.
                Err(_) => return Opening::Plain(held, None),
            }
        };
        let Input::Line(Line::Text(text)) = input else { return Opening::Plain(held, Some(input)) };
        held.push(text);
        let lines: Vec<&str> = held.iter().map(String::as_str).collect();
        match Late::judge(&lines) {
            Late::Undecided => {}
            Late::Irc => return Opening::Irc(held),
            Late::Plain => {
                let last = held.pop().map(|text| Input::Line(Line::Text(text)));
                return Opening::Plain(held, last);
            }
        }
    }
}

/// One plain-text user's command handling.
struct Session<'a> {
    id: ConnId,
    shared: &'a Shared,
    outbox: Outbox,
}

/// The user of a running session, taken out of the hub when the session ends without saying
/// why (its task panicked: see [`crate::panics`]), so no one is left talking to a nick whose
/// connection is gone; after the session's own quit it finds no user and does nothing.
struct Present<'a> {
    id: ConnId,
    shared: &'a Shared,
}

impl Drop for Present<'_> {
    fn drop(&mut self) {
        hub::lock(&self.shared.hub).quit(self.id, "Connection lost");
    }
}

/// How many others a join names; the rest are counted (a big room's list would flood the screen).
const JOIN_NAMES: usize = 10;

/// Rooms `/rooms` shows at most: a big server's list is narrowed down with a mask.
const ROOMS_SHOWN: usize = 100;

/// Lines `/history` shows without a count, and the most it shows.
const DEFAULT_HISTORY: usize = 20;
const MAX_HISTORY: usize = 500;

const DAY_MS: u64 = 86_400_000;

/// `HH:MM` (UTC) for a time of `today`, `YYYY-MM-DD HH:MM` for an older one.
fn clock(millis: u64, today: u64) -> String {
    let time = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(millis as i64);
    let (hour, minute) = (time.hour(), time.minute());
    if millis / DAY_MS == today {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{}-{:02}-{:02} {hour:02}:{minute:02}", time.year(), time.month() as u8, time.day())
    }
}

impl Session<'_> {
    /// Handles what the connection brought, unless it must wait for something first.
    fn step(&self, input: Input) -> Step {
        match input {
            Input::Line(Line::Text(text)) => match accounts::parse(&text) {
                Some(Ok(command)) => Step::Wait(Wait::Account(Box::new(command))),
                Some(Err(usage)) => {
                    self.usage(usage);
                    Step::Done(None)
                }
                None if text.starts_with("/history") || text.starts_with("/join") || text.starts_with("/redact") => {
                    Step::Wait(Wait::Read(text))
                }
                None => Step::Done(self.handle(&text)),
            },
            Input::Line(Line::TooLong) => {
                self.error(format!(
                    "line too long (over {} bytes); it was not sent. Split it into shorter lines.",
                    self.shared.limits().max_line
                ));
                Step::Done(None)
            }
            Input::Closed => Step::Done(Some("Connection closed".into())),
            Input::Stopped => Step::Done(Some(match self.outbox.closed() {
                Some(Closed::Overflow) => "SendQ exceeded (not reading fast enough)".into(),
                Some(closed) => closed.reason(),
                None => "Connection lost".into(),
            })),
        }
    }

    /// Handles a line once what it waits for is over, writing the queue meanwhile. Returns the
    /// quit reason when the session ends.
    async fn wait_then_handle(&self, conn: &mut Conn, render: &PlainRender, wait: Wait) -> Option<String> {
        match wait {
            Wait::Account(command) => {
                self.account(conn, render, *command).await;
                None
            }
            Wait::Read(line) => {
                conn.writing_during(render, self.shared.settled(Include::Messages)).await;
                self.handle(&line)
            }
        }
    }

    /// Runs an account command, writing the queue meanwhile.
    async fn account(&self, conn: &mut Conn, render: &PlainRender, command: accounts::Command) {
        // The address the user connected from, as the hub shows it: logins are throttled per
        // address.
        let ip = hub::lock(&self.shared.hub).source(self.id).host.parse();
        let ip = ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let answer = conn.writing_while(render, pin!(command.run(&self.shared.accounts, self.id, ip))).await;
        self.reply(answer);
    }

    fn reply(&self, text: impl Into<String>) {
        let mut text = text.into();
        text.push('\n');
        self.outbox.push(Out::line(text));
    }

    fn error(&self, text: impl std::fmt::Display) {
        self.reply(format!("error: {text}"));
    }

    /// The room this user is in (plain-text users are in at most one).
    fn room(&self) -> Option<String> {
        hub::lock(&self.shared.hub).rooms_of(self.id).into_iter().next()
    }

    /// Handles one line; returns the quit reason when the user leaves.
    fn handle(&self, line: &str) -> Option<String> {
        let Some(command) = line.strip_prefix('/').filter(|c| !c.starts_with('/')) else {
            let text = line.strip_prefix('/').unwrap_or(line);
            if !text.trim().is_empty() {
                self.say_in_room(MsgKind::Privmsg, text);
            }
            return None;
        };
        let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        let mut args = rest.split_whitespace();
        match name.to_ascii_lowercase().as_str() {
            "quit" | "exit" => return Some(if rest.is_empty() { "Quit".into() } else { format!("Quit: {rest}") }),
            "help" => self.reply(HELP),
            "nick" => match args.next() {
                Some(nick) => self.nick(nick),
                None => self.usage("/nick NAME"),
            },
            "join" => match args.next() {
                Some(room) => self.join(&room_name(room), args.next()),
                None => self.usage("/join #ROOM [KEY]"),
            },
            "part" | "leave" => self.part(rest),
            "rooms" | "list" => self.rooms(rest),
            "who" | "names" => self.who(args.next().map(room_name)),
            "history" => match rest.parse::<usize>() {
                Ok(count) if count > 0 => self.history(count.min(MAX_HISTORY), true),
                _ if rest.is_empty() => self.history(DEFAULT_HISTORY, true),
                _ => self.usage(&format!("/history [N], N from 1 to {MAX_HISTORY}")),
            },
            "redact" => self.redact_last(rest),
            "msg" | "query" => match rest.split_once(' ') {
                Some((to, text)) => self.say(to, MsgKind::Privmsg, text),
                None => self.usage("/msg NICK TEXT"),
            },
            "me" => self.say_in_room(MsgKind::Action, rest),
            "topic" => self.topic(rest),
            "away" => {
                let away = hub::lock(&self.shared.hub).set_away(self.id, Some(rest));
                self.reply(if away { "You are marked away." } else { "You are back." });
            }
            "invite" => match args.next() {
                Some(nick) => self.invite(nick, args.next().map(room_name)),
                None => self.usage("/invite NICK [#ROOM]"),
            },
            "kick" => match rest.split_once(' ').unwrap_or((rest, "")) {
                ("", _) => self.usage("/kick NICK [REASON]"),
                (nick, reason) => self.in_room(|hub, id, room| {
                    hub.kick(id, room, nick, reason.trim())?;
                    self.reply(format!("You removed {nick} from {room}."));
                    Ok(())
                }),
            },
            "ban" | "unban" | "op" | "deop" | "voice" | "devoice" => match args.next() {
                Some(arg) => self.mode_shortcut(name, arg),
                None => self.usage(&format!("/{name} {}", if name.ends_with("ban") { "MASK" } else { "NICK" })),
            },
            "mode" => self.mode(&args.collect::<Vec<_>>()),
            "oper" => match (args.next(), args.next()) {
                (Some(name), Some(password)) => match hub::lock(&self.shared.hub).oper(self.id, name, password) {
                    Ok(()) => self.reply("You are now a server operator."),
                    Err(e) => self.error(e),
                },
                _ => self.usage("/oper NAME PASSWORD"),
            },
            "wallops" if rest.is_empty() => self.usage("/wallops TEXT"),
            "wallops" => match hub::lock(&self.shared.hub).wallops(self.id, rest) {
                Ok(_) => self.reply("Wallops sent."),
                Err(e) => self.error(e),
            },
            "kill" => match rest.split_once(' ').unwrap_or((rest, "")) {
                ("", _) => self.usage("/kill NICK [REASON]"),
                (nick, reason) => {
                    if let Err(e) = hub::lock(&self.shared.hub).kill(self.id, nick, reason.trim()) {
                        self.error(e);
                    }
                }
            },
            _ => self.error(format!(
                "unknown command /{name}; /help lists the commands (start a line with // to say it as text)"
            )),
        }
        None
    }

    fn usage(&self, usage: &str) {
        self.error(format!("usage: {usage}"));
    }

    /// Runs `f` on the user's room, or explains that they are in none.
    fn in_room<T>(&self, f: impl FnOnce(&mut hub::Hub, ConnId, &str) -> Result<T, HubError>) {
        match self.room() {
            Some(room) => {
                if let Err(e) = f(&mut hub::lock(&self.shared.hub), self.id, &room) {
                    self.error(e);
                }
            }
            None => self.error(format!("you are in no room; /join {LOBBY}")),
        }
    }

    fn say_in_room(&self, kind: MsgKind, text: &str) {
        match self.room() {
            Some(room) => self.say(&room, kind, text),
            None => self.error(format!("you are in no room, so no one hears you; /join {LOBBY}")),
        }
    }

    fn say(&self, target: &str, kind: MsgKind, text: &str) {
        // Plain text has no CTCP: a \x01 typed (or piped) here is no request to IRC clients.
        // (An action is `/me`, which the IRC side frames itself.)
        let text = text.replace('\x01', "");
        let said = hub::lock(&self.shared.hub).say(self.id, target, kind, &text, Vec::new());
        match said {
            Ok(said) => {
                for event in &said.events {
                    if let EventKind::Message { target: Target::User(nick), text, .. } = &event.kind {
                        self.reply(format!("[private] to {nick}: {}", readable(text)));
                    }
                }
                if let Some(away) = said.away {
                    self.reply(format!("*** {target} is away: {away}"));
                }
                if let Some(notice) = said.history {
                    self.reply(format!("*** {notice}"));
                }
            }
            Err(e) => self.error(e),
        }
    }

    fn nick(&self, nick: &str) {
        // In a cluster the new nick is claimed on the bus first (not a change of case); the
        // answer comes when the claim is settled.
        if let Some(bus) = self.shared.bus.clone()
            && hub::text::fold(nick) != hub::text::fold(hub::lock(&self.shared.hub).nick(self.id))
        {
            let (hub, outbox, id, nick) = (self.shared.hub.clone(), self.outbox.clone(), self.id, nick.to_string());
            tokio::spawn(async move {
                let line = match bus.claim(&nick).await {
                    Err(()) => format!("error: {}", HubError::NickInUse(nick)),
                    Ok(fresh) => {
                        let changed = {
                            let mut hub = hub::lock(&hub);
                            if !hub.has_user(id) {
                                return;
                            }
                            hub.set_nick(id, &nick)
                        };
                        match changed {
                            Ok(_) => format!("You are now known as {nick}."),
                            Err(e) => {
                                if fresh {
                                    bus.release(&nick).await;
                                }
                                format!("error: {e}")
                            }
                        }
                    }
                };
                outbox.push(Out::line(line + "\n"));
            });
            return;
        }
        match hub::lock(&self.shared.hub).set_nick(self.id, nick) {
            Ok(_) => self.reply(format!("You are now known as {nick}.")),
            Err(e) => self.error(e),
        }
    }

    /// Moves to `room`: joins it, then leaves the previous one.
    fn join(&self, room: &str, key: Option<&str>) {
        let mut hub = hub::lock(&self.shared.hub);
        let previous = hub.rooms_of(self.id);
        match hub.join(self.id, room, key) {
            Ok(Some(joined)) => {
                for old in previous {
                    let _ = hub.part(self.id, &old, &format!("moved to {}", joined.room));
                }
                let (count, names) = hub.some_members(self.id, &joined.room, JOIN_NAMES);
                drop(hub);
                let mut text = format!("You are now in {}", joined.room);
                match count {
                    0 => text.push_str(" (no one else is here yet)."),
                    n if n > names.len() => {
                        let _ = write!(
                            text,
                            " with {} and {} more; /who lists everyone.",
                            names.join(", "),
                            n - names.len()
                        );
                    }
                    _ => {
                        let _ = write!(text, " with {}.", names.join(", "));
                    }
                }
                if let Some(topic) = joined.topic {
                    let _ = write!(text, "\nTopic: {}", readable(&topic.text));
                }
                self.reply(text);
                self.history(self.shared.history.join_replay, false);
            }
            Ok(None) => self.reply(format!("You are already in {room}.")),
            Err(e) => self.error(e),
        }
    }

    /// Shows the room's last `count` lines with their times. `asked`: the user typed /history
    /// (and wants to hear that there is none); otherwise it is the replay on join.
    fn history(&self, count: usize, asked: bool) {
        let Some(room) = self.room() else { return self.error(format!("you are in no room; /join {LOBBY}")) };
        if count == 0 {
            return;
        }
        match self.shared.store.history(&room, &Selector::Latest(None), count, Include::Messages) {
            Ok(records) => {
                // Each line as it read live (CTCP requests and the like render to nothing).
                let today = now_millis() / DAY_MS;
                let lines: Vec<String> = records
                    .iter()
                    .filter_map(|record| {
                        if record.redacted && record.kind != RecordKind::TagMsg {
                            return Some(format!(
                                "[{}] <{}> (message removed)",
                                clock(record.time(), today),
                                record.nick
                            ));
                        }
                        let lines = render(&Event::from_record(record));
                        let lines = String::from_utf8_lossy(&lines);
                        let time = clock(record.time(), today);
                        let lines: Vec<String> = lines.lines().map(|line| format!("[{time}] {line}")).collect();
                        (!lines.is_empty()).then(|| lines.join("\n"))
                    })
                    .collect();
                if lines.is_empty() {
                    if asked {
                        self.reply(format!("No messages in {room} yet."));
                    }
                    return;
                }
                let mut text = format!("--- last {} line(s) of {room} ---", lines.len());
                for line in lines {
                    let _ = write!(text, "\n{line}");
                }
                text.push_str("\n--- end of history ---");
                self.reply(text);
            }
            Err(e) => {
                tracing::warn!("history: /history in {room} failed: {e}");
                self.error(e.brief());
            }
        }
    }

    /// Redacts the user's last message in its room, if the store still has one said under its
    /// nick since it took it.
    fn redact_last(&self, reason: &str) {
        let Some(room) = self.room() else { return self.error(format!("you are in no room; /join {LOBBY}")) };
        let (nick, since) = {
            let hub = hub::lock(&self.shared.hub);
            (hub.nick(self.id).to_string(), hub.private_since(self.id))
        };
        let records = match self.shared.store.history(&room, &Selector::Latest(None), MAX_HISTORY, Include::Messages) {
            Ok(records) => records,
            Err(e) => return self.error(format!("history is unavailable: {e}")),
        };
        let last = records.iter().rev().find(|r| {
            !r.redacted && r.kind != RecordKind::TagMsg && r.id >= since && r.nick.eq_ignore_ascii_case(&nick)
        });
        let Some(last) = last else {
            return self.error(format!("you have said nothing in {room} lately that could be removed"));
        };
        match hub::lock(&self.shared.hub).redact(self.id, &room, last, reason) {
            Ok(_) => self.reply(format!("Your last message in {room} was removed.")),
            Err(e) => self.error(e),
        }
    }

    fn part(&self, reason: &str) {
        match self.room() {
            Some(room) if room.eq_ignore_ascii_case(LOBBY) => {
                self.error(format!("you are in {LOBBY}, the room everyone starts in; /join #ROOM to go elsewhere"));
            }
            Some(room) => {
                let _ = hub::lock(&self.shared.hub).part(self.id, &room, reason);
                self.reply(format!("You left {room}."));
                self.join(LOBBY, None);
            }
            None => self.join(LOBBY, None),
        }
    }

    /// The rooms whose names match `mask` (all if empty), the first [`ROOMS_SHOWN`] by name.
    fn rooms(&self, mask: &str) {
        let filter = if mask.is_empty() { ListFilter::default() } else { ListFilter::mask(mask) };
        let mut rooms = hub::lock(&self.shared.hub).list_rooms(self.id, &filter);
        let count = rooms.len();
        if count > ROOMS_SHOWN {
            rooms.select_nth_unstable_by_key(ROOMS_SHOWN, |r| fold(&r.name));
            rooms.truncate(ROOMS_SHOWN);
        }
        rooms.sort_unstable_by_key(|r| fold(&r.name));
        let mut text = format!("{count} room(s):");
        for room in rooms {
            let _ = write!(text, "\n  {} ({} here)", room.name, room.members);
            if let Some(topic) = room.topic {
                let _ = write!(text, ": {}", readable(&topic));
            }
        }
        if count > ROOMS_SHOWN {
            let _ = write!(text, "\n  … and {} more; /rooms #a* lists those starting with #a", count - ROOMS_SHOWN);
        }
        self.reply(text);
    }

    fn who(&self, room: Option<String>) {
        let Some(room) = room.or_else(|| self.room()) else {
            return self.error(format!("you are in no room; /who #ROOM or /join {LOBBY}"));
        };
        match hub::lock(&self.shared.hub).room_info(self.id, &room) {
            Ok(info) => {
                let names: Vec<String> = info
                    .members
                    .iter()
                    .map(|m| {
                        let mut name = format!("{}{}", m.status.prefixes(false), m.info.nick);
                        if m.info.away.is_some() {
                            name.push_str(" (away)");
                        }
                        name
                    })
                    .collect();
                let quiet = match info.unlisted {
                    0 => String::new(),
                    n => format!(" (and {n} more who have not spoken)"),
                };
                self.reply(format!("{} in {}: {}{quiet}", names.len(), info.name, names.join(", ")));
            }
            Err(e) => self.error(e),
        }
    }

    fn topic(&self, text: &str) {
        let Some(room) = self.room() else {
            return self.error(format!("you are in no room; /join {LOBBY}"));
        };
        if text.is_empty() {
            match hub::lock(&self.shared.hub).topic(self.id, &room) {
                Ok(Some(topic)) => {
                    self.reply(format!("Topic of {room}: {} (set by {})", readable(&topic.text), topic.set_by));
                }
                Ok(None) => self.reply(format!("{room} has no topic; /topic TEXT sets one.")),
                Err(e) => self.error(e),
            }
        } else {
            match hub::lock(&self.shared.hub).set_topic(self.id, &room, text) {
                Ok(_) => self.reply(format!("Topic of {room} set.")),
                Err(e) => self.error(e),
            }
        }
    }

    fn invite(&self, nick: &str, room: Option<String>) {
        let Some(room) = room.or_else(|| self.room()) else {
            return self.error("you are in no room");
        };
        match hub::lock(&self.shared.hub).invite(self.id, nick, &room) {
            Ok(nick) => self.reply(format!("Invited {nick} to {room}.")),
            Err(e) => self.error(e),
        }
    }

    /// `/op bob` and friends: one mode change on the user's room.
    fn mode_shortcut(&self, command: &str, arg: &str) {
        let letter = match command {
            "ban" | "unban" => 'b',
            "op" | "deop" => 'o',
            _ => 'v',
        };
        let sign = if command.starts_with("de") || command == "unban" { '-' } else { '+' };
        self.mode(&[&format!("{sign}{letter}"), arg]);
    }

    /// `/mode` shows the room's modes; `/mode +m`, `/mode +k key` … change them.
    fn mode(&self, args: &[&str]) {
        let Some(room) = self.room() else {
            return self.error("you are in no room");
        };
        let Some((flags, rest)) = args.split_first() else {
            let info = hub::lock(&self.shared.hub).room_modes(self.id, &room);
            return match info {
                Ok((_, _, modes)) => self.reply(format!("Modes of {room}: {}", modes.render(true))),
                Err(e) => self.error(e),
            };
        };
        let parsed = modes::parse(flags, rest);
        if parsed.list_bans {
            match hub::lock(&self.shared.hub).bans(self.id, &room) {
                Ok(bans) if bans.is_empty() => self.reply(format!("No bans in {room}.")),
                Ok(bans) => {
                    let masks: Vec<_> = bans.iter().map(|b| format!("{} (by {})", b.mask, b.set_by)).collect();
                    self.reply(format!("Bans in {room}: {}", masks.join(", ")));
                }
                Err(e) => self.error(e),
            }
        }
        for error in parsed.errors {
            self.error(match error {
                modes::ModeParseError::Unknown(c) => HubError::UnknownMode(c),
                modes::ModeParseError::MissingArg(c) => HubError::ModeNeedsArg(c),
                modes::ModeParseError::BadLimit(a) => HubError::BadLimit(a),
                modes::ModeParseError::BadArg(c, a) => HubError::BadModeArg(c, a),
            });
        }
        if !parsed.changes.is_empty() {
            self.apply_modes(parsed.changes);
        }
    }

    fn apply_modes(&self, changes: Vec<ModeChange>) {
        let Some(room) = self.room() else {
            return self.error("you are in no room");
        };
        let result = hub::lock(&self.shared.hub).set_modes(self.id, &room, changes);
        match result {
            Ok(result) => {
                for e in result.errors {
                    self.error(e);
                }
                if !result.applied.is_empty() {
                    self.reply(format!("Mode {} set on {room}.", modes::render(&result.applied)));
                }
            }
            Err(e) => self.error(e),
        }
    }
}

/// `lobby` → `#lobby`: plain-text users may leave out the `#`.
fn room_name(name: &str) -> String {
    if name.starts_with('#') { name.into() } else { format!("#{name}") }
}

/// Renders events for one plain-text user. The hub sends users none of their own doings but
/// their joins, which are left out here: the session answers in the user's own words ("You are
/// now in …", "You are now known as …").
pub struct PlainRender {
    pub me: ConnId,
}

impl Render for PlainRender {
    fn event<'e>(&self, event: &'e Event) -> Cow<'e, Bytes> {
        match &event.kind {
            // The session says "You are now in …" instead.
            EventKind::Join { who, .. } if who.id == self.me => Cow::Owned(Bytes::new()),
            // Renamed by the server: the nick belongs to an account.
            EventKind::Nick { who, new } if who.id == self.me => Cow::Owned(Bytes::from(format!(
                "*** You are now known as {new}: {} belongs to a registered account; /login {} PASSWORD if it is yours\n",
                who.nick, who.nick
            ))),
            // Plain text has no use for invitations of others.
            EventKind::Invite { target_id, .. } if *target_id != self.me => Cow::Owned(Bytes::new()),
            EventKind::Kick { who, room, target_id, reason, .. } if *target_id == self.me => {
                let removed = with_reason(format!("*** {} removed you from {room}", who.nick), reason);
                Cow::Owned(Bytes::from(format!("{removed}; /join {LOBBY} to go on chatting\n")))
            }
            _ => Cow::Borrowed(event.encoded(FORMAT, render)),
        }
    }

    fn closing(&self, why: &Closed) -> Vec<u8> {
        match why {
            Closed::Overflow => {
                b"*** disconnected: you were not reading fast enough and your queue filled up\n".to_vec()
            }
            closed => format!("*** disconnected: {}\n", closed.reason()).into_bytes(),
        }
    }
}

/// An event as one line for a terminal (or nothing, for what a person has no use for: tags
/// alone, CTCP requests, away changes). IRC formatting codes are dropped; the hub already
/// removed control characters.
fn render(event: &Event) -> Bytes {
    let line = match &event.kind {
        EventKind::Message { kind: MsgKind::TagMsg, .. }
        | EventKind::Away { .. }
        | EventKind::Presence { .. }
        | EventKind::SetName { .. }
        | EventKind::Account { .. }
        | EventKind::ReadMarker { .. } => return Bytes::new(),
        EventKind::Message { text, .. } if text.starts_with('\x01') => return Bytes::new(),
        EventKind::Message { from, target, kind, text, .. } => {
            let private = match target {
                Target::User(_) => "[private] ",
                Target::RoomStatus('@', _) => "[to operators] ",
                Target::RoomStatus(..) => "[to voiced] ",
                Target::Room(_) => "",
            };
            // Each line made readable on its own: a multiline message keeps its lines.
            let line = |text: &str| {
                let text = readable(text);
                match kind {
                    MsgKind::Action => format!("{private}* {} {text}", from.nick),
                    MsgKind::Notice => format!("{private}-{}- {text}", from.nick),
                    _ => format!("{private}<{}> {text}", from.nick),
                }
            };
            if !text.contains('\n') {
                line(text)
            } else {
                // A message of several lines (IRC draft/multiline) is shown line by line, each
                // with its sender; blank ones are left out.
                let lines: Vec<String> = text.split('\n').filter(|l| !l.trim().is_empty()).map(line).collect();
                lines.join("\n")
            }
        }
        EventKind::Join { who, room, .. } => format!("*** {} joined {room}", who.nick),
        EventKind::Part { who, room, reason } => with_reason(format!("*** {} left {room}", who.nick), reason),
        EventKind::Quit { who, reason } => with_reason(format!("*** {} quit", who.nick), reason),
        EventKind::Nick { who, new } => format!("*** {} is now known as {new}", who.nick),
        EventKind::Topic { who, room, text } if text.is_empty() => {
            format!("*** {} cleared the topic of {room}", who.nick)
        }
        EventKind::Topic { who, room, text } => {
            format!("*** {} set the topic of {room}: {}", who.nick, readable(text))
        }
        EventKind::Kick { who, room, target, reason, .. } => {
            with_reason(format!("*** {} removed {target} from {room}", who.nick), reason)
        }
        EventKind::Mode { who, room, changes } => {
            format!("*** {} set mode {changes} on {room}", who.nick)
        }
        EventKind::Invite { who, room, .. } => {
            format!("*** {} invites you to {room}; /join {room} to accept", who.nick)
        }
        EventKind::Redact { who, author, reason, .. } => {
            with_reason(format!("*** {} removed a message of {author}", who.nick), reason)
        }
        EventKind::Wallops { who, text } => format!("*** [wallops] {}: {}", who.nick, readable(text)),
    };
    Bytes::from(line + "\n")
}

/// Another user's text as a terminal line may show it: IRC formatting dropped, and every run
/// of blank characters (spaces, and those that look like them) made one space, without one at
/// the start. Otherwise spaces could push the rest of a line onto a row of its own, where it
/// would read as another line (`<admin> …`) under the terminal's wrap.
fn readable(text: &str) -> String {
    let blank =
        |c: char| c.is_whitespace() || matches!(c, '\u{115f}' | '\u{1160}' | '\u{2800}' | '\u{3164}' | '\u{ffa0}');
    let mut out = String::with_capacity(text.len());
    for c in strip_formatting(text).chars() {
        if !blank(c) {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out
}

fn with_reason(mut line: String, reason: &str) -> String {
    if !reason.is_empty() {
        let _ = write!(line, " ({})", readable(reason));
    }
    line
}
