//! # charla — self-hosted group chat
//!
//! One binary, one port, every kind of client: `nc` and the original lab client (plain text)
//! and IRC clients meet in the same rooms.
//!
//! A line's way through: [`server`] accepts and sniffs the connection, the protocol session
//! turns the line into a hub verb (`say`, `join`, …), the [`hub`] applies the rules and delivers
//! one shared [`hub::Event`] to each recipient's queue, and each connection (one task, in
//! [`server::conn`]) renders it for its protocol and writes it while it waits for its client's
//! next line.
//!
//! # Layout
//!
//! - [`hub`]: users, nicks, rooms, membership and every chat rule (who may speak, bans, keys,
//!   operators). Pure state, no sockets; emits [`hub::Event`]s into bounded [`hub::Outbox`]es.
//! - [`accounts`]: registration and login (passwords hashed with argon2id, SASL PLAIN, the
//!   NickServ service), throttled per address and account; what being logged in means (owned
//!   nicks, the account others see) is the hub's, in [`hub::accounts`].
//! - [`server`]: listeners, protocol sniffing, connection lifecycle (one task per connection
//!   that reads lines and writes its queue, limits), graceful shutdown.
//! - [`proto`]: translation between bytes and hub verbs/events, one module per protocol:
//!   [`proto::plain`] for text lines and `/commands`, [`proto::irc`] for IRC and IRCv3.
//! - [`store`]: history that survives restarts: the [`store::Store`] trait and its SQLite
//!   implementation, one batching writer thread, `draft/chathistory` queries, room state.
//! - [`web`]: HTTP on the chat port: a page saying how to join, and `/healthz`.
//! - [`client`]: `charla connect`: a full-screen IRC client on a terminal (state in
//!   [`client::app`], drawing in [`client::ui`], the connection in [`client::irc`]), line mode
//!   in a pipe.
//! - [`logging`]: the server's log on standard error, which never stops or stalls it (failed
//!   writes are dropped and counted).
//! - [`panics`]: what a bug ends: its one connection, or else the whole process.
//! - [`bench`](mod@bench): `charla bench`, the load generator (scenarios, loss accounting, latency
//!   percentiles, a summary table and a JSON line).

pub mod accounts;
pub mod bench;
pub mod client;
pub mod hub;
pub mod logging;
pub mod panics;
pub mod proto;
pub mod server;
pub mod store;
pub mod web;
