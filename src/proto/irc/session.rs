//! One IRC client's session: registration (CAP, PASS, NICK, USER), keep-alive PINGs, and the
//! reply buffer through which every answer to one command goes, so that `labeled-response`
//! can label it (one line), wrap it in a batch (several) or acknowledge it (none).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::caps::{Cap, CapSet};
use super::message::{Message, ParseError};
use super::numeric::*;
use super::render::{self, IrcRender};
use super::{VERSION, commands};
use crate::hub::{self, ConnId, Event, HubError, Out, Outbox, Registration};
use crate::server::Shared;
use crate::server::conn::Conn;
use crate::server::lines::Line;
use crate::store::Include;

/// What a session knows about its client.
pub struct Session {
    pub shared: Arc<Shared>,
    pub outbox: Outbox,
    pub caps: CapSet,
    /// The `CAP LS` version the client asked for (302 enables values and cap-notify).
    pub cap_version: u32,
    /// Between `CAP LS`/`REQ` and `CAP END`, registration waits.
    pub negotiating: bool,
    /// Set once registered with the hub.
    pub id: Option<ConnId>,
    pub pending_nick: Option<String>,
    pub pending_user: Option<(String, String)>,
    /// The client's address: its host as others see it, and the log.
    pub peer: std::net::SocketAddr,
    /// User mode `+i`.
    pub invisible: bool,
    /// Answers to the command being handled.
    replies: Vec<Message>,
    /// The `label` tag of the command being handled.
    label: Option<String>,
    /// Set when the session should end, with the reason.
    pub quit: Option<String>,
}

/// Runs an IRC session until the client quits, times out or the server closes it.
pub async fn run(mut conn: Conn) {
    let shared = conn.shared.clone();
    let outbox = conn.outbox();
    let caps = CapSet::default();
    let render = IrcRender { caps: caps.clone() };
    let mut writer = conn.start_writer(outbox.clone(), render);
    let mut session = Session {
        shared: shared.clone(),
        outbox: outbox.clone(),
        caps,
        cap_version: 0,
        negotiating: false,
        id: None,
        pending_nick: None,
        pending_user: None,
        peer: conn.peer,
        invisible: false,
        replies: Vec::new(),
        label: None,
        quit: None,
    };
    // A silent client is pinged after one interval and dropped after a second; a client that
    // talks but does not register is dropped after one.
    let interval = shared.limits.ping_interval;
    let connected = tokio::time::Instant::now();
    let mut pinged = false;
    let mut writer_done = false;
    let reason = loop {
        let line = tokio::select! {
            line = tokio::time::timeout(interval, conn.next_line()) => line,
            _ = &mut writer => {
                writer_done = true;
                break match outbox.closed() {
                    Some(hub::Closed::Overflow) => "SendQ exceeded".to_string(),
                    Some(hub::Closed::Done(reason)) => reason,
                    None => "Connection lost".to_string(),
                };
            }
        };
        match line {
            Err(_) if session.id.is_none() => break "Registration timed out".into(),
            Ok(_) if session.id.is_none() && connected.elapsed() > interval => {
                break "Registration timed out".into();
            }
            Err(_) if pinged => break format!("Ping timeout: {} seconds", 2 * interval.as_secs()),
            Err(_) => {
                pinged = true;
                let ping = Message::new("PING", &[&shared.server_name]);
                session.send_now(ping);
            }
            Ok(None) => break "Connection closed".into(),
            Ok(Some(Line::TooLong)) => {
                pinged = false;
                session.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
                session.finish();
            }
            Ok(Some(Line::Text(text))) => {
                pinged = false;
                if let Some(include) = reads_history(&text) {
                    shared.settled(include).await;
                }
                session.handle_line(&text);
                if let Some(reason) = session.quit.take() {
                    break reason;
                }
            }
        }
    };
    if let Some(id) = session.id {
        let nick = hub::lock(&shared.hub).nick(id).to_string();
        tracing::info!("{} ({nick}) left: {reason}", conn.peer);
        hub::lock(&shared.hub).quit(id, &reason);
    }
    outbox.close(reason);
    if !writer_done {
        let _ = writer.await;
    }
}

/// What this line reads of history: every kind of record (CHATHISTORY) or messages only (JOIN,
/// with its replay). Checked before parsing, cheaply: a false positive only costs a wait for
/// the store.
fn reads_history(line: &str) -> Option<Include> {
    let command = line.strip_prefix('@').map_or(line, |l| l.split_once(' ').map_or("", |(_, rest)| rest));
    let command = command.trim_start().split(' ').next().unwrap_or_default();
    if command.eq_ignore_ascii_case("CHATHISTORY") {
        Some(Include::Everything)
    } else if command.eq_ignore_ascii_case("JOIN") {
        Some(Include::Messages)
    } else {
        None
    }
}

/// Numbers the batches a server opens (`BATCH +1 …`), unique per process.
static NEXT_BATCH: AtomicU64 = AtomicU64::new(1);

/// A fresh batch reference tag.
pub fn batch_ref() -> String {
    format!("b{}", NEXT_BATCH.fetch_add(1, Ordering::Relaxed))
}

impl Session {
    /// Parses and handles one line, then sends every reply it produced.
    fn handle_line(&mut self, text: &str) {
        match Message::parse(text) {
            Ok(message) => {
                self.label = message.tag("label").flatten().map(str::to_string);
                commands::dispatch(self, &message);
            }
            Err(ParseError::Empty) => {}
            Err(ParseError::BodyTooLong | ParseError::TagsTooLong) => {
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
            }
            Err(ParseError::InvalidCommand(command)) => {
                self.numeric(ERR_UNKNOWNCOMMAND, &[&command, "Unknown command"]);
            }
            Err(ParseError::NoCommand | ParseError::ControlChar) => {}
        }
        self.finish();
    }

    /// The nick to address this client by in numerics (`*` before it has one).
    pub fn nick(&self) -> String {
        match self.id {
            Some(id) => hub::lock(&self.shared.hub).nick(id).to_string(),
            None => self.pending_nick.clone().unwrap_or_else(|| "*".into()),
        }
    }

    /// Queues one reply to the current command.
    pub fn reply(&mut self, message: Message) {
        self.replies.push(message);
    }

    /// Queues a numeric reply: `:server CODE nick params…`.
    pub fn numeric(&mut self, code: &str, params: &[&str]) {
        let nick = self.nick();
        let mut all = vec![nick.as_str()];
        all.extend_from_slice(params);
        let message = Message::new(code, &all).with_source(&self.shared.server_name).with_trailing_colon();
        self.reply(message);
    }

    /// Queues the numeric for a refusal from the hub.
    pub fn hub_error(&mut self, error: &HubError, sending: bool) {
        let (code, params) = from_hub(error, sending);
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        self.numeric(code, &params);
    }

    /// Queues a line from the server itself (`:server COMMAND params`).
    pub fn server_line(&mut self, command: &str, params: &[&str]) {
        let message = Message::new(command, params).with_source(&self.shared.server_name);
        self.reply(message);
    }

    /// Queues an IRCv3 standard reply (`FAIL`/`WARN`/`NOTE`) for clients that asked for them, or
    /// a NOTICE saying the same for the others.
    pub fn standard_reply(&mut self, kind: &str, command: &str, code: &str, context: &[&str], text: &str) {
        if self.caps.has(Cap::StandardReplies) {
            let mut params = vec![command, code];
            params.extend_from_slice(context);
            params.push(text);
            let message = Message::new(kind, &params).with_source(&self.shared.server_name).with_trailing_colon();
            self.reply(message);
        } else {
            let nick = self.nick();
            self.server_line("NOTICE", &[&nick, &format!("{command} {code}: {text}")]);
        }
    }

    /// Queues this client's own view of an event it caused (its JOIN, NICK, echoed PRIVMSG…).
    pub fn own_event(&mut self, event: &Event) {
        if let Some(message) = render::message(event, self.caps.bits()) {
            self.reply(message);
        }
    }

    /// Sends one line at once, outside any command's replies.
    pub fn send_now(&self, message: Message) {
        let mut buf = Vec::new();
        message.write_to(&mut buf);
        self.outbox.push(Out::Line(Bytes::from(buf)));
    }

    /// Sends the current command's replies, labelled as the client asked.
    pub fn finish(&mut self) {
        let mut replies = std::mem::take(&mut self.replies);
        if let Some(label) = self.label.take().filter(|_| self.caps.has(Cap::LabeledResponse)) {
            match replies.len() {
                0 => {
                    let ack = Message::new("ACK", &[]).with_source(&self.shared.server_name);
                    replies.push(ack.with_tag("label", Some(&label)));
                }
                1 => replies[0] = with_first_tag(replies[0].clone(), "label", &label),
                _ if self.caps.has(Cap::Batch) => {
                    let reference = batch_ref();
                    replies = self.wrap_batch(replies, &reference, "labeled-response", &[]);
                    replies[0] = with_first_tag(replies[0].clone(), "label", &label);
                }
                _ => {}
            }
        }
        if replies.is_empty() {
            return;
        }
        let mut buf = Vec::new();
        for message in &replies {
            message.write_to(&mut buf);
        }
        self.outbox.push(Out::Line(Bytes::from(buf)));
    }

    /// Wraps `inner` in `BATCH +reference kind params…` … `BATCH -reference`.
    pub fn wrap_batch(&self, inner: Vec<Message>, reference: &str, kind: &str, params: &[&str]) -> Vec<Message> {
        let server = &self.shared.server_name;
        let mut start = vec![format!("+{reference}"), kind.to_string()];
        start.extend(params.iter().map(|p| p.to_string()));
        let start: Vec<&str> = start.iter().map(String::as_str).collect();
        let mut out = vec![Message::new("BATCH", &start).with_source(server)];
        // Lines already inside a nested batch keep their own batch tag.
        out.extend(
            inner.into_iter().map(|m| if m.tag("batch").is_some() { m } else { with_first_tag(m, "batch", reference) }),
        );
        out.push(Message::new("BATCH", &[&format!("-{reference}")]).with_source(server));
        out
    }

    /// Completes registration once NICK and USER are in and capability negotiation is over.
    pub fn try_register(&mut self) {
        if self.id.is_some() || self.negotiating {
            return;
        }
        let (Some(nick), Some((user, realname))) = (self.pending_nick.clone(), self.pending_user.clone()) else {
            return;
        };
        let registration = Registration {
            nick: Some(nick),
            user: format!("~{user}"),
            host: self.peer.ip().to_string(),
            realname,
            protocol: "irc",
            outbox: self.outbox.clone(),
        };
        let registered = hub::lock(&self.shared.hub).register(registration);
        match registered {
            Ok((id, nick)) => {
                self.id = Some(id);
                (self.pending_nick, self.pending_user) = (None, None);
                tracing::info!("{} connected as {nick} (IRC)", self.peer);
                self.welcome();
            }
            Err(HubError::ShuttingDown) => self.quit = Some("Server shutting down".into()),
            Err(error) => {
                self.pending_nick = None;
                self.hub_error(&error, false);
            }
        }
    }

    /// 001–005, LUSERS and the MOTD: what every IRC client expects after registering.
    fn welcome(&mut self) {
        let id = self.id.expect("registered");
        let mask = render::mask(hub::lock(&self.shared.hub).source(id));
        let server = self.shared.server_name.clone();
        let created = render::iso_time(
            self.shared.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        );
        self.numeric(RPL_WELCOME, &[&format!("Welcome to the charla chat network, {mask}")]);
        self.numeric(RPL_YOURHOST, &[&format!("Your host is {server}, running version charla-{VERSION}")]);
        self.numeric(RPL_CREATED, &[&format!("This server was created {created}")]);
        self.numeric(RPL_MYINFO, &[&server, &format!("charla-{VERSION}"), "io", "biklmnostv", "bklov"]);
        commands::isupport(self);
        commands::lusers(self);
        commands::motd(self);
    }
}

/// Adds a tag in front of a message's own tags.
fn with_first_tag(mut message: Message, key: &str, value: &str) -> Message {
    message.tags.insert(0, (key.to_string(), Some(value.to_string())));
    message
}
