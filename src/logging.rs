//! The server's log on standard error, which must never stop or stall the server.
//!
//! Standard error can go away under a running server: the SSH session it was started from
//! closes (writes fail with EIO), or it is a pipe whose reader has exited (`charla serve 2>&1 |
//! head`, EPIPE). It can also stop moving: a pipe nobody reads fills up and then blocks every
//! write. So log lines are handed to a writer thread through a bounded queue
//! ([`tracing_appender::non_blocking()`], lossy) and never written by the thread that logs them:
//! when the queue is full, a line is dropped; when writing a line fails, the line is dropped.
//! Both are counted in [`dropped`], and nothing else happens: the chat goes on.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Log lines whose write to standard error failed.
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the writer thread's queue was full.
static QUEUE_FULL: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines waiting for the writer thread at most; more are dropped.
const QUEUE_LINES: usize = 16_384;

/// Log lines dropped since the process started: their write failed, or standard error was too
/// slow to take them (for `/metrics`).
pub fn dropped() -> u64 {
    FAILED.load(Ordering::Relaxed) + QUEUE_FULL.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Sends `tracing` events at `filter`'s levels (an `EnvFilter` directive such as `info` or
/// `charla=debug`) to standard error from now on, as described in the [module docs](self).
/// Keep the guard until the end of `main`: dropping it writes what is still queued.
pub fn init(filter: tracing_subscriber::EnvFilter) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("charla-log")
        .finish(Stderr);
    let _ = QUEUE_FULL.set(writer.error_counter());
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        // It would report a failed write on standard error, with a panic when that fails too.
        .log_internal_errors(false)
        .try_init();
    // A subscriber is already installed only in a test harness; it logs elsewhere then.
    drop(installed);
    guard
}

/// Standard error, where a failed write is a dropped line: counted, and reported as written
/// so that nothing upstream retries it, reports it or panics.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().write_all(buf).is_err() {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}
