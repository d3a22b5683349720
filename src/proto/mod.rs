//! Protocols: each module translates between its wire format and the hub's verbs and events.
//! No chat rule lives here; the hub decides, protocols only translate.

pub mod http;
pub mod irc;
pub mod plain;
