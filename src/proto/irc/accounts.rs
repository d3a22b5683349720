//! Accounts over IRC: SASL PLAIN and EXTERNAL (`AUTHENTICATE`, numerics 900–908), `REGISTER`/`VERIFY`
//! (`draft/account-registration`), messages to the NickServ service, `MARKREAD`; and the
//! operators' server bans, `KLINE`/`UNKLINE`, kept in the same store. Checking a password
//! takes a while (hashing), so these commands hand their work to the session
//! ([`Session::defer`]), which goes on writing the client's queue meanwhile and answers once
//! the work is done.

use super::message::Message;
use super::numeric::*;
use super::render;
use super::session::{Session, Then};
use crate::accounts::sasl::{self, Mechanism, Plain, SaslError};
use crate::accounts::{AccountError, Request};
use crate::hub::{self, accounts::SERVICE};

fn param(message: &Message, i: usize) -> &str {
    message.params.get(i).map_or("", |p| p.as_str())
}

/// `AUTHENTICATE mechanism`, then the response in base64 chunks; `AUTHENTICATE *` aborts.
pub fn authenticate(session: &mut Session, message: &Message) {
    let arg = param(message, 0);
    if let Some(account) = session.account() {
        session.login().sasl = None;
        return session.numeric(ERR_SASLALREADY, &[&format!("You are already logged in as {account}")]);
    }
    if arg == "*" {
        session.login().sasl = None;
        return session.numeric(ERR_SASLABORTED, &["SASL authentication aborted"]);
    }
    let Some(response) = session.login().sasl.as_mut() else {
        if let Some(mechanism) = Mechanism::named(arg) {
            session.login().sasl = Some(sasl::Response::new(mechanism));
            session.reply(Message::new("AUTHENTICATE", &["+"]));
        } else {
            session.numeric(RPL_SASLMECHS, &[sasl::MECHANISMS, "are available SASL mechanisms"]);
            session.numeric(ERR_SASLFAIL, &["SASL authentication failed: that mechanism is not offered"]);
        }
        return;
    };
    let whole = match response.add(arg) {
        Ok(None) => return,
        Ok(Some(whole)) => whole,
        Err(SaslError::TooLong | SaslError::Malformed) => {
            session.login().sasl = None;
            return session.numeric(ERR_SASLTOOLONG, &["SASL message too long"]);
        }
    };
    let mechanism = response.1;
    session.login().sasl = None;
    if mechanism == Mechanism::External {
        return external(session, &whole);
    }
    let plain = match Plain::decode(&whole) {
        Ok(plain) => plain,
        Err(e) => return session.numeric(ERR_SASLFAIL, &[&format!("SASL authentication failed: {e}")]),
    };
    let (shared, id, ip) = (session.shared.clone(), session.id, session.peer.ip());
    session.defer(async move { sasl_outcome(shared.accounts.log_in(id, &plain.account, &plain.password, ip).await) });
}

/// SASL EXTERNAL with the (complete) response `whole`: logs in the account that lists the
/// connection's client certificate.
fn external(session: &mut Session, whole: &str) {
    let wanted = match sasl::external(whole) {
        Ok(wanted) => wanted,
        Err(e) => return session.numeric(ERR_SASLFAIL, &[&format!("SASL authentication failed: {e}")]),
    };
    let fingerprint = session.peer.client_cert().map(|fp| fp.to_string());
    let (shared, id, ip) = (session.shared.clone(), session.id, session.peer.ip());
    session.defer(async move { sasl_outcome(shared.accounts.log_in_cert(id, fingerprint, wanted, ip).await) });
}

/// What the client is told once a SASL login is decided: 900 and 903, or 904 and why.
fn sasl_outcome(result: Result<String, impl std::fmt::Display + Send + 'static>) -> Then {
    Box::new(move |session: &mut Session| match result {
        Ok(account) => {
            logged_in(session, &account);
            session.numeric(RPL_SASLSUCCESS, &["SASL authentication successful"]);
        }
        Err(e) => session.numeric(ERR_SASLFAIL, &[&format!("SASL authentication failed: {e}")]),
    })
}

/// 900, and for a client not registered yet, the account to log in to when it is.
fn logged_in(session: &mut Session, account: &str) {
    let mask = match session.id {
        Some(id) => render::mask(hub::lock(&session.shared.hub).source(id)),
        None => {
            session.login().account = Some(account.to_string());
            let user = session.pending().user.as_ref().map_or("*", |(user, _)| user.as_str()).to_string();
            format!("{}!~{user}@{}", session.nick(), session.peer.ip())
        }
    };
    session.numeric(RPL_LOGGEDIN, &[&mask, account, &format!("You are now logged in as {account}")]);
}

/// `REGISTER <account> {<email> | *} <password>`: creates the account at once (no e-mail
/// step) and logs the client in to it. `*` as the account means the current nick.
pub fn register(session: &mut Session, message: &Message) {
    let Some(id) = session.id else {
        return session.standard_reply(
            "FAIL",
            "REGISTER",
            "COMPLETE_CONNECTION_REQUIRED",
            &["*"],
            "Register your account once connected",
        );
    };
    let name = match param(message, 0) {
        "*" => session.nick(),
        name => name.to_string(),
    };
    let password = param(message, 2).to_string();
    let shared = session.shared.clone();
    session.defer(async move {
        let result = shared.accounts.register(Some(id), &name, &password).await;
        Box::new(move |session: &mut Session| match result {
            Ok(account) => {
                let server = session.shared.server_name.clone();
                let text = format!("Account {account} registered; you are logged in to it");
                session.reply(
                    Message::new("REGISTER", &["SUCCESS", &account, &text]).with_source(&server).with_trailing_colon(),
                );
                logged_in(session, &account);
            }
            Err(e) => {
                let code = match e {
                    AccountError::Exists(_) => "ACCOUNT_EXISTS",
                    AccountError::BadName(_) | AccountError::NickInUse(_) | AccountError::GuestNick => {
                        "BAD_ACCOUNT_NAME"
                    }
                    AccountError::WeakPassword => "WEAK_PASSWORD",
                    AccountError::BadPassword => "UNACCEPTABLE_PASSWORD",
                    AccountError::AlreadyLoggedIn(_) => "ALREADY_REGISTERED",
                    _ => "TEMPORARILY_UNAVAILABLE",
                };
                session.standard_reply("FAIL", "REGISTER", code, &[&name], &e.to_string());
            }
        }) as Then
    });
}

/// `VERIFY <account> <code>`: registration needs no verification here, so there is never a
/// code to check.
pub fn verify(session: &mut Session, message: &Message) {
    let account = param(message, 0).to_string();
    if session.account().is_some() {
        return session.standard_reply("FAIL", "VERIFY", "ALREADY_REGISTERED", &[&account], "You are logged in");
    }
    session.standard_reply("FAIL", "VERIFY", "INVALID_CODE", &[&account], "No registration here waits for a code");
}

/// A message to the NickServ service: IDENTIFY, REGISTER, LOGOUT, HELP. It answers with
/// notices.
pub fn service(session: &mut Session, text: &str) {
    let id = session.id.expect("registered");
    let request = Request::from_service_message(text);
    let (shared, ip) = (session.shared.clone(), session.peer.ip());
    session.defer(async move {
        let result = shared.accounts.apply(request, id, ip).await;
        Box::new(move |session: &mut Session| {
            let text = result.unwrap_or_else(|e| e.to_string());
            let nick = session.nick();
            let source = format!("{SERVICE}!{SERVICE}@services");
            session.reply(Message::new("NOTICE", &[&nick, &text]).with_source(&source).with_trailing_colon());
        }) as Then
    });
}

/// `MARKREAD target [timestamp=…]` (`draft/read-marker`): how far the account has read a room
/// or a conversation, kept per account and shared by its connections alone; a guest's is kept
/// for its connection only (web clients such as gamja send MARKREAD whether logged in or not).
pub fn markread(session: &mut Session, message: &Message) {
    let target = param(message, 0).to_string();
    if !(target.starts_with('#') || crate::hub::text::valid_nick(&target)) {
        return session.standard_reply("FAIL", "MARKREAD", "INVALID_PARAMS", &[&target], "Name a room or a nick");
    }
    let at = match message.params.get(1) {
        None => None,
        Some(at) => match at.strip_prefix("timestamp=").and_then(render::parse_time) {
            Some(at) => Some(at),
            None => {
                return session.standard_reply(
                    "FAIL",
                    "MARKREAD",
                    "INVALID_PARAMS",
                    &[&target, at],
                    "Give the time as timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
                );
            }
        },
    };
    let id = session.id.expect("registered");
    let Some(account) = session.account() else {
        let stored = hub::lock(&session.shared.hub).guest_read_marker(id, &target, at);
        let server = session.shared.server_name.clone();
        return session.reply(render::read_marker(&server, &target, stored));
    };
    let shared = session.shared.clone();
    session.defer(async move {
        let result = match at {
            Some(at) => shared.accounts.set_read_marker(&account, &target, at).await.map(Some),
            None => shared.accounts.read_marker(&account, &target).await,
        };
        Box::new(move |session: &mut Session| match result {
            Ok(stored) => {
                // Moved to where this client asked (it never moves back): the others hear of it.
                if let Some(stored) = stored.filter(|&stored| Some(stored) == at) {
                    hub::lock(&session.shared.hub).read_marker_moved(id, &target, stored);
                }
                let server = session.shared.server_name.clone();
                session.reply(render::read_marker(&server, &target, stored));
            }
            Err(e) => session.standard_reply("FAIL", "MARKREAD", "INTERNAL_ERROR", &[&target], &e.to_string()),
        }) as Then
    });
}

/// After a JOIN, for a client with `draft/read-marker`: how far it (its account, or itself as a
/// guest) has read the room, `*` if never (before the end of NAMES, as the spec asks).
pub fn read_marker_on_join(session: &mut Session, room: &str) {
    if !session.caps.has(crate::proto::irc::caps::Cap::ReadMarker) {
        return;
    }
    let marker = hub::lock(&session.shared.hub).read_marker(session.id.expect("registered"), room);
    let server = session.shared.server_name.clone();
    session.reply(render::read_marker(&server, room, marker));
}

/// `KLINE [minutes] mask :reason` (server operators): bans a mask from the server.
pub fn kline(session: &mut Session, message: &Message) {
    let (minutes, rest) = match param(message, 0).parse::<u64>() {
        Ok(0) => (None, &message.params[1..]),
        Ok(minutes) => (Some(minutes), &message.params[1..]),
        Err(_) => (None, &message.params[..]),
    };
    let Some(mask) = rest.first().filter(|m| !m.is_empty()).cloned() else {
        return session.numeric(ERR_NEEDMOREPARAMS, &["KLINE", "Not enough parameters"]);
    };
    let reason = rest.get(1).cloned().unwrap_or_default();
    let (shared, id) = (session.shared.clone(), session.id.expect("registered"));
    session.defer(async move {
        let result = shared.accounts.kline(id, &mask, &reason, minutes).await;
        Box::new(move |session: &mut Session| operator_answer(session, result)) as Then
    });
}

/// `UNKLINE mask` (server operators): lifts a server ban.
pub fn unkline(session: &mut Session, message: &Message) {
    let mask = param(message, 0).to_string();
    let (shared, id) = (session.shared.clone(), session.id.expect("registered"));
    session.defer(async move {
        let result = shared.accounts.unkline(id, &mask).await;
        Box::new(move |session: &mut Session| operator_answer(session, result)) as Then
    });
}

/// A server notice with what an operator's command did, or the numeric of its refusal.
fn operator_answer(session: &mut Session, result: Result<String, crate::hub::HubError>) {
    match result {
        Ok(text) => {
            let nick = session.nick();
            session.server_line("NOTICE", &[&nick, &text]);
        }
        Err(error) => session.hub_error(&error, false),
    }
}
