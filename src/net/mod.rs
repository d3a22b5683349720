//! The transport, below every protocol; it knows none of them.
//!
//! - [`BoxStream`]: any connected byte stream (TCP, or TLS inside it), as a trait object,
//!   so that every protocol works over any of them; [`Rewind`] puts bytes read while sniffing
//!   back in front.
//! - [`sniff`]: reading a new client's first bytes, for the protocol table to judge.
//! - [`tls`]: TLS termination: the server's certificate and its reload, the handshake, and
//!   what a session knows of its client ([`Peer`]: its address, whether it is encrypted).
//! - [`limits`]: the server's [`Limits`], connection caps ([`ConnLimiter`], [`Admission`]) and
//!   flood control.
//! - [`lines`]: a line reader with a hard length limit.
//! - [`conn`]: a line-based connection: its lines in, its bounded queue ([`crate::hub::Outbox`])
//!   out, written by the same task.
//! - [`sessions`]: every open connection's queue, so that shutdown can close them all.

pub mod conn;
pub mod limits;
pub mod lines;
pub mod sessions;
mod stream;
pub mod tls;

pub use conn::{Conn, HANGUP_CHECK, Input, Render, Setup, sniff};
pub use limits::{Admission, ConnLimiter, FloodLimit, Limits};
pub use lines::{Line, LineReader};
pub use sessions::{SWEEPS_PER_INTERVAL, Sessions};
pub use stream::{BoxStream, Rewind, Stream, peer_hung_up};
pub use tls::{Fingerprint, Peer, Tls, TlsInfo};
