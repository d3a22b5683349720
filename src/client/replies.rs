//! How the server's numeric replies read in the terminal client: what a person reads, or
//! nothing. `004 me charla charla-0.1.0 io biklmnostv bklov` is for programs and shows nothing;
//! `265 me 3 3 :Current local users 3, max 3` shows its text; a WHOIS reads as sentences
//! (`ana is ~ana@host (Ana)`, `ana has been idle 5 min, online since …`); an error names what
//! it is about (`FOO: Unknown command`). A numeric this table does not know shows its last
//! parameter, the text meant for people, without the raw parameters before it.
//!
//! The replies that change the client's state (ISUPPORT, topics, names, the room list, WHO)
//! are read by [`App`](super::app::App) itself; this module only says how the rest read.

use time::UtcOffset;

use super::text::{clean, clock, day_label};
use super::window::EntryKind;
use crate::proto::irc::message::Message;
use crate::proto::irc::numeric::*;

// Numerics charla never sends, so `proto::irc::numeric` does not name them, but other
// servers do.
const RPL_YOURID: &str = "042";
const RPL_STATSCONN: &str = "250";
const RPL_LUSERUNKNOWN: &str = "253";
const RPL_WHOISREGNICK: &str = "307";
const RPL_WHOISACCOUNT: &str = "330";
const RPL_WHOISBOT: &str = "335";
const RPL_WHOISACTUALLY: &str = "338";
const RPL_WHOISHOST: &str = "378";
const RPL_WHOISMODES: &str = "379";
const RPL_WHOISSECURE: &str = "671";
/// The end of the MOTD when there is none.
pub const ERR_NOMOTD: &str = "422";

/// A numeric reply as the user reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// [`EntryKind::Info`], or [`EntryKind::Error`] for 4xx and 5xx.
    pub kind: EntryKind,
    pub text: String,
    /// The room or nick it is about, when it belongs in that window if one is open.
    pub about: Option<String>,
}

impl Reply {
    fn info(text: String) -> Option<Reply> {
        Some(Reply { kind: EntryKind::Info, text, about: None })
    }

    fn about(self, name: &str) -> Reply {
        Reply { about: Some(clean(name)), ..self }
    }
}

/// How a numeric reads; `None` when it is for the client only (`004`, `005`) or ends a list
/// whose lines were shown (`318`, `369`, `376`).
pub fn read(message: &Message, offset: UtcOffset) -> Option<Reply> {
    // params[0] is our own nick.
    let arg = |i: usize| clean(message.params.get(i).map_or("", |p| p.as_str()));
    let args = message.params.len().saturating_sub(1);
    let text = if args > 0 { arg(args) } else { String::new() };
    let code = message.command.as_str();
    match code {
        RPL_MYINFO | RPL_ISUPPORT | RPL_YOURID | RPL_ENDOFMOTD | ERR_NOMOTD | RPL_ENDOFWHOIS | RPL_ENDOFWHOWAS => None,
        // `- text -`, as RFC 1459 servers frame it.
        RPL_MOTDSTART => Reply::info(text.trim().trim_start_matches("- ").trim_end_matches(" -").trim().to_string()),
        RPL_MOTD => Reply::info(text.strip_prefix("- ").or_else(|| text.strip_prefix('-')).unwrap_or(&text).into()),
        // `252 me 2 :operator(s) online`: the count is a parameter of its own.
        RPL_LUSEROP | RPL_LUSERUNKNOWN | RPL_LUSERCHANNELS => Reply::info(format!("{} {text}", arg(1))),
        RPL_UMODEIS => Reply::info(format!("Your modes: {}", arg(1))),
        RPL_AWAY => Reply::info(format!("{} is away: {text}", arg(1))).map(|r| r.about(&arg(1))),
        RPL_ISON if text.trim().is_empty() => Reply::info("None of them is online.".into()),
        RPL_ISON => Reply::info(format!("Online: {text}")),
        RPL_WHOISUSER => Reply::info(format!("{} is {}@{} ({text})", arg(1), arg(2), arg(3))),
        RPL_WHOWASUSER => Reply::info(format!("{} was {}@{} ({text})", arg(1), arg(2), arg(3))),
        RPL_WHOISSERVER => Reply::info(format!("{} is on {} ({text})", arg(1), arg(2))),
        RPL_WHOISCHANNELS => Reply::info(format!("{} is in {text}", arg(1))),
        RPL_WHOISACCOUNT => Reply::info(format!("{} is logged in as {}", arg(1), arg(2))),
        RPL_WHOISIDLE => {
            let idle = arg(2).parse().map(duration).unwrap_or_else(|_| arg(2));
            let since = arg(3).parse().ok().filter(|_| args > 3).map(|secs: u64| moment(secs, offset));
            match since {
                Some(since) => Reply::info(format!("{} has been idle {idle}, online since {since}", arg(1))),
                None => Reply::info(format!("{} has been idle {idle}", arg(1))),
            }
        }
        // `313 me ana :is an IRC operator` and the like read as `ana is an IRC operator`.
        RPL_WHOISOPERATOR | RPL_WHOISREGNICK | RPL_WHOISBOT | RPL_WHOISACTUALLY | RPL_WHOISHOST | RPL_WHOISMODES
        | RPL_WHOISSECURE => Reply::info(format!("{} {text}", arg(1))),
        RPL_CHANNELMODEIS => {
            let modes = message.params.get(2..).unwrap_or_default().join(" ");
            Reply::info(format!("{} has modes {}", arg(1), clean(&modes))).map(|r| r.about(&arg(1)))
        }
        RPL_CREATIONTIME => match arg(2).parse() {
            Ok(secs) => Reply::info(format!("{} was created {}", arg(1), moment(secs, offset))),
            Err(_) => None,
        }
        .map(|r| r.about(&arg(1))),
        RPL_NOTOPIC => Reply::info(format!("{} has no topic", arg(1))).map(|r| r.about(&arg(1))),
        RPL_TOPICWHOTIME => {
            let by = arg(2);
            let by = by.split(['!', '@']).next().unwrap_or(&by);
            let when = arg(3).parse().map(|secs| format!(", {}", moment(secs, offset))).unwrap_or_default();
            Reply::info(format!("Topic set by {by}{when}")).map(|r| r.about(&arg(1)))
        }
        RPL_INVITING => Reply::info(format!("You invited {} to {}", arg(1), arg(2))).map(|r| r.about(&arg(2))),
        RPL_VERSION => Reply::info(format!("{} runs {} ({text})", arg(2), arg(1))),
        RPL_TIME => Reply::info(format!("Time at {}: {text}", arg(1))),
        RPL_BANLIST => {
            let by = if args > 3 { format!(" (set by {})", arg(3)) } else { String::new() };
            Reply::info(format!("{} bans {}{by}", arg(1), arg(2))).map(|r| r.about(&arg(1)))
        }
        RPL_ENDOFBANLIST => Reply::info(format!("{}: {text}", arg(1))).map(|r| r.about(&arg(1))),
        RPL_STATSCONN => Reply::info(text),
        _ if code.starts_with(['4', '5']) => Some(error(message)),
        _ if args > 1 || (args == 1 && !text.is_empty()) => Reply::info(text),
        _ => None,
    }
}

/// An error reads as its text, after what it is about when the text does not name it:
/// `421 me FOO :Unknown command` is `FOO: Unknown command`, and it belongs in the window of
/// the room or nick it names.
fn error(message: &Message) -> Reply {
    let params = message.params.get(1..).unwrap_or_default();
    let (text, subjects) = match params.split_last() {
        Some((text, subjects)) => (clean(text), subjects),
        None => (String::new(), &[][..]),
    };
    let lower = text.to_lowercase();
    let named: Vec<String> = subjects
        .iter()
        .map(|s| clean(s))
        .filter(|s| !s.is_empty() && s != "*" && !lower.contains(&s.to_lowercase()))
        .collect();
    let text = if named.is_empty() { text } else { format!("{}: {text}", named.join(" ")) };
    Reply { kind: EntryKind::Error, text, about: subjects.first().map(|s| clean(s)) }
}

/// `13 s`, `5 min`, `2 h 5 min`, `3 days`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ if secs < 2 * 86_400 => "1 day".into(),
        _ => format!("{} days", secs / 86_400),
    }
}

/// A Unix time in seconds as `Fri 4 Dec 2026 16:41`, in the local time zone.
fn moment(secs: u64, offset: UtcOffset) -> String {
    let millis = secs.saturating_mul(1000);
    format!("{} {}", day_label(millis, offset), clock(millis, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(line: &str) -> Option<String> {
        let message = Message::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        read(&message, UtcOffset::UTC).map(|r| r.text)
    }

    #[test]
    fn durations() {
        assert_eq!(duration(13), "13 s");
        assert_eq!(duration(300), "5 min");
        assert_eq!(duration(7500), "2 h 5 min");
        assert_eq!(duration(90_000), "1 day");
        assert_eq!(duration(3 * 86_400 + 5), "3 days");
    }

    #[test]
    fn unknown_numerics_show_their_text_and_errors_what_they_are_about() {
        assert_eq!(reads(":s 042 me 1ABC :your unique ID"), None);
        assert_eq!(
            reads(":s 396 me host.example :is now your displayed host").as_deref(),
            Some("is now your displayed host")
        );
        assert_eq!(reads(":s 999 me 1 2 3 :something new").as_deref(), Some("something new"));
        assert_eq!(reads(":s 999 me"), None);
        assert_eq!(reads(":s 421 me FOO :Unknown command").as_deref(), Some("FOO: Unknown command"));
        assert_eq!(
            reads(":s 441 me bob #dev :They aren't on that channel").as_deref(),
            Some("bob #dev: They aren't on that channel")
        );
        // Text that already names it is shown as it is.
        assert_eq!(
            reads(":s 401 me nosuch :no one called 'nosuch' is online").as_deref(),
            Some("no one called 'nosuch' is online")
        );
        assert_eq!(reads(":s 461 me * :Not enough parameters").as_deref(), Some("Not enough parameters"));
    }
}
