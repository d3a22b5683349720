//! The transport, below every protocol: the byte stream a connection is read from and written
//! to. It knows no protocol.
//!
//! - [`BoxStream`]: any connected byte stream (TCP now, TLS inside it later), as a trait object,
//!   so that every protocol works over any of them.
//! - [`Rewind`]: a stream with bytes already read (while sniffing) put back in front.

mod stream;

pub use stream::{BoxStream, Rewind, Stream};
