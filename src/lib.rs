//! # charla — self-hosted group chat
//!
//! One binary, one port, every kind of client: `nc` and the original lab client (plain text)
//! and IRC clients meet in the same rooms.
//!
//! # Layout
//!
//! - [`hub`]: users, nicks, rooms, membership and every chat rule (who may speak, bans, keys,
//!   operators). Pure state, no sockets; emits [`hub::Event`]s into bounded [`hub::Outbox`]es.
//! - [`server`]: listeners, protocol sniffing, connection lifecycle (reader, writer, limits),
//!   graceful shutdown.
//! - [`proto`]: translation between bytes and hub verbs/events, one module per protocol
//!   ([`proto::plain`] for text lines and `/commands`).
//! - [`client`]: `charla connect`, the command-line client.
//! - [`bench`]: `charla bench`, the load generator (scenarios, loss accounting, latency
//!   percentiles, a summary table and a JSON line).

pub mod bench;
pub mod client;
pub mod hub;
pub mod proto;
pub mod server;
