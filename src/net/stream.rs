//! The byte stream a connection speaks over.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;

/// A connected byte stream: TCP, TLS over TCP, or one end of an in-process pipe.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {
    /// The socket the stream runs over, if it runs over one.
    fn socket(&self) -> Option<RawFd> {
        None
    }

    /// Whether the client has hung up (closed or reset the connection) even though bytes it
    /// sent before are still unread: a connection whose input is held back by the flood limit
    /// asks, so that a client that is gone is gone at once, not once its backlog has been read.
    /// `false` when the stream cannot tell.
    fn hung_up(&self) -> bool {
        self.socket().is_some_and(peer_hung_up)
    }
}

/// Whether the peer of `socket` has closed or reset the connection, whatever it sent before
/// that is still unread.
pub fn peer_hung_up(socket: RawFd) -> bool {
    // `POLLRDHUP`: the peer's FIN (or a reset) has arrived, whatever is still queued before it.
    let mut poll = libc::pollfd { fd: socket, events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one `pollfd`; a descriptor that is not open only sets POLLNVAL; a zero timeout
    // never blocks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

impl Stream for TcpStream {
    fn socket(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

impl Stream for DuplexStream {}

impl Stream for Rewind {
    fn socket(&self) -> Option<RawFd> {
        self.inner.socket()
    }

    fn hung_up(&self) -> bool {
        self.inner.hung_up()
    }
}

/// Any [`Stream`], boxed: what a protocol session is given.
pub type BoxStream = Box<dyn Stream>;

/// A stream whose first bytes were already read: they are read again first.
///
/// Once they are read (or if there are none), the buffer they came from is let go: a
/// WebSocket's are what hyper had read past the upgrade, a slice of its 8 KiB read buffer,
/// which the connection would otherwise hold for its whole life.
pub struct Rewind {
    unread: Bytes,
    inner: BoxStream,
}

impl Rewind {
    pub fn new(unread: impl Into<Bytes>, inner: BoxStream) -> Rewind {
        let unread = unread.into();
        Rewind { unread: if unread.is_empty() { Bytes::new() } else { unread }, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread[..n]);
            self.unread.advance(n);
            if self.unread.is_empty() {
                self.unread = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn reads_the_unread_bytes_first() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b" world").await.unwrap();
        drop(client);
        let mut rewound = Rewind::new(&b"hello"[..], Box::new(server));
        let mut all = String::new();
        rewound.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }

    #[tokio::test]
    async fn lets_go_of_the_unread_bytes_buffer_once_they_are_read() {
        let buffer = Bytes::from(vec![b'x'; 100]);
        let (_client, server) = tokio::io::duplex(64);
        let nothing_left = Rewind::new(buffer.slice(100..), Box::new(server));
        assert!(buffer.is_unique(), "an empty remainder holds its buffer");
        drop(nothing_left);

        let (_client, server) = tokio::io::duplex(64);
        let mut rewound = Rewind::new(buffer.slice(95..), Box::new(server));
        assert!(!buffer.is_unique());
        let mut five = [0; 5];
        rewound.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"xxxxx");
        assert!(buffer.is_unique(), "a remainder read to its end holds its buffer");
    }
}
