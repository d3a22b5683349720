//! One IRC client's session: registration (CAP, PASS, NICK, USER), keep-alive PINGs, and the
//! reply buffer through which every answer to one command goes, so that `labeled-response`
//! can label it (one line), wrap it in a batch (several) or acknowledge it (none).

use crate::net::Peer;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::caps::{Cap, CapSet};
use super::message::{self, Message, ParseError};
use super::numeric::*;
use super::render::{self, IrcRender};
use super::{VERSION, commands, multiline};
use crate::accounts::sasl::Response;
use crate::hub::{self, ConnId, Event, HubError, Joined, MsgId, Out, Outbox, Registration};
use crate::net::{Conn, Input, Line};
use crate::proto::Shared;
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
    /// What registration has gathered so far; gone once registered.
    pending: Option<Box<Pending>>,
    /// The client's address: its host as others see it, and the log.
    pub peer: Peer,
    /// Answers to the command being handled.
    replies: Vec<Reply>,
    /// How the answer to the command being handled goes out, when it is more than its
    /// replies as they are.
    answering: Option<Box<Answering>>,
    /// Set when the session should end, with the reason.
    pub quit: Option<Box<str>>,
    /// The `draft/multiline` batch the client is sending, if any.
    pub multiline: Option<Box<multiline::Collecting>>,
    /// Logging in: boxed, as most connections never do (every idle one carries this field).
    pub login: Option<Box<Login>>,
    /// Work a command left to finish (a password check), run before the next line is read.
    deferred: Option<Box<Deferred>>,
}

/// How the answer to one command goes out, besides its replies. Boxed, and dropped once the
/// answer is sent: most commands need none of it, and every connection would otherwise carry
/// it.
#[derive(Default)]
struct Answering {
    /// The command's `label` tag.
    label: Option<Box<str>>,
    /// The labeled-response batch already opened for the command: a JOIN's answer starts with
    /// the JOIN line itself, which the hub queues. [`Session::finish`] puts the rest of the
    /// answer in it and closes it.
    open_batch: Option<Box<str>>,
    /// With `--ack-when-stored`: the newest message the command sent. Its answers (the echo, a
    /// labeled `ACK`) wait until the store has committed it.
    unstored: Option<MsgId>,
}

/// A session that ends without saying why (its task panicked: see [`crate::panics`]) still
/// takes its user out of the hub, so no one is left talking to a nick whose connection is
/// gone; after a session's own quit this finds no user and does nothing.
impl Drop for Session {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            hub::lock(&self.shared.hub).quit(id, "Connection lost");
        }
    }
}

/// What a session gathers for its registration. Boxed: every connection would otherwise keep
/// these fields for its whole life, and needs them only until it is registered.
#[derive(Default)]
pub struct Pending {
    pub nick: Option<String>,
    /// The USER command's username and real name.
    pub user: Option<(String, String)>,
    /// In a cluster, the nick claimed on the bus for registration, and whether this session
    /// made the claim (to be released if the hub refuses the nick after all).
    claimed: Option<(String, bool)>,
}

/// What a session knows of its client's logging in.
#[derive(Default)]
pub struct Login {
    /// The SASL response being received, if any.
    pub sasl: Option<Response>,
    /// The account logged in to by SASL before registration, to apply once registered.
    pub account: Option<String>,
    /// The `PASS` given before registration.
    pub password: Option<String>,
}

/// What a deferred command does to the session once its work is done.
pub type Then = Box<dyn FnOnce(&mut Session) + Send>;

/// How much may wait in a client's queue when the next page of a long answer is queued.
const NEARLY_EMPTY: usize = 16 * 1024;

/// A command's work that must not hold up the connection's task (see [`Session::defer`]).
struct Deferred {
    work: Pin<Box<dyn Future<Output = Then> + Send + Sync>>,
    label: Option<Box<str>>,
}

/// Runs an IRC session with the client at `peer` until it quits, times out or the server closes
/// it.
pub fn run(mut conn: Conn, shared: Arc<Shared>, peer: Peer) -> impl Future<Output = ()> + Send {
    let mut session = Session {
        shared,
        outbox: conn.outbox().clone(),
        caps: CapSet::default(),
        cap_version: 0,
        negotiating: false,
        id: None,
        pending: None,
        peer,
        replies: Vec::new(),
        answering: None,
        quit: None,
        multiline: None,
        login: None,
        deferred: None,
    };
    // An async block that owns `conn` and `session`, not an `async fn`: one would keep its
    // arguments twice in its future, and every connection waits in it.
    async move {
        // The server's liveness sweep pings a silent client and drops it (or one that does not
        // register in time) by closing its queue; its reason then comes back as `Stopped`.
        session.outbox.liveness().watch();
        while session.quit.is_none() {
            let render = IrcRender { session: &session };
            let text = match conn.next(&render).await {
                Input::Stopped => {
                    session.quit =
                        Some(session.outbox.closed().map_or_else(|| "Connection lost".into(), |c| c.reason().into()));
                    continue;
                }
                Input::Closed => {
                    session.quit = Some("Connection closed".into());
                    continue;
                }
                Input::Line(Line::TooLong) => {
                    session.outbox.liveness().heard();
                    session.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
                    session.finish();
                    continue;
                }
                Input::Line(Line::Text(text)) => text,
            };
            session.outbox.liveness().heard();
            // In a block: a line borrowed here would otherwise keep its slot in every
            // connection's future, idle ones included.
            {
                let line = text;
                if let Some(include) = reads_history(&line) {
                    conn.writing_during(&render, session.shared.settled(include)).await;
                }
                session.handle_line(&line, conn.mangled());
            }
            if let Some(mut deferred) = session.deferred.take() {
                let render = IrcRender { session: &session };
                let then = conn.writing_while(&render, Pin::new(&mut deferred.work)).await;
                session.relabel(deferred.label);
                then(&mut session);
                session.finish();
            }
            if let Some(id) = session.answering.as_mut().and_then(|a| a.unstored.take()) {
                // Only `--ack-when-stored` waits here.
                conn.writing_during(&IrcRender { session: &session }, Some(session.shared.stored(id))).await;
                session.finish();
            }
            conn.writing_during(&IrcRender { session: &session }, session.shared.pace()).await;
        }
        let reason = session.quit.take().map(String::from).unwrap_or_default();
        if let Some(id) = session.id {
            let nick = hub::lock(&session.shared.hub).nick(id).to_string();
            tracing::info!("{} ({nick}) left: {reason}", session.peer);
            hub::lock(&session.shared.hub).quit(id, &reason);
        }
        conn.close(reason, &IrcRender { session: &session }).await;
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
    } else if command.eq_ignore_ascii_case("REDACT") {
        // The message to redact may have been said a moment ago.
        Some(Include::Messages)
    } else if command.eq_ignore_ascii_case("JOIN") {
        Some(Include::Messages)
    } else {
        None
    }
}

/// The most tag data (between `@` and the space) a client may send (IRCv3 message-tags: the
/// other half of the 8191 bytes is the server's).
const MAX_CLIENT_TAGS: usize = 4094;

/// The length of a line's tag data, without its `@` and the space after it.
fn client_tags_len(line: &str) -> usize {
    line.strip_prefix('@').map_or(0, |rest| rest.find(' ').unwrap_or(rest.len()))
}

/// The `label` tag of a line that does not parse, read as leniently as it can be.
fn label_of(line: &str) -> Option<Box<str>> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    let value = tags.split(';').find_map(|tag| tag.strip_prefix("label="))?;
    Some(super::message::unescape_tag_value(value)).filter(|v| !v.is_empty() && v.len() <= 64).map(Box::from)
}

/// Numbers the batches a server opens (`BATCH +1 …`), unique per process.
static NEXT_BATCH: AtomicU64 = AtomicU64::new(1);

/// A fresh batch reference tag.
pub fn batch_ref() -> String {
    format!("b{}", NEXT_BATCH.fetch_add(1, Ordering::Relaxed))
}

impl Session {
    /// Parses and handles one line, then sends every reply it produced. A `mangled` line had
    /// invalid UTF-8, replaced before it was handled: the client is warned (`UTF8ONLY`).
    fn handle_line(&mut self, text: &str, mangled: bool) {
        if mangled {
            let command = text.split(' ').find(|w| !w.starts_with(['@', ':']) && !w.is_empty()).unwrap_or("*");
            let command = if command.bytes().all(|b| b.is_ascii_alphanumeric()) { command } else { "*" };
            let command = command.to_ascii_uppercase();
            self.standard_reply(
                "WARN",
                &command,
                "INVALID_UTF8",
                &[],
                "Your message was not correctly encoded as UTF-8 and had to be modified",
            );
        }
        match Message::parse(text) {
            Ok(message) if client_tags_len(text) > MAX_CLIENT_TAGS => {
                self.set_label(message.tag("label").flatten().map(Box::from));
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
            }
            Ok(message) => {
                self.set_label(message.tag("label").flatten().map(Box::from));
                if !multiline::collect(self, &message) {
                    commands::dispatch(self, &message);
                }
            }
            Err(ParseError::Empty) => {}
            Err(error) => {
                // Refused as a whole, yet the answer still carries the label if one can be read.
                self.set_label(label_of(text));
                self.refuse(error);
            }
        }
        if self.answering.as_ref().is_none_or(|a| a.unstored.is_none()) {
            self.finish();
        }
    }

    /// Leaves `work` (a password check) to run once this command's other replies are sent; the
    /// session writes the client's queue meanwhile, reads no further line, and answers, under
    /// this command's label, with what the work returns. One command defers at most once.
    pub fn defer(&mut self, work: impl Future<Output = Then> + Send + Sync + 'static) {
        if self.deferred.is_none() {
            let label = self.take_label();
            self.deferred = Some(Box::new(Deferred { work: Box::pin(work), label }));
        }
    }

    /// Sends `lines` after this command's other replies, a page ([`hub::list::PAGE`] lines)
    /// at a time, each once the client's queue is nearly empty ([`NEARLY_EMPTY`]), then `end`
    /// under the command's label: a long answer (`LIST` of a big server) is encoded and queued
    /// as the client reads it, never queued whole, and a client asking for it again and again
    /// without reading holds one answer's items and one page. The session reads no further line meanwhile; a client that reads nothing
    /// for a ping interval is dropped as too slow.
    pub fn send_paced<I>(&mut self, lines: I, end: Message)
    where
        I: Iterator<Item = Message> + Send + Sync + 'static,
    {
        let outbox = self.outbox.clone();
        let stall = self.ping_interval();
        self.defer(async move {
            let mut lines = lines;
            loop {
                let page: Vec<Message> = lines.by_ref().take(hub::list::PAGE).collect();
                if page.is_empty() {
                    break;
                }
                let drained = std::future::poll_fn(|cx| outbox.poll_drained(cx, NEARLY_EMPTY));
                if tokio::time::timeout(stall, drained).await.is_err() {
                    outbox.close_as(hub::Closed::Overflow);
                }
                if !outbox.push(Out::line(encode(&page))) {
                    break;
                }
            }
            Box::new(move |session: &mut Session| session.reply(end)) as Then
        });
    }

    /// The client's login state, created when first needed.
    pub fn login(&mut self) -> &mut Login {
        self.login.get_or_insert_with(Box::default)
    }

    /// The account this client is logged in to, if any.
    pub fn account(&self) -> Option<String> {
        match self.id {
            Some(id) => hub::lock(&self.shared.hub).account(id).map(str::to_string),
            None => self.login.as_ref().and_then(|l| l.account.clone()),
        }
    }

    /// Answers a line that is no IRC message.
    fn refuse(&mut self, error: ParseError) {
        match error {
            ParseError::Empty | ParseError::NoCommand => {}
            ParseError::BodyTooLong | ParseError::TagsTooLong => {
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
            }
            ParseError::InvalidCommand(command) => {
                self.numeric(ERR_UNKNOWNCOMMAND, &[&command, "Unknown command"]);
            }
            error @ ParseError::ControlChar => self.numeric(ERR_UNKNOWNERROR, &["*", &error.to_string()]),
        }
    }

    /// How long the client may be silent before it is pinged (and as long again before it is
    /// dropped).
    fn ping_interval(&self) -> std::time::Duration {
        self.shared.limits().ping_interval
    }

    /// The nick to address this client by in numerics (`*` before it has one).
    pub fn nick(&self) -> String {
        match self.id {
            Some(id) => hub::lock(&self.shared.hub).nick(id).to_string(),
            None => self.pending.as_ref().and_then(|p| p.nick.clone()).unwrap_or_else(|| "*".into()),
        }
    }

    /// What registration has gathered so far.
    pub fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_default()
    }

    /// Takes the current command's label: its answer comes later, with another command's.
    pub fn take_label(&mut self) -> Option<Box<str>> {
        self.answering.as_mut().and_then(|a| a.label.take())
    }

    /// The current command's label, if it has one.
    fn label(&self) -> Option<&str> {
        self.answering.as_ref().and_then(|a| a.label.as_deref())
    }

    /// Sets the current command's label (`None`: it has none).
    fn set_label(&mut self, label: Option<Box<str>>) {
        match (label, &mut self.answering) {
            (None, None) => {}
            (None, Some(answering)) => answering.label = None,
            (label, answering) => answering.get_or_insert_default().label = label,
        }
    }

    /// The answers of the current command wait until the store has committed message `id`
    /// (with `--ack-when-stored`).
    pub fn answer_once_stored(&mut self, id: MsgId) {
        self.answering.get_or_insert_default().unstored = Some(id);
    }

    /// Answers the current command under `label`, taken from an earlier one, if there is one.
    pub fn relabel(&mut self, label: Option<Box<str>>) {
        if label.is_some() {
            self.set_label(label);
        }
    }

    /// Queues one reply to the current command.
    pub fn reply(&mut self, message: Message) {
        self.replies.push(Reply::Message(message));
    }

    /// Queues a numeric reply: `:server CODE nick params…`.
    pub fn numeric(&mut self, code: &str, params: &[&str]) {
        let nick = self.nick();
        self.numeric_to(&nick, code, params);
    }

    /// [`Session::numeric`] to `nick`, the client's nick looked up already: a run of numerics
    /// (the welcome, LUSERS, the MOTD, NAMES) looks it up once, not once per line.
    pub fn numeric_to(&mut self, nick: &str, code: &str, params: &[&str]) {
        if self.answer_is_tagged() {
            let message = Message {
                source: Some(self.shared.server_name.as_str().into()),
                command: code.into(),
                params: std::iter::once(nick).chain(params.iter().copied()).map(Into::into).collect(),
                force_trailing: true,
                ..Message::default()
            };
            return self.reply(message);
        }
        // Written straight to the wire form: a registration sends some 25 of these.
        if !matches!(self.replies.last(), Some(Reply::Lines(_))) {
            self.replies.push(Reply::Lines(Vec::with_capacity(NUMERICS_BUFFER)));
        }
        if let Some(Reply::Lines(lines)) = self.replies.last_mut() {
            message::write_numeric(lines, &self.shared.server_name, code, nick, params);
        }
    }

    /// Whether [`Session::finish`] will tag the current command's replies (a label, or the
    /// batch a labeled JOIN opened), so that they must stay messages until then.
    fn answer_is_tagged(&self) -> bool {
        self.answering
            .as_ref()
            .is_some_and(|a| a.open_batch.is_some() || (a.label.is_some() && self.caps.has(Cap::LabeledResponse)))
    }

    /// Queues the numeric for a refusal from the hub.
    pub fn hub_error(&mut self, error: &HubError, sending: bool) {
        let (code, params) = from_hub(error, sending);
        let params: Vec<&str> = params.iter().map(|p| p.as_str()).collect();
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
        for message in render::messages(event, self.caps.bits()) {
            self.reply(message);
        }
    }

    /// Joins a room for this client. Its own JOIN is queued by the hub (so that nothing said
    /// in the room can arrive before it), after the answers to rooms joined earlier by the same
    /// command; for a labeled command, inside its labeled-response batch, which the first room
    /// joined opens.
    pub fn join(&mut self, room: &str, key: Option<&str>) -> Result<Option<Joined>, HubError> {
        let labeled = self.label().filter(|_| self.caps.has(Cap::LabeledResponse) && self.caps.has(Cap::Batch));
        let open_batch = self.answering.as_ref().and_then(|a| a.open_batch.as_deref());
        let reference: Option<Box<str>> = labeled.map(|_| open_batch.map_or_else(|| batch_ref().into(), Box::from));
        let ahead = match &reference {
            None => self.replies.clone(),
            Some(reference) => {
                let mut ahead = Vec::new();
                if let (Some(label), None) = (labeled, open_batch) {
                    let start = with_first_tag(self.batch_start(reference, "labeled-response", &[]), "label", label);
                    ahead.push(Reply::Message(start));
                }
                let replies = messages(self.replies.iter().cloned());
                ahead.extend(replies.map(|m| Reply::Message(in_batch(m, reference))));
                ahead
            }
        };
        let caps = self.caps.bits();
        let tag = reference.clone();
        let own = move |event: &Arc<Event>| {
            if ahead.is_empty() && tag.is_none() {
                return Out::Event(event.clone());
            }
            let mut lines = ahead;
            lines.extend(render::message(event, caps).map(|m| Reply::Message(in_batch_of(m, tag.as_deref()))));
            Out::line(encode_replies(lines))
        };
        let joined = hub::lock(&self.shared.hub).join_as(self.id.expect("registered"), room, key, own);
        if let Ok(Some(_)) = joined {
            self.replies.clear();
            if reference.is_some() {
                self.answering.get_or_insert_default().open_batch = reference;
            }
        }
        joined
    }

    /// Sends the current command's replies, labelled as the client asked.
    pub fn finish(&mut self) {
        let tagged = self.answer_is_tagged();
        let replies = std::mem::take(&mut self.replies);
        let (label, open_batch) = match &mut self.answering {
            Some(answering) => (answering.label.take(), answering.open_batch.take()),
            None => (None, None),
        };
        if self.answering.as_ref().is_some_and(|a| a.unstored.is_none()) {
            self.answering = None;
        }
        if !tagged {
            if !replies.is_empty() {
                self.outbox.push(Out::line(encode_replies(replies)));
            }
            return;
        }
        let label = label.filter(|_| self.caps.has(Cap::LabeledResponse));
        let mut replies: Vec<Message> = messages(replies).collect();
        let label = if let Some(reference) = open_batch {
            // Opened with a JOIN line: the rest of the answer goes in, then the batch ends.
            replies = replies.into_iter().map(|m| in_batch(m, &reference)).collect();
            replies.push(self.batch_end(&reference));
            None
        } else {
            label
        };
        if let Some(label) = label {
            match replies.len() {
                0 => {
                    let ack = Message::new("ACK", &[]).with_source(&self.shared.server_name);
                    replies.push(ack.with_tag("label", Some(&label)));
                }
                1 => replies[0] = with_first_tag(replies[0].clone(), "label", &label),
                // One batch (a multiline echo): the label goes on its opening line alone.
                _ if one_batch(&replies) => replies[0] = with_first_tag(replies[0].clone(), "label", &label),
                _ if self.caps.has(Cap::Batch) => {
                    let reference = batch_ref();
                    replies = self.wrap_batch(replies, &reference, "labeled-response", &[]);
                    replies[0] = with_first_tag(replies[0].clone(), "label", &label);
                }
                _ => {}
            }
        }
        if !replies.is_empty() {
            self.outbox.push(Out::line(encode(&replies)));
        }
    }

    /// Wraps `inner` in `BATCH +reference kind params…` … `BATCH -reference`.
    pub fn wrap_batch(&self, inner: Vec<Message>, reference: &str, kind: &str, params: &[&str]) -> Vec<Message> {
        let mut out = vec![self.batch_start(reference, kind, params)];
        out.extend(inner.into_iter().map(|m| in_batch(m, reference)));
        out.push(self.batch_end(reference));
        out
    }

    /// `BATCH +reference kind params…`, from the server.
    fn batch_start(&self, reference: &str, kind: &str, params: &[&str]) -> Message {
        let opening = format!("+{reference}");
        let all: Vec<&str> = [opening.as_str(), kind].into_iter().chain(params.iter().copied()).collect();
        Message::new("BATCH", &all).with_source(&self.shared.server_name)
    }

    /// `BATCH -reference`, from the server.
    fn batch_end(&self, reference: &str) -> Message {
        Message::new("BATCH", &[&format!("-{reference}")]).with_source(&self.shared.server_name)
    }

    /// Completes registration once NICK and USER are in and capability negotiation is over.
    pub fn try_register(&mut self) {
        if self.id.is_some() || self.negotiating {
            return;
        }
        let Some(Pending { nick: Some(nick), user: Some((user, realname)), claimed }) = self.pending.as_deref() else {
            return;
        };
        let nick_claimed = claimed.as_ref().is_some_and(|(claimed, _)| claimed == nick);
        let (nick, user, realname) = (nick.clone(), user.clone(), realname.clone());
        let password = self.login.as_ref().and_then(|l| l.password.as_deref());
        if !hub::lock(&self.shared.hub).admits(password) {
            tracing::warn!("{} gave a wrong or no server password", self.peer);
            self.numeric(ERR_PASSWDMISMATCH, &["Password incorrect: this server is private (PASS password)"]);
            self.quit = Some("Bad password".into());
            return;
        }
        // In a cluster the nick is claimed on the bus first: no other node gives it meanwhile.
        if let Some(bus) = self.shared.bus.clone()
            && !nick_claimed
        {
            self.defer(async move {
                let claimed = bus.claim(&nick).await;
                Box::new(move |session: &mut Session| match claimed {
                    Ok(fresh) => {
                        session.pending().claimed = Some((nick, fresh));
                        session.try_register();
                    }
                    Err(()) => {
                        session.pending().nick = None;
                        session.hub_error(&HubError::NickInUse(nick), false);
                    }
                }) as Then
            });
            return;
        }
        let registration = Registration {
            nick: Some(nick),
            user: format!("~{user}").into(),
            host: self.peer.ip().to_string(),
            realname: realname.into(),
            protocol: hub::Protocol::Irc,
            secure: self.peer.secure(),
            certfp: self.peer.client_cert().map(|fp| fp.to_string()),
            outbox: self.outbox.clone(),
        };
        // Logged in by SASL already: the account comes with the nick, under one lock, so that
        // the nick is never for a moment held without its account.
        let registered = {
            let mut hub = hub::lock(&self.shared.hub);
            let registered = hub.register(registration);
            if let (Ok((id, _)), Some(account)) = (&registered, self.login.as_mut().and_then(|l| l.account.take())) {
                hub.log_in(*id, &account);
            }
            registered
        };
        if let (Err(_), Some((nick, true)), Some(bus)) = (&registered, self.pending().claimed.take(), &self.shared.bus)
        {
            let bus = bus.clone();
            tokio::spawn(async move { bus.release(&nick).await });
        }
        match registered {
            Ok((id, nick)) => {
                self.id = Some(id);
                self.outbox.liveness().registered();
                self.pending = None;
                tracing::info!("{} connected as {nick} (IRC)", self.peer);
                self.welcome();
            }
            Err(HubError::ShuttingDown) => self.quit = Some("Server shutting down".into()),
            Err(error @ HubError::ServerBanned(_)) => {
                tracing::info!("{} refused: {error}", self.peer);
                self.hub_error(&error, false);
                self.quit = Some(error.to_string().into());
            }
            Err(error) => {
                self.pending().nick = None;
                self.hub_error(&error, false);
            }
        }
    }

    /// 001–005, LUSERS and the MOTD: what every IRC client expects after registering.
    fn welcome(&mut self) {
        let id = self.id.expect("registered");
        let (nick, mask) = {
            let hub = hub::lock(&self.shared.hub);
            let source = hub.source(id);
            (source.nick.clone(), render::mask(source))
        };
        let server = self.shared.server_name.clone();
        let created = render::iso_time(
            self.shared.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        );
        self.numeric_to(&nick, RPL_WELCOME, &[&format!("Welcome to the charla chat network, {mask}")]);
        self.numeric_to(&nick, RPL_YOURHOST, &[&format!("Your host is {server}, running version charla-{VERSION}")]);
        self.numeric_to(&nick, RPL_CREATED, &[&format!("This server was created {created}")]);
        self.numeric_to(&nick, RPL_MYINFO, &[&server, &format!("charla-{VERSION}"), "BiowZ", "biklmnoRstv", "bklov"]);
        commands::isupport(self, &nick);
        commands::lusers(self, &nick);
        commands::motd(self, &nick);
    }
}

/// One reply to the command being handled: a message, or numerics already in their wire form
/// (lines that no tag will be added to).
#[derive(Clone)]
enum Reply {
    Message(Message),
    Lines(Vec<u8>),
}

/// The replies as messages: numerics written as lines are read back, for the rare answer
/// that is tagged after they were written (see [`Session::answer_is_tagged`]).
fn messages(replies: impl IntoIterator<Item = Reply>) -> impl Iterator<Item = Message> {
    replies.into_iter().flat_map(|reply| match reply {
        Reply::Message(message) => vec![message],
        Reply::Lines(lines) => String::from_utf8_lossy(&lines)
            .split_terminator("\r\n")
            .filter_map(|line| Message::parse(line).ok())
            .map(Message::with_trailing_colon)
            .collect(),
    })
}

/// Replies as the bytes of consecutive lines; numerics alone are sent as they were written.
fn encode_replies(mut replies: Vec<Reply>) -> Bytes {
    if let [Reply::Lines(lines)] = replies.as_mut_slice() {
        return Bytes::from(std::mem::take(lines));
    }
    let mut buf = Vec::with_capacity(replies.len() * REPLY_LINE);
    for reply in replies {
        match reply {
            Reply::Message(message) => message.write_to(&mut buf),
            Reply::Lines(lines) => buf.extend_from_slice(&lines),
        }
    }
    Bytes::from(buf)
}

/// Messages as the bytes of consecutive lines.
fn encode(messages: &[Message]) -> Bytes {
    // Most replies are short lines: room for this many spares the buffer's regrowth (a
    // registration's two dozen lines would otherwise grow it eight times).
    let mut buf = Vec::with_capacity(messages.len() * REPLY_LINE);
    for message in messages {
        message.write_to(&mut buf);
    }
    Bytes::from(buf)
}

/// What [`encode`] expects a line to take, in bytes.
const REPLY_LINE: usize = 64;

/// Room for the numerics of one answer to begin with: most answers are a few lines.
const NUMERICS_BUFFER: usize = 256;

/// Are these lines exactly one batch, from its opening to its end?
fn one_batch(lines: &[Message]) -> bool {
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else { return false };
    let opening = first.params.first().and_then(|p| p.strip_prefix('+'));
    let closing = last.params.first().and_then(|p| p.strip_prefix('-'));
    first.command == "BATCH"
        && last.command == "BATCH"
        && opening.is_some()
        && opening == closing
        && lines[1..lines.len() - 1].iter().all(|m| m.tag("batch").flatten() == opening)
}

/// Tags a message as part of the batch `reference`; lines already inside a nested batch keep
/// their own batch tag.
fn in_batch(message: Message, reference: &str) -> Message {
    if message.tag("batch").is_some() { message } else { with_first_tag(message, "batch", reference) }
}

/// [`in_batch`] if there is a batch.
fn in_batch_of(message: Message, reference: Option<&str>) -> Message {
    match reference {
        Some(reference) => in_batch(message, reference),
        None => message,
    }
}

/// Adds a tag in front of a message's own tags.
fn with_first_tag(mut message: Message, key: &str, value: &str) -> Message {
    message.tags.insert(0, (key.to_string(), Some(value.to_string())));
    message
}
