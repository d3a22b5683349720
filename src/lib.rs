//! # charla — self-hosted group chat
//!
//! One binary, one port, every kind of client: `nc` and the original lab client (plain text),
//! IRC clients and a browser (the page the server serves, IRC over WebSocket) meet in the same
//! rooms.
//!
//! A line's way through: [`server`] accepts the connection and reads its first bytes
//! ([`net::sniff`]), the protocol table ([`proto::classify`]) tells whose they are, the
//! protocol's session turns each line into a hub verb (`say`, `join`, …), the [`hub`] applies
//! the rules and delivers one shared [`hub::Event`] to each recipient's queue, and each
//! connection (one task, a [`net::Conn`]) renders it for its protocol and writes it while it
//! waits for its client's next line. A browser's lines come as WebSocket frames
//! ([`proto::http`]) into the same IRC session.
//!
//! # Layout
//!
//! - [`hub`]: users, nicks, rooms, membership and every chat rule (who may speak, bans, keys,
//!   operators). Pure state, no sockets; emits [`hub::Event`]s into bounded [`hub::Outbox`]es.
//! - [`accounts`]: registration and login (passwords hashed with argon2id, SASL PLAIN, the
//!   NickServ service), throttled per address and account; what being logged in means (owned
//!   nicks, the account others see) is the hub's, in [`hub::accounts`].
//! - [`server`]: wiring only: configuration (command line, `CHARLA_*` variables, a TOML file:
//!   [`server::settings`]), listeners, admission, each connection to its protocol's session,
//!   reloading on SIGHUP ([`server::reload`]), graceful shutdown.
//! - [`net`]: the transport, which knows no protocol: the byte stream (TCP, or TLS inside it,
//!   [`net::tls`]) as a trait object, reading the first bytes, limits, the line reader, a
//!   line-based connection (lines in, its bounded queue out, one task).
//! - [`proto`]: the protocol table (who recognises which first bytes) and [`proto::Shared`]
//!   (what sessions work with), then translation between bytes and hub verbs/events, one module
//!   per protocol:
//!   [`proto::plain`] for text lines and `/commands`, [`proto::irc`] for IRC and IRCv3,
//!   [`proto::http`] for HTTP on hyper: the chat page, `/healthz`, `/metrics` and IRC over
//!   WebSocket (an IRC session fed by frames).
//! - [`store`]: history that survives restarts: the [`store::Store`] trait and its SQLite
//!   (default) and PostgreSQL (`--store postgres://…`, several nodes) implementations, each
//!   with one batching writer, `draft/chathistory` queries, room state, accounts. A
//!   layer below the hub: it knows records, not events (the hub turns one into the other).
//! - [`bus`]: several nodes, one chat (`serve --bus nats://…`): what each node's users do goes
//!   to the others over NATS, nicks are claimed cluster-wide, silent nodes are dropped; what a
//!   node keeps of the others is the hub's ([`hub::cluster`]).
//! - [`chat`]: the vocabulary the hub and the store share, below both: message ids and the
//!   clock, names and text (folding, validation, the sanitiser), topics and bans.
//! - [`metrics`]: what the server counts, for `/metrics` (Prometheus text format).
//! - [`client`]: `charla connect`: a full-screen IRC client on a terminal (state in
//!   [`client::app`], drawing in [`client::ui`], the connection in [`client::irc`], dialing and
//!   trusting TLS certificates in [`client::tls`](mod@client::tls)), line mode in a pipe.
//! - [`logging`]: the server's log on standard error, which never stops or stalls it (failed
//!   writes are dropped and counted).
//! - [`memory`]: giving memory back to the system after a burst (`malloc_trim`).
//! - [`panics`]: what a bug ends: its one connection, or else the whole process.
//! - [`bench`](mod@bench): `charla bench`, the load generator (scenarios, loss accounting, latency
//!   percentiles, a summary table and a JSON line).

pub mod accounts;
pub mod bench;
pub mod bus;
pub mod chat;
pub mod client;
pub mod hub;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod panics;
pub mod proto;
pub mod server;
pub mod store;
