//! A private server's door for plain-text users (`serve --password`): until they type
//! `/pass PASSWORD`, they are no one in no room and may do nothing else. An IRC client that
//! waited for the server to speak first still gets IRC (its `PASS` is checked there).

use super::PlainRender;
use crate::hub::{self, Out};
use crate::net::{Conn, Input, Line};
use crate::proto::Shared;
use crate::proto::irc::sniff::Late;

/// How the wait at the door ended.
pub enum Door {
    /// The password was right.
    Open,
    /// The client left, or the server is closing.
    Gone,
    /// The client turned out to speak IRC: these are its first lines.
    Irc(Vec<String>),
}

/// Asks for the server password until it is given.
pub async fn wait(conn: &mut Conn, shared: &Shared) -> Door {
    let say = |conn: &Conn, text: &str| {
        conn.outbox().push(Out::line(format!("{text}\n")));
    };
    say(conn, "This server is private: type /pass PASSWORD to come in.");
    let render = PlainRender { me: 0 };
    let mut first: Option<Vec<String>> = Some(Vec::new());
    loop {
        let text = match conn.next(&render).await {
            Input::Line(Line::Text(text)) => text,
            Input::Line(Line::TooLong) => continue,
            Input::Closed | Input::Stopped => return Door::Gone,
        };
        if let Some(held) = &mut first {
            held.push(text.clone());
            let lines: Vec<&str> = held.iter().map(String::as_str).collect();
            match Late::judge(&lines) {
                Late::Irc => return Door::Irc(first.take().unwrap_or_default()),
                Late::Undecided => continue,
                Late::Plain => first = None,
            }
        }
        match text.strip_prefix("/pass ").map(str::trim) {
            Some(given) if hub::lock(&shared.hub).admits(Some(given)) => return Door::Open,
            Some(_) => {
                tracing::warn!("a plain-text client gave a wrong server password");
                say(conn, "error: wrong password; type /pass PASSWORD again (ask the server's owner for it)");
            }
            None if text.trim() == "/quit" => return Door::Gone,
            None => {
                say(conn, "error: this server is private: type /pass PASSWORD first; nothing else works until then");
            }
        }
    }
}
