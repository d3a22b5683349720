//! The IRC command table: one small handler per command, found by name in [`COMMANDS`].
//! Handlers translate: they parse parameters, call the hub, and turn its answers and refusals
//! into replies and numerics. No chat rule is decided here.

use std::fmt::Write as _;
use std::sync::LazyLock;

use super::caps::{self, Cap};
use super::history;
use super::message::Message;
use super::numeric::*;
use super::render;
use super::session::Session;
use super::{MAX_TARGETS, VERSION};
use super::{accounts, help, monitor, multiline, redact, users};
use crate::chat::now_millis;
use crate::hub::modes::{self, ModeParseError};
use crate::hub::text::{self, AWAY_LEN, KEY_LEN, KICK_LEN, MASK_LEN, NICK_LEN, ROOM_LEN, TOPIC_LEN};
use crate::hub::{self, ConnId, HubError, ListFilter, MsgKind, Status, Tags};

type Handler = fn(&mut Session, &Message);

/// One command: its name, the parameters it needs, whether it needs a registered client.
struct Command {
    name: &'static str,
    min_params: usize,
    registered: bool,
    handler: Handler,
}

const fn cmd(name: &'static str, min_params: usize, registered: bool, handler: Handler) -> Command {
    Command { name, min_params, registered, handler }
}

/// Every command the server understands.
const COMMANDS: &[Command] = &[
    cmd("CAP", 1, false, cap),
    cmd("PASS", 1, false, pass),
    cmd("NICK", 0, false, nick),
    cmd("USER", 4, false, user),
    cmd("PING", 0, false, ping),
    cmd("PONG", 0, false, |_, _| {}),
    cmd("QUIT", 0, false, quit),
    cmd("AUTHENTICATE", 1, false, accounts::authenticate),
    cmd("REGISTER", 3, false, accounts::register),
    cmd("VERIFY", 2, false, accounts::verify),
    cmd("JOIN", 1, true, join),
    cmd("PART", 1, true, part),
    cmd("PRIVMSG", 0, true, privmsg),
    cmd("NOTICE", 0, true, privmsg),
    cmd("TAGMSG", 1, true, privmsg),
    cmd("TOPIC", 1, true, topic),
    cmd("NAMES", 0, true, names),
    cmd("LIST", 0, true, list),
    cmd("WHO", 0, true, who),
    cmd("WHOIS", 1, true, whois),
    cmd("WHOWAS", 1, true, whowas),
    cmd("MODE", 1, true, mode),
    cmd("KICK", 2, true, kick),
    cmd("INVITE", 2, true, invite),
    cmd("AWAY", 0, true, away),
    cmd("MOTD", 0, true, motd_command),
    cmd("LUSERS", 0, true, lusers_command),
    cmd("VERSION", 0, true, version),
    cmd("TIME", 0, true, time),
    cmd("ISON", 1, true, ison),
    cmd("USERHOST", 1, true, userhost),
    cmd("OPER", 2, true, oper),
    cmd("KILL", 2, true, kill),
    cmd("CHATHISTORY", 1, true, history::chathistory),
    cmd("MONITOR", 1, true, monitor::monitor),
    cmd("SETNAME", 1, true, users::setname),
    cmd("WALLOPS", 1, true, users::wallops),
    cmd("HELP", 0, true, help::help),
    cmd("REDACT", 2, true, redact::redact),
    cmd("MARKREAD", 1, true, accounts::markread),
    cmd("KLINE", 1, true, accounts::kline),
    cmd("UNKLINE", 1, true, accounts::unkline),
    cmd("BATCH", 1, true, multiline::batch),
    cmd("LINKS", 0, true, links),
    cmd("ADMIN", 0, true, admin),
    cmd("INFO", 0, true, info),
];

/// The names of every command, for HELP's index.
pub fn command_names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.name)
}

/// Finds the command's handler and runs it, or answers 421 / 451 / 461.
pub fn dispatch(session: &mut Session, message: &Message) {
    let name = message.command.to_ascii_uppercase();
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        session.numeric(ERR_UNKNOWNCOMMAND, &[&message.command, "Unknown command"]);
        return;
    };
    if command.registered && session.id.is_none() {
        session.numeric(ERR_NOTREGISTERED, &["You have not registered"]);
    } else if message.params.len() < command.min_params {
        session.numeric(ERR_NEEDMOREPARAMS, &[command.name, "Not enough parameters"]);
    } else {
        (command.handler)(session, message);
    }
}

/// The registered client's id (handlers marked `registered` only run once there is one).
fn me(session: &Session) -> ConnId {
    session.id.expect("command needs registration")
}

fn param(message: &Message, i: usize) -> &str {
    message.params.get(i).map_or("", |p| p.as_str())
}

// ---- registration ----

fn cap(session: &mut Session, message: &Message) {
    let nick = session.nick();
    match param(message, 0).to_ascii_uppercase().as_str() {
        "LS" => {
            session.cap_version = session.cap_version.max(param(message, 1).parse().unwrap_or(0));
            if session.cap_version >= 302 {
                session.caps.set(Cap::CapNotify, true);
            }
            if session.id.is_none() {
                session.negotiating = true;
            }
            let tls = &session.shared.tls;
            let words = caps::ls(session.cap_version, caps::sts(session.peer.secure(), tls.port, tls.verifiable));
            let words = words.join(" ");
            let chunks: Vec<&str> = chunk_words(&words, 400).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let more = i + 1 < chunks.len() && session.cap_version >= 302;
                let params: Vec<&str> = if more { vec![&nick, "LS", "*", chunk] } else { vec![&nick, "LS", chunk] };
                session.server_line("CAP", &params);
            }
        }
        "LIST" => {
            let enabled = session.caps.names().join(" ");
            session.server_line("CAP", &[&nick, "LIST", &enabled]);
        }
        "REQ" => {
            if session.id.is_none() {
                session.negotiating = true;
            }
            let wanted = param(message, 1);
            let changes: Option<Vec<(Cap, bool)>> = wanted
                .split_whitespace()
                .map(|word| {
                    let (on, name) = word.strip_prefix('-').map_or((true, word), |n| (false, n));
                    caps::by_name(name)
                        .filter(|c| on || *c != Cap::CapNotify || session.cap_version < 302)
                        .map(|c| (c, on))
                })
                .collect();
            match changes {
                Some(changes) => {
                    for (cap, on) in changes {
                        session.caps.set(cap, on);
                    }
                    monitor::caps_changed(session);
                    session.server_line("CAP", &[&nick, "ACK", wanted]);
                }
                None => session.server_line("CAP", &[&nick, "NAK", wanted]),
            }
        }
        "END" => {
            session.negotiating = false;
            session.try_register();
        }
        other => session.numeric(ERR_INVALIDCAPCMD, &[other, "Invalid CAP command"]),
    }
}

/// Splits space-separated `words` into runs of whole words of at most `max` bytes (a longer
/// word alone makes a longer run); no words make one empty run.
fn chunk_words(words: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(words);
    std::iter::from_fn(move || {
        let words = rest?;
        if words.len() <= max {
            rest = None;
            return Some(words);
        }
        // The last space that keeps the run within `max`, else the end of an overlong first word.
        let cut = words.as_bytes()[..=max].iter().rposition(|&b| b == b' ').or_else(|| words.find(' '));
        match cut {
            Some(cut) => {
                rest = Some(&words[cut + 1..]);
                Some(&words[..cut])
            }
            None => {
                rest = None;
                Some(words)
            }
        }
    })
}

/// `PASS password`: kept until registration, which checks it against the server password
/// (if there is none, any is accepted).
fn pass(session: &mut Session, message: &Message) {
    if session.id.is_some() {
        session.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]);
    } else {
        session.login().password = Some(param(message, 0).to_string());
    }
}

/// Tells the client how its NICK went.
fn nick_changed(session: &mut Session, changed: Result<std::sync::Arc<hub::Event>, HubError>) {
    match changed {
        Ok(event) => session.own_event(&event),
        Err(HubError::NickInUse(n)) if n == session.nick() => {}
        Err(error) => session.hub_error(&error, false),
    }
}

fn nick(session: &mut Session, message: &Message) {
    let Some(new) = message.params.first().filter(|n| !n.is_empty()) else {
        return session.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
    };
    match session.id {
        Some(id) => match session.shared.bus.clone() {
            // In a cluster the new nick is claimed on the bus first (not a change of case).
            Some(bus) if hub::text::fold(new) != hub::text::fold(&session.nick()) => {
                let new = new.clone();
                session.defer(async move {
                    let claimed = bus.claim(&new).await;
                    Box::new(move |session: &mut Session| match claimed {
                        Ok(fresh) => {
                            let changed = hub::lock(&session.shared.hub).set_nick(id, &new);
                            if changed.is_err() && fresh {
                                let bus = bus.clone();
                                let new = new.clone();
                                tokio::spawn(async move { bus.release(&new).await });
                            }
                            nick_changed(session, changed);
                        }
                        Err(()) => session.hub_error(&HubError::NickInUse(new.to_string()), false),
                    }) as crate::proto::irc::session::Then
                });
            }
            _ => {
                let changed = hub::lock(&session.shared.hub).set_nick(id, new);
                nick_changed(session, changed);
            }
        },
        None => {
            let checked = hub::lock(&session.shared.hub).check_nick(new);
            match checked {
                Ok(()) => {
                    session.pending().nick = Some(new.to_string());
                    session.try_register();
                }
                Err(error) => session.hub_error(&error, false),
            }
        }
    }
}

fn user(session: &mut Session, message: &Message) {
    if param(message, 3).is_empty() {
        return session.numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
    }
    if session.id.is_some() {
        return session.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]);
    }
    let username: String =
        param(message, 0).chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(16).collect();
    let username = if username.is_empty() { "user".to_string() } else { username };
    session.pending().user = Some((username, text::sanitize(param(message, 3))));
    session.try_register();
}

fn ping(session: &mut Session, message: &Message) {
    match message.params.first() {
        Some(token) => {
            let server = session.shared.server_name.clone();
            session.server_line("PONG", &[&server, token]);
        }
        None => session.numeric(ERR_NOORIGIN, &["No origin specified"]),
    }
}

fn quit(session: &mut Session, message: &Message) {
    let reason = match message.params.first().filter(|r| !r.is_empty()) {
        Some(reason) => format!("Quit: {reason}"),
        None => "Quit".into(),
    };
    session.quit = Some(reason.into());
}

// ---- rooms ----

fn join(session: &mut Session, message: &Message) {
    let id = me(session);
    if param(message, 0) == "0" {
        let rooms = hub::lock(&session.shared.hub).rooms_of(id);
        for room in rooms {
            part_one(session, &room, "");
        }
        return;
    }
    let keys: Vec<&str> = param(message, 1).split(',').collect();
    for (i, room) in param(message, 0).split(',').filter(|r| !r.is_empty()).enumerate() {
        let key = keys.get(i).copied().filter(|k| !k.is_empty());
        let joined = session.join(room, key);
        match joined {
            Ok(Some(joined)) => {
                if let Some(topic) = &joined.topic {
                    topic_numerics(session, &joined.room, topic);
                }
                accounts::read_marker_on_join(session, &joined.room);
                if !session.caps.has(Cap::NoImplicitNames) {
                    names_of(session, &joined.room);
                }
                history::replay_on_join(session, &joined.room);
            }
            Ok(None) => {}
            Err(error) => session.hub_error(&error, false),
        }
    }
}

fn part(session: &mut Session, message: &Message) {
    for room in param(message, 0).split(',').filter(|r| !r.is_empty()) {
        part_one(session, room, param(message, 1));
    }
}

fn part_one(session: &mut Session, room: &str, reason: &str) {
    let parted = hub::lock(&session.shared.hub).part(me(session), room, reason);
    match parted {
        Ok(event) => session.own_event(&event),
        Err(error) => session.hub_error(&error, false),
    }
}

fn privmsg(session: &mut Session, message: &Message) {
    let command = message.command.to_ascii_uppercase();
    let notice = command == "NOTICE";
    let Some(targets) = message.params.first() else {
        if !notice {
            session.numeric(ERR_NORECIPIENT, &[&format!("No recipient given ({command})")]);
        }
        return;
    };
    let (kind, text) = match command.as_str() {
        "TAGMSG" => (MsgKind::TagMsg, ""),
        _ => match message.params.get(1) {
            None if notice => return,
            None => return session.numeric(ERR_NOTEXTTOSEND, &["No text to send"]),
            Some(text) => match text.strip_prefix("\x01ACTION ").map(|t| t.strip_suffix('\x01').unwrap_or(t)) {
                Some(action) if !notice => (MsgKind::Action, action),
                _ if notice => (MsgKind::Notice, text.as_str()),
                _ => (MsgKind::Privmsg, text.as_str()),
            },
        },
    };
    if kind == MsgKind::TagMsg && !session.caps.has(Cap::MessageTags) {
        return;
    }
    let tags: Tags = message.tags.iter().filter(|(k, _)| k.starts_with('+')).cloned().collect();
    let id = me(session);
    // Each target once (`bob,Bob,bob` is one), at most MAX_TARGETS; the rest are refused.
    let mut unique: Vec<&str> = Vec::new();
    for target in targets.split(',').filter(|t| !t.is_empty()) {
        if !unique.iter().any(|u| u.eq_ignore_ascii_case(target)) {
            unique.push(target);
        }
    }
    if let Some(first_refused) = unique.get(MAX_TARGETS)
        && !notice
    {
        let text =
            format!("Too many targets: sent to the first {MAX_TARGETS} only; send to the others in another message");
        session.numeric(ERR_TOOMANYTARGETS, &[first_refused, &text]);
    }
    for target in unique.into_iter().take(MAX_TARGETS) {
        if hub::accounts::is_service(target) {
            accounts::service(session, text);
            continue;
        }
        let said = hub::lock(&session.shared.hub).say_line(id, target, kind, text, tags.clone());
        match said {
            Ok(said) => {
                if let Some(away) = said.away {
                    let to = hub::lock(&session.shared.hub).online(target).unwrap_or(target).to_string();
                    session.numeric(RPL_AWAY, &[&to, &away]);
                }
                if let Some(notice) = said.history {
                    let nick = session.nick();
                    session.server_line("NOTICE", &[&nick, &notice.to_string()]);
                }
                if session.shared.history.ack_when_stored
                    && let Some(last) = said.events.last()
                {
                    session.answer_once_stored(last.id);
                }
                if session.caps.has(Cap::EchoMessage) {
                    for event in &said.events {
                        session.own_event(event);
                    }
                }
            }
            Err(error) if !notice => session.hub_error(&error, true),
            Err(_) => {}
        }
    }
}

fn topic(session: &mut Session, message: &Message) {
    let id = me(session);
    let room = param(message, 0);
    match message.params.get(1) {
        Some(text) => {
            let set = hub::lock(&session.shared.hub).set_topic(id, room, text);
            match set {
                Ok(event) => session.own_event(&event),
                Err(error) => session.hub_error(&error, false),
            }
        }
        None => {
            let topic = hub::lock(&session.shared.hub).topic(id, room);
            match topic {
                Ok(Some(topic)) => topic_numerics(session, room, &topic),
                Ok(None) => session.numeric(RPL_NOTOPIC, &[room, "No topic is set"]),
                Err(error) => session.hub_error(&error, false),
            }
        }
    }
}

/// 332 and 333: a room's topic, who set it and when.
fn topic_numerics(session: &mut Session, room: &str, topic: &hub::Topic) {
    session.numeric(RPL_TOPIC, &[room, &topic.text]);
    session.numeric(RPL_TOPICWHOTIME, &[room, &topic.set_by, &(topic.at / 1000).to_string()]);
}

fn names(session: &mut Session, message: &Message) {
    match message.params.first() {
        Some(rooms) => {
            for room in rooms.split(',').filter(|r| !r.is_empty()) {
                names_of(session, room);
            }
        }
        None => session.numeric(RPL_ENDOFNAMES, &["*", "End of /NAMES list"]),
    }
}

/// 353 lines (split to fit 512 bytes) and 366 for one room.
fn names_of(session: &mut Session, room: &str) {
    let id = me(session);
    let full = session.caps.has(Cap::UserhostInNames);
    let (info, nick) = {
        let hub = hub::lock(&session.shared.hub);
        (hub.names(id, room, full), hub.nick(id).to_string())
    };
    if let Ok(mut info) = info {
        info.members.sort_unstable_by(|a, b| text::cmp_folded(&a.nick, &b.nick));
        let all_prefixes = session.caps.has(Cap::MultiPrefix);
        let mut names = String::with_capacity(info.members.len() * 12);
        for m in &info.members {
            if !names.is_empty() {
                names.push(' ');
            }
            names.push_str(m.status.prefixes(all_prefixes));
            names.push_str(&m.nick);
            if let Some((user, host)) = &m.userhost {
                let _ = write!(names, "!{user}@{host}");
            }
        }
        let symbol = if info.secret { "@" } else { "=" };
        for chunk in chunk_words(&names, 400) {
            session.numeric_to(&nick, RPL_NAMREPLY, &[symbol, &info.room, chunk]);
        }
        session.numeric_to(&nick, RPL_ENDOFNAMES, &[&info.room, "End of /NAMES list"]);
    } else {
        session.numeric_to(&nick, RPL_ENDOFNAMES, &[room, "End of /NAMES list"]);
    }
}

fn list(session: &mut Session, message: &Message) {
    let filter = match ListFilter::parse(param(message, 0)) {
        Ok(filter) => filter,
        Err(bad) => {
            session.standard_reply("FAIL", "LIST", "INVALID_PARAMS", &[], &bad.to_string());
            session.numeric(RPL_LISTEND, &["End of /LIST"]);
            return;
        }
    };
    let mut rooms = hub::lock(&session.shared.hub).list_rooms(me(session), &filter);
    // A room nobody is in (kept for its history) is no room to IRC clients: they know only
    // rooms with members, and one they joined would be created anew for them.
    rooms.retain(|r| r.members > 0);
    rooms.sort_unstable_by_key(|r| text::fold(&r.name));
    session.numeric(RPL_LISTSTART, &["Channel", "Users  Name"]);
    let (nick, server) = (session.nick(), session.shared.server_name.clone());
    let numeric = move |params: &[&str]| Message::new(RPL_LIST, params).with_source(&server).with_trailing_colon();
    let end = Message::new(RPL_LISTEND, &[&nick, "End of /LIST"])
        .with_source(&session.shared.server_name)
        .with_trailing_colon();
    let lines = rooms.into_iter().map(move |room| {
        numeric(&[&nick, &room.name, &room.members.to_string(), room.topic.as_deref().unwrap_or_default()])
    });
    session.send_paced(lines, end);
}

// ---- users ----

/// WHO flags: `H`ere or `G`one, `*` for server operators, then room prefixes.
fn who_flags(info: &hub::UserInfo, status: Option<Status>, all_prefixes: bool) -> String {
    let mut flags = String::from(if info.away.is_some() { "G" } else { "H" });
    if info.oper {
        flags.push('*');
    }
    if let Some(status) = status {
        flags.push_str(status.prefixes(all_prefixes));
    }
    if info.bot {
        flags.push(users::BOT_MODE);
    }
    flags
}

fn who(session: &mut Session, message: &Message) {
    let id = me(session);
    let mask = param(message, 0);
    let mask = if mask.is_empty() { "*" } else { mask };
    // WHOX: `WHO mask %fields[,token]`.
    let whox = message.params.get(1).and_then(|f| f.strip_prefix('%')).map(|f| match f.split_once(',') {
        Some((fields, token)) => (fields.to_string(), token.to_string()),
        None => (f.to_string(), String::new()),
    });
    let hub = hub::lock(&session.shared.hub);
    let rows: Vec<(String, hub::UserInfo, Option<Status>)> = if mask.starts_with('#') {
        match hub.room_info(id, mask) {
            Ok(info) => info.members.into_iter().map(|m| (info.name.clone(), m.info, Some(m.status))).collect(),
            Err(_) => Vec::new(),
        }
    } else {
        hub.find_users(id, mask)
            .into_iter()
            .map(|u| {
                // The first room shown, with the user's status there, as for `WHO #room`.
                let (room, status) = u.rooms.first().map_or(("*".to_string(), None), |(r, s)| (r.clone(), Some(*s)));
                (room, u, status)
            })
            .collect()
    };
    drop(hub);
    let all_prefixes = session.caps.has(Cap::MultiPrefix);
    let server = session.shared.server_name.clone();
    for (room, info, status) in rows {
        let flags = who_flags(&info, status, all_prefixes);
        match &whox {
            Some((fields, token)) => {
                let mut params: Vec<String> = Vec::new();
                for field in "tcuihsnfdlaor".chars().filter(|c| fields.contains(*c)) {
                    params.push(match field {
                        't' => token.clone(),
                        'c' => room.clone(),
                        'u' => info.user.to_string(),
                        'i' => "255.255.255.255".into(),
                        'h' => info.host.to_string(),
                        's' => server.clone(),
                        'n' => info.nick.to_string(),
                        'f' => flags.clone(),
                        'd' => "0".into(),
                        'l' => idle_secs(&info),
                        'a' => info.account.clone().unwrap_or_else(|| "0".into()),
                        'o' => "n/a".into(),
                        _ => info.realname.to_string(),
                    });
                }
                let params: Vec<&str> = params.iter().map(|p| p.as_str()).collect();
                session.numeric(RPL_WHOSPCRPL, &params);
            }
            None => session.numeric(
                RPL_WHOREPLY,
                &[&room, &info.user, &info.host, &server, &info.nick, &flags, &format!("0 {}", info.realname)],
            ),
        }
    }
    session.numeric(RPL_ENDOFWHO, &[mask, "End of /WHO list"]);
}

/// Seconds since the user last spoke, for WHOIS and WHOX.
fn idle_secs(info: &hub::UserInfo) -> String {
    (now_millis().saturating_sub(info.last_spoke) / 1000).to_string()
}

fn whois(session: &mut Session, message: &Message) {
    // `WHOIS server nick` names the nick last.
    let target = message.params.last().map_or("", |p| p.as_str());
    let info = hub::lock(&session.shared.hub).user_info(me(session), target);
    match info {
        Ok(info) => {
            let server = session.shared.server_name.clone();
            session.numeric(RPL_WHOISUSER, &[&info.nick, &info.user, &info.host, "*", &info.realname]);
            if !info.rooms.is_empty() {
                let all_prefixes = session.caps.has(Cap::MultiPrefix);
                let rooms: Vec<String> = info
                    .rooms
                    .iter()
                    .map(|(room, status)| format!("{}{room}", status.prefixes(all_prefixes)))
                    .collect();
                for chunk in chunk_words(&rooms.join(" "), 400) {
                    session.numeric(RPL_WHOISCHANNELS, &[&info.nick, chunk]);
                }
            }
            session.numeric(RPL_WHOISSERVER, &[&info.nick, &server, &format!("charla ({} client)", info.protocol)]);
            if info.oper {
                session.numeric(RPL_WHOISOPERATOR, &[&info.nick, "is an IRC operator"]);
            }
            if let Some(account) = &info.account {
                session.numeric(RPL_WHOISACCOUNT, &[&info.nick, account, "is logged in as"]);
            }
            if info.bot {
                session.numeric(RPL_WHOISBOT, &[&info.nick, "is a Bot on charla"]);
            }
            if info.secure {
                session.numeric(RPL_WHOISSECURE, &[&info.nick, "is using a secure connection"]);
            }
            if let Some(fp) = &info.certfp {
                session.numeric(RPL_WHOISCERTFP, &[&info.nick, &format!("has client certificate fingerprint {fp}")]);
            }
            if let Some(away) = &info.away {
                session.numeric(RPL_AWAY, &[&info.nick, away]);
            }
            let idle = idle_secs(&info);
            let signon = (info.signon / 1000).to_string();
            session.numeric(RPL_WHOISIDLE, &[&info.nick, &idle, &signon, "seconds idle, signon time"]);
            session.numeric(RPL_ENDOFWHOIS, &[&info.nick, "End of /WHOIS list"]);
        }
        Err(error) => {
            session.hub_error(&error, false);
            session.numeric(RPL_ENDOFWHOIS, &[target, "End of /WHOIS list"]);
        }
    }
}

fn whowas(session: &mut Session, message: &Message) {
    let nick = param(message, 0);
    // No count, or one that is not above 0: every entry remembered (RFC 2812).
    let count = param(message, 1).parse().ok().filter(|&c: &usize| c > 0).unwrap_or(usize::MAX);
    let departed = hub::lock(&session.shared.hub).whowas(nick, count);
    if departed.is_empty() {
        session.numeric(ERR_WASNOSUCHNICK, &[nick, "There was no such nickname"]);
    }
    let server = session.shared.server_name.clone();
    for d in departed {
        session.numeric(RPL_WHOWASUSER, &[&d.nick, &d.user, &d.host, "*", &d.realname]);
        session.numeric(RPL_WHOISSERVER, &[&d.nick, &server, &render::iso_time(d.at)]);
    }
    session.numeric(RPL_ENDOFWHOWAS, &[nick, "End of WHOWAS"]);
}

fn mode(session: &mut Session, message: &Message) {
    let target = param(message, 0);
    if target.starts_with('#') {
        room_mode(session, message, target);
    } else {
        user_mode(session, message, target);
    }
}

fn user_mode(session: &mut Session, message: &Message, target: &str) {
    let id = me(session);
    let (my_nick, modes) = {
        let hub = hub::lock(&session.shared.hub);
        (hub.nick(id).to_string(), hub.user_modes(id))
    };
    if !target.eq_ignore_ascii_case(&my_nick) {
        let online = hub::lock(&session.shared.hub).online(target).is_some();
        return if online {
            session.numeric(ERR_USERSDONTMATCH, &["Cannot change mode for other users"])
        } else {
            session.numeric(ERR_NOSUCHNICK, &[target, "No such nick"])
        };
    }
    let Some(changes) = message.params.get(1) else {
        let mut shown = String::from("+");
        let letters =
            [(modes.bot, 'B'), (modes.invisible, 'i'), (modes.oper, 'o'), (modes.wallops, 'w'), (modes.secure, 'Z')];
        for (on, letter) in letters {
            if on {
                shown.push(letter);
            }
        }
        return session.numeric(RPL_UMODEIS, &[&shown]);
    };
    let mut add = true;
    let mut applied = String::new();
    for c in changes.chars() {
        match c {
            '+' | '-' => add = c == '+',
            'i' if hub::lock(&session.shared.hub).set_invisible(id, add) => {
                applied.push(if add { '+' } else { '-' });
                applied.push('i');
            }
            // Anyone may drop their own operator rights; only OPER grants them.
            'o' if !add && hub::lock(&session.shared.hub).unoper(id) => applied.push_str("-o"),
            users::BOT_MODE if hub::lock(&session.shared.hub).set_bot(id, add) => {
                applied.push(if add { '+' } else { '-' });
                applied.push(users::BOT_MODE);
            }
            'w' if hub::lock(&session.shared.hub).set_wallops(id, add) => {
                applied.push(if add { '+' } else { '-' });
                applied.push('w');
            }
            // +Z says how the user is connected; no one sets or clears it.
            'i' | 'o' | 'w' | 'Z' | users::BOT_MODE => {}
            _ => session.numeric(ERR_UMODEUNKNOWNFLAG, &["Unknown MODE flag"]),
        }
    }
    if !applied.is_empty() {
        let source = render::mask(hub::lock(&session.shared.hub).source(id));
        session.reply(Message::new("MODE", &[&my_nick, &applied]).with_source(&source));
    }
}

fn room_mode(session: &mut Session, message: &Message, room: &str) {
    let id = me(session);
    let Some(flags) = message.params.get(1) else {
        let info = hub::lock(&session.shared.hub).room_modes(id, room);
        return match info {
            Ok((name, created, modes)) => {
                let modes = modes.render(true);
                let mut params: Vec<&str> = vec![&name];
                params.extend(modes.split(' '));
                session.numeric(RPL_CHANNELMODEIS, &params);
                session.numeric(RPL_CREATIONTIME, &[&name, &(created / 1000).to_string()]);
            }
            Err(error) => session.hub_error(&error, false),
        };
    };
    let args: Vec<&str> = message.params[2..].iter().map(|p| p.as_str()).collect();
    let parsed = modes::parse(flags, &args);
    if parsed.list_bans {
        let bans = hub::lock(&session.shared.hub).bans(id, room);
        match bans {
            Ok(bans) => {
                for ban in bans {
                    session.numeric(RPL_BANLIST, &[room, &ban.mask, &ban.set_by, &(ban.at / 1000).to_string()]);
                }
                session.numeric(RPL_ENDOFBANLIST, &[room, "End of channel ban list"]);
            }
            Err(error) => return session.hub_error(&error, false),
        }
    }
    for error in &parsed.errors {
        match error {
            ModeParseError::Unknown(c) => {
                session.numeric(ERR_UNKNOWNMODE, &[&c.to_string(), "is unknown mode char to me"])
            }
            ModeParseError::MissingArg(_) => session.numeric(ERR_NEEDMOREPARAMS, &["MODE", "Not enough parameters"]),
            ModeParseError::BadLimit(arg) => {
                session.numeric(ERR_INVALIDMODEPARAM, &[room, "l", arg, "Invalid limit: give a number above 0"])
            }
            ModeParseError::BadArg(c, arg) => session.numeric(
                ERR_INVALIDMODEPARAM,
                &[room, &c.to_string(), as_param(arg), &format!("Invalid value: no spaces, commas, control or invisible characters; keys up to {KEY_LEN} bytes, masks up to {MASK_LEN}")],
            ),
        }
    }
    if parsed.changes.is_empty() {
        return;
    }
    let result = hub::lock(&session.shared.hub).set_modes(id, room, parsed.changes);
    match result {
        Ok(result) => {
            for error in &result.errors {
                session.hub_error(error, false);
            }
            for event in &result.events {
                session.own_event(event);
            }
        }
        Err(error) => session.hub_error(&error, false),
    }
}

/// `text` as a middle parameter, or `*` where it cannot be one or is too long to echo (empty,
/// with a space, a control or [hidden](text::hidden) character, over [`MASK_LEN`] bytes, or
/// starting with `:`).
fn as_param(text: &str) -> &str {
    let unfit = text.is_empty()
        || text.starts_with(':')
        || text.len() > MASK_LEN
        || text.chars().any(|c| c.is_whitespace() || c.is_control() || text::hidden(c));
    if unfit { "*" } else { text }
}

fn kick(session: &mut Session, message: &Message) {
    let id = me(session);
    let room = param(message, 0);
    let reason = param(message, 2);
    for target in param(message, 1).split(',').filter(|t| !t.is_empty()) {
        let kicked = hub::lock(&session.shared.hub).kick(id, room, target, reason);
        match kicked {
            Ok(event) => session.own_event(&event),
            Err(error) => session.hub_error(&error, false),
        }
    }
}

fn invite(session: &mut Session, message: &Message) {
    let (target, room) = (param(message, 0), param(message, 1));
    let invited = hub::lock(&session.shared.hub).invite(me(session), target, room);
    match invited {
        Ok(nick) => session.numeric(RPL_INVITING, &[&nick, room]),
        Err(error) => session.hub_error(&error, false),
    }
}

fn away(session: &mut Session, message: &Message) {
    let text = message.params.first().map(|p| p.as_str());
    if hub::lock(&session.shared.hub).set_away(me(session), text) {
        session.numeric(RPL_NOWAWAY, &["You have been marked as being away"]);
    } else {
        session.numeric(RPL_UNAWAY, &["You are no longer marked as being away"]);
    }
}

fn ison(session: &mut Session, message: &Message) {
    let hub = hub::lock(&session.shared.hub);
    let online: Vec<&str> =
        message.params.iter().flat_map(|p| p.split_whitespace()).filter_map(|n| hub.online(n)).collect();
    let online = online.join(" ");
    drop(hub);
    session.numeric(RPL_ISON, &[&online]);
}

fn userhost(session: &mut Session, message: &Message) {
    let id = me(session);
    let hub = hub::lock(&session.shared.hub);
    let replies: Vec<String> = message
        .params
        .iter()
        .take(5)
        .filter_map(|n| hub.user_info(id, n).ok())
        .map(|u| {
            format!(
                "{}{}={}{}@{}",
                u.nick,
                if u.oper { "*" } else { "" },
                if u.away.is_some() { "-" } else { "+" },
                u.user,
                u.host
            )
        })
        .collect();
    drop(hub);
    session.numeric(RPL_USERHOST, &[&replies.join(" ")]);
}

fn oper(session: &mut Session, message: &Message) {
    let id = me(session);
    let result = hub::lock(&session.shared.hub).oper(id, param(message, 0), param(message, 1));
    match result {
        Ok(()) => {
            session.numeric(RPL_YOUREOPER, &["You are now an IRC operator"]);
            let nick = session.nick();
            let source = render::mask(hub::lock(&session.shared.hub).source(id));
            session.reply(Message::new("MODE", &[&nick, "+o"]).with_source(&source));
        }
        Err(error) => session.hub_error(&error, false),
    }
}

fn kill(session: &mut Session, message: &Message) {
    let killed = hub::lock(&session.shared.hub).kill(me(session), param(message, 0), param(message, 1));
    if let Err(error) = killed {
        session.hub_error(&error, false);
    }
}

// ---- server information ----

/// The ISUPPORT tokens (005), at most 12 per line.
pub fn isupport(session: &mut Session, nick: &str) {
    let chanlimit = format!("CHANLIMIT=#:{}", chanlimit(session));
    // Sent in this order, CHANLIMIT (its limit can be reloaded) after the first three.
    let (first, rest) = FIXED_TOKENS.split_at(3);
    let tokens: Vec<&str> =
        first.iter().map(String::as_str).chain([chanlimit.as_str()]).chain(rest.iter().map(String::as_str)).collect();
    for line in tokens.chunks(12) {
        session.numeric_to(nick, RPL_ISUPPORT, &[line, &["are supported by this server"]].concat());
    }
}

/// The ISUPPORT tokens that stay the same while the server runs: made once, not at every
/// registration.
static FIXED_TOKENS: LazyLock<[String; 26]> = LazyLock::new(|| {
    [
        format!("AWAYLEN={AWAY_LEN}"),
        format!("BOT={}", users::BOT_MODE),
        "CASEMAPPING=ascii".into(),
        "CHANMODES=b,k,l,imnRst".into(),
        format!("CHANNELLEN={ROOM_LEN}"),
        "CHANTYPES=#".into(),
        "ELIST=CMNTU".into(),
        "HOSTLEN=64".into(),
        format!("KEYLEN={KEY_LEN}"),
        format!("KICKLEN={KICK_LEN}"),
        format!("MAXLIST=b:{}", hub::MAX_BANS),
        format!("MAXTARGETS={MAX_TARGETS}"),
        "MODES=4".into(),
        format!("MONITOR={}", hub::MONITOR_LIMIT),
        format!("NAMELEN={}", text::REALNAME_LEN),
        "NETWORK=charla".into(),
        format!("NICKLEN={NICK_LEN}"),
        "PREFIX=(ov)@+".into(),
        "STATUSMSG=@+".into(),
        format!("TARGMAX=JOIN:,KICK:,NAMES:,NOTICE:{MAX_TARGETS},PRIVMSG:{MAX_TARGETS},TAGMSG:{MAX_TARGETS},WHOIS:1"),
        format!("TOPICLEN={TOPIC_LEN}"),
        "USERLEN=17".into(),
        "UTF8ONLY".into(),
        "WHOX".into(),
        format!("CHATHISTORY={}", history::MAX_LIMIT),
        "MSGREFTYPES=msgid,timestamp".into(),
    ]
});

/// `CHANLIMIT`'s number: the most rooms a user may be in, or nothing for no cap.
fn chanlimit(session: &Session) -> String {
    match hub::lock(&session.shared.hub).limits().max_rooms_per_user {
        0 => String::new(),
        max => max.to_string(),
    }
}

/// 251–255, 265 and 266. 251 counts visible and invisible users apart, 253 the connections
/// that have not registered (yet).
pub fn lusers(session: &mut Session, nick: &str) {
    let hub = hub::lock(&session.shared.hub);
    let (users, rooms) = hub.counts();
    let (opers, max, invisible) = (hub.oper_count(), hub.max_users, hub.invisible_count());
    drop(hub);
    let unknown = session.shared.sessions.count().saturating_sub(users);
    let visible = users - invisible;
    session.numeric_to(
        nick,
        RPL_LUSERCLIENT,
        &[&format!("There are {visible} users and {invisible} invisible on 1 servers")],
    );
    let (users, max) = (users.to_string(), max.to_string());
    session.numeric_to(nick, RPL_LUSEROP, &[&opers.to_string(), "operator(s) online"]);
    if unknown > 0 {
        session.numeric_to(nick, RPL_LUSERUNKNOWN, &[&unknown.to_string(), "unknown connection(s)"]);
    }
    session.numeric_to(nick, RPL_LUSERCHANNELS, &[&rooms.to_string(), "channels formed"]);
    session.numeric_to(nick, RPL_LUSERME, &[&format!("I have {users} clients and 0 servers")]);
    session.numeric_to(nick, RPL_LOCALUSERS, &[&users, &max, &format!("Current local users {users}, max {max}")]);
    session.numeric_to(nick, RPL_GLOBALUSERS, &[&users, &max, &format!("Current global users {users}, max {max}")]);
}

/// The message of the day: `--motd`'s, else a built-in one saying where everyone meets.
pub fn motd(session: &mut Session, nick: &str) {
    let server = session.shared.server_name.clone();
    session.numeric_to(nick, RPL_MOTDSTART, &[&format!("- {server} Message of the day - ")]);
    match session.shared.motd() {
        Some(motd) => {
            for line in &motd.lines {
                session.numeric_to(nick, RPL_MOTD, &[&format!("- {line}")]);
            }
        }
        None => {
            for line in [
                "- Welcome to charla: one server, every kind of client.",
                "- Everyone meets in #lobby: /join #lobby",
                "- Plain-text users (nc, telnet) and IRC users share the same rooms.",
            ] {
                session.numeric_to(nick, RPL_MOTD, &[line]);
            }
        }
    }
    session.numeric_to(nick, RPL_ENDOFMOTD, &["End of /MOTD command."]);
}

/// Whether parameter `i`, a server to ask, names another server: 402 then (there is only
/// this one).
fn elsewhere(session: &mut Session, message: &Message, i: usize) -> bool {
    let Some(server) = message.params.get(i) else { return false };
    if text::wildcard_match(server, &session.shared.server_name) {
        return false;
    }
    session.numeric(ERR_NOSUCHSERVER, &[server, "No such server"]);
    true
}

fn motd_command(session: &mut Session, message: &Message) {
    if !elsewhere(session, message, 0) {
        let nick = session.nick();
        motd(session, &nick);
    }
}

fn lusers_command(session: &mut Session, message: &Message) {
    if !elsewhere(session, message, 1) {
        let nick = session.nick();
        lusers(session, &nick);
    }
}

fn version(session: &mut Session, message: &Message) {
    if elsewhere(session, message, 0) {
        return;
    }
    let (server, nick) = (session.shared.server_name.clone(), session.nick());
    session.numeric_to(&nick, RPL_VERSION, &[&format!("charla-{VERSION}"), &server, "self-hosted group chat"]);
    isupport(session, &nick);
}

fn time(session: &mut Session, message: &Message) {
    if elsewhere(session, message, 0) {
        return;
    }
    let server = session.shared.server_name.clone();
    let now = now_millis();
    let mut text = render::iso_time(now);
    let _ = write!(text, " (UTC)");
    session.numeric(RPL_TIME, &[&server, &(now / 1000).to_string(), "0", &text]);
}

/// `LINKS`: this server alone (364, 365).
fn links(session: &mut Session, _: &Message) {
    let server = session.shared.server_name.clone();
    session.numeric(RPL_LINKS, &[&server, &server, "0 charla: self-hosted group chat"]);
    session.numeric(RPL_ENDOFLINKS, &["*", "End of /LINKS list"]);
}

/// `ADMIN`: who runs the server (256–259). charla knows no administrator's name or address,
/// so it says where to look instead.
fn admin(session: &mut Session, message: &Message) {
    if elsewhere(session, message, 0) {
        return;
    }
    let server = session.shared.server_name.clone();
    session.numeric(RPL_ADMINME, &[&server, "Administrative info"]);
    session.numeric(RPL_ADMINLOC1, &["This charla server is run by whoever started it"]);
    session.numeric(RPL_ADMINLOC2, &["Server operators (OPER) can act on the server"]);
    session.numeric(RPL_ADMINEMAIL, &["No contact address is configured"]);
}

/// `INFO`: what the server is (371 lines, 374).
fn info(session: &mut Session, message: &Message) {
    if elsewhere(session, message, 0) {
        return;
    }
    for line in [
        format!("charla {VERSION}: self-hosted group chat in one binary"),
        "Plain-text (nc, telnet), IRC and charla connect clients share the same rooms.".into(),
        format!(
            "Up since {}",
            render::iso_time(
                session.shared.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            )
        ),
    ] {
        session.numeric(RPL_INFO, &[&line]);
    }
    session.numeric(RPL_ENDOFINFO, &["End of /INFO list"]);
}

#[cfg(test)]
mod tests {
    use super::chunk_words;

    #[test]
    fn chunks_hold_whole_words_within_the_limit() {
        let chunks: Vec<&str> = chunk_words("ab cd ef gh", 5).collect();
        assert_eq!(chunks, ["ab cd", "ef gh"]);
        let chunks: Vec<&str> = chunk_words("ab cd ef", 4).collect();
        assert_eq!(chunks, ["ab", "cd", "ef"]);
        assert_eq!(chunk_words("", 400).collect::<Vec<_>>(), [""]);
        assert_eq!(chunk_words("abcdefgh ij", 4).collect::<Vec<_>>(), ["abcdefgh", "ij"]);
        assert_eq!(chunk_words("ab abcdefgh", 4).collect::<Vec<_>>(), ["ab", "abcdefgh"]);
        assert_eq!(chunk_words("abcdefgh", 4).collect::<Vec<_>>(), ["abcdefgh"]);
    }
}
