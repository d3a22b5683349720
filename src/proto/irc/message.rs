//! One IRC message: parsing a line into a [`Message`] and writing one back.
//!
//! The wire form is `[@tags SPACE] [:source SPACE] command [params] CRLF`. Parsing is lenient
//! where real clients and servers are sloppy (runs of spaces between parts, a stray `\r\n` left
//! on the line) and strict where leniency would let one line become two: NUL, CR and LF inside a
//! line are refused.
//!
//! # Limits
//!
//! The body (everything after the tag section, CRLF included) may be [`MAX_BODY`] bytes
//! (RFC 1459/2812), so at most 510 bytes before the CRLF whatever terminator the line came
//! with. The tag section (`@`, the tags and the space after them) may be [`MAX_TAGS`] bytes
//! (IRCv3 message-tags). A reader should cut lines at [`MAX_LINE`] before parsing them. Writing
//! checks no lengths: the caller that builds a message decides how to split long text.
//!
//! # Tag escaping
//!
//! Tag values are stored unescaped. On the wire `;`, space, `\`, CR and LF are written `\:`,
//! `\s`, `\\`, `\r` and `\n`; reading also turns an unknown escape `\x` into `x` and drops a
//! lone trailing `\`. NUL has no escape and is dropped when writing. A tag without a value
//! (`k`) and one with an empty value (`k=`) are the same, `None`. Duplicate tags are kept in
//! wire order and [`Message::tag`] answers with the last one, as the spec asks.
//!
//! # Writing
//!
//! The last param is written as `:trailing` when it has to be (empty, contains a space, starts
//! with `:`) or when [`Message::force_trailing`] asks for it. Whatever a message holds,
//! [`Message::write_to`] writes exactly one line: NUL, CR and LF in any part become spaces. The
//! rest of the shape is the builder's job: only the last param may be empty, contain a space or
//! start with `:`, and tag keys must not contain `;`, `=` or spaces.

use compact_str::CompactString;

/// A message's params: most messages have few, kept inline.
pub type Params = smallvec::SmallVec<[CompactString; 4]>;

/// Longest message body accepted, in bytes, CRLF included (RFC 1459/2812).
pub const MAX_BODY: usize = 512;
/// Longest tag section accepted, in bytes, '@' and trailing space included (IRCv3 message-tags: 8191).
pub const MAX_TAGS: usize = 8191;
/// Longest line a reader should accept before the parser even looks at it (tags + body).
pub const MAX_LINE: usize = MAX_TAGS + MAX_BODY;

/// One IRC message, owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Tags in wire order with unescaped values; `None` for no value or an empty one.
    pub tags: Vec<(String, Option<String>)>,
    /// The prefix, without its `:`.
    pub source: Option<CompactString>,
    /// The command as sent: letters or a three-digit numeric, case untouched.
    pub command: CompactString,
    /// The params, the trailing one included as the last element without its `:`.
    pub params: Params,
    /// Write the last param with a leading `:` even when it does not need one. Some clients only
    /// take text after a colon (ergo forces it for PRIVMSG, NOTICE and a few numerics), so the
    /// session decides per command. [`Message::parse`] never sets it: on the wire that colon
    /// carries no meaning.
    pub force_trailing: bool,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("no command in the line; send one, e.g. PRIVMSG #room :hello")]
    NoCommand,
    #[error("'{0}' is not a command: use letters (PRIVMSG) or a three-digit numeric")]
    InvalidCommand(String),
    #[error("message tags longer than {max} bytes; send fewer or shorter tags", max = MAX_TAGS)]
    TagsTooLong,
    #[error("message longer than {max} bytes; split it into several", max = MAX_BODY)]
    BodyTooLong,
    #[error("NUL, CR or LF inside a line; send one message per line")]
    ControlChar,
}

impl Message {
    /// A message without source or tags.
    pub fn new(command: &str, params: &[&str]) -> Message {
        Message { command: command.into(), params: params.iter().map(|&p| p.into()).collect(), ..Message::default() }
    }

    pub fn with_source(mut self, source: &str) -> Message {
        self.source = Some(source.into());
        self
    }

    /// Sets a tag, replacing any with the same key. `Some("")` is stored as `None`.
    pub fn with_tag(mut self, key: &str, value: Option<&str>) -> Message {
        self.tags.retain(|(k, _)| k != key);
        let value = value.filter(|v| !v.is_empty()).map(str::to_owned);
        self.tags.push((key.to_owned(), value));
        self
    }

    /// Writes the last param as `:trailing` even when it does not need it.
    pub fn with_trailing_colon(mut self) -> Message {
        self.force_trailing = true;
        self
    }

    /// The tag `key`: `None` if absent, `Some(None)` if present without a value. With duplicates,
    /// the last one wins.
    pub fn tag(&self, key: &str) -> Option<Option<&str>> {
        self.tags.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_deref())
    }

    /// Parses one line, given without its line ending (a trailing `\r\n` or `\n` is ignored).
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.bytes().all(|b| b == b' ') {
            return Err(ParseError::Empty);
        }
        let (tags, body) = match line.strip_prefix('@') {
            Some(rest) => match rest.split_once(' ') {
                Some((tags, body)) => (tags, body),
                None if rest.len() + 2 > MAX_TAGS => return Err(ParseError::TagsTooLong),
                None => return Err(ParseError::NoCommand),
            },
            None => ("", line),
        };
        if tags.len() + 2 > MAX_TAGS {
            return Err(ParseError::TagsTooLong);
        }
        if body.len() + 2 > MAX_BODY {
            return Err(ParseError::BodyTooLong);
        }
        if line.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
            return Err(ParseError::ControlChar);
        }

        let mut rest = body.trim_start_matches(' ');
        let source = match rest.strip_prefix(':') {
            Some(prefixed) => {
                let (source, after) = prefixed.split_once(' ').unwrap_or((prefixed, ""));
                rest = after.trim_start_matches(' ');
                Some(source.into())
            }
            None => None,
        };
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        let is_numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
        if !is_numeric && !command.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ParseError::InvalidCommand(command.to_owned()));
        }

        let mut params = Params::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.into());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.into());
            rest = after;
        }

        Ok(Message { tags: parse_tags(tags), source, command: command.into(), params, force_trailing: false })
    }

    /// Appends the wire form, `\r\n` included, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write(out);
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form without `\r\n`.
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        self.write(&mut line);
        line
    }

    fn write<S: Sink>(&self, out: &mut S) {
        if !self.tags.is_empty() {
            out.put("@");
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.put(";");
                }
                put_one_line(key, out);
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    out.put("=");
                    escape_into(value, out);
                }
            }
            out.put(" ");
        }
        if let Some(source) = &self.source {
            out.put(":");
            put_one_line(source, out);
            out.put(" ");
        }
        put_one_line(&self.command, out);
        write_params(self.params.iter().map(CompactString::as_str), self.force_trailing, out);
    }
}

/// Appends the line of a numeric, `:source code target params…` and `\r\n`, to `out`: the same
/// bytes as a [`Message`] with that source, command and params and `force_trailing` writes,
/// without building one (a registration sends some 25 numerics).
pub fn write_numeric(out: &mut Vec<u8>, source: &str, code: &str, target: &str, params: &[&str]) {
    out.put(":");
    put_one_line(source, out);
    out.put(" ");
    put_one_line(code, out);
    write_params(std::iter::once(target).chain(params.iter().copied()), true, out);
    out.put("\r\n");
}

/// Writes each param after a space, the last one after a colon too when it needs one (or
/// `force_trailing` asks for it).
fn write_params<'a, S: Sink>(params: impl Iterator<Item = &'a str>, force_trailing: bool, out: &mut S) {
    let mut params = params.peekable();
    while let Some(param) = params.next() {
        out.put(" ");
        // NUL, CR and LF will be written as spaces, so they need the colon as much as a space.
        let last = params.peek().is_none();
        // Bytes, not chars: none of these is ever part of a longer UTF-8 sequence.
        if last
            && (force_trailing
                || param.is_empty()
                || param.starts_with(':')
                || param.bytes().any(|b| matches!(b, b' ' | b'\0' | b'\r' | b'\n')))
        {
            out.put(":");
        }
        put_one_line(param, out);
    }
}

/// Escapes a tag value for the wire, appending to `out`.
pub fn escape_tag_value(value: &str, out: &mut String) {
    escape_into(value, out);
}

/// Undoes tag value escaping.
pub fn unescape_tag_value(value: &str) -> String {
    if !value.contains('\\') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The tags of a tag section (without `@` and the space), skipping entries with no key.
fn parse_tags(section: &str) -> Vec<(String, Option<String>)> {
    if section.is_empty() {
        return Vec::new();
    }
    section
        .split(';')
        .filter_map(|tag| {
            let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
            if key.is_empty() {
                return None;
            }
            let value = unescape_tag_value(value);
            Some((key.to_owned(), (!value.is_empty()).then_some(value)))
        })
        .collect()
}

/// Where a message is written: the caller's byte buffer or a `String`.
trait Sink {
    fn put(&mut self, s: &str);
}

impl Sink for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// Writes `s` with NUL, CR and LF turned into spaces, so no part can end the line early. Every
/// parameter of every line passes here, most with no control character at all: those are
/// found by [`may_break`] and written at once.
fn put_one_line<S: Sink>(s: &str, out: &mut S) {
    if !may_break(s.as_bytes()) {
        return out.put(s);
    }
    put_replacing(s, out, memchr::memchr3_iter(b'\0', b'\r', b'\n', s.as_bytes()).map(|i| (i, " ")));
}

/// Whether `s` may hold a NUL, CR or LF: whether any of its bytes is below 14. Every byte is
/// looked at, with no early stop, so that the compiler makes it a loop of vector instructions:
/// faster for a few dozen bytes than setting up `memchr`'s search.
fn may_break(s: &[u8]) -> bool {
    s.iter().fold(false, |seen, &b| seen | (b < 14))
}

fn escape_into<S: Sink>(value: &str, out: &mut S) {
    let escapes = value.bytes().enumerate().filter_map(|(i, b)| {
        let escape = match b {
            b';' => "\\:",
            b' ' => "\\s",
            b'\\' => "\\\\",
            b'\r' => "\\r",
            b'\n' => "\\n",
            b'\0' => "",
            _ => return None,
        };
        Some((i, escape))
    });
    put_replacing(value, out, escapes);
}

/// Writes `s`, putting the replacement instead of the ASCII byte at each position, in order.
fn put_replacing<S: Sink>(s: &str, out: &mut S, replacements: impl Iterator<Item = (usize, &'static str)>) {
    let mut start = 0;
    for (i, replacement) in replacements {
        out.put(&s[start..i]);
        out.put(replacement);
        start = i + 1;
    }
    out.put(&s[start..]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn parses_every_part() {
        let m = parse("@time=2024-01-01T00:00:00Z;+draft/react=\\:\\) :bob!b@host PRIVMSG #c :hi there");
        assert_eq!(m.tag("time"), Some(Some("2024-01-01T00:00:00Z")));
        assert_eq!(m.tag("+draft/react"), Some(Some(";)")));
        assert_eq!(m.tag("msgid"), None);
        assert_eq!(m.source.as_deref(), Some("bob!b@host"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params[..], ["#c", "hi there"]);
        assert!(!m.force_trailing);
    }

    #[test]
    fn line_endings_and_spaces_are_tolerated() {
        let expected = Message::new("NICK", &["bob"]);
        assert_eq!(parse("NICK bob\r\n"), expected);
        assert_eq!(parse("NICK bob\n"), expected);
        assert_eq!(parse("  NICK   bob  "), expected);
        assert_eq!(parse("@a  :s   NICK bob").source.as_deref(), Some("s"));
    }

    #[test]
    fn tags_without_values_and_duplicates() {
        let m = parse("@a;b=;c=\\;;=x;a=2 CMD");
        assert_eq!(m.tag("b"), Some(None));
        assert_eq!(m.tag("c"), Some(None));
        assert_eq!(m.tag("a"), Some(Some("2")));
        assert_eq!(m.tags.len(), 4);
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse("   \r\n"), Err(ParseError::Empty));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("@a=b  "), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":src"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":src  "), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("PRIV-MSG x"), Err(ParseError::InvalidCommand("PRIV-MSG".into())));
        assert_eq!(Message::parse("0001 x"), Err(ParseError::InvalidCommand("0001".into())));
        assert_eq!(Message::parse("PRIVMSG #c :a\rb"), Err(ParseError::ControlChar));
        assert_eq!(Message::parse("NICK a\0"), Err(ParseError::ControlChar));
    }

    #[test]
    fn limits_are_exact() {
        let body = |len: usize| format!("PRIVMSG #c :{}", "x".repeat(len - "PRIVMSG #c :".len()));
        assert!(Message::parse(&body(MAX_BODY - 2)).is_ok());
        assert!(Message::parse(&(body(MAX_BODY - 2) + "\r\n")).is_ok());
        assert_eq!(Message::parse(&body(MAX_BODY - 1)), Err(ParseError::BodyTooLong));

        let tags = |len: usize| format!("@k={}", "v".repeat(len - "@k= ".len()));
        let ok = format!("{} {}", tags(MAX_TAGS), body(MAX_BODY - 2));
        assert_eq!(ok.len(), MAX_LINE - 2);
        assert!(Message::parse(&ok).is_ok());
        let long = format!("{} CMD", tags(MAX_TAGS + 1));
        assert_eq!(Message::parse(&long), Err(ParseError::TagsTooLong));
        assert_eq!(Message::parse(&tags(MAX_TAGS + 1)), Err(ParseError::TagsTooLong));
    }

    #[test]
    fn writes_the_colon_only_when_needed_or_asked() {
        let line = |m: &Message| m.to_line();
        assert_eq!(line(&Message::new("JOIN", &["#c"])), "JOIN #c");
        assert_eq!(line(&Message::new("AWAY", &[])), "AWAY");
        assert_eq!(line(&Message::new("AWAY", &[""])), "AWAY :");
        assert_eq!(line(&Message::new("X", &["a", ":b"])), "X a ::b");
        assert_eq!(line(&Message::new("X", &["a", "b c"])), "X a :b c");
        let forced = Message::new("PRIVMSG", &["#c", "hi"]).with_trailing_colon();
        assert_eq!(line(&forced), "PRIVMSG #c :hi");
        assert_eq!(line(&Message::new("PING", &[]).with_trailing_colon()), "PING");
    }

    #[test]
    fn writes_tags_source_and_crlf() {
        let m = Message::new("PRIVMSG", &["#c", "hi"])
            .with_source("bob!b@h")
            .with_tag("a", Some("x y;z\\"))
            .with_tag("b", None)
            .with_tag("c", Some(""))
            .with_tag("a", Some("1"));
        let mut out = b"before\r\n".to_vec();
        m.write_to(&mut out);
        assert_eq!(out, b"before\r\n@b;c;a=1 :bob!b@h PRIVMSG #c hi\r\n");
        let m = Message::new("X", &[]).with_tag("k", Some("x y;z\\\r\n\0"));
        assert_eq!(m.to_line(), "@k=x\\sy\\:z\\\\\\r\\n X");
    }

    #[test]
    fn a_written_message_is_always_one_line() {
        let m = Message::new("PRIVMSG", &["#c\r\n", "hi\r\nQUIT"]).with_source("a\nb").with_tag("k\r", Some("\n"));
        assert_eq!(m.to_line(), "@k =\\n :a b PRIVMSG #c   :hi  QUIT");
    }

    #[test]
    fn unescaping() {
        assert_eq!(unescape_tag_value("plain"), "plain");
        assert_eq!(unescape_tag_value("a\\:b\\sc\\\\d\\re\\nf"), "a;b c\\d\re\nf");
        assert_eq!(unescape_tag_value("\\x\\"), "x");
        let mut out = String::from("=");
        escape_tag_value("a; b", &mut out);
        assert_eq!(out, "=a\\:\\sb");
    }

    fn tag_entry() -> impl Strategy<Value = (String, Option<String>)> {
        ("\\+?([a-z0-9.-]{1,10}/)?[A-Za-z0-9-]{1,10}", proptest::option::of("[^\\x00]{1,20}"))
    }

    prop_compose! {
        /// A message `write_to` can represent: only the last param is free-form.
        fn valid_message()(
            tags in proptest::collection::vec(tag_entry(), 0..5),
            source in proptest::option::of("[^ \\x00\\r\\n]{0,20}"),
            command in "[A-Za-z]{1,10}|[0-9]{3}",
            middle in proptest::collection::vec("[^ :\\x00\\r\\n][^ \\x00\\r\\n]{0,14}", 0..4),
            last in proptest::option::of("[^\\x00\\r\\n]{0,30}"),
            force_trailing in any::<bool>(),
        ) -> Message {
            let params = middle.into_iter().chain(last).map(Into::into).collect();
            Message { tags, source: source.map(Into::into), command: command.into(), params, force_trailing }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in any::<String>()) {
            let _ = Message::parse(&line);
        }

        #[test]
        fn parse_never_panics_on_irc_like_lines(line in "[@:;=\\\\ a-z0-9\\r\\n\\x00]{0,80}") {
            let _ = Message::parse(&line);
        }

        #[test]
        fn parsed_messages_write_back_to_the_same_message(line in "[@:;=\\\\ a-z0-9]{0,80}") {
            if let Ok(m) = Message::parse(&line) {
                prop_assert_eq!(Message::parse(&m.to_line()), Ok(m));
            }
        }

        #[test]
        fn valid_messages_round_trip(m in valid_message()) {
            let mut wire = Vec::new();
            m.write_to(&mut wire);
            let line = String::from_utf8_lossy(&wire);
            let parsed = Message::parse(&line);
            prop_assert_eq!(parsed, Ok(Message { force_trailing: false, ..m }));
        }

        #[test]
        fn any_message_writes_one_line(
            tags in proptest::collection::vec((any::<String>(), proptest::option::of(any::<String>())), 0..3),
            source in proptest::option::of(any::<String>()),
            command in any::<String>(),
            params in proptest::collection::vec(any::<String>(), 0..4),
        ) {
            let (source, command) = (source.map(Into::into), command.into());
            let m = Message { tags, source, command, params: params.into_iter().map(Into::into).collect(), force_trailing: false };
            let mut wire = Vec::new();
            m.write_to(&mut wire);
            prop_assert!(wire.ends_with(b"\r\n"));
            let body = &wire[..wire.len() - 2];
            prop_assert!(!body.iter().any(|b| matches!(b, b'\0' | b'\r' | b'\n')));
        }

        #[test]
        fn a_numeric_written_directly_is_the_message_it_stands_for(
            source in "[a-z.]{1,12}",
            code in "[0-9]{3}",
            target in "[^ ]{0,9}",
            params in proptest::collection::vec("[ :a-z\r\n\x00]{0,6}", 0..15),
        ) {
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            let mut direct = Vec::new();
            write_numeric(&mut direct, &source, &code, &target, &params);
            let message = Message {
                source: Some(source.as_str().into()),
                command: code.as_str().into(),
                params: std::iter::once(target.as_str()).chain(params.iter().copied()).map(Into::into).collect(),
                force_trailing: true,
                ..Message::default()
            };
            let mut built = Vec::new();
            message.write_to(&mut built);
            prop_assert_eq!(String::from_utf8_lossy(&direct), String::from_utf8_lossy(&built));
        }

        #[test]
        fn escaping_round_trips(value in "[^\\x00]*") {
            let mut escaped = String::new();
            escape_tag_value(&value, &mut escaped);
            prop_assert!(!escaped.contains([';', ' ', '\r', '\n', '\0']));
            prop_assert_eq!(unescape_tag_value(&escaped), value);
        }
    }
}
