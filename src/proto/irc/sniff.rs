//! How an IRC client is recognised: by its first line, while sniffing (it speaks first), or by
//! its first lines after the plain-text greeting (it waited for the server to speak).

/// Whether a client's first line is an IRC client's: one of `CAP`, `NICK`, `USER` or `PASS`,
/// in capitals and with the parameters that command takes (`CAP LS 302`, `NICK alice`,
/// `USER alice 0 * :Alice`, `PASS secret`). A line of text that merely starts with such a word
/// (`User guide updated`, `PASS all tests green`, piped in before the greeting) is not.
/// `complete`: the line ended; a line cut short by the sniffing deadline is judged by its
/// command alone.
pub fn recognises(line: &str, complete: bool) -> bool {
    if complete {
        registration_line(line).is_some()
    } else {
        ["CAP ", "NICK ", "USER ", "PASS "].iter().any(|command| line.starts_with(command))
    }
}

/// The IRC registration commands, as sniffing recognises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Cap,
    Pass,
    Nick,
    User,
}

/// Which registration command a complete line is, if it has that command's shape: `CAP` with a
/// subcommand (a known one in any case, or any other word in capitals alone: `CAP NOTACOMMAND`
/// is an IRC client's mistake, `CAP of the day` a person's line), `PASS` or `NICK` with one
/// parameter, `USER` with four.
pub fn registration_line(line: &str) -> Option<Opening> {
    // The parameters before a trailing one (`:…`), and whether the line has a trailing one.
    let (middle, trailing) = match line.split_once(" :") {
        Some((middle, _)) => (middle, true),
        None => (line, false),
    };
    let mut words = middle.split(' ').filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default();
    let params: Vec<&str> = words.collect();
    let count = params.len() + usize::from(trailing);
    match command {
        "CAP" => {
            let sub = params.first()?;
            let known = ["LS", "REQ", "END", "LIST"].contains(&&*sub.to_uppercase());
            let unknown = sub.len() > 1 && sub.bytes().all(|b| b.is_ascii_uppercase()) && count <= 2;
            (known || unknown).then_some(Opening::Cap)
        }
        "NICK" if count == 1 => Some(Opening::Nick),
        "PASS" if count == 1 => Some(Opening::Pass),
        "USER" if count >= 4 => Some(Opening::User),
        _ => None,
    }
}

/// What the first lines of a client greeted as plain text (it stayed silent while sniffing)
/// say about its protocol. Bots and some IRC clients wait for the server to speak first, then
/// register: such a connection gets IRC whenever its registration comes. `CAP` and `PASS`
/// begin only a registration; `NICK x` may be a person's line, so it takes the `USER …` that
/// an IRC client sends with it (or the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// An IRC registration: hand the lines over to an IRC session.
    Irc,
    /// Half of `NICK` + `USER`: the next line decides.
    Undecided,
    /// A person's text.
    Plain,
}

impl Late {
    /// The verdict on a greeted client's first lines (one, or two after [`Late::Undecided`]).
    pub fn judge(lines: &[&str]) -> Late {
        let openings: Vec<Option<Opening>> = lines.iter().map(|line| registration_line(line)).collect();
        match openings[..] {
            [Some(Opening::Cap | Opening::Pass), ..] => Late::Irc,
            [Some(Opening::Nick)] | [Some(Opening::User)] => Late::Undecided,
            [Some(Opening::Nick), Some(Opening::User)] | [Some(Opening::User), Some(Opening::Nick)] => Late::Irc,
            _ => Late::Plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_late_registration_from_text() {
        assert_eq!(Late::judge(&["CAP LS 302"]), Late::Irc);
        assert_eq!(Late::judge(&["CAP NOTACOMMAND"]), Late::Irc);
        assert_eq!(Late::judge(&["PASS hunter2"]), Late::Irc);
        assert_eq!(Late::judge(&["NICK bot"]), Late::Undecided);
        assert_eq!(Late::judge(&["NICK bot", "USER bot 0 * :A bot"]), Late::Irc);
        assert_eq!(Late::judge(&["USER bot 0 * :A bot"]), Late::Undecided);
        assert_eq!(Late::judge(&["USER bot 0 * :A bot", "NICK bot"]), Late::Irc);
        assert_eq!(Late::judge(&["NICK bob", "hello?"]), Late::Plain);
        assert_eq!(Late::judge(&["NICK is my name"]), Late::Plain);
        assert_eq!(Late::judge(&["hello"]), Late::Plain);
        assert_eq!(Late::judge(&["CAP of the day"]), Late::Plain);
    }
}
