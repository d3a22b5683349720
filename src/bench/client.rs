//! One load connection: connect (from a chosen source address), register over IRC or plain
//! text, read lines, write batches.
//!
//! Built for many connections in one runtime. Reading waits for readiness before it takes a
//! buffer, so an idle connection holds none; a busy one reads up to 64 KiB at a time and lines
//! are found in place with `memchr`, never copied. The reader and the writer of a connection
//! are two futures of one task sharing `&Conn`: both use the socket's `&self` methods, and a
//! small lock keeps a `PONG` from landing inside a batch being written.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

use super::Proto;

/// Bytes asked for per read on a busy connection.
const READ_CHUNK: usize = 64 * 1024;
/// A line longer than this means the server is not speaking a line protocol to us.
const MAX_LINE: usize = 1 << 20;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection ({0})")]
    Closed(String),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("the server sent a line of over 1 MiB")]
    TooLong,
}

/// An open connection.
pub struct Conn {
    stream: TcpStream,
    writing: Mutex<()>,
    proto: Proto,
}

/// Bytes read and not yet consumed, split into lines in place.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
    start: usize,
}

/// A line as the bench cares about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Someone's chat message; the payload text.
    Message(&'a [u8]),
    /// An IRC `PING`; its parameters, to send back in the `PONG`.
    Ping(&'a [u8]),
    /// The server reports an error or is closing the connection.
    Error(&'a [u8]),
    Other,
}

impl Lines {
    /// The next complete line without its line end, if one has arrived.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        let end = memchr::memchr(b'\n', &self.buf[self.start..])?;
        let line = &self.buf[self.start..self.start + end];
        self.start += end + 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Forgets everything buffered.
    pub fn clear(&mut self) {
        self.start = self.buf.len();
    }

    /// Frees the buffer if it holds nothing, so a quiet connection costs no memory.
    pub fn release(&mut self) {
        if self.start == self.buf.len() {
            *self = Lines::default();
        }
    }

    /// Drops consumed bytes and makes room for a read.
    fn prepare(&mut self) -> Result<(), ClientError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() > MAX_LINE {
            return Err(ClientError::TooLong);
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(())
    }
}

impl Conn {
    /// Connects to `target`, from `source` if given, with Nagle's algorithm off.
    pub async fn open(target: SocketAddr, source: Option<IpAddr>, proto: Proto) -> Result<Conn, ClientError> {
        let socket =
            if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(ClientError::Connect)?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).map_err(ClientError::Connect)?;
        }
        let stream = socket.connect(target).await.map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        Ok(Conn { stream, writing: Mutex::new(()), proto })
    }

    /// Writes all of `bytes`, waiting while the server does not take them.
    pub async fn send(&self, mut bytes: &[u8]) -> io::Result<()> {
        let _turn = self.writing.lock().await;
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits for data and appends what has arrived to `lines`; 0 at end of stream.
    /// Cancel-safe: nothing is lost if the future is dropped.
    pub async fn fill(&self, lines: &mut Lines) -> Result<usize, ClientError> {
        loop {
            self.stream.readable().await?;
            lines.prepare()?;
            match self.stream.try_read_buf(&mut lines.buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Registers (IRC: `NICK`/`USER` and the welcome; plain text: the greeting) and, with a
    /// `channel`, joins it and waits until the server confirms.
    pub async fn register(&self, lines: &mut Lines, nick: &str, channel: Option<&str>) -> Result<(), ClientError> {
        match self.proto {
            Proto::Irc | Proto::Ws => {
                self.send(format!("NICK {nick}\r\nUSER {nick} 0 * :charla bench\r\n").as_bytes()).await?;
                self.await_reply(lines, |line| irc_reply(line, Stage::Welcome)).await?;
                if let Some(channel) = channel {
                    self.send(format!("JOIN {channel}\r\n").as_bytes()).await?;
                    self.await_reply(lines, |line| irc_reply(line, Stage::Joined(channel))).await?;
                }
            }
            Proto::Plain => {
                // Saying something at once spares the server's wait for a silent client (an
                // empty line says nothing to the room).
                let room = match channel {
                    Some(room) if !room.eq_ignore_ascii_case(LOBBY) => {
                        self.send(format!("/join {room}\n").as_bytes()).await?;
                        room
                    }
                    _ => {
                        self.send(b"\n").await?;
                        LOBBY
                    }
                };
                self.await_reply(lines, |line| plain_reply(line, room)).await?;
            }
        }
        Ok(())
    }

    /// Says goodbye and waits until the server closes the connection.
    pub async fn quit(&self, lines: &mut Lines) -> Result<(), ClientError> {
        let bye: &[u8] = match self.proto {
            Proto::Irc | Proto::Ws => b"QUIT :bench done\r\n",
            Proto::Plain => b"/quit\n",
        };
        self.send(bye).await?;
        loop {
            lines.clear();
            if self.fill(lines).await? == 0 {
                return Ok(());
            }
        }
    }

    /// Reads lines until `check` says the wait is over, answering `PING`s meanwhile.
    async fn await_reply(&self, lines: &mut Lines, check: impl Fn(&[u8]) -> Reply) -> Result<(), ClientError> {
        loop {
            while let Some(line) = lines.next_line() {
                match check(line) {
                    Reply::Done => return Ok(()),
                    Reply::Pong(pong) => self.send(&pong).await?,
                    Reply::Refused(why) => return Err(ClientError::Refused(why)),
                    Reply::Closed(why) => return Err(ClientError::Closed(why)),
                    Reply::Other => {}
                }
            }
            if self.fill(lines).await? == 0 {
                return Err(ClientError::Closed("before registration finished".into()));
            }
        }
    }
}

/// The room plain-text users start in.
const LOBBY: &str = "#lobby";

/// What registration waits for.
enum Stage<'a> {
    Welcome,
    Joined(&'a str),
}

/// What a line means to a registering client.
enum Reply {
    Done,
    Pong(Vec<u8>),
    Refused(String),
    Closed(String),
    Other,
}

fn irc_reply(line: &[u8], stage: Stage<'_>) -> Reply {
    let msg = IrcLine::parse(line);
    let text = || String::from_utf8_lossy(line).into_owned();
    match (msg.command, &stage) {
        (b"PING", _) => Reply::Pong(pong(msg.params)),
        (b"ERROR", _) => Reply::Closed(text()),
        (b"001", Stage::Welcome) => Reply::Done,
        // Nick in use, erroneous, collision, unavailable; not registered; password; banned.
        (b"432" | b"433" | b"436" | b"437" | b"451" | b"464" | b"465", Stage::Welcome) => Reply::Refused(text()),
        (b"366", Stage::Joined(channel)) => {
            let joined = msg.params.split(|&b| b == b' ').nth(1);
            if joined.is_some_and(|c| c.eq_ignore_ascii_case(channel.as_bytes())) { Reply::Done } else { Reply::Other }
        }
        // No such channel, too many channels, full, invite only, banned, bad key, …
        (b"403" | b"405" | b"471" | b"473" | b"474" | b"475" | b"476" | b"477" | b"479", Stage::Joined(_)) => {
            Reply::Refused(text())
        }
        _ => Reply::Other,
    }
}

fn plain_reply(line: &[u8], room: &str) -> Reply {
    let text = || String::from_utf8_lossy(line).into_owned();
    if let Some(rest) = line.strip_prefix(b"You are now in ") {
        let name = rest.split(|&b| b == b' ').next().unwrap_or(rest);
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.eq_ignore_ascii_case(room.as_bytes()) {
            return Reply::Done;
        }
    }
    match classify(Proto::Plain, line) {
        Incoming::Error(_) if line.starts_with(b"error:") => Reply::Refused(text()),
        Incoming::Error(_) => Reply::Closed(text()),
        _ => Reply::Other,
    }
}

/// The `PONG` answering a `PING` with `params`.
pub fn pong(params: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(params.len() + 7);
    out.extend_from_slice(b"PONG ");
    out.extend_from_slice(params);
    out.extend_from_slice(b"\r\n");
    out
}

/// Tells what a received line is, without copying it.
pub fn classify(proto: Proto, line: &[u8]) -> Incoming<'_> {
    match proto {
        Proto::Irc | Proto::Ws => {
            let msg = IrcLine::parse(line);
            match msg.command {
                b"PRIVMSG" => Incoming::Message(msg.trailing()),
                b"PING" => Incoming::Ping(msg.params),
                b"ERROR" => Incoming::Error(msg.trailing()),
                _ => Incoming::Other,
            }
        }
        Proto::Plain => {
            if line.first() == Some(&b'<')
                && let Some(end) = find_pair(line, b'>', b' ')
            {
                Incoming::Message(&line[end + 2..])
            } else if line.starts_with(b"error:") || line.starts_with(b"*** disconnected") {
                Incoming::Error(line)
            } else {
                Incoming::Other
            }
        }
    }
}

/// The bytes around a payload when it is sent to `channel`.
pub fn framing(proto: Proto, channel: &str) -> (Vec<u8>, &'static [u8]) {
    match proto {
        Proto::Irc | Proto::Ws => (format!("PRIVMSG {channel} :").into_bytes(), b"\r\n"),
        Proto::Plain => (Vec::new(), b"\n"),
    }
}

/// An IRC line cut into its command and parameters (tags and source skipped).
struct IrcLine<'a> {
    command: &'a [u8],
    params: &'a [u8],
}

impl<'a> IrcLine<'a> {
    fn parse(line: &'a [u8]) -> IrcLine<'a> {
        let mut rest = line;
        for marker in [b'@', b':'] {
            if rest.first() == Some(&marker) {
                rest = split_word(rest).1;
            }
        }
        let (command, params) = split_word(rest);
        IrcLine { command, params }
    }

    /// The last parameter (after ` :`, or the last word).
    fn trailing(&self) -> &'a [u8] {
        if let Some(text) = self.params.strip_prefix(b":") {
            return text;
        }
        match find_pair(self.params, b' ', b':') {
            Some(at) => &self.params[at + 2..],
            None => self.params.rsplit(|&b| b == b' ').next().unwrap_or(self.params),
        }
    }
}

/// Where `first` followed by `second` first occurs in `text`: found with `memchr`, without
/// the searcher `memmem` builds on every call (a sixth of the generator's time per line).
fn find_pair(text: &[u8], first: u8, second: u8) -> Option<usize> {
    memchr::memchr_iter(first, text).find(|&at| text.get(at + 1) == Some(&second))
}

/// The first word and the rest after the space.
fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', text) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irc_lines_are_classified() {
        let irc = |l: &'static str| classify(Proto::Irc, l.as_bytes());
        assert_eq!(irc(":b1!b1@127.0.0.1 PRIVMSG #bench :b1:2:3 xx"), Incoming::Message(b"b1:2:3 xx"));
        assert_eq!(irc("@time=x :b1!u@h PRIVMSG #bench :hi there"), Incoming::Message(b"hi there"));
        assert_eq!(irc("PING :irc.local"), Incoming::Ping(b":irc.local"));
        assert_eq!(irc(":srv PING srv"), Incoming::Ping(b"srv"));
        assert_eq!(irc("ERROR :Closing link: (SendQ exceeded)"), Incoming::Error(b"Closing link: (SendQ exceeded)"));
        assert_eq!(irc(":b2!u@h JOIN :#bench"), Incoming::Other);
        assert_eq!(irc(""), Incoming::Other);
    }

    #[test]
    fn plain_lines_are_classified() {
        let plain = |l: &'static str| classify(Proto::Plain, l.as_bytes());
        assert_eq!(plain("<guest-3> b0:1:2 xx"), Incoming::Message(b"b0:1:2 xx"));
        assert_eq!(plain("* guest-4 joined #bench"), Incoming::Other);
        assert_eq!(plain("<broken"), Incoming::Other);
        assert!(matches!(plain("*** disconnected: you were not reading fast enough"), Incoming::Error(_)));
    }

    #[test]
    fn registration_replies() {
        assert!(matches!(irc_reply(b":srv 001 b1 :Welcome", Stage::Welcome), Reply::Done));
        assert!(matches!(irc_reply(b":srv 433 * b1 :Nickname already in use", Stage::Welcome), Reply::Refused(_)));
        assert!(matches!(irc_reply(b":srv 366 b1 #Bench :End of NAMES", Stage::Joined("#bench")), Reply::Done));
        assert!(matches!(irc_reply(b":srv 366 b1 #other :End of NAMES", Stage::Joined("#bench")), Reply::Other));
        assert!(matches!(irc_reply(b"PING :tok", Stage::Welcome), Reply::Pong(p) if p == b"PONG :tok\r\n"));
        assert!(matches!(plain_reply(b"You are now in #bench with guest-1, guest-2.", "#bench"), Reply::Done));
        assert!(matches!(plain_reply(b"You are now in #lobby (no one else is here yet).", "#lobby"), Reply::Done));
        assert!(matches!(plain_reply(b"You are now in #lobby.", "#bench"), Reply::Other));
        assert!(matches!(plain_reply(b"error: room #bench is full", "#bench"), Reply::Refused(_)));
    }

    #[test]
    fn lines_are_split_in_place() {
        let mut lines = Lines::default();
        lines.buf.extend_from_slice(b"one\r\ntwo\nthr");
        assert_eq!(lines.next_line(), Some(&b"one"[..]));
        assert_eq!(lines.next_line(), Some(&b"two"[..]));
        assert_eq!(lines.next_line(), None);
        lines.prepare().expect("room");
        assert_eq!(lines.buf, b"thr");
        lines.buf.extend_from_slice(b"ee\n");
        assert_eq!(lines.next_line(), Some(&b"three"[..]));
        lines.release();
        assert_eq!(lines.buf.capacity(), 0);
    }
}
