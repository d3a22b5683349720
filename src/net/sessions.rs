//! The queues of every open session, registered or not, so that shutdown can say goodbye to
//! all of them: a client still negotiating its IRC registration gets its `ERROR` like everyone.
//! The same table is swept for silent clients: one pass every quarter of the ping interval
//! pings those quiet for an interval and drops those quiet for two, or unregistered after one
//! (see [`Sessions::sweep`]), so that no connection waits on a timer of its own.

use std::collections::HashSet;
use std::sync::Mutex;

use std::time::Duration;

use bytes::Bytes;

use crate::hub::{Out, Outbox};

/// Why a session that opens after shutdown began is closed.
const CLOSED: &str = "Server shutting down";

/// Sweeps per ping interval: a client is pinged after between one and one and a quarter
/// intervals of silence, and dropped after between two and two and a quarter.
pub const SWEEPS_PER_INTERVAL: u32 = 4;

/// Open sessions' queues. A queue is its own key (its handles are equal when they are the
/// same queue's): a connection needs no key of its own to be found.
#[derive(Debug, Default)]
pub struct Sessions {
    /// The open queues, and whether [`Sessions::close_all`] has been called.
    open: Mutex<(HashSet<Outbox>, bool)>,
}

impl Sessions {
    /// Adds a session's queue; after [`Sessions::close_all`], closes it at once instead.
    pub fn add(&self, outbox: &Outbox) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.1 {
            false => drop(open.0.insert(outbox.clone())),
            true => outbox.close(CLOSED),
        }
    }

    pub fn remove(&self, outbox: &Outbox) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0.remove(outbox);
    }

    /// How many connections are open (registered or not, every protocol).
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    /// Closes every queue: each writer delivers what was queued, then tells its client `reason`.
    /// Sessions added later are closed as they come.
    pub fn close_all(&self, reason: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.1 = true;
        for outbox in &open.0 {
            outbox.close(reason);
        }
    }

    /// One pass of the liveness check (every `interval` / [`SWEEPS_PER_INTERVAL`]): sends
    /// `ping` to each watched client silent for an interval, and closes those silent for two
    /// intervals, or not registered one interval after they connected.
    pub fn sweep(&self, ping: &Bytes, interval: Duration) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = SWEEPS_PER_INTERVAL as u8;
        for outbox in &open.0 {
            match outbox.liveness().sweep() {
                Some((false, sweeps)) if sweeps > n => outbox.close("Registration timed out"),
                Some((true, sweeps)) if sweeps == n + 1 => drop(outbox.push(Out::line(ping.clone()))),
                Some((true, sweeps)) if sweeps > 2 * n => {
                    outbox.close(format!("Ping timeout: {} seconds", 2 * interval.as_secs()))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::{Context, Waker};

    use super::*;
    use crate::hub::Closed;

    const INTERVAL: Duration = Duration::from_secs(90);

    /// Sweeps `n` times, `talker` saying something before each.
    fn sweep(sessions: &Sessions, n: u32, talker: &Outbox) {
        let ping = Bytes::from_static(b"PING x\r\n");
        for _ in 0..n {
            talker.liveness().heard();
            sessions.sweep(&ping, INTERVAL);
        }
    }

    /// How many items were queued, taken out.
    fn queued(outbox: &Outbox) -> usize {
        let mut batch = VecDeque::new();
        let _ = outbox.poll_batch(&Context::from_waker(Waker::noop()), &mut batch);
        batch.len()
    }

    fn session(sessions: &Sessions) -> Outbox {
        let outbox = Outbox::new(16);
        sessions.add(&outbox);
        outbox
    }

    #[test]
    fn silent_clients_are_pinged_then_dropped_and_talkers_are_not() {
        let sessions = Sessions::default();
        let (quiet, talker, plain, registering) =
            (session(&sessions), session(&sessions), session(&sessions), session(&sessions));
        for outbox in [&quiet, &talker] {
            outbox.liveness().watch();
            outbox.liveness().registered();
        }
        registering.liveness().watch();

        sweep(&sessions, SWEEPS_PER_INTERVAL, &talker);
        assert_eq!(queued(&quiet), 0, "not pinged before a whole interval of silence");
        assert_eq!(registering.closed(), None);
        sweep(&sessions, 1, &talker);
        assert_eq!(queued(&quiet), 1, "pinged once an interval has passed");
        assert_eq!(registering.closed(), Some(Closed::Done("Registration timed out".into())));

        sweep(&sessions, SWEEPS_PER_INTERVAL - 1, &talker);
        assert_eq!(quiet.closed(), None, "not dropped before two intervals of silence");
        sweep(&sessions, 1, &talker);
        assert_eq!(quiet.closed(), Some(Closed::Done("Ping timeout: 180 seconds".into())));
        assert_eq!(talker.closed(), None, "a client that talks is never dropped");
        assert_eq!(queued(&talker), 0, "nor pinged");
        assert_eq!(plain.closed(), None, "a session that is not watched is left alone");
        assert_eq!(queued(&plain), 0);
    }
}
