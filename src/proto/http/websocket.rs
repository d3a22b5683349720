//! IRC over WebSocket, as the IRCv3 WebSocket specification has it: an upgrade on `/` or `/ws`,
//! subprotocol `text.ircv3.net` (text frames), `binary.ircv3.net` (binary frames) or none
//! (text, as gamja and Kiwi IRC ask), and one IRC line per frame, without CR LF.
//!
//! A WebSocket client is an IRC client to the rest of the server: its session is the IRC
//! session, on a [`Conn`] like any other, with the same line limit, flood limit and queue. The
//! connection's task runs that session and a bridge between the two: frames from the client
//! become lines in an in-process pipe the session reads, and lines the session writes become
//! frames. The pipe is small, so a client that reads nothing fills it and its queue, and is
//! dropped as too slow, as a TCP client would be.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Body;
use crate::net::{Admission, BoxStream, Conn, HANGUP_CHECK, Line, LineReader, Peer, Rewind, Stream, peer_hung_up};
use crate::proto::Shared;
use crate::proto::irc;

/// The largest message (and frame) a client may send: one IRC line with its tags.
pub const MAX_MESSAGE: usize = irc::MAX_LINE;

/// The longest line the session writes that the bridge passes on; IRC lines are far shorter.
const MAX_OUT_LINE: usize = 64 * 1024;

/// Bytes the pipe between the bridge and the session holds each way.
const PIPE: usize = 16 * 1024;

/// What tungstenite reads into at once, a buffer every connection keeps filled for its whole
/// life: its default, 128 KiB, made an idle WebSocket client cost 143 KiB; 4 KiB still made it
/// 14.5 KB, 1 KiB makes it 11.5 KB (docs/BENCHMARKS.md, round ten). A browser's frames are IRC
/// lines, mostly far shorter, and a bigger frame still gets the room it needs: the buffer
/// grows to the length its header gives.
const READ_BUFFER: usize = 1024;

/// How long a closing connection waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A WebSocket subprotocol of the IRCv3 specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subprotocol {
    /// `text.ircv3.net`, or none: lines as text frames.
    Text,
    /// `binary.ircv3.net`: lines as binary frames.
    Binary,
}

/// An upgrade the server has agreed to, waiting for the connection to be handed over.
pub struct Accepted {
    upgrade: OnUpgrade,
    subprotocol: Subprotocol,
}

/// Why an upgrade was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "this WebSocket client's Origin ({0}) may not connect; the server's operator can allow it with --allowed-origin"
    )]
    Origin(String),
    #[error("a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13")]
    Handshake,
    #[error("none of the WebSocket subprotocols asked for is spoken here: use text.ircv3.net or binary.ircv3.net")]
    Subprotocol,
}

impl Refused {
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::Origin(_) => StatusCode::FORBIDDEN,
            Refused::Handshake | Refused::Subprotocol => StatusCode::BAD_REQUEST,
        }
    }
}

/// Whether a request asks to become a WebSocket.
pub fn is_upgrade<B>(request: &Request<B>) -> bool {
    let has =
        |name, token: &str| {
            request.headers().get_all(name).iter().any(|value| {
                value.to_str().is_ok_and(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
            })
        };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Checks an upgrade request and answers it: `101 Switching Protocols` with the chosen
/// subprotocol, or the reason it is refused.
pub fn accept<B>(request: &mut Request<B>, shared: &Shared) -> Result<(Response<Body>, Accepted), Refused> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if !origin_allowed(origin, host, &shared.allowed_origins) {
            return Err(Refused::Origin(origin.to_string()));
        }
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(Refused::Handshake)?;
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err(Refused::Handshake);
    }
    let asked: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let chosen = choose(&asked)?;
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key.as_bytes());
    out.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).map_err(|_| Refused::Handshake)?);
    if let Some((name, _)) = chosen {
        out.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(name));
    }
    let subprotocol = chosen.map_or(Subprotocol::Text, |(_, s)| s);
    Ok((response, Accepted { upgrade: hyper::upgrade::on(request), subprotocol }))
}

/// The subprotocol to answer with: the first one asked for that is spoken here; none if none
/// was asked for (text); refused if only others were.
fn choose(asked: &[&str]) -> Result<Option<(&'static str, Subprotocol)>, Refused> {
    if asked.is_empty() {
        return Ok(None);
    }
    let known = [("text.ircv3.net", Subprotocol::Text), ("binary.ircv3.net", Subprotocol::Binary)];
    asked
        .iter()
        .find_map(|name| known.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(Some)
        .ok_or(Refused::Subprotocol)
}

/// Whether a page from `origin` may connect: a page served by this server (its origin's host
/// is the `Host` it asked for), or one of the `allowed` origins (`*`: any).
fn origin_allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    own.is_some_and(|own| own.eq_ignore_ascii_case(host))
        || allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Runs the IRC session of an upgraded connection until either side ends it.
pub async fn run(accepted: Accepted, peer: Peer, shared: Arc<Shared>, admission: Admission) {
    let Ok(upgraded) = accepted.upgrade.await else { return };
    // The client's own stream again (hyper served it as it was given), with what hyper had read
    // of it: its socket is watched for a hang-up while the session holds lines back.
    let Ok(parts) = upgraded.downcast::<TokioIo<BoxStream>>() else {
        return tracing::error!("{peer}: a WebSocket upgrade on a stream of an unexpected kind; closed");
    };
    let stream: BoxStream = Box::new(Rewind::new(parts.read_buf, parts.io.into_inner()));
    let client_socket = stream.socket();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(READ_BUFFER);
    let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let (session_end, bridge_end) = tokio::io::duplex(PIPE);
    let ping_every = shared.limits().ping_interval;
    // Shutdown waits for the bridge's goodbye too, which outlasts the session's.
    let alive = admission.alive.clone();
    let setup = shared.line_setup(irc::MAX_LINE);
    let client_gone = Arc::new(AtomicBool::new(false));
    let session_end = SessionEnd { pipe: session_end, client_gone: client_gone.clone() };
    let conn = Conn::new(Box::new(session_end), b"", setup, shared.sessions.clone(), admission);
    let client = Client { socket: client_socket, gone: client_gone };
    tokio::join!(irc::run(conn, shared, peer), bridge(socket, bridge_end, accepted.subprotocol, ping_every, client));
    drop(alive);
}

/// The session's end of the pipe: a stream that tells the session when the browser has gone,
/// as a socket would, so that lines the flood limit holds back go with it.
struct SessionEnd {
    pipe: DuplexStream,
    client_gone: Arc<AtomicBool>,
}

impl Stream for SessionEnd {
    fn hung_up(&self) -> bool {
        self.client_gone.load(Ordering::Relaxed)
    }
}

impl AsyncRead for SessionEnd {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionEnd {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

/// The browser as the bridge watches it: its socket, and the flag that tells the session it
/// has gone.
struct Client {
    socket: Option<RawFd>,
    gone: Arc<AtomicBool>,
}

impl Client {
    /// Resolves once the client has closed or reset its connection, looking every
    /// [`HANGUP_CHECK`]; never, if there is no socket to look at.
    async fn hangs_up(&self) {
        let Some(socket) = self.socket else { return std::future::pending().await };
        while !peer_hung_up(socket) {
            tokio::time::sleep(HANGUP_CHECK).await;
        }
    }
}

/// Passes frames from the client to the session as lines and the session's lines to the client
/// as frames, pinging the client when it has been quiet for `ping_every`, until one side ends.
/// A client that leaves is gone for the session at once (`client`'s flag), whatever it sent
/// before.
async fn bridge<S>(
    socket: WebSocketStream<S>,
    pipe: DuplexStream,
    subprotocol: Subprotocol,
    ping_every: Duration,
    client: Client,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut frames_out, mut frames_in) = socket.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);
    let mut lines = LineReader::new(MAX_OUT_LINE, b"");
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let close = loop {
        tokio::select! {
            frame = frames_in.next() => {
                ping.reset();
                let line = match frame {
                    Some(Ok(Message::Text(text))) => Bytes::from(text),
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(WsError::Capacity(_))) => break Some((CloseCode::Size, "IRC lines are at most 8703 bytes")),
                    Some(Err(WsError::Utf8(_))) => break Some((CloseCode::Invalid, "text frames must be UTF-8")),
                    Some(Err(_)) => break Some((CloseCode::Protocol, "WebSocket protocol error")),
                };
                // A frame is one line; the session's reader splits any line breaks within it.
                // While the session holds lines back (the flood limit) the pipe fills and this
                // waits, watching for the client to hang up (only then: what fits is passed on,
                // as a socket's reader reads what has come before the hang-up).
                let written = async {
                    to_session.write_all(&line).await?;
                    to_session.write_all(b"\r\n").await
                };
                tokio::select! {
                    biased;
                    written = written => if written.is_err() {
                        break Some((CloseCode::Normal, ""));
                    },
                    () = client.hangs_up() => break None,
                }
            }
            line = lines.next(&mut from_session) => {
                // Every line the session has written by now goes out in one write.
                let mut line = line;
                let ended = loop {
                    match line {
                        Ok(Some(Line::Text(text))) => {
                            let frame = match subprotocol {
                                Subprotocol::Text => Message::text(text),
                                Subprotocol::Binary => Message::binary(text),
                            };
                            if frames_out.feed(frame).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(Line::TooLong)) => {}
                        // The session has ended and written its last words.
                        Ok(None) | Err(_) => break true,
                    }
                    match lines.next(&mut from_session).now_or_never() {
                        Some(next) => line = next,
                        None => break false,
                    }
                };
                if frames_out.flush().await.is_err() {
                    return;
                }
                if ended {
                    break Some((CloseCode::Normal, ""));
                }
            }
            _ = ping.tick() => {
                if frames_out.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    };
    // The session sees the end of its input and quits, if it has not; a client that left takes
    // the lines the session still holds back with it.
    if close.is_none() {
        client.gone.store(true, Ordering::Relaxed);
    }
    drop(to_session);
    let Some((code, reason)) = close else {
        // The client closed: its close frame is answered (tungstenite queued the answer).
        let _ = tokio::time::timeout(CLOSE_WAIT, frames_out.close()).await;
        return;
    };
    let frame = CloseFrame { code, reason: reason.into() };
    if frames_out.send(Message::Close(Some(frame))).await.is_ok() {
        // The client answers with its own close frame; then the connection ends.
        let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = frames_in.next().await {} }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_first_known_subprotocol() {
        assert_eq!(choose(&[]).unwrap(), None);
        assert_eq!(choose(&["binary.ircv3.net", "text.ircv3.net"]).unwrap().unwrap().1, Subprotocol::Binary);
        assert_eq!(choose(&["chat", "text.ircv3.net"]).unwrap().unwrap().1, Subprotocol::Text);
        assert!(choose(&["chat"]).is_err());
    }

    #[test]
    fn allows_its_own_page_and_listed_origins() {
        assert!(origin_allowed("http://chat.example.org:1313", "chat.example.org:1313", &[]));
        assert!(origin_allowed("https://chat.example.org", "chat.example.org", &[]));
        assert!(!origin_allowed("https://evil.example", "chat.example.org:1313", &[]));
        let allowed = ["https://app.example.org".to_string()];
        assert!(origin_allowed("https://app.example.org", "chat.example.org", &allowed));
        assert!(origin_allowed("http://chat.example.org", "chat.example.org", &allowed));
        assert!(!origin_allowed("https://evil.example", "chat.example.org", &allowed));
        assert!(origin_allowed("https://evil.example", "chat.example.org", &["*".to_string()]));
    }
}
