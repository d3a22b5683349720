//! `REDACT target msgid [:reason]` (IRCv3 `draft/message-redaction`): the message is looked up
//! in the store, the hub decides whether this client may redact it, and the clients that have
//! the capability are told. Refusals are `FAIL REDACT …` standard replies.

use super::caps::Cap;
use super::message::Message;
use super::session::Session;
use crate::hub::{self, HubError, MsgId};

pub fn redact(session: &mut Session, message: &Message) {
    let id = session.id.expect("registered");
    let (target, msgid) = (message.params[0].as_str(), message.params[1].as_str());
    let reason = message.params.get(2).map_or("", |p| p.as_str());
    let fail = |session: &mut Session, code: &str, context: &[&str], text: &str| {
        session.standard_reply("FAIL", "REDACT", code, context, text);
    };
    let scope = hub::lock(&session.shared.hub).history_target(id, target);
    let Ok((key, since)) = scope else {
        return fail(session, "INVALID_TARGET", &[target], &format!("You cannot delete messages from {target}"));
    };
    let unknown = |session: &mut Session| {
        fail(session, "UNKNOWN_MSGID", &[target, msgid], "This message does not exist or is too old");
    };
    let Ok(parsed) = msgid.parse::<MsgId>() else { return unknown(session) };
    let found = match session.shared.store.message(&key, parsed) {
        Ok(found) => found.filter(|r| !r.redacted && r.kind.is_message() && since.is_none_or(|s| r.id >= s)),
        Err(e) => return fail(session, "UNKNOWN_MSGID", &[target, msgid], &e.to_string()),
    };
    let Some(found) = found else { return unknown(session) };
    let redacted = hub::lock(&session.shared.hub).redact(id, target, &found, reason);
    match redacted {
        Ok(event) => {
            if session.caps.has(Cap::EchoMessage) && session.caps.has(Cap::MessageRedaction) {
                session.own_event(&event);
            }
        }
        Err(error @ HubError::NotYourMessage) => {
            fail(session, "REDACT_FORBIDDEN", &[target, msgid], &error.to_string());
        }
        Err(error) => fail(session, "INVALID_TARGET", &[target], &error.to_string()),
    }
}
