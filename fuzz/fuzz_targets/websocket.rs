//! IRC over WebSocket, from the bytes a browser sends to what the server answers: the real HTTP
//! server and WebSocket bridge (`proto::http::serve`) and the IRC session behind them, with a
//! real hub and SQLite store, over an in-memory pipe instead of a socket, in virtual time.
//!
//! Each input is what a client sends once a fixed upgrade request and registration (`NICK`,
//! `USER`, `JOIN #lobby` as text frames) have been answered: if its first byte is even, frames
//! the input describes (a header byte with FIN, reserved bits and opcode, a length byte, the
//! payload), masked as a browser masks them; if odd, raw bytes as they come. Then a `PING`, and
//! once it is answered, the client closes its side.
//! Checked:
//! - nothing panics, in the connection's task or here;
//! - the server answers `101 Switching Protocols`, then only whole, unmasked, final frames of
//!   the kinds it may send (text, ping, pong, close), text in UTF-8, none longer than an IRC
//!   line with its tags;
//! - the connection ends by itself: pings, close waits and flood delays pass in an instant of
//!   virtual time, so one that hangs is caught by libFuzzer's `-timeout`. (Virtual time also
//!   jumps ahead while the session waits for the store's writer thread, so that the server may
//!   time a client out early; that changes nothing checked here.)
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use charla::metrics::{self, Speaks};
use charla::net::{Admission, ConnLimiter, Peer};
use charla::proto::http::serve;
use charla::proto::irc::MAX_LINE as MAX_MESSAGE;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: charla.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: text.ircv3.net\r\n\r\n";

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fuzz_target!(|data: &[u8]| {
    let mut sent = Vec::new();
    match data.split_first() {
        Some((first, raw)) if first % 2 == 1 => sent.extend_from_slice(raw),
        Some((_, mut described)) => {
            while let [header, len, rest @ ..] = described {
                let (payload, next) = rest.split_at(usize::from(*len).min(rest.len()));
                frame(&mut sent, *header, payload);
                described = next;
            }
        }
        None => {}
    }
    let answer = talk(sent);
    check(&answer);
});

/// Appends a client frame: `header` as given (FIN, reserved bits, opcode), the payload masked.
fn frame(out: &mut Vec<u8>, header: u8, payload: &[u8]) {
    out.push(header);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

/// Talks to a fresh server connection: the upgrade and registration, and once the server has
/// welcomed the client, `input` and a `PING` whose answer shows that every line before it was
/// answered (unless the input ended the connection); then the client closes its side. Returns
/// all the server said until it closed the connection.
fn talk(input: Vec<u8>) -> Vec<u8> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("a runtime");
    runtime.block_on(async move {
        let shared = Arc::new(common::shared());
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
        let admission = Admission {
            permit: ConnLimiter::new(0, 0).admit(peer.ip()).expect("admitted"),
            alive: tokio::sync::mpsc::channel(1).0,
            open: metrics::get().opened(Speaks::Http),
        };
        let (mut client, server_end) = tokio::io::duplex(64 * 1024);
        // The server's liveness sweep, which pings a silent client and drops it, and its wake-up
        // of writers left waiting with comings and goings.
        let liveness = tokio::spawn(charla::server::check_liveness(shared.clone()));
        let deferring = tokio::spawn(charla::server::wake_deferred(shared.clone()));
        let server = tokio::spawn(serve(Box::new(server_end), Peer::clear(peer), shared, admission));
        let mut answer = Vec::new();
        let conversation = async {
            let mut opening = UPGRADE.to_vec();
            for line in ["NICK fuzzer", "USER fuzzer 0 * :WebSocket fuzzer", "JOIN #lobby"] {
                frame(&mut opening, 0x81, line.as_bytes());
            }
            client.write_all(&opening).await.expect("the server reads the opening");
            read_until(&mut client, &mut answer, |a| contains(a, b" 366 fuzzer #lobby ")).await;
            let mut rest = input;
            frame(&mut rest, 0x81, b"PING :fuzz-end");
            // The input may end the connection: what the server did not take is dropped.
            let _ = client.write_all(&rest).await;
            read_until(&mut client, &mut answer, |a| contains(a, b":fuzz-end")).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut answer).await;
        };
        conversation.await;
        let ended = server.await;
        liveness.abort();
        deferring.abort();
        if let Err(e) = ended
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
        answer
    })
}

/// Reads into `answer` until `done` says so or the server closes the connection.
async fn read_until(client: &mut DuplexStream, answer: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0; 4096];
    while !done(answer) {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The server's answer: the upgrade, then well-formed server frames.
fn check(answer: &[u8]) {
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "no upgrade: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("the end of the response head") + 4;
    let mut frames = &answer[head_end..];
    while let [header, len, rest @ ..] = frames {
        assert_eq!(header & 0xf0, 0x80, "a server frame is final and sets no reserved bit: {header:#x}");
        assert_eq!(len & 0x80, 0, "a server frame is not masked");
        let (len, rest) = match len & 0x7f {
            126 => {
                let [a, b, rest @ ..] = rest else { panic!("a cut frame length") };
                (usize::from(u16::from_be_bytes([*a, *b])), rest)
            }
            127 => panic!("a frame longer than 64 KiB"),
            len => (usize::from(len), rest),
        };
        assert!(rest.len() >= len, "a cut frame: {len} bytes announced, {} sent", rest.len());
        let (payload, next) = rest.split_at(len);
        match header & 0x0f {
            0x1 => {
                let text = std::str::from_utf8(payload).expect("text frames are UTF-8");
                assert!(payload.len() <= MAX_MESSAGE, "a line of {} bytes", payload.len());
                assert!(!text.contains(['\r', '\n', '\0']), "one line per frame, without line ends: {text:?}");
            }
            0x8 | 0x9 | 0xa => {}
            opcode => panic!("the server sent opcode {opcode:#x}"),
        }
        frames = next;
    }
    assert!(frames.is_empty(), "a cut frame at the end: {frames:?}");
}
