//! HTTP on the chat port. A browser pointed at the server gets a short page saying how to join;
//! monitors get `GET /healthz` → `ok`, or `503` with a body starting `degraded` while history
//! cannot be written ([`Store::degraded`]: chat goes on, but a monitor that only reads the
//! status should alert). Each request is answered once and the connection closed.
//!
//! [`Store::degraded`]: crate::store::Store::degraded

use std::time::Duration;

use crate::server::conn::Conn;
use crate::server::lines::Line;

/// Longest request or header line read.
pub const MAX_HEADER_LINE: usize = 8192;

/// Most header lines read before answering anyway.
const MAX_HEADERS: usize = 100;

const PAGE: &str = "charla is running.

Join the chat on this same address and port with:
  nc HOST PORT                  plain text
  charla connect HOST PORT      charla's own client
  any IRC client                server HOST, port PORT, no TLS
";

const DEGRADED: &str = "degraded: history is not being written (is the disk full?); chat goes on, and what is \
said meanwhile waits in memory; the server's log says more\n";

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one request and answers it; a client that does not finish its request in time is
/// closed without an answer.
pub async fn run(mut conn: Conn) {
    let read = async {
        let Some(Line::Text(request)) = conn.next_line().await else { return None };
        for _ in 0..MAX_HEADERS {
            match conn.next_line().await {
                Some(Line::Text(header)) if !header.is_empty() => {}
                _ => break,
            }
        }
        Some(request)
    };
    let Ok(Some(request)) = tokio::time::timeout(REQUEST_TIMEOUT, read).await else { return };
    let mut words = request.split(' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or("/"));
    let (status, body) = match path {
        "/healthz" if conn.shared.store.degraded() => ("503 Service Unavailable", DEGRADED),
        "/healthz" => ("200 OK", "ok\n"),
        "/" => ("200 OK", PAGE),
        _ => ("404 Not Found", "not found\n"),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(body);
    }
    conn.answer_and_close(response.as_bytes()).await;
}
