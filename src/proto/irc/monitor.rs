//! `MONITOR`: a client's list of nicks to be told about when they come online or go offline
//! (IRCv3 `monitor`), and `extended-monitor`, which adds their away and real-name changes.
//! The list and the notifications are the hub's ([`crate::hub::Hub::monitor_add`] …); this
//! translates them into 730–734.

use super::caps::Cap;
use super::message::Message;
use super::numeric::*;
use super::render;
use super::session::Session;
use crate::hub::{self, MONITOR_LIMIT, Monitored};

/// `MONITOR + nicks`, `- nicks`, `C`, `L`, `S`.
pub fn monitor(session: &mut Session, message: &Message) {
    let id = session.id.expect("registered");
    let nicks = message.params.get(1).map_or("", |p| p.as_str());
    let nicks = || nicks.split(',').filter(|n| !n.is_empty());
    match message.params[0].as_str() {
        "+" if nicks().next().is_none() => session.numeric(ERR_NEEDMOREPARAMS, &["MONITOR", "Not enough parameters"]),
        "+" => {
            let updates = session.caps.has(Cap::ExtendedMonitor);
            let added = {
                let mut hub = hub::lock(&session.shared.hub);
                hub.set_monitor_updates(id, updates);
                hub.monitor_add(id, nicks())
            };
            status(session, &added);
            if !added.refused.is_empty() {
                let refused = added.refused.join(",");
                session.numeric(ERR_MONLISTFULL, &[&MONITOR_LIMIT.to_string(), &refused, "Monitor list is full."]);
            }
        }
        "-" => hub::lock(&session.shared.hub).monitor_remove(id, nicks()),
        "C" | "c" => hub::lock(&session.shared.hub).unmonitor_all(id),
        "L" | "l" => {
            let list = hub::lock(&session.shared.hub).monitor_list(id);
            for chunk in comma_chunks(list) {
                session.numeric(RPL_MONLIST, &[&chunk]);
            }
            session.numeric(RPL_ENDOFMONLIST, &["End of MONITOR list"]);
        }
        "S" | "s" => {
            let now = hub::lock(&session.shared.hub).monitor_status(id);
            status(session, &now);
        }
        other => session.numeric(ERR_UNKNOWNERROR, &["MONITOR", other, "Unknown MONITOR modifier: use + - C L or S"]),
    }
}

/// 730 for the nicks online (as `nick!user@host`), 731 for the others.
fn status(session: &mut Session, monitored: &Monitored) {
    for chunk in comma_chunks(monitored.online.iter().map(render::mask)) {
        session.numeric(RPL_MONONLINE, &[&chunk]);
    }
    for chunk in comma_chunks(monitored.offline.iter().cloned()) {
        session.numeric(RPL_MONOFFLINE, &[&chunk]);
    }
}

/// Comma-separated lists short enough for one line each.
fn comma_chunks(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some(last) if last.len() + 1 + item.len() <= 400 => {
                last.push(',');
                last.push_str(&item);
            }
            _ => chunks.push(item),
        }
    }
    chunks
}

/// After `CAP REQ`: a registered client that turned `extended-monitor` on or off is told of
/// its monitored nicks' changes from now on, or no longer.
pub fn caps_changed(session: &mut Session) {
    if let Some(id) = session.id {
        hub::lock(&session.shared.hub).set_monitor_updates(id, session.caps.has(Cap::ExtendedMonitor));
    }
}
