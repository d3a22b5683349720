//! The IRC protocol (RFC 1459/2812 as modern servers speak it, plus IRCv3): message parsing,
//! capabilities, numerics, the command table and the per-client session.
//!
//! - [`message`]: parse and serialise lines (tags, source, command, parameters).
//! - [`caps`]: the capability table, from which `CAP LS` is produced.
//! - [`numeric`]: numeric reply codes and the mapping from hub refusals.
//! - `commands`: one handler per command, in one table.
//! - `accounts`: SASL (`AUTHENTICATE`), `REGISTER`/`VERIFY`, the NickServ service.
//! - [`history`]: `CHATHISTORY` and the replay of recent lines on join.
//! - `monitor`: `MONITOR` (and `extended-monitor`).
//! - `users`: `SETNAME`, `WALLOPS` and the user modes `+B` (bot) and `+w`.
//! - `multiline`: `BATCH` from clients and `draft/multiline` messages out.
//! - `redact`: `REDACT` (`draft/message-redaction`).
//! - `help`: `HELP`, with a text for every command.
//! - `session`: registration, keep-alive, labeled responses.
//! - `render`: events as IRC lines, encoded once per capability combination.
//! - [`sniff`]: how an IRC client is recognised by its first lines.

mod accounts;
pub mod caps;
mod commands;
mod help;
pub mod history;
pub mod message;
mod monitor;
mod multiline;
pub mod numeric;
mod redact;
pub mod render;
mod session;
pub mod sniff;
mod users;

pub use message::MAX_LINE;
pub use session::run;

/// What an IRC client is told when the server takes only TLS connections from its address
/// (`port`: ` to port N`, or empty): `ERROR`, then the connection closes.
pub fn tls_required(port: &str) -> String {
    format!("ERROR :This server requires TLS: reconnect with TLS{port}\r\n")
}

/// The PING the server's liveness sweep sends a silent client.
pub fn ping(server_name: &str) -> bytes::Bytes {
    let mut line = Vec::new();
    message::Message::new("PING", &[server_name]).write_to(&mut line);
    line.into()
}

/// The server version shown by `VERSION` and the welcome.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The most targets one PRIVMSG/NOTICE may name (`MAXTARGETS`).
pub const MAX_TARGETS: usize = 10;
