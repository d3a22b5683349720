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
//! - [`store`]: history that survives restarts: the [`store::Store`] trait and its SQLite
//!   implementation, one batching writer thread, `draft/chathistory` queries, room state.
//! - [`client`]: `charla connect`, the command-line client.

pub mod client;
pub mod hub;
pub mod proto;
pub mod server;
pub mod store;
