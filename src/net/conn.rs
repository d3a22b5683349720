//! One client connection of a line-based protocol, in one task: reading its lines under the
//! length and flood limits, and writing its [`Outbox`] to the stream. Knows no protocol: the
//! session tells it the line limit and renders what is queued ([`Render`]).
//!
//! Reading and writing share the task without holding each other up: every wait for the
//! client's next line also writes what is queued for it, and a write the client does not take
//! never stops its lines from being read. A connection thus costs one task and its one future.
//!
//! Idle connections are counted in bytes, and tokio rounds a task up to a multiple of 128: a
//! session's future (this `Conn`, the session's state and its biggest wait) is now 408 bytes
//! for plain text and for IRC, and its task, with tokio's 104 bytes around it, 512: one more
//! byte would make it 640 (`a_sessions_future_fits_a_512_byte_task` in `src/server` guards
//! it). So rare waits are boxed ([`Conn::writing_during`]), what a session needs only for a
//! while (registration, a label, the end of its writing) is boxed or kept small, and nothing
//! is kept twice: a queue is its own key among the open sessions, the flood limit is one
//! instant and two `f32`s.
//! The stream is boxed (a trait object: TCP now, TLS or a WebSocket's pipe too), which made
//! the `Conn` smaller, not bigger. `RUSTFLAGS=-Zprint-type-sizes
//! cargo +nightly build --release --lib` shows the layout (`{async block@src/proto/…}`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::Sleep;

use super::BoxStream;
use super::limits::{Admission, FloodLimit, TokenBucket};
use super::lines::{Line, LineReader};
use super::sessions::Sessions;
use crate::hub::{Closed, Event, Out, Outbox};
use crate::metrics::Speaks;

/// How much of a first line sniffing reads at most: an IRC client's first line is short.
const SNIFF_LEN: usize = 512;

/// Reads a new client's first bytes: until its first line is complete, `SNIFF_LEN` bytes
/// have come, `enough` says they tell the protocol already (a TLS handshake's), or `timeout`
/// has passed (a silent client's are none). An error if the client closed the connection
/// before saying anything.
pub async fn sniff(stream: &mut BoxStream, timeout: Duration, enough: fn(&[u8]) -> bool) -> std::io::Result<Vec<u8>> {
    let mut first = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while first.len() < SNIFF_LEN && !first.contains(&b'\n') && !enough(&first) {
        first.reserve(SNIFF_LEN);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut first)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    Ok(first)
}

/// How a protocol turns queued events into bytes for one connection. The session passes its
/// renderer each time it waits, so the renderer sees the session's state as it is then.
pub trait Render {
    /// `event` as this connection should see it (possibly nothing): usually the event's
    /// shared encoding, borrowed; a line for this connection alone is its own.
    fn event<'e>(&self, event: &'e Event) -> Cow<'e, Bytes>;
    /// The last words before the connection closes.
    fn closing(&self, why: &Closed) -> Vec<u8>;
}

/// What a connection is opened with, besides its stream.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The protocol's longest line.
    pub max_line: usize,
    /// Lines per second the client may send; `None`: no limit.
    pub flood: Option<FloodLimit>,
    /// Items the outbound queue holds before the client is dropped as too slow.
    pub sendq: usize,
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
    /// Where the queue is known to the server (for shutdown) while the connection is open.
    sessions: Arc<Sessions>,
    stream: BoxStream,
    lines: LineReader,
    flood: Option<TokenBucket>,
    /// A line held back by the flood limit. Boxed: a rare wait should not make every
    /// connection bigger.
    throttled: Option<Box<Throttled>>,
    outbox: Outbox,
    writer: Writer,
    /// The connection's place under the connection limits and in the server's count of live
    /// sessions: given back when the session drops its `Conn`.
    _admission: Admission,
}

/// The writing half of a connection's state. The queue's items are rendered as soon as they
/// are taken (see [`Outbox::poll_batch`]), so no buffer of them is kept between batches.
#[derive(Default)]
struct Writer {
    /// Rendered bytes not yet written.
    pending: Bytes,
    /// How the writer ends, once its queue has closed; `None` while it is open. Boxed: it
    /// happens once, and every connection would otherwise carry its size.
    ending: Option<Box<Ending>>,
}

impl Writer {
    /// Moves the writer's end on to `next`, in the box it has already if it has one.
    fn end(&mut self, next: Ending) {
        match &mut self.ending {
            Some(ending) => **ending = next,
            None => self.ending = Some(Box::new(next)),
        }
    }
}

enum Ending {
    /// The queue closed while the client was not taking what is written: what was queued
    /// before the close is still written, until the deadline.
    Draining(Deadline),
    /// Writing the last words, if any, then shutting the socket's sending side; given up when
    /// the deadline, if any, passes.
    Closing(Option<Deadline>),
    Done,
}

/// When a closing connection stops trying to write. Boxed, as [`Sleep`] must stay in place.
type Deadline = Pin<Box<Sleep>>;

fn closing_deadline() -> Deadline {
    Box::pin(tokio::time::sleep(CLOSING_TIMEOUT))
}

impl Conn {
    /// A connection for a line-based protocol's session over `stream`, whose first bytes
    /// (read while sniffing) were `first`. The connection's queue is in `sessions` until the
    /// connection ends, so that shutdown can close it.
    pub fn new(stream: BoxStream, first: &[u8], setup: Setup, sessions: Arc<Sessions>, admission: Admission) -> Conn {
        let outbox = Outbox::new(setup.sendq);
        sessions.add(&outbox);
        Conn {
            lines: LineReader::new(setup.max_line, first),
            flood: setup.flood.map(TokenBucket::new),
            throttled: None,
            stream,
            outbox,
            writer: Writer::default(),
            _admission: admission,
            sessions,
        }
    }

    /// Hands the connection over to another protocol (a client greeted as plain text turned
    /// out to be an IRC client): `replay`, lines the first session read but left to the next,
    /// is read again, the line limit becomes the new protocol's, and the queue is a fresh one,
    /// so that nothing queued for the first session is rendered for the next. What was already
    /// rendered is still written first, whole lines only. `max_line` is the new protocol's
    /// line limit.
    pub fn reopen(&mut self, max_line: usize, speaks: Speaks, replay: &[String]) {
        let mut bytes = Vec::new();
        for line in replay {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        self.lines.restart(max_line, &bytes);
        self._admission.open.became(speaks);
        self.sessions.remove(&self.outbox);
        self.outbox = Outbox::new(self.outbox.capacity());
        self.sessions.add(&self.outbox);
    }

    /// The connection's outbound queue.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
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

    /// Runs a rare wait, if there is one (the store catching up, say), while writing what is
    /// queued. The wait is boxed: every connection's future would otherwise keep room for it.
    pub fn writing_during(
        &mut self,
        render: &impl Render,
        wait: Option<impl Future<Output = ()>>,
    ) -> impl Future<Output = ()> {
        let mut wait = wait.map(Box::pin);
        poll_fn(move |cx| {
            let Some(wait) = wait.as_mut() else {
                return Poll::Ready(());
            };
            let _ = self.poll_write(cx, render);
            wait.as_mut().poll(cx)
        })
    }

    /// Closes the queue with `reason` (if it is still open), then writes what was queued before
    /// and the last words, and shuts the socket's sending side.
    pub fn close(&mut self, reason: String, render: &impl Render) -> impl Future<Output = ()> {
        // Not an `async fn`, which would keep `reason` in every session's future to the end.
        self.outbox.close(reason);
        poll_fn(|cx| self.poll_write(cx, render))
    }

    /// The next line, once the flood limit lets it through; `None` once the client has
    /// closed the connection.
    ///
    /// While a line is held back, nothing more is read: what the client sends meanwhile waits
    /// in the kernel's buffers (at most one read of [`LineReader`]'s is held here), whose full
    /// window stops the client. And the client's hang-up is looked for at every wake-up and
    /// every [`HANGUP_CHECK`]: a flooder that closes is gone at once, its held-back lines
    /// with it, instead of talking on at the flood rate from lines it sent before it left.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        if let Some(throttled) = &mut self.throttled {
            loop {
                if self.stream.hung_up() {
                    self.throttled = None;
                    return Poll::Ready(None);
                }
                ready!(throttled.tick.as_mut().poll(cx));
                let now = tokio::time::Instant::now();
                if now >= throttled.until {
                    break;
                }
                throttled.tick.as_mut().reset(throttled.until.min(now + HANGUP_CHECK));
            }
            let line = self.throttled.take().map(|throttled| throttled.line);
            return Poll::Ready(line);
        }
        let Ok(Some(line)) = ready!(self.lines.poll_next(cx, &mut self.stream)) else { return Poll::Ready(None) };
        if let Some(bucket) = &mut self.flood {
            let wait = bucket.take();
            if !wait.is_zero() {
                crate::metrics::get().flood_delays.inc();
                let until = tokio::time::Instant::now() + wait;
                let tick = Box::pin(tokio::time::sleep(wait.min(HANGUP_CHECK)));
                self.throttled = Some(Box::new(Throttled { line, until, tick }));
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
            if let Some(ending) = &mut writer.ending
                && let Ending::Draining(deadline) | Ending::Closing(Some(deadline)) = &mut **ending
                && deadline.as_mut().poll(cx).is_ready()
            {
                **ending = Ending::Done;
            }
            match writer.ending.as_deref() {
                Some(Ending::Done) => return Poll::Ready(()),
                _ if !writer.pending.is_empty() => match Pin::new(&mut self.stream).poll_write(cx, &writer.pending) {
                    Poll::Ready(Ok(written)) if written > 0 => {
                        writer.pending.advance(written);
                        if writer.pending.is_empty() {
                            // Let go of the written buffer (an emptied `Bytes` still holds it).
                            writer.pending = Bytes::new();
                        }
                    }
                    Poll::Ready(_) => writer.end(Ending::Done),
                    // The socket is full: is the client reading at all?
                    Poll::Pending => match (writer.ending.as_deref(), self.outbox.poll_closed(cx)) {
                        // The queue is full too: it is not.
                        (None | Some(Ending::Draining(_)), Poll::Ready(Closed::Overflow)) => {
                            writer.pending = Bytes::new();
                            writer.end(Ending::Closing(None));
                        }
                        // The connection is closing: what is left may take so long, no longer.
                        (None, Poll::Ready(_)) => writer.end(Ending::Draining(closing_deadline())),
                        _ => return Poll::Pending,
                    },
                },
                None | Some(Ending::Draining(_)) => {
                    let mut batch = VecDeque::new();
                    match ready!(self.outbox.poll_batch(cx, &mut batch)) {
                        None => {
                            writer.pending = rendered(&mut batch, render);
                            // Freed once written, or when the client is dropped without taking it.
                            crate::memory::released(writer.pending.len());
                        }
                        Some(why) => {
                            // What was queued before the close and the last words: one write.
                            let mut last = Vec::from(rendered(&mut batch, render));
                            crate::memory::released(last.len());
                            last.extend_from_slice(&render.closing(&why));
                            writer.pending = last.into();
                            let deadline =
                                match writer.ending.as_deref_mut().map(|e| std::mem::replace(e, Ending::Done)) {
                                    Some(Ending::Draining(deadline)) => deadline,
                                    _ => closing_deadline(),
                                };
                            writer.end(Ending::Closing(Some(deadline)));
                        }
                    }
                }
                Some(Ending::Closing(_)) => {
                    let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
                    writer.end(Ending::Done);
                }
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.sessions.remove(&self.outbox);
    }
}

/// How often a connection whose next line is held back by the flood limit looks whether its
/// client has hung up, at the least (it also looks whenever its task wakes).
pub const HANGUP_CHECK: Duration = Duration::from_millis(100);

/// A line held back by the flood limit until `until`; `tick` wakes the connection then, and
/// every [`HANGUP_CHECK`] before.
struct Throttled {
    line: Line,
    until: tokio::time::Instant,
    tick: Pin<Box<Sleep>>,
}

/// How long the last words of a closing connection may take to write.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(2);

/// A batch of queued items as the bytes to write: one event or line (the common case at chat
/// rates) as its shared bytes are, more copied into one buffer straight from where they are
/// shared (a busy room's batches would otherwise count each shared line up and down once more
/// per recipient, on a counter every worker thread touches).
fn rendered(batch: &mut VecDeque<Out>, render: &impl Render) -> Bytes {
    if batch.len() == 1 && batch[0].count() == 1 {
        return match batch.pop_front() {
            Some(Out::Line(bytes)) => *bytes,
            Some(out) => out.events().next().map_or_else(Bytes::new, |event| render.event(event).into_owned()),
            None => Bytes::new(),
        };
    }
    let count: usize = batch.iter().map(Out::count).sum();
    let mut buf = Vec::new();
    let mut add = |bytes: &[u8]| {
        if buf.capacity() == 0 {
            // Lines are alike in size: the first one's, times the count, is close.
            buf.reserve(bytes.len() * count + 256);
        }
        buf.extend_from_slice(bytes);
    };
    for out in batch.drain(..) {
        match &out {
            Out::Line(bytes) => add(bytes),
            _ => out.events().for_each(|event| add(&render.event(event))),
        }
    }
    Bytes::from(buf)
}
