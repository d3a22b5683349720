//! The server's log on standard error, which must never stop or stall the server.
//!
//! Standard error can go away under a running server: the SSH session it was started from
//! closes (writes fail with EIO), or it is a pipe whose reader has exited (`charla serve 2>&1 |
//! head`, EPIPE). It can also stop moving: a pipe nobody reads fills up and then blocks every
//! write. So a thread that logs only appends the line to a bounded buffer in memory; a writer
//! thread of its own (`charla-log`) writes the buffer out. When the buffer is full, a line is
//! dropped; when writing fails, what was being written is dropped. Both are counted in
//! [`dropped`], and nothing else happens: the chat goes on.
//!
//! The writer is woken only by a line that finds the buffer empty, and after each write it
//! lets lines gather for [`GATHER`] before it writes again: a server logging a connection
//! every few microseconds (a flood of connects) pays for one wake-up and one write per
//! [`GATHER`], not one per line, and an idle one for none at all. A line is on standard error
//! within about [`GATHER`] of being logged. A fatal error ([`crate::panics::fatal`]) writes what
//! is still buffered first, with [`write_buffered`].

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Log lines whose write to standard error failed.
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the buffer was full.
static FULL: AtomicU64 = AtomicU64::new(0);

/// Log bytes waiting for the writer thread at most; a line that does not fit is dropped.
const BUFFER_BYTES: usize = 4 << 20;

/// How long the writer lets lines gather after each write.
pub const GATHER: Duration = Duration::from_millis(5);

/// How long the end of `main` waits for the last lines to be written (standard error may block
/// for ever).
const LAST_WRITE: Duration = Duration::from_secs(1);

/// Log lines dropped since the process started: their write failed, or standard error was too
/// slow to take them (for `/metrics`).
pub fn dropped() -> u64 {
    FAILED.load(Ordering::Relaxed) + FULL.load(Ordering::Relaxed)
}

/// The lines waiting for the writer thread.
struct Queue {
    state: Mutex<State>,
    writer: OnceLock<Thread>,
}

struct State {
    /// Whole lines, in the order they were logged.
    bytes: Vec<u8>,
    /// Lines in `bytes`.
    lines: u64,
    /// The writer is parked until a line arrives (not merely gathering).
    idle: bool,
    /// The end of `main`: write what is left and stop.
    closing: bool,
}

static QUEUE: Queue = Queue { state: Mutex::new(State::new()), writer: OnceLock::new() };

impl State {
    const fn new() -> State {
        State { bytes: Vec::new(), lines: 0, idle: false, closing: false }
    }
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one formatted line, or drops it when the buffer is full.
    fn push(&self, line: &[u8]) {
        let mut state = self.state();
        if state.bytes.len() + line.len() > BUFFER_BYTES {
            FULL.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.bytes.extend_from_slice(line);
        state.lines += 1;
        if std::mem::take(&mut state.idle) {
            drop(state);
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
    }

    /// Takes what is buffered, leaving `out`'s emptied buffer behind, and writes it.
    fn write_taken(&self, out: &mut Vec<u8>) {
        out.clear();
        let lines = {
            let mut state = self.state();
            std::mem::swap(&mut state.bytes, out);
            std::mem::take(&mut state.lines)
        };
        write_out(out, lines);
    }

    /// The writer thread's loop: park while there are no lines; once there are, let more
    /// gather, then write them all.
    fn run(&self) {
        let mut out = Vec::new();
        loop {
            let mut state = self.state();
            if state.closing {
                drop(state);
                self.write_taken(&mut out);
                return;
            }
            if state.bytes.is_empty() {
                state.idle = true;
                drop(state);
                // A spurious wake-up only costs a look at an empty buffer.
                thread::park();
                continue;
            }
            drop(state);
            let until = Instant::now() + GATHER;
            while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                thread::park_timeout(left);
            }
            self.write_taken(&mut out);
        }
    }
}

/// Writes `bytes` (`lines` whole lines) to standard error, counting them as dropped if that fails.
fn write_out(bytes: &[u8], lines: u64) {
    if !bytes.is_empty() && io::stderr().write_all(bytes).is_err() {
        FAILED.fetch_add(lines, Ordering::Relaxed);
    }
}

/// Writes what is buffered from the calling thread, at once: for a fatal error, just before the
/// process ends.
pub fn write_buffered() {
    QUEUE.write_taken(&mut Vec::new());
}

/// Sends `tracing` events at `filter`'s levels (an `EnvFilter` directive such as `info` or
/// `charla=debug`) to standard error from now on, as described in the [module docs](self).
/// Keep the guard until the end of `main`: dropping it writes what is still buffered.
pub fn init(filter: tracing_subscriber::EnvFilter) -> Guard {
    let writer = thread::Builder::new().name("charla-log".into()).spawn(|| {
        // The thread's handle is set before any line can make it wanted.
        QUEUE.run()
    });
    let writer = match writer {
        Ok(handle) => {
            let _ = QUEUE.writer.set(handle.thread().clone());
            Some(handle)
        }
        Err(e) => {
            eprintln!("charla: cannot start the log writer thread ({e}); logging straight to standard error");
            None
        }
    };
    let direct = writer.is_none();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || LineWriter { direct })
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        // It would report a failed write on standard error, with a panic when that fails too.
        .log_internal_errors(false)
        .try_init();
    // A subscriber is already installed only in a test harness; it logs elsewhere then.
    drop(installed);
    Guard { writer }
}

/// Writes the last lines when dropped at the end of `main` (waiting at most [`LAST_WRITE`]).
#[must_use = "dropping the guard stops the log writer"]
pub struct Guard {
    writer: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else { return };
        QUEUE.state().closing = true;
        writer.thread().unpark();
        let until = Instant::now() + LAST_WRITE;
        while !writer.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What `tracing` writes one formatted event to: the buffer, or without a writer thread,
/// standard error itself. A failed write is a dropped line: counted, and reported as written
/// so that nothing upstream retries it, reports it or panics.
struct LineWriter {
    direct: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.direct {
            write_out(buf, 1);
        } else {
            QUEUE.push(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
