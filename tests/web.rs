//! The browser's side of the server, over real sockets: the page, `/healthz`, `/metrics`, and
//! IRC over WebSocket as the IRCv3 WebSocket specification has it.

mod common;

use std::net::SocketAddr;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `path` with these extra request headers; the handshake's answer, or the
/// status the server refused it with.
async fn websocket(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(Ws, Option<String>), StatusCode> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
    }
    let connected = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await.expect("in time");
    match connected {
        Ok((ws, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_string());
            Ok((ws, protocol))
        }
        Err(WsError::Http(response)) => Err(response.status()),
        Err(e) => panic!("WebSocket handshake failed: {e}"),
    }
}

/// The next IRC line from a WebSocket, with the kind of frame it came in.
async fn frame(ws: &mut Ws) -> Frame {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time");
        match frame.expect("connection open").expect("a valid frame") {
            Frame::Ping(_) | Frame::Pong(_) => continue,
            frame => return frame,
        }
    }
}

fn text_of(frame: &Frame) -> String {
    match frame {
        Frame::Text(text) => text.to_string(),
        Frame::Binary(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("expected a line, got {other:?}"),
    }
}

/// Reads lines until one with this command arrives; every line must be one IRC line per frame.
async fn expect(ws: &mut Ws, command: &str) -> Message {
    loop {
        let line = text_of(&frame(ws).await);
        assert!(!line.contains(['\r', '\n']), "one line per frame, without CR LF: {line:?}");
        let message = Message::parse(&line).unwrap();
        if message.command == command {
            return message;
        }
    }
}

async fn register(ws: &mut Ws, nick: &str) {
    ws.send(Frame::text(format!("NICK {nick}"))).await.unwrap();
    ws.send(Frame::text(format!("USER {nick} 0 * :{nick}"))).await.unwrap();
    expect(ws, "001").await;
    expect(ws, "376").await;
}

/// One HTTP/1.1 request on a new connection: the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut http = Client::connect(addr).await;
    http.send_raw(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let response = http.until_closed().await;
    let status = response.first().cloned().unwrap_or_default();
    let body = response.iter().skip_while(|l| !l.is_empty()).skip(1).cloned().collect::<Vec<_>>().join("\n");
    (status, body)
}

#[tokio::test]
async fn the_page_shows_the_address_the_browser_used() {
    let server = start_server().await;
    let mut http = Client::connect(server.addr).await;
    http.send_raw(b"GET / HTTP/1.1\r\nHost: chat.example.org:4242\r\nConnection: close\r\n\r\n").await;
    let page = http.until_closed().await.join("\n");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("nc chat.example.org 4242"), "{page}");
    assert!(!page.contains("{{HOST}}") && !page.contains("nc HOST PORT"), "{page}");
    let (status, script) = get(server.addr, "/app.js").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(script.contains("WebSocket"));
    assert_eq!(get(server.addr, "/nothing-here").await.0, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn a_connection_serves_several_requests() {
    let server = start_server().await;
    let mut http = Client::connect(server.addr).await;
    for _ in 0..2 {
        http.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(http.line().await, "HTTP/1.1 200 OK");
        http.expect("ok").await;
    }
}

#[tokio::test]
async fn upgrades_on_root_and_ws_and_chats_with_a_plain_user() {
    let server = start_server().await;
    let (mut plain, _) = Client::plain(server.addr).await;
    for (path, nick) in [("/", "root"), ("/ws", "wsuser")] {
        let (mut ws, protocol) = websocket(server.addr, path, &[]).await.expect("upgraded");
        assert_eq!(protocol, None, "no subprotocol asked, none answered");
        register(&mut ws, nick).await;
        ws.send(Frame::text("JOIN #lobby")).await.unwrap();
        expect(&mut ws, "JOIN").await;
        plain.expect_where(|l| l.contains(nick) && l.contains("joined")).await;
        ws.send(Frame::text("PRIVMSG #lobby :hello from the browser")).await.unwrap();
        plain.expect(&format!("<{nick}> hello from the browser")).await;
        plain.send(&format!("hi {nick}")).await;
        // After the lines said before it joined, shown on join.
        let said = loop {
            let said = expect(&mut ws, "PRIVMSG").await;
            if said.params[1] == format!("hi {nick}") {
                break said;
            }
        };
        assert_eq!(said.params[..], ["#lobby", &format!("hi {nick}")]);
    }
}

#[tokio::test]
async fn a_client_closing_gets_the_close_answered_and_leaves() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "watcher", &[]).await;
    irc.join("#lobby").await;
    let (mut ws, _) = websocket(server.addr, "/", &[]).await.unwrap();
    register(&mut ws, "leaver").await;
    ws.send(Frame::text("JOIN #lobby")).await.unwrap();
    expect(&mut ws, "JOIN").await;
    ws.close(None).await.unwrap();
    // Lines already on their way come first.
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer in time") {
            Some(Ok(Frame::Close(_))) => break,
            Some(Ok(Frame::Text(_))) => {}
            other => panic!("the close is answered with a close frame, not {other:?}"),
        }
    }
    let quit = irc.expect("QUIT").await;
    assert!(quit.source.as_deref().is_some_and(|s| s.starts_with("leaver!")), "{quit:?}");
}

#[tokio::test]
async fn answers_in_the_subprotocol_asked_for() {
    let server = start_server().await;
    let (mut ws, protocol) =
        websocket(server.addr, "/", &[("sec-websocket-protocol", "binary.ircv3.net, text.ircv3.net")]).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("binary.ircv3.net"));
    ws.send(Frame::binary(&b"NICK bin"[..])).await.unwrap();
    ws.send(Frame::binary(&b"USER bin 0 * :bin"[..])).await.unwrap();
    assert!(matches!(frame(&mut ws).await, Frame::Binary(_)), "binary frames in binary mode");

    let (mut ws, protocol) =
        websocket(server.addr, "/ws", &[("sec-websocket-protocol", "text.ircv3.net")]).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("text.ircv3.net"));
    ws.send(Frame::text("NICK txt")).await.unwrap();
    ws.send(Frame::text("USER txt 0 * :txt")).await.unwrap();
    assert!(matches!(frame(&mut ws).await, Frame::Text(_)), "text frames in text mode");

    let refused = websocket(server.addr, "/", &[("sec-websocket-protocol", "mqtt")]).await;
    assert_eq!(refused.err(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_with_1009() {
    let server = start_server().await;
    let (mut ws, _) = websocket(server.addr, "/", &[]).await.unwrap();
    register(&mut ws, "big").await;
    let huge = format!("PRIVMSG #lobby :{}", "x".repeat(100_000));
    ws.send(Frame::text(huge)).await.unwrap();
    loop {
        match frame(&mut ws).await {
            Frame::Close(Some(close)) => {
                assert_eq!(close.code, CloseCode::Size);
                break;
            }
            Frame::Close(None) => panic!("closed without saying why"),
            _ => {}
        }
    }
    // The server goes on for everyone else.
    assert_eq!(get(server.addr, "/healthz").await.0, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn pages_from_other_origins_are_refused_unless_allowed() {
    let server = start_server().await;
    let addr = server.addr;
    let own = format!("http://{addr}");
    assert!(websocket(addr, "/", &[("origin", &own)]).await.is_ok(), "the server's own page");
    let refused = websocket(addr, "/", &[("origin", "https://evil.example")]).await;
    assert_eq!(refused.err(), Some(StatusCode::FORBIDDEN));

    let allowing = start_with(|config| config.allowed_origins = vec!["https://app.example.org".into()]).await;
    assert!(websocket(allowing.addr, "/", &[("origin", "https://app.example.org")]).await.is_ok());
    let refused = websocket(allowing.addr, "/", &[("origin", "https://evil.example")]).await;
    assert_eq!(refused.err(), Some(StatusCode::FORBIDDEN));
}

/// The value of a metric line `NAME VALUE` (or `NAME{labels} VALUE`).
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let line =
        body.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name} in {body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_a_message_sent_and_its_delivery() {
    let server = start_server().await;
    let (mut ws, _) = websocket(server.addr, "/", &[]).await.unwrap();
    register(&mut ws, "counted").await;
    ws.send(Frame::text("JOIN #metrics")).await.unwrap();
    expect(&mut ws, "JOIN").await;
    let mut irc = Irc::register(server.addr, "listener", &[]).await;
    irc.join("#metrics").await;
    assert!(metric(server.addr, "charla_connections{protocol=\"websocket\"}").await >= 1.0);
    let received = metric(server.addr, "charla_messages_received_total").await;
    let delivered = metric(server.addr, "charla_messages_delivered_total").await;
    ws.send(Frame::text("PRIVMSG #metrics :count me")).await.unwrap();
    irc.expect("PRIVMSG").await;
    assert!(metric(server.addr, "charla_messages_received_total").await > received);
    assert!(metric(server.addr, "charla_messages_delivered_total").await > delivered);
    assert!(metric(server.addr, "charla_rooms").await >= 1.0);
    assert!(metric(server.addr, "charla_uptime_seconds").await >= 0.0);
    assert!(metric(server.addr, "charla_log_lines_dropped_total").await >= 0.0);
}

#[tokio::test]
async fn healthz_says_503_while_the_server_stops() {
    let mut server = start_server().await;
    assert_eq!(get(server.addr, "/healthz").await, ("HTTP/1.1 200 OK".into(), "ok".into()));
    // A WebSocket client that does not answer the close handshake keeps the server saying
    // goodbye for a moment: long enough to ask.
    let (mut ws, _) = websocket(server.addr, "/", &[]).await.unwrap();
    register(&mut ws, "stayer").await;
    let addr = server.addr;
    let stopping = tokio::spawn(async move { server.stop().await });
    let error = expect(&mut ws, "ERROR").await;
    assert!(error.params[0].ends_with("Server shutting down"), "{error:?}");
    assert_eq!(get(addr, "/healthz").await, ("HTTP/1.1 503 Service Unavailable".into(), "stopping".into()));
    drop(ws);
    stopping.await.unwrap();
}
