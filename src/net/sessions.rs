//! The queues of every open session, registered or not, so that shutdown can say goodbye to
//! all of them: a client still negotiating its IRC registration gets its `ERROR` like everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::Outbox;

/// Why a session that opens after shutdown began is closed.
const CLOSED: &str = "Server shutting down";

/// Open sessions' queues, by a key each connection gets when it opens.
#[derive(Debug, Default)]
pub struct Sessions {
    next: AtomicU64,
    /// The open queues, and whether [`Sessions::close_all`] has been called.
    open: Mutex<(HashMap<u64, Outbox>, bool)>,
}

impl Sessions {
    /// A fresh key for a connection.
    pub fn key(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a session's queue; after [`Sessions::close_all`], closes it at once instead.
    pub fn add(&self, key: u64, outbox: Outbox) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.1 {
            false => drop(open.0.insert(key, outbox)),
            true => outbox.close(CLOSED),
        }
    }

    pub fn remove(&self, key: u64) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0.remove(&key);
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
        for outbox in open.0.values() {
            outbox.close(reason);
        }
    }
}
