//! The queues of every open session, registered or not, so that shutdown can say goodbye to
//! all of them: a client still negotiating its IRC registration gets its `ERROR` like everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::Outbox;

/// Open sessions' queues, by a key each connection gets when it opens.
#[derive(Debug, Default)]
pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Outbox>>,
}

impl Sessions {
    /// A fresh key for a connection.
    pub fn key(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add(&self, key: u64, outbox: Outbox) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(key, outbox);
    }

    pub fn remove(&self, key: u64) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }

    /// How many connections are open (registered or not, every protocol).
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes every queue: each writer delivers what was queued, then tells its client `reason`.
    pub fn close_all(&self, reason: &str) {
        for outbox in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            outbox.close(reason);
        }
    }
}
