//! The terminal client's connection: one task that owns the socket, reads IRC lines into
//! [`NetEvent`]s for the UI, writes the lines the UI sends, and when the connection drops,
//! reconnects with exponential backoff (1 s, 2 s, 4 s … at most 30 s, counted down in
//! [`NetEvent::Waiting`]). It knows nothing of IRC beyond parsing lines: registration, rejoining
//! and catching up are the [`App`](super::app::App)'s answers to [`NetEvent::Connected`] and
//! the welcome.
//!
//! A connection that hears nothing for [`PING_AFTER`] is pinged; one that stays silent for
//! [`DEAD_AFTER`] is taken for dead (a laptop that slept, a NAT that forgot us) and replaced.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ClientError;
use super::tls::Dial;
use crate::net::{BoxStream, Line, LineReader};
use crate::proto::irc::MAX_LINE;
use crate::proto::irc::message::Message;
use crate::proto::irc::numeric::{ERR_PASSWDMISMATCH, RPL_WELCOME};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which the server is pinged.
pub const PING_AFTER: Duration = Duration::from_secs(120);
/// Silence after which the connection is given up and replaced.
pub const DEAD_AFTER: Duration = Duration::from_secs(240);
/// The longest wait between reconnection attempts.
pub const MAX_BACKOFF: u64 = 30;

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A (re)connection attempt starts.
    Connecting,
    /// The connection is up; nothing has been sent on it yet.
    Connected,
    Line(Message),
    /// The connection dropped or could not be made, and why.
    Disconnected(String),
    /// Seconds left before the next attempt.
    Waiting(u64),
    /// The server refused the server password (`464` before the welcome) and closed the
    /// connection: trying again with the same one cannot help, so the task has ended.
    PasswordRefused,
}

/// The UI's end of the connection task.
pub struct Connection {
    /// Lines to send. Dropping it ends the task once what was queued is written.
    pub out: mpsc::Sender<Message>,
    pub events: mpsc::Receiver<NetEvent>,
    pub task: JoinHandle<()>,
}

/// Opens a TCP connection to `addr`, giving up after [`CONNECT_TIMEOUT`].
pub async fn connect(addr: &str) -> Result<TcpStream, ClientError> {
    let connect = |source| ClientError::Connect { addr: addr.to_string(), source };
    let resolve_and_connect = async {
        let found = tokio::net::lookup_host(addr).await;
        let found: Vec<_> = found.map_err(|source| ClientError::Resolve { addr: addr.to_string(), source })?.collect();
        TcpStream::connect(&found[..]).await.map_err(connect)
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, resolve_and_connect)
        .await
        .map_err(|_| connect(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The wait before reconnection attempt number `attempt` (0-based): 1, 2, 4 … 30 seconds.
pub fn backoff(attempt: u32) -> u64 {
    1u64.checked_shl(attempt).unwrap_or(u64::MAX).min(MAX_BACKOFF)
}

/// Starts the connection task on an already connected stream; it dials `dial` again after a
/// drop.
pub fn spawn(dial: Dial, first: BoxStream) -> Connection {
    let (out, out_rx) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::channel(1024);
    let task = tokio::spawn(run(dial, first, events_tx, out_rx));
    Connection { out, events, task }
}

/// How a session ended.
enum Ended {
    /// The UI is gone or asked to stop.
    Stop,
    Lost(String),
    /// Closed after refusing the server password.
    PasswordRefused,
}

async fn run(dial: Dial, first: BoxStream, events: mpsc::Sender<NetEvent>, mut out: mpsc::Receiver<Message>) {
    let mut stream = Some(first);
    // Reconnection attempts since the last successful registration.
    let mut attempt = 0;
    loop {
        let connected = match stream.take() {
            Some(stream) => Ok(stream),
            None => {
                if events.send(NetEvent::Connecting).await.is_err() {
                    return;
                }
                dial.connect().await
            }
        };
        let ended = match connected {
            Ok(stream) => {
                // Lines queued for the last connection mean nothing to this one.
                while out.try_recv().is_ok() {}
                if events.send(NetEvent::Connected).await.is_err() {
                    return;
                }
                session(stream, &events, &mut out, &mut attempt).await
            }
            // The status line has room for "connection refused", not for the whole story.
            Err(ClientError::Connect { source, .. }) => Ended::Lost(source.kind().to_string()),
            Err(ClientError::Resolve { .. }) => Ended::Lost("the name does not resolve".into()),
            Err(error) => Ended::Lost(error.to_string()),
        };
        let reason = match ended {
            Ended::Stop => return,
            Ended::PasswordRefused => {
                let _ = events.send(NetEvent::PasswordRefused).await;
                return;
            }
            Ended::Lost(reason) => reason,
        };
        if events.send(NetEvent::Disconnected(reason)).await.is_err() {
            return;
        }
        let wait = backoff(attempt);
        attempt = attempt.saturating_add(1);
        for left in (1..=wait).rev() {
            if events.send(NetEvent::Waiting(left)).await.is_err() {
                return;
            }
            let deadline = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(deadline);
            // While waiting, lines from the UI are dropped (it shows them as not sent), but a
            // closed channel means the UI has quit.
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    line = out.recv() => if line.is_none() { return },
                }
            }
        }
    }
}

/// Runs one connection until it drops or the UI stops it.
async fn session(
    stream: BoxStream,
    events: &mpsc::Sender<NetEvent>,
    out: &mut mpsc::Receiver<Message>,
    attempt: &mut u32,
) -> Ended {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut lines = LineReader::new(MAX_LINE, &[]);
    let mut heard = Instant::now();
    let mut pinged = false;
    let mut check = tokio::time::interval(Duration::from_secs(5));
    // The server's last word, if it said why it closed the connection.
    let mut error: Option<String> = None;
    // Welcomed (registered), and whether the server refused the server password before that.
    let (mut welcomed, mut refused) = (false, false);
    loop {
        tokio::select! {
            line = lines.next(&mut reader) => match line {
                Ok(Some(Line::Text(text))) => {
                    heard = Instant::now();
                    pinged = false;
                    let Ok(message) = Message::parse(&text) else { continue };
                    match message.command.as_str() {
                        RPL_WELCOME => {
                            *attempt = 0;
                            welcomed = true;
                        }
                        // After the welcome, 464 answers a failed OPER, which closes nothing.
                        ERR_PASSWDMISMATCH if !welcomed => refused = true,
                        "ERROR" => error = message.params.first().map(|p| p.to_string()),
                        _ => {}
                    }
                    if events.send(NetEvent::Line(message)).await.is_err() {
                        return Ended::Stop;
                    }
                }
                Ok(Some(Line::TooLong)) => {}
                Ok(None) | Err(_) if refused => return Ended::PasswordRefused,
                Ok(None) => {
                    return Ended::Lost(error.unwrap_or_else(|| "the server closed the connection".into()));
                }
                Err(e) => return Ended::Lost(e.to_string()),
            },
            line = out.recv() => match line {
                Some(message) => {
                    let mut batch = vec![message];
                    while let Ok(more) = out.try_recv() {
                        batch.push(more);
                    }
                    if let Err(e) = write(&mut writer, &batch).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                None => {
                    let _ = writer.shutdown().await;
                    return Ended::Stop;
                }
            },
            _ = check.tick() => {
                let silent = heard.elapsed();
                if silent >= DEAD_AFTER {
                    return Ended::Lost(format!("no answer from the server for {} s", silent.as_secs()));
                }
                if silent >= PING_AFTER && !pinged {
                    pinged = true;
                    if let Err(e) = write(&mut writer, &[Message::new("PING", &["charla"])]).await {
                        return Ended::Lost(e.to_string());
                    }
                }
            }
        }
    }
}

/// Writes lines in one call; a server that takes more than [`CONNECT_TIMEOUT`] is gone.
async fn write(writer: &mut (impl AsyncWrite + Unpin), messages: &[Message]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for message in messages {
        message.write_to(&mut buf);
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, writer.write_all(&buf)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the server stopped reading")),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (0..8).map(backoff).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(200), 30);
    }

    async fn next(conn: &mut Connection) -> NetEvent {
        tokio::time::timeout(Duration::from_secs(10), conn.events.recv())
            .await
            .expect("an event in time")
            .expect("the task is running")
    }

    #[tokio::test]
    async fn relays_lines_and_reconnects_after_a_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("has an address").port();
        let dial = Dial::clear("127.0.0.1", port);
        let first = dial.connect().await.expect("connects");
        let mut conn = spawn(dial, first);
        let (server, _) = listener.accept().await.expect("accepts");
        assert_eq!(next(&mut conn).await, NetEvent::Connected);

        let (read, mut write) = server.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b":srv 001 me :Welcome\r\nERROR :Closing link: bye\r\n").await.expect("writes");
        match next(&mut conn).await {
            NetEvent::Line(m) => assert_eq!(m.command, "001"),
            other => panic!("{other:?}"),
        }
        conn.out.send(Message::new("PRIVMSG", &["#r", "hi there"])).await.expect("task alive");
        let mut line = String::new();
        read.read_line(&mut line).await.expect("reads");
        assert_eq!(line, "PRIVMSG #r :hi there\r\n");
        assert!(matches!(next(&mut conn).await, NetEvent::Line(m) if m.command == "ERROR"));
        drop((read, write));
        assert_eq!(next(&mut conn).await, NetEvent::Disconnected("Closing link: bye".into()));
        assert_eq!(next(&mut conn).await, NetEvent::Waiting(1));
        assert_eq!(next(&mut conn).await, NetEvent::Connecting);
        let (_again, _) = listener.accept().await.expect("accepts the reconnection");
        assert_eq!(next(&mut conn).await, NetEvent::Connected);

        drop(conn.out);
        tokio::time::timeout(Duration::from_secs(10), conn.task).await.expect("stops").expect("no panic");
    }
}
