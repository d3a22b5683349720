//! `--proto ws`: IRC over WebSocket, as the web page speaks it (`text.ircv3.net`, one line per
//! frame).
//!
//! The load connections stay plain IRC connections, measured by the same code as `--proto irc`;
//! each one goes through a relay in this process that opens a WebSocket to the server, from
//! the connection's own source address, and turns lines into frames and frames back into
//! lines. The figures thus include the cost of the relay's hop on this machine, as small as
//! loopback makes it. With `--tls` the relay speaks WebSocket over TLS (`wss://`).

use std::io;
use std::net::SocketAddr;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A relay from plain IRC connections to WebSocket connections to `target`.
pub struct Relay {
    /// Where the load connections connect instead of the server.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on loopback for load connections, each relayed to `ws://target/ws`, or over TLS
    /// when given a connector.
    pub async fn start(target: SocketAddr, tls: Option<TlsConnector>) -> io::Result<Relay> {
        let listener = TcpListener::bind(SocketAddr::new(target.ip(), 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((client, peer)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(client, peer, target, tls).await {
                        tracing::debug!("relay for {peer}: {e}");
                    }
                });
            }
        });
        Ok(Relay { addr, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one connection until either side closes.
async fn relay(
    client: TcpStream,
    peer: SocketAddr,
    target: SocketAddr,
    tls: Option<TlsConnector>,
) -> Result<(), Box<dyn std::error::Error>> {
    client.set_nodelay(true)?;
    match tls {
        Some(connector) => frames(client, super::tls::dial(&connector, peer, target).await?, target).await,
        None => frames(client, super::tls::connect_from(peer, target).await?, target).await,
    }
}

/// Turns the load connection's lines into frames on `stream` and back.
async fn frames<S: AsyncRead + AsyncWrite + Unpin>(
    client: TcpStream,
    stream: S,
    target: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut request = format!("ws://{target}/ws").into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("text.ircv3.net"));
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    let (mut frames_out, mut frames_in) = ws.split();
    let (read, write) = client.into_split();
    let mut lines = BufReader::new(read);
    let mut write = BufWriter::new(write);
    let mut line = String::new();
    loop {
        tokio::select! {
            read = lines.read_line(&mut line) => {
                if read? == 0 {
                    break;
                }
                let frame = Message::text(line.trim_end_matches(['\r', '\n']));
                line.clear();
                // Lines that came together go out together.
                if lines.buffer().contains(&b'\n') {
                    frames_out.feed(frame).await?;
                } else {
                    frames_out.send(frame).await?;
                }
            }
            frame = frames_in.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    write.write_all(text.as_bytes()).await?;
                    write.write_all(b"\r\n").await?;
                    // Frames that came together are written together.
                    let mut more = frames_in.next().now_or_never();
                    while let Some(Some(Ok(Message::Text(text)))) = more {
                        write.write_all(text.as_bytes()).await?;
                        write.write_all(b"\r\n").await?;
                        more = frames_in.next().now_or_never();
                    }
                    write.flush().await?;
                    match more {
                        None | Some(Some(Ok(_))) => {}
                        Some(None) => break,
                        Some(Some(Err(e))) => return Err(e.into()),
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
    let _ = frames_out.close().await;
    Ok(())
}
