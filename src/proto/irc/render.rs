//! Events as IRC lines. Each event is encoded once per combination of the capabilities that
//! change its wire form (server-time, message-tags, extended-join) and shared by every
//! recipient with that combination.

use std::borrow::Cow;

use bytes::Bytes;

use super::caps::Cap;
use super::message::Message;
use super::multiline;
use super::numeric::{RPL_MONOFFLINE, RPL_MONONLINE};
use super::session::Session;
use crate::hub::{Closed, Event, EventKind, MsgKind, Source};
use crate::net::Render;

/// `nick!user@host`, as IRC shows a user.
pub fn mask(source: &Source) -> String {
    format!("{}!{}@{}", source.nick, source.user, source.host)
}

/// Milliseconds since the Unix epoch as IRCv3 `server-time` (`2026-11-25T10:00:00.000Z`).
pub fn iso_time(millis: u64) -> String {
    let time = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(millis as i64);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.format(&format).unwrap_or_default()
}

/// Parses an IRCv3 timestamp back to milliseconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<u64> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The capability bits that change how an event is written, as an index into its cache. The
/// third bit is extended-join for a join and draft/multiline (with batch) for a message: no
/// event depends on both, so eight slots serve every combination; the fourth, account-tag,
/// matters only for what a logged-in user does.
fn format_of(caps: u32, event: &Event) -> usize {
    let tagged = caps & Cap::AccountTag as u32 != 0 && event.actor().account.is_some();
    format_without_account(caps, event) | if tagged { 8 } else { 0 }
}

fn format_without_account(caps: u32, event: &Event) -> usize {
    let third = match event.kind {
        EventKind::Join { .. } => Cap::ExtendedJoin as u32,
        _ => Cap::Multiline as u32 | Cap::Batch as u32,
    };
    let mut format = 0;
    for (i, bits) in [Cap::ServerTime as u32, Cap::MessageTags as u32, third].into_iter().enumerate() {
        if caps & bits == bits {
            format |= 1 << i;
        }
    }
    format
}

/// An event as the IRC lines a client with `caps` receives: one line, none, or for a message of
/// several lines, or too long for one, a `draft/multiline` batch (one PRIVMSG per line for
/// clients without it).
pub fn messages(event: &Event, caps: u32) -> Vec<Message> {
    match &event.kind {
        EventKind::Message { from, target, text, .. } if multiline::needed(from, target, text) => {
            multiline::render(event, caps)
        }
        _ => message(event, caps).into_iter().collect(),
    }
}

/// The tags the server adds to an event line for a client with `caps`.
pub fn add_tags(mut message: Message, event: &Event, caps: u32) -> Message {
    if caps & Cap::ServerTime as u32 != 0 {
        message = message.with_tag("time", Some(&iso_time(event.time)));
    }
    if caps & Cap::AccountTag as u32 != 0
        && let Some(account) = &event.actor().account
    {
        message = message.with_tag("account", Some(account));
    }
    if caps & Cap::MessageTags as u32 != 0 {
        if event.actor().bot {
            message = message.with_tag("bot", None);
        }
        message = message.with_tag("msgid", Some(&event.id.to_string()));
        if let EventKind::Message { tags, .. } = &event.kind {
            for (key, value) in tags {
                message = message.with_tag(key, value.as_deref());
            }
        }
    }
    message
}

/// An event as the IRC message a client with `caps` receives, or `None` if such a client does
/// not receive it at all (TAGMSG without message-tags) or it is no user's doing (a
/// [`presence`] change, which the server announces).
pub fn message(event: &Event, caps: u32) -> Option<Message> {
    let source = match &event.kind {
        EventKind::Message { from, .. } => from,
        _ => event.actor(),
    };
    let message = match &event.kind {
        EventKind::Message { target, kind, text, .. } => {
            let target = target.name();
            let target = target.as_ref();
            match kind {
                MsgKind::Privmsg => Message::new("PRIVMSG", &[target, text]).with_trailing_colon(),
                MsgKind::Notice => Message::new("NOTICE", &[target, text]).with_trailing_colon(),
                MsgKind::Action => {
                    Message::new("PRIVMSG", &[target, &format!("\x01ACTION {text}\x01")]).with_trailing_colon()
                }
                MsgKind::TagMsg if caps & Cap::MessageTags as u32 != 0 => Message::new("TAGMSG", &[target]),
                MsgKind::TagMsg => return None,
            }
        }
        EventKind::Join { who, room, realname } if caps & Cap::ExtendedJoin as u32 != 0 => {
            Message::new("JOIN", &[room, who.account.as_deref().unwrap_or("*"), realname])
        }
        EventKind::Join { room, .. } => Message::new("JOIN", &[room]),
        EventKind::Part { room, reason, .. } if reason.is_empty() => Message::new("PART", &[room]),
        EventKind::Part { room, reason, .. } => Message::new("PART", &[room, reason]).with_trailing_colon(),
        EventKind::Quit { reason, .. } => Message::new("QUIT", &[reason]).with_trailing_colon(),
        EventKind::Nick { new, .. } => Message::new("NICK", &[new]),
        EventKind::Topic { room, text, .. } => Message::new("TOPIC", &[room, text]).with_trailing_colon(),
        // Without a reason, the kicker's nick stands in for one, as IRC clients expect.
        EventKind::Kick { who, room, target, reason, .. } => {
            let reason = if reason.is_empty() { who.nick.as_str() } else { reason };
            Message::new("KICK", &[room, target, reason]).with_trailing_colon()
        }
        EventKind::Mode { room, changes, .. } => {
            let params: Vec<&str> = std::iter::once(room.as_str()).chain(changes.split(' ')).collect();
            Message::new("MODE", &params)
        }
        EventKind::Invite { target, room, .. } => Message::new("INVITE", &[target, room]),
        EventKind::Away { message: Some(text), .. } => Message::new("AWAY", &[text]).with_trailing_colon(),
        EventKind::Away { message: None, .. } => Message::new("AWAY", &[]),
        EventKind::SetName { realname, .. } => Message::new("SETNAME", &[realname]).with_trailing_colon(),
        EventKind::Wallops { text, .. } => Message::new("WALLOPS", &[text]).with_trailing_colon(),
        EventKind::Redact { target, msgid, reason, .. } => {
            let (target, msgid) = (target.name(), msgid.to_string());
            if reason.is_empty() {
                Message::new("REDACT", &[&target, &msgid])
            } else {
                Message::new("REDACT", &[&target, &msgid, reason]).with_trailing_colon()
            }
        }
        EventKind::Account { who } => Message::new("ACCOUNT", &[who.account.as_deref().unwrap_or("*")]),
        EventKind::Presence { .. } | EventKind::ReadMarker { .. } => return None,
    };
    Some(add_tags(message.with_source(&mask(source)), event, caps))
}

/// A monitored nick's coming or going as the server announces it to every watcher alike
/// (`730 *` / `731 *`, the MONITOR spec's shared form).
pub fn presence(event: &Event, server: &str, caps: u32) -> Option<Message> {
    let EventKind::Presence { who, online } = &event.kind else { return None };
    let message = if *online {
        Message::new(RPL_MONONLINE, &["*", &mask(who)])
    } else {
        Message::new(RPL_MONOFFLINE, &["*", &who.nick])
    };
    let message = message.with_source(server).with_trailing_colon();
    Some(if caps & Cap::ServerTime as u32 != 0 {
        message.with_tag("time", Some(&iso_time(event.time)))
    } else {
        message
    })
}

/// `:server MARKREAD target timestamp=…`, or `*` for a target never read.
pub fn read_marker(server: &str, target: &str, at: Option<u64>) -> Message {
    let at = at.map_or_else(|| "*".to_string(), |at| format!("timestamp={}", iso_time(at)));
    Message::new("MARKREAD", &[target, &at]).with_source(server)
}

/// Writes events for one IRC client as its session stands: the capabilities it has enabled,
/// its connection (an invitation is always shown to its target, to others only with
/// `invite-notify`) and the server's name (the source of what the server announces, the path
/// of a KILL). One reference, not a copy of each: every idle connection's future holds it.
pub struct IrcRender<'a> {
    pub(super) session: &'a Session,
}

impl Render for IrcRender<'_> {
    fn event<'e>(&self, event: &'e Event) -> Cow<'e, Bytes> {
        let caps = self.session.caps.bits();
        let me = self.session.id.unwrap_or_default();
        let server = &self.session.shared.server_name;
        let without = |cap: Cap| caps & cap as u32 == 0;
        let shown = match &event.kind {
            EventKind::Message { .. } => true,
            EventKind::Away { .. } => !without(Cap::AwayNotify),
            EventKind::SetName { .. } => !without(Cap::Setname),
            EventKind::Redact { .. } => !without(Cap::MessageRedaction),
            EventKind::Account { .. } => !without(Cap::AccountNotify),
            // The server's word, for this client alone: not shared, so not cached.
            EventKind::ReadMarker { target, at, .. } if !without(Cap::ReadMarker) => {
                let mut line = Vec::new();
                read_marker(server, target, Some(*at)).write_to(&mut line);
                return Cow::Owned(Bytes::from(line));
            }
            EventKind::ReadMarker { .. } => false,
            EventKind::Invite { target_id, .. } => *target_id == me || !without(Cap::InviteNotify),
            _ => true,
        };
        if !shown {
            return Cow::Owned(Bytes::new());
        }
        Cow::Borrowed(event.encoded(format_of(caps, event), |event| {
            let mut line = Vec::new();
            for message in messages(event, caps).into_iter().chain(presence(event, server, caps)) {
                message.write_to(&mut line);
            }
            Bytes::from(line)
        }))
    }

    /// `ERROR :Closing link: reason`; after a kill, first the KILL itself, from the operator,
    /// with its path (`server!operator`) and reason as servers write it.
    fn closing(&self, why: &Closed) -> Vec<u8> {
        let mut out = Vec::new();
        if let Closed::Killed { by, nick, reason } = why {
            let path = format!("{}!{} ({reason})", self.session.shared.server_name, by.nick);
            Message::new("KILL", &[nick, &path]).with_source(&mask(by)).with_trailing_colon().write_to(&mut out);
        }
        Message::new("ERROR", &[&format!("Closing link: {}", why.reason())]).write_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_time("2025-11-24T16:00:00.123Z"), Some(1_764_000_000_123));
        assert_eq!(parse_time("yesterday"), None);
    }
}
