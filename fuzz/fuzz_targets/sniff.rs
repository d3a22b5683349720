//! A new connection's first bytes: the protocol sniffer and the line reader behind it.
//!
//! Checked:
//! - `classify` never panics, whatever the bytes;
//! - once a first line is complete, more bytes do not change the verdict (only the first line
//!   counts), and a TLS handshake's first two bytes decide alone;
//! - a line that `registration_line` takes for an IRC registration command is classified IRC
//!   when it comes as a client's first line, and `Late::judge` agrees with it;
//! - the line reader gives the same lines however the bytes are split into reads (one read,
//!   byte by byte, or chunks of sizes the input chooses), the lines a simple model expects,
//!   and no line over its limit.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use charla::net::lines::{Line, LineReader};
use charla::proto::irc::sniff::{Late, Opening, registration_line};
use charla::proto::{Protocol, classify};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

fuzz_target!(|data: &[u8]| {
    sniffing(data);
    if let [max, chunking, stream @ ..] = data {
        line_reader(usize::from(*max % 64) + 1, *chunking, stream);
    }
});

fn sniffing(data: &[u8]) {
    let protocol = classify(data);
    if data.starts_with(&[0x16, 0x03]) {
        assert_eq!(protocol, Protocol::Tls);
    }
    if let Some(end) = data.iter().position(|&b| b == b'\n') {
        assert_eq!(classify(&data[..=end]), protocol, "bytes after the first line changed the verdict");
    }

    let text = String::from_utf8_lossy(data);
    let line = text.split('\n').next().unwrap_or_default();
    let opening = registration_line(line);
    if opening.is_some() {
        assert_eq!(classify(format!("{line}\r\n").as_bytes()), Protocol::Irc, "{line:?}");
    }
    let late = Late::judge(&[line]);
    match opening {
        Some(Opening::Cap | Opening::Pass) => assert_eq!(late, Late::Irc),
        Some(Opening::Nick | Opening::User) => assert_eq!(late, Late::Undecided),
        None => assert_eq!(late, Late::Plain),
    }
    let second = text.split('\n').nth(1).unwrap_or_default();
    let pair = Late::judge(&[line, second]);
    if pair == Late::Irc {
        assert!(opening.is_some() && registration_line(second).is_some() || late == Late::Irc);
    }
}

/// Bytes handed out in reads of the sizes `sizes` cycles through.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.next % self.sizes.len()].min(self.data.len()).min(buf.remaining());
        self.next += 1;
        let (chunk, rest) = self.data.split_at(size);
        buf.put_slice(chunk);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

fn read_all(max: usize, data: &[u8], sizes: Vec<usize>) -> Vec<Line> {
    let mut reader = LineReader::new(max, b"");
    let mut input = Chunked { data, sizes, next: 0 };
    let mut cx = Context::from_waker(Waker::noop());
    let mut lines = Vec::new();
    loop {
        match reader.poll_next(&mut cx, &mut input) {
            Poll::Ready(Ok(Some(line))) => lines.push(line),
            Poll::Ready(Ok(None)) => return lines,
            Poll::Ready(Err(e)) => panic!("reading a slice failed: {e}"),
            Poll::Pending => panic!("a reader that is always ready left the line reader pending"),
        }
    }
}

fn line_reader(max: usize, chunking: u8, data: &[u8]) {
    let whole = read_all(max, data, vec![usize::MAX]);
    let bytewise = read_all(max, data, vec![1]);
    assert_eq!(whole, bytewise, "max {max}: one read and byte-by-byte reads differ");
    let sizes: Vec<usize> = (0..8).map(|i| usize::from(chunking.rotate_left(i) % 16) + 1).collect();
    let chunked = read_all(max, data, sizes.clone());
    assert_eq!(whole, chunked, "max {max}: reads of {sizes:?} differ from one read");

    // What the reader should make of the bytes: each line without its `\r`, or TooLong.
    let mut expected = Vec::new();
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    for line in pieces {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        expected.push(if line.len() > max { Line::TooLong } else { text(line) });
    }
    if !last.is_empty() {
        let line = last.strip_suffix(b"\r").unwrap_or(last);
        expected.push(if line.len() > max { Line::TooLong } else { text(line) });
    }
    assert_eq!(whole, expected, "max {max}");
}

fn text(bytes: &[u8]) -> Line {
    Line::Text(String::from_utf8_lossy(bytes).into_owned())
}
