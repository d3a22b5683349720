//! Giving memory back to the system after a burst.
//!
//! glibc's `malloc` keeps what is freed for reuse, and a few big buffers freed at once (a history
//! answer of megabytes, the queue of a client dropped for SendQ) stay in the process's resident
//! memory long after the burst: 125 MB of 208 were still held after the clients that caused them
//! had gone (issue 12). So whoever lets go of a big buffer says so ([`released`]), as does each
//! connection that ends ([`connection_closed`]: a crowd leaving is a burst too), and a task of
//! the server's ([`give_back`]) calls `malloc_trim` once a second while that happens, off the
//! async workers (trimming a big heap takes milliseconds). And [`tune`] sets glibc up for many
//! small, long-lived connections. Elsewhere than glibc, nothing is done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Buffers at least this big are worth a trim when let go.
pub const BIG: usize = 64 * 1024;

/// How much must have been let go since the last trim for another.
const TRIM_AFTER: usize = 1024 * 1024;

/// How often the memory let go is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Bytes let go in big buffers since the last trim.
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// Notes that a buffer of `bytes` is let go now or soon (being written to a client that may
/// take a while); small ones are not counted.
pub fn released(bytes: usize) {
    if bytes >= BIG {
        RELEASED.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Roughly what an idle connection holds (its task, socket registration, queue, the hub's user
/// and their allocator slack): what its end gives back, in small pieces.
const CONNECTION: usize = 4 * 1024;

/// Notes that a connection has ended. One alone frees little, but a crowd leaving together
/// (hundreds in a second) frees as much as a big buffer, and in pieces too small for glibc to
/// hand back by itself: 10,000 idle clients gone left 45 MB held without a trim.
pub fn connection_closed() {
    RELEASED.fetch_add(CONNECTION, Ordering::Relaxed);
}

/// Trims the heap once a second while big buffers are let go, and once more the second after
/// (buffers noted while still being written are freed by then), for as long as the server runs.
pub async fn give_back() {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut again = false;
    loop {
        every.tick().await;
        let burst = RELEASED.swap(0, Ordering::Relaxed) >= TRIM_AFTER;
        if burst || std::mem::take(&mut again) {
            let _ = tokio::task::spawn_blocking(trim).await;
            again = burst;
        }
    }
}

/// Sets glibc's `malloc` up for a server holding many small, long-lived connections: no
/// fastbins (`M_MXFAST` 0). Each connection's tokio task and socket registration are 128-byte
/// aligned blocks, and glibc frees the slack it cut around each; without fastbins those pieces
/// go back to the heap's free lists, merge with their neighbours and serve later allocations
/// of any size, instead of each waiting for one of its exact size. About 25 bytes less per idle
/// plain-text connection and 10 per IRC one, at no CPU cost measured (round eight of
/// docs/BENCHMARKS.md): small frees still go to glibc's per-thread cache first.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // SAFETY: mallopt takes a parameter and a value and has no other precondition.
    unsafe { libc::mallopt(libc::M_MXFAST, 0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}

/// Returns the heap's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes a padding size and has no other precondition.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
