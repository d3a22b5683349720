//! One client connection: sniffing its protocol from the first bytes, reading its lines under
//! the length and flood limits, and the writer task that drains its [`Outbox`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::limits::{ConnPermit, TokenBucket};
use super::lines::{Line, LineReader};
use crate::hub::outbox::SMALL_BATCH;
use crate::hub::{Closed, Event, Out, Outbox};

/// The read side of a connection, whatever carries it (TCP now; TLS or WebSocket later).
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write side of a connection.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

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
    if first.starts_with(b"GET ") || first.starts_with(b"HEAD ") {
        return Protocol::Http;
    }
    let (line, complete) = match first.iter().position(|&b| b == b'\n') {
        Some(end) => (first[..end].strip_suffix(b"\r").unwrap_or(&first[..end]), true),
        None => (first, false),
    };
    let line = String::from_utf8_lossy(line);
    // The parameters before a trailing one (`:…`), and whether the line has a trailing one.
    let (middle, trailing) = match line.split_once(" :") {
        Some((middle, _)) => (middle, true),
        None => (&line[..], false),
    };
    let mut words = middle.split(' ').filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default();
    let params: Vec<&str> = words.collect();
    let shaped = match command {
        // A first line cut short by the sniffing deadline is judged by its command alone.
        "CAP" | "NICK" | "USER" | "PASS" if !complete => line.len() > command.len(),
        "CAP" => params.first().is_some_and(|sub| ["LS", "REQ", "END", "LIST"].contains(&&*sub.to_uppercase())),
        "NICK" | "PASS" => params.len() + usize::from(trailing) == 1,
        "USER" => params.len() + usize::from(trailing) >= 4,
        _ => false,
    };
    if shaped { Protocol::Irc } else { Protocol::Plain }
}

/// How a protocol turns queued events into bytes for one connection.
pub trait Render: Send + 'static {
    /// `event` as this connection should see it (possibly nothing): usually the event's
    /// shared encoding, cloned without a copy.
    fn event(&self, event: &Event) -> Bytes;
    /// The last words before the connection closes.
    fn closing(&self, why: &Closed) -> Vec<u8>;
}

/// A connection after sniffing: the reader, the not-yet-started writer, and the server's state.
pub struct Conn {
    pub peer: SocketAddr,
    pub shared: Arc<Shared>,
    reader: BoxRead,
    lines: LineReader,
    flood: Option<TokenBucket>,
    writer: Option<BoxWrite>,
    /// This connection's key in [`Shared::sessions`](super::Shared).
    key: u64,
    /// The connection's place under the connection limits, and its token in the server's
    /// count of live sessions: both are given back when the session drops its `Conn`.
    _permit: (ConnPermit, mpsc::Sender<()>),
}

impl Conn {
    /// Opens a connection. Unless the listener is reserved for one `protocol`, reads the first
    /// bytes (waiting up to the sniff timeout for a silent client) to tell which protocol it
    /// speaks; the bytes read are kept for the session's line reader.
    pub async fn open(
        mut reader: BoxRead,
        writer: BoxWrite,
        peer: SocketAddr,
        protocol: Option<Protocol>,
        shared: Arc<Shared>,
        permit: (ConnPermit, mpsc::Sender<()>),
    ) -> std::io::Result<(Protocol, Conn)> {
        let mut first = Vec::new();
        let sniffing = protocol.is_none();
        let deadline = tokio::time::Instant::now() + shared.limits.sniff_timeout;
        while sniffing && first.len() < SNIFF_LEN && !first.contains(&b'\n') {
            first.reserve(SNIFF_LEN);
            match tokio::time::timeout_at(deadline, reader.read_buf(&mut first)).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        let protocol = protocol.unwrap_or_else(|| classify(&first));
        let limits = &shared.limits;
        let max_line = match protocol {
            Protocol::Plain => limits.max_line,
            Protocol::Irc => crate::proto::irc::MAX_LINE,
            Protocol::Http | Protocol::Tls => crate::web::MAX_HEADER_LINE,
        };
        let conn = Conn {
            key: shared.sessions.key(),
            peer,
            lines: LineReader::new(max_line, &first),
            flood: limits.flood.map(TokenBucket::new),
            reader,
            writer: Some(writer),
            _permit: permit,
            shared,
        };
        Ok((protocol, conn))
    }

    /// The next line from the client, paced by the flood limit; `None` when the client is gone.
    pub async fn next_line(&mut self) -> Option<Line> {
        let line = self.lines.next(&mut self.reader).await.ok()??;
        if let Some(bucket) = &mut self.flood {
            let wait = bucket.take();
            if !wait.is_zero() {
                // Boxed: a rare wait should not make every connection's future bigger.
                Box::pin(tokio::time::sleep(wait)).await;
            }
        }
        Some(line)
    }

    /// Writes `bytes` and closes the connection, for one-shot answers (HTTP) without a queue.
    pub async fn answer_and_close(mut self, bytes: &[u8]) {
        if let Some(mut writer) = self.writer.take() {
            let _ = tokio::time::timeout(CLOSING_TIMEOUT, async {
                writer.write_all(bytes).await?;
                writer.shutdown().await
            })
            .await;
        }
    }

    /// The connection's outbound queue, known to the server until the connection ends so that
    /// shutdown can close it. Call once.
    pub fn outbox(&self) -> Outbox {
        let outbox = Outbox::new(self.shared.limits.sendq);
        self.shared.sessions.add(self.key, outbox.clone());
        outbox
    }

    /// Starts the task that writes this connection's queue to its socket. Call once.
    pub fn start_writer(&mut self, outbox: Outbox, render: impl Render) -> JoinHandle<()> {
        let writer = self.writer.take().expect("start_writer is called once");
        tokio::spawn(write_loop(writer, outbox, render))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.sessions.remove(self.key);
    }
}

/// How long the last words of a closing connection may take to write.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(2);

/// Drains the outbox: everything queued is rendered into one buffer and written with one call.
/// Stops when the queue closes (after writing the reason), on a write error, or at once when the
/// queue overflows while a write to a client that does not read is pending.
async fn write_loop(mut writer: BoxWrite, outbox: Outbox, render: impl Render) {
    let mut batch = VecDeque::new();
    loop {
        let closed = outbox.next_batch(&mut batch).await;
        let count = batch.len();
        // One item (the common case at chat rates) is written from its shared bytes as it is;
        // several are gathered into one buffer and written with one call.
        let buf = {
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
        };
        if !buf.is_empty() {
            tokio::select! {
                written = writer.write_all(&buf) => if written.is_err() { return },
                () = outbox.overflowed() => {
                    // The socket is full and so is the queue: the client is not reading.
                    let _ = writer.shutdown().await;
                    return;
                }
            }
            // After a small batch, give the memory back: an idle connection holds no buffer.
            if count <= SMALL_BATCH {
                batch = VecDeque::new();
            }
        }
        if let Some(why) = closed {
            let last = render.closing(&why);
            // Boxed: this happens once, and every idle writer would otherwise carry its size.
            let _ = Box::pin(tokio::time::timeout(CLOSING_TIMEOUT, async {
                writer.write_all(&last).await?;
                writer.shutdown().await
            }))
            .await;
            return;
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
        assert_eq!(classify(b""), Protocol::Plain);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Protocol::Http);
        assert_eq!(classify(b"GETTING better\n"), Protocol::Plain);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), Protocol::Tls);
    }
}
