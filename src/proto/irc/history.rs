//! History for IRC clients: `CHATHISTORY` (IRCv3 `draft/chathistory`, with
//! `draft/event-playback`), and a short replay on join for clients that cannot ask.

use super::caps::Cap;
use super::message::Message;
use super::render::{self, iso_time};
use super::session::{Session, batch_ref};
use crate::hub::{self, Event, MsgId};
use crate::store::{Bound, Include, Record, Selector};

/// The most messages one `CHATHISTORY` answer holds (`CHATHISTORY=100` in ISUPPORT).
pub const MAX_LIMIT: usize = 100;

/// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN target … limit` and `CHATHISTORY TARGETS`.
pub fn chathistory(session: &mut Session, message: &Message) {
    let id = session.id.expect("registered");
    let params: Vec<&str> = message.params.iter().map(|p| p.as_str()).collect();
    let sub = params[0].to_ascii_uppercase();
    let fail = |session: &mut Session, code: &str, context: &[&str], text: &str| {
        session.standard_reply("FAIL", "CHATHISTORY", code, context, text);
    };
    let needed = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" => 4,
        "BETWEEN" => 5,
        "TARGETS" => 4,
        _ => {
            return fail(
                session,
                "INVALID_PARAMS",
                &[&sub],
                "Unknown subcommand: use LATEST, BEFORE, AFTER, AROUND, BETWEEN or TARGETS",
            );
        }
    };
    if params.len() < needed {
        return fail(session, "NEED_MORE_PARAMS", &[&sub], "Not enough parameters");
    }
    let Some(limit) = params[needed - 1].parse::<usize>().ok().filter(|&l| l > 0) else {
        return fail(session, "INVALID_PARAMS", &[&sub, params[needed - 1]], "The limit must be a number above 0");
    };
    let limit = limit.min(MAX_LIMIT);
    if sub == "TARGETS" {
        return targets(session, params[1], params[2], limit);
    }
    let target = params[1];
    let Some(selector) = selector(&sub, &params[2..needed - 1]) else {
        return fail(
            session,
            "INVALID_PARAMS",
            &[&sub, target],
            "Name messages as msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
        );
    };
    let scope = hub::lock(&session.shared.hub).history_target(id, target);
    let (key, since) = match scope {
        Ok(scope) => scope,
        Err(e) => return fail(session, "INVALID_TARGET", &[&sub, target], &e.to_string()),
    };
    let include = if session.caps.has(Cap::EventPlayback) { Include::Everything } else { Include::Messages };
    match session.shared.store.history(&key, &selector, limit, include) {
        Ok(mut records) => {
            // Redacted messages are left out, as the message-redaction spec allows.
            records.retain(|r| !r.redacted && since.is_none_or(|since| r.id >= since));
            send_batch(session, target, &records, true);
        }
        Err(e) => {
            tracing::warn!("history: CHATHISTORY {sub} {target} failed: {e}");
            fail(session, "MESSAGE_ERROR", &[&sub, target], e.brief())
        }
    }
}

/// The selector of `CHATHISTORY sub target bounds… limit`: `sub` in capitals, `bounds` the one
/// parameter between target and limit (two for `BETWEEN`). `None` when a bound is not `*`
/// (`LATEST` only), `msgid=…` or `timestamp=…`, or `sub` names no selector.
pub fn selector(sub: &str, bounds: &[&str]) -> Option<Selector> {
    let first = *bounds.first()?;
    match (sub, parse_bound(first)) {
        ("LATEST", _) if first == "*" => Some(Selector::Latest(None)),
        ("LATEST", Some(b)) => Some(Selector::Latest(Some(b))),
        ("BEFORE", Some(b)) => Some(Selector::Before(b)),
        ("AFTER", Some(b)) => Some(Selector::After(b)),
        ("AROUND", Some(b)) => Some(Selector::Around(b)),
        ("BETWEEN", Some(b)) => bounds.get(1).and_then(|c| parse_bound(c)).map(|c| Selector::Between(b, c)),
        _ => None,
    }
}

/// `msgid=…` or `timestamp=…`.
pub fn parse_bound(text: &str) -> Option<Bound> {
    match text.split_once('=')? {
        ("msgid", id) => id.parse::<MsgId>().ok().map(Bound::MsgId),
        ("timestamp", time) => render::parse_time(time).map(Bound::Time),
        _ => None,
    }
}

/// `CHATHISTORY TARGETS from to limit`: the rooms and conversations with messages in a range.
fn targets(session: &mut Session, from: &str, to: &str, limit: usize) {
    let (Some(from), Some(to)) = (parse_bound(from), parse_bound(to)) else {
        return session.standard_reply(
            "FAIL",
            "CHATHISTORY",
            "INVALID_PARAMS",
            &["TARGETS"],
            "Give two timestamp= bounds",
        );
    };
    let id = session.id.expect("registered");
    let ((owner, since), rooms) = {
        let hub = hub::lock(&session.shared.hub);
        (hub.history_owner(id), hub.rooms_of(id))
    };
    let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
    match session.shared.store.targets(&owner, &rooms, from, to, limit) {
        Ok(mut found) => {
            // Without an account, private conversations only if they went on since this
            // connection took its nick; the other party is named by its nick.
            found.retain(|t| t.name.starts_with('#') || since.is_none_or(|since| t.latest >= since));
            for t in &mut found {
                if let Some(account) = t.name.strip_prefix('~') {
                    t.name = account.to_string();
                }
            }
            let server = session.shared.server_name.clone();
            let lines = found
                .iter()
                .map(|t| {
                    let time = format!("timestamp={}", iso_time(t.latest.millis()));
                    Message::new("CHATHISTORY", &["TARGETS", &t.name, &time]).with_source(&server)
                })
                .collect();
            push_batch(session, lines, "draft/chathistory-targets", &[]);
        }
        Err(e) => {
            tracing::warn!("history: CHATHISTORY TARGETS failed: {e}");
            session.standard_reply("FAIL", "CHATHISTORY", "MESSAGE_ERROR", &["TARGETS"], e.brief())
        }
    }
}

/// After a JOIN, the room's recent messages for a client that cannot ask for history itself.
pub fn replay_on_join(session: &mut Session, room: &str) {
    let count = session.shared.history.join_replay;
    if count == 0 || session.caps.has(Cap::Chathistory) {
        return;
    }
    match session.shared.store.history(room, &Selector::Latest(None), count, Include::Messages) {
        Ok(mut records) => {
            // A replay arrives as live lines: an old CTCP request (VERSION, PING, …) would be
            // answered again by every client that joins. `/me` actions are not requests.
            records.retain(|r| !r.redacted && !r.text.starts_with('\x01'));
            if !records.is_empty() {
                send_batch(session, room, &records, false);
            }
        }
        Err(e) => tracing::warn!("history: no replay for {room}: {e}"),
    }
}

/// Records as a `chathistory` batch (or bare lines for clients without `batch`). History
/// always carries its time and id when the client asked for history; a join replay carries
/// what the client negotiated.
fn send_batch(session: &mut Session, target: &str, records: &[Record], asked: bool) {
    let mut caps = session.caps.bits();
    if asked {
        caps |= Cap::ServerTime as u32 | Cap::MessageTags as u32;
    }
    let lines = records.iter().flat_map(|r| render::messages(&Event::from_record(r), caps)).collect();
    push_batch(session, lines, "chathistory", &[target]);
}

fn push_batch(session: &mut Session, lines: Vec<Message>, kind: &str, params: &[&str]) {
    if session.caps.has(Cap::Batch) {
        for message in session.wrap_batch(lines, &batch_ref(), kind, params) {
            session.reply(message);
        }
    } else {
        for message in lines {
            session.reply(message);
        }
    }
}
