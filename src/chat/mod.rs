//! The chat's vocabulary: the words the [hub](crate::hub) and the [store](crate::store) both
//! speak, and no rules. Message ids and the clock ([`id`]), names and text ([`text`]: case
//! folding, validation, the sanitiser), and the plain data a room and the server keep: topics,
//! ban-list entries, server bans, client tags.
//!
//! This module imports neither the hub nor the store: the store is a layer below the hub, and
//! both stand on this one. Whether a ban applies, who may set a topic and what an id is given
//! to are the hub's to decide.

pub mod id;
pub mod text;

pub use id::{MsgId, MsgIdGen, now_millis};

/// Client-only message tags (`+typing=active`), unescaped, relayed untouched to clients that
/// understand them.
pub type Tags = Vec<(String, Option<String>)>;

/// A room's topic, who set it and when (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Topic {
    pub text: String,
    pub set_by: String,
    pub at: u64,
}

/// An entry of a room's ban list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    pub mask: String,
    pub set_by: String,
    pub at: u64,
}

/// One server ban (`KLINE`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerBan {
    /// `nick!user@host`, wildcards allowed.
    pub mask: String,
    pub reason: String,
    pub set_by: String,
    /// When it was set, in milliseconds since the Unix epoch.
    pub at: u64,
    /// When it ends (milliseconds since the Unix epoch); `None`: never.
    pub until: Option<u64>,
}

impl ServerBan {
    /// Whether the ban still holds at `now` (milliseconds since the Unix epoch).
    pub fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}
