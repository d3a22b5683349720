//! Reading lines from a client with a hard length limit.
//!
//! A line is whatever ends in `\n` (a trailing `\r` is dropped). A line longer than the limit is
//! reported once as [`Line::TooLong`] and its bytes are thrown away as they arrive, so a client
//! sending a megabyte without a newline costs the server at most `max` bytes. Invalid UTF-8 is
//! replaced with U+FFFD, never fatal.
//!
//! Idle connections hold no buffer: each read lands in a chunk on the stack of that one poll,
//! complete lines are taken from it, and only an unfinished line is kept on the heap.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// The most one read takes from the socket.
const READ_CHUNK: usize = 8192;

/// What the reader produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// A line over the limit was dropped.
    TooLong,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineReader {
    buf: BytesMut,
    /// `u32`: the reader is part of every connection's future, where each byte counts.
    max: u32,
    /// Inside an over-long line: drop everything up to the next newline.
    discarding: bool,
    /// The last line returned was not valid UTF-8 (see [`LineReader::mangled`]).
    mangled: bool,
}

impl LineReader {
    /// A reader that starts with bytes already read (while sniffing the protocol).
    pub fn new(max: usize, already_read: &[u8]) -> LineReader {
        LineReader { buf: BytesMut::from(already_read), max: limit(max), discarding: false, mangled: false }
    }

    /// Starts over with a new limit, reading `replay` first, then what is buffered.
    pub fn restart(&mut self, max: usize, replay: &[u8]) {
        let mut buf = BytesMut::from(replay);
        buf.extend_from_slice(&self.buf);
        *self = LineReader { buf, max: limit(max), discarding: false, mangled: false };
    }

    /// Whether the last line returned had invalid UTF-8 in it (replaced with U+FFFD), for
    /// protocols that tell their clients so.
    pub fn mangled(&self) -> bool {
        self.mangled
    }

    /// The next line, `None` at end of stream, or pending until a line is complete.
    pub fn poll_next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
    ) -> Poll<std::io::Result<Option<Line>>> {
        loop {
            if let Some(line) = self.take_line() {
                return Poll::Ready(Ok(Some(line)));
            }
            // Not zeroed: a connection polls here at each wake-up, mostly to find nothing to read.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut chunk = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut *reader).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                // End of stream: a last line without newline still counts, read as if it had one.
                if self.buf.is_empty() {
                    return Poll::Ready(Ok(None));
                }
                self.buf.extend_from_slice(b"\n");
                return Poll::Ready(Ok(self.take_line()));
            }
            self.buf.extend_from_slice(chunk.filled());
        }
    }

    /// The next line, or `None` at end of stream.
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(&mut self, reader: &mut R) -> std::io::Result<Option<Line>> {
        std::future::poll_fn(|cx| self.poll_next(cx, reader)).await
    }

    /// A complete line from the buffer, if there is one.
    fn take_line(&mut self) -> Option<Line> {
        loop {
            match memchr::memchr(b'\n', &self.buf) {
                Some(end) => {
                    // Read where it lies, then passed over: splitting it off would make the
                    // buffer a shared one, an allocation per line.
                    let mut line = &self.buf[..end];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    let taken = if std::mem::take(&mut self.discarding) {
                        None
                    } else if line.len() > self.max as usize {
                        Some(Line::TooLong)
                    } else {
                        let text = String::from_utf8_lossy(line);
                        self.mangled = matches!(text, std::borrow::Cow::Owned(_));
                        Some(Line::Text(text.into_owned()))
                    };
                    self.buf.advance(end + 1);
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    match taken {
                        Some(line) => return Some(line),
                        None => continue,
                    }
                }
                // A line of `max` bytes may still end in `\r\n` when its `\r` is here.
                None if self.buf.len() > self.max as usize + usize::from(self.buf.last() == Some(&b'\r')) => {
                    self.buf.advance(self.buf.len());
                    let first = !self.discarding;
                    self.discarding = true;
                    return first.then_some(Line::TooLong);
                }
                None => return None,
            }
        }
    }
}

/// A line limit as the reader keeps it; no protocol's comes near 4 GiB.
fn limit(max: usize) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn lines(max: usize, input: &[u8]) -> Vec<Line> {
        let mut reader = LineReader::new(max, b"");
        let mut input = input;
        let mut out = Vec::new();
        while let Some(line) = reader.next(&mut input).await.unwrap() {
            out.push(line);
        }
        out
    }

    fn t(s: &str) -> Line {
        Line::Text(s.into())
    }

    #[tokio::test]
    async fn splits_on_lf_and_crlf() {
        assert_eq!(lines(100, b"a\nb\r\n\nlast").await, [t("a"), t("b"), t(""), t("last")]);
    }

    #[tokio::test]
    async fn drops_long_lines_once_and_recovers() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(lines(100, &input).await, [Line::TooLong, t("ok")]);
        assert_eq!(lines(3, b"abcd\nabc\n").await, [Line::TooLong, t("abc")]);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/sniff.rs): a line of exactly `max` bytes was too
    /// long when its `\r` came in one read and its `\n` in the next.
    #[tokio::test]
    async fn a_line_is_the_same_however_its_bytes_arrive() {
        let mut reader = LineReader::new(3, b"");
        let mut input = AsyncReadExt::chain(&b"abc\r"[..], &b"\nabcd\r"[..]).chain(&b"\nok\n"[..]);
        let mut lines = Vec::new();
        while let Some(line) = reader.next(&mut input).await.unwrap() {
            lines.push(line);
        }
        assert_eq!(lines, [t("abc"), Line::TooLong, t("ok")]);
    }

    #[tokio::test]
    async fn the_last_line_is_read_like_the_others() {
        assert_eq!(lines(3, b"a\r\nabc\r").await, [t("a"), t("abc")]);
        assert_eq!(lines(3, b"a\nabcd").await, [t("a"), Line::TooLong]);
        assert_eq!(lines(3, b"abcd\r\nxy").await, [Line::TooLong, t("xy")]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced() {
        assert_eq!(lines(100, b"caf\xe9 \xff\n").await, [t("caf\u{fffd} \u{fffd}")]);
        let mut reader = LineReader::new(100, b"");
        let mut input: &[u8] = b"caf\xe9\ncaf\xc3\xa9\n";
        reader.next(&mut input).await.unwrap();
        assert!(reader.mangled());
        assert_eq!(reader.next(&mut input).await.unwrap(), Some(t("café")));
        assert!(!reader.mangled());
    }

    #[tokio::test]
    async fn starts_with_sniffed_bytes() {
        let mut reader = LineReader::new(100, b"NICK a\r\nUS");
        let mut rest: &[u8] = b"ER a 0 * :A\r\n";
        assert_eq!(reader.next(&mut rest).await.unwrap(), Some(t("NICK a")));
        assert_eq!(reader.next(&mut rest).await.unwrap(), Some(t("USER a 0 * :A")));
    }
}
