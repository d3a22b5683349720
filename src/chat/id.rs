//! Message ids and the clock: every event and every stored record is named by a [`MsgId`],
//! which is also its time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unique, time-ordered message id: milliseconds since the Unix epoch in the high 44 bits and a
/// sequence number in the low 20, so ids sort by time and never repeat within one hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(pub u64);

impl MsgId {
    /// The millisecond timestamp the id was made at.
    pub fn millis(self) -> u64 {
        self.0 >> 20
    }
}

impl std::fmt::Display for MsgId {
    /// Sixteen lowercase hex digits: fixed width, so string order is time order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for MsgId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MsgId)
    }
}

/// Hands out [`MsgId`]s that increase strictly, even if the wall clock steps back.
#[derive(Debug, Default)]
pub struct MsgIdGen {
    last: u64,
}

impl MsgIdGen {
    pub fn next_id(&mut self) -> MsgId {
        let now = (now_millis() << 20).max(self.last + 1);
        self.last = now;
        MsgId(now)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
