//! What an IRC user changes about itself besides its nick: `SETNAME` (IRCv3 `setname`), the
//! user modes `+B` (a bot, IRCv3 bot mode) and `+w`, and the server operators' `WALLOPS`.

use super::caps::Cap;
use super::message::Message;
use super::session::Session;
use crate::hub::{self, HubError};

/// The user mode of bots (`BOT=B` in ISUPPORT), shown as a WHO flag too.
pub const BOT_MODE: char = 'B';

/// `SETNAME :new real name`. Clients with `setname` see their change confirmed, as does
/// everyone with `setname` who shares a room with them.
pub fn setname(session: &mut Session, message: &Message) {
    let changed = hub::lock(&session.shared.hub).set_realname(session.id.expect("registered"), &message.params[0]);
    match changed {
        Ok(event) if session.caps.has(Cap::Setname) => session.own_event(&event),
        Ok(_) => {}
        // The setname spec answers with FAIL whether or not the client asked for standard-replies.
        Err(HubError::BadRealname) if session.caps.has(Cap::Setname) => {
            let text = HubError::BadRealname.to_string();
            let fail = Message::new("FAIL", &["SETNAME", "INVALID_REALNAME", &text]);
            session.reply(fail.with_source(&session.shared.server_name).with_trailing_colon());
        }
        Err(HubError::BadRealname) => {
            let text = HubError::BadRealname.to_string();
            session.standard_reply("FAIL", "SETNAME", "INVALID_REALNAME", &[], &text);
        }
        Err(error) => session.hub_error(&error, false),
    }
}

/// `WALLOPS :text`: server operators to everyone with user mode `+w`.
pub fn wallops(session: &mut Session, message: &Message) {
    let id = session.id.expect("registered");
    let sent = hub::lock(&session.shared.hub).wallops(id, &message.params[0]);
    match sent {
        Ok(event) => {
            if hub::lock(&session.shared.hub).user_modes(id).wallops {
                session.own_event(&event);
            }
        }
        Err(error) => session.hub_error(&error, false),
    }
}
