//! One client connection, in one task: sniffing its protocol from the first bytes, reading its
//! lines under the length and flood limits, and writing its [`Outbox`] to the socket.
//!
//! Reading and writing share the task without holding each other up: every wait for the
//! client's next line also writes what is queued for it, and a write the client does not take
//! never stops its lines from being read. A connection thus costs one task and its one future.
//!
//! Idle connections are counted in bytes, and tokio rounds a task up to a multiple of 128: a
//! session's future (this `Conn`, the session's state and its biggest wait) is now 648 bytes
//! for plain text and 656 for IRC, each task 768, and little more future would make it 896
//! (futures of 672 and 680 bytes did). `RUSTFLAGS=-Zprint-type-sizes
//! cargo +nightly build --release --lib` shows the layout (`{async block@src/proto/…}`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::Shared;
use super::limits::{ConnPermit, TokenBucket};
use super::lines::{Line, LineReader};
use crate::hub::outbox::SMALL_BATCH;
use crate::hub::{Closed, Event, Out, Outbox};

/// The protocol a client speaks, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plain,
    Irc,
    /// A browser or monitor (`GET `, `HEAD `).
    Http,
    /// A TLS handshake (first byte 0x16).
    Tls,
}

/// How much of a first line sniffing reads at most: an IRC client's first line is short.
const SNIFF_LEN: usize = 512;

/// Tells the protocol from the first bytes a client sent (possibly none).
///
/// An IRC client opens with one of `CAP`, `NICK`, `USER` or `PASS`, in capitals and with the
/// parameters that command takes: `CAP LS 302`, `NICK alice`, `USER alice 0 * :Alice`,
/// `PASS secret`. A line of text that merely starts with such a word (`User guide updated`,
/// `PASS all tests green`, piped in before the greeting) is plain text.
pub fn classify(first: &[u8]) -> Protocol {
    if first.starts_with(&[0x16, 0x03]) {
        return Protocol::Tls;
    }
    let (line, complete) = match first.iter().position(|&b| b == b'\n') {
        Some(end) => (first[..end].strip_suffix(b"\r").unwrap_or(&first[..end]), true),
        None => (first, false),
    };
    let line = String::from_utf8_lossy(line);
    // `GET /path HTTP/1.1`; a first line cut short needs at least `GET /`.
    let request = match line.split_once(' ') {
        Some(("GET" | "HEAD", rest)) if complete => {
            rest.starts_with('/') && rest.split(' ').nth(1).is_some_and(|version| version.starts_with("HTTP/"))
        }
        Some(("GET" | "HEAD", rest)) => rest.starts_with('/'),
        _ => false,
    };
    if request {
        return Protocol::Http;
    }
    let shaped = if complete {
        registration_line(&line).is_some()
    } else {
        // A first line cut short by the sniffing deadline is judged by its command alone.
        ["CAP ", "NICK ", "USER ", "PASS "].iter().any(|command| line.starts_with(command))
    };
    if shaped { Protocol::Irc } else { Protocol::Plain }
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

/// How a protocol turns queued events into bytes for one connection. The session passes its
/// renderer each time it waits, so the renderer sees the session's state as it is then.
pub trait Render {
    /// `event` as this connection should see it (possibly nothing): usually the event's
    /// shared encoding, cloned without a copy.
    fn event(&self, event: &Event) -> Bytes;
    /// The last words before the connection closes.
    fn closing(&self, why: &Closed) -> Vec<u8>;
}

/// What a session waits for: its client's next line, while the connection writes its queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Line(Line),
    /// The client closed the connection (or it failed).
    Closed,
    /// The writer has stopped: the queue was closed and its last words written, the queue
    /// overflowed while the client was not reading, or a write failed. [`Outbox::closed`] says
    /// which.
    Stopped,
}

/// A connection after sniffing: the socket, its line reader and its queue.
pub struct Conn {
    pub shared: Arc<Shared>,
    stream: TcpStream,
    lines: LineReader,
    flood: Option<TokenBucket>,
    /// A line held back by the flood limit: ready with it when it may be handled. Boxed: a
    /// rare wait should not make every connection bigger.
    throttled: Option<Pin<Box<dyn Future<Output = Line> + Send>>>,
    outbox: Outbox,
    writer: Writer,
    /// This connection's key in [`Shared::sessions`](super::Shared).
    key: u64,
    /// The connection's place under the connection limits, and its token in the server's
    /// count of live sessions: both are given back when the session drops its `Conn`.
    _permit: (ConnPermit, mpsc::Sender<()>),
}

/// The writing half of a connection's state.
#[derive(Default)]
struct Writer {
    /// Where the queue's items are swapped to be rendered (see [`Outbox::poll_batch`]).
    batch: VecDeque<Out>,
    /// Rendered bytes not yet written.
    pending: Bytes,
    state: WriteState,
}

enum WriteState {
    /// Writing the queue as it fills; once the queue is closed while the client is not taking
    /// what is written, with a deadline for what was queued before the close.
    Open(Option<Deadline>),
    /// Writing the last words, if any, then shutting the socket's sending side; given up when
    /// the deadline, if any, passes.
    Closing(Option<Deadline>),
    Done,
}

impl Default for WriteState {
    fn default() -> WriteState {
        WriteState::Open(None)
    }
}

/// When a closing connection stops trying to write. Boxed: it happens once, and every
/// connection would otherwise carry its size.
type Deadline = Pin<Box<Sleep>>;

fn closing_deadline() -> Deadline {
    Box::pin(tokio::time::sleep(CLOSING_TIMEOUT))
}

impl Conn {
    /// Opens a connection. Unless the listener is reserved for one `protocol`, reads the first
    /// bytes (waiting up to the sniff timeout for a silent client) to tell which protocol it
    /// speaks; the bytes read are kept for the session's line reader. The connection's queue is
    /// known to the server until the connection ends, so that shutdown can close it.
    pub async fn open(
        mut stream: TcpStream,
        protocol: Option<Protocol>,
        shared: Arc<Shared>,
        permit: (ConnPermit, mpsc::Sender<()>),
    ) -> std::io::Result<(Protocol, Conn)> {
        let mut first = Vec::new();
        let sniffing = protocol.is_none();
        let deadline = tokio::time::Instant::now() + shared.limits.sniff_timeout;
        while sniffing && first.len() < SNIFF_LEN && !first.contains(&b'\n') {
            first.reserve(SNIFF_LEN);
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut first)).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        let protocol = protocol.unwrap_or_else(|| classify(&first));
        let limits = &shared.limits;
        let key = shared.sessions.key();
        let outbox = Outbox::new(limits.sendq);
        shared.sessions.add(key, outbox.clone());
        let conn = Conn {
            key,
            lines: LineReader::new(max_line(protocol, &shared), &first),
            flood: limits.flood.map(TokenBucket::new),
            throttled: None,
            stream,
            outbox,
            writer: Writer::default(),
            _permit: permit,
            shared,
        };
        Ok((protocol, conn))
    }

    /// Hands the connection over to another protocol (a client greeted as plain text turned
    /// out to be an IRC client): `replay`, lines the first session read but left to the next,
    /// is read again, the line limit becomes the new protocol's, and the queue is a fresh one,
    /// so that nothing queued for the first session is rendered for the next. What was already
    /// rendered is still written first, whole lines only.
    pub fn reopen(&mut self, protocol: Protocol, replay: &[String]) {
        let mut bytes = Vec::new();
        for line in replay {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        self.lines.restart(max_line(protocol, &self.shared), &bytes);
        self.outbox = Outbox::new(self.shared.limits.sendq);
        self.shared.sessions.add(self.key, self.outbox.clone());
    }

    /// The connection's outbound queue.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The next line from the client, paced by the flood limit; `None` when the client is gone.
    /// Nothing queued is written meanwhile: for one-shot answers (HTTP), see
    /// [`Conn::answer_and_close`].
    pub async fn next_line(&mut self) -> Option<Line> {
        poll_fn(|cx| self.poll_line(cx)).await
    }

    /// Whether the line just read had invalid UTF-8 in it (replaced with U+FFFD).
    pub fn mangled(&self) -> bool {
        self.lines.mangled()
    }

    /// The client's next line, writing what is queued while waiting for it.
    pub fn next(&mut self, render: &impl Render) -> impl Future<Output = Input> {
        // A bare `poll_fn`, not an `async fn`, which would keep its arguments twice: every idle
        // connection waits here.
        poll_fn(|cx| {
            if self.poll_write(cx, render).is_ready() {
                return Poll::Ready(Input::Stopped);
            }
            self.poll_line(cx).map(|line| line.map_or(Input::Closed, Input::Line))
        })
    }

    /// Runs `work` (a wait for the history store, say) while writing what is queued.
    pub fn writing_while<T>(
        &mut self,
        render: &impl Render,
        mut work: Pin<&mut impl Future<Output = T>>,
    ) -> impl Future<Output = T> {
        poll_fn(move |cx| {
            let _ = self.poll_write(cx, render);
            work.as_mut().poll(cx)
        })
    }

    /// Closes the queue with `reason` (if it is still open), then writes what was queued before
    /// and the last words, and shuts the socket's sending side.
    pub async fn close(&mut self, reason: String, render: &impl Render) {
        self.outbox.close(reason);
        poll_fn(|cx| self.poll_write(cx, render)).await
    }

    /// Writes `bytes` and closes the connection, for one-shot answers (HTTP) without a queue.
    pub async fn answer_and_close(mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(CLOSING_TIMEOUT, async {
            self.stream.write_all(bytes).await?;
            self.stream.shutdown().await
        })
        .await;
    }

    /// The next line, once the flood limit lets it through.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        if let Some(throttled) = &mut self.throttled {
            let line = ready!(throttled.as_mut().poll(cx));
            self.throttled = None;
            return Poll::Ready(Some(line));
        }
        let Ok(Some(line)) = ready!(self.lines.poll_next(cx, &mut self.stream)) else { return Poll::Ready(None) };
        if let Some(bucket) = &mut self.flood {
            let wait = bucket.take();
            if !wait.is_zero() {
                self.throttled = Some(Box::pin(async move {
                    tokio::time::sleep(wait).await;
                    line
                }));
                return self.poll_line(cx);
            }
        }
        Poll::Ready(Some(line))
    }

    /// Writes the queue: everything queued is rendered into one buffer and written with one
    /// call. Ready once the writer has stopped: when the queue closes (after writing the
    /// reason), on a write error, at once when the queue overflows while a write to a client
    /// that does not read is pending, and at the latest [`CLOSING_TIMEOUT`] after the queue
    /// closed (a kill, a ping timeout, shutdown) while such a write is pending.
    fn poll_write(&mut self, cx: &mut Context<'_>, render: &impl Render) -> Poll<()> {
        let writer = &mut self.writer;
        loop {
            if let WriteState::Open(Some(deadline)) | WriteState::Closing(Some(deadline)) = &mut writer.state
                && deadline.as_mut().poll(cx).is_ready()
            {
                writer.state = WriteState::Done;
            }
            match writer.state {
                WriteState::Done => return Poll::Ready(()),
                _ if !writer.pending.is_empty() => match Pin::new(&mut self.stream).poll_write(cx, &writer.pending) {
                    Poll::Ready(Ok(written)) if written > 0 => {
                        writer.pending.advance(written);
                        if writer.pending.is_empty() {
                            // Let go of the written buffer (an emptied `Bytes` still holds it).
                            writer.pending = Bytes::new();
                        }
                    }
                    Poll::Ready(_) => writer.state = WriteState::Done,
                    // The socket is full: is the client reading at all?
                    Poll::Pending => match (&writer.state, self.outbox.poll_closed(cx)) {
                        // The queue is full too: it is not.
                        (WriteState::Open(_), Poll::Ready(Closed::Overflow)) => {
                            writer.pending = Bytes::new();
                            writer.state = WriteState::Closing(None);
                        }
                        // The connection is closing: what is left may take so long, no longer.
                        (WriteState::Open(None), Poll::Ready(_)) => {
                            writer.state = WriteState::Open(Some(closing_deadline()))
                        }
                        _ => return Poll::Pending,
                    },
                },
                WriteState::Open(_) => match ready!(self.outbox.poll_batch(cx, &mut writer.batch)) {
                    None => {
                        let count = writer.batch.len();
                        writer.pending = rendered(&mut writer.batch, render);
                        // After a small batch, give the memory back: an idle connection holds none.
                        if count <= SMALL_BATCH {
                            writer.batch = VecDeque::new();
                        }
                    }
                    Some(why) => {
                        writer.pending = render.closing(&why).into();
                        let deadline = match &mut writer.state {
                            WriteState::Open(deadline) => deadline.take(),
                            _ => None,
                        };
                        writer.state = WriteState::Closing(Some(deadline.unwrap_or_else(closing_deadline)));
                    }
                },
                WriteState::Closing(_) => {
                    let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
                    writer.state = WriteState::Done;
                }
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.sessions.remove(self.key);
    }
}

/// The longest line a protocol's client may send.
fn max_line(protocol: Protocol, shared: &Shared) -> usize {
    match protocol {
        Protocol::Plain => shared.limits.max_line,
        Protocol::Irc => crate::proto::irc::MAX_LINE,
        Protocol::Http | Protocol::Tls => crate::web::MAX_HEADER_LINE,
    }
}

/// How long the last words of a closing connection may take to write.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(2);

/// A batch of queued items as the bytes to write: one item (the common case at chat rates) as
/// its shared bytes are, several gathered into one buffer.
fn rendered(batch: &mut VecDeque<Out>, render: &impl Render) -> Bytes {
    let count = batch.len();
    let mut rendered = batch.drain(..).map(|out| match out {
        Out::Line(bytes) => bytes,
        Out::Event(event) => render.event(&event),
    });
    match (rendered.next(), rendered.next()) {
        (None, _) => Bytes::new(),
        (Some(one), None) => one,
        (Some(first), Some(second)) => {
            // Lines are alike in size: the first one's, times the count, is close.
            let mut buf = Vec::with_capacity(first.len().max(second.len()) * count + 256);
            for bytes in [first, second].into_iter().chain(rendered) {
                buf.extend_from_slice(&bytes);
            }
            Bytes::from(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_irc_from_text() {
        assert_eq!(classify(b"CAP LS 302\r\n"), Protocol::Irc);
        assert_eq!(classify(b"CAP LS 302\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK :bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"USER x 0 * :x y\r\n"), Protocol::Irc);
        assert_eq!(classify(b"USER x 0 * x\n"), Protocol::Irc);
        assert_eq!(classify(b"PASS secret\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK bo"), Protocol::Irc, "cut short by the deadline");
        assert_eq!(classify(b"hello there\n"), Protocol::Plain);
        assert_eq!(classify(b"NICKNAME\n"), Protocol::Plain);
        assert_eq!(classify(b"User accounts migrated OK\n"), Protocol::Plain);
        assert_eq!(classify(b"USER accounts migrated OK\n"), Protocol::Plain);
        assert_eq!(classify(b"PASS all tests green\n"), Protocol::Plain);
        assert_eq!(classify(b"nick here\n"), Protocol::Plain);
        assert_eq!(classify(b"NICK here and there\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP of the day\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP NOTACOMMAND\r\n"), Protocol::Irc, "answered 410 by the IRC session");
        assert_eq!(classify(b"CAP ls\r\n"), Protocol::Irc);
        assert_eq!(classify(b"CAP LOCK IS ON AGAIN\n"), Protocol::Plain);
        assert_eq!(classify(b""), Protocol::Plain);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Protocol::Http);
        assert_eq!(classify(b"HEAD /healthz HTTP/1.0\r\nHost: x\r\n"), Protocol::Http);
        assert_eq!(classify(b"GET /heal"), Protocol::Http, "cut short by the deadline");
        assert_eq!(classify(b"GET the build from CI before 5pm\n"), Protocol::Plain);
        assert_eq!(classify(b"GET /etc/motd, please\n"), Protocol::Plain);
        assert_eq!(classify(b"GETTING better\n"), Protocol::Plain);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), Protocol::Tls);
    }

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
