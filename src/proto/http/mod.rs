//! HTTP on the chat port, on hyper: the chat page, `/healthz`, `/metrics`, and IRC over
//! WebSocket for the page and for web IRC clients (gamja, Kiwi IRC).
//!
//! - `GET /` (and its files): the page, embedded in the binary (`page`).
//! - `GET /healthz`: `200 ok` while the server runs, `503` while it starts or stops, and `503`
//!   with a body starting `degraded` while history cannot be written ([`Store::degraded`]:
//!   chat goes on, but a monitor that only reads the status should alert).
//! - `GET /metrics`: every [`crate::metrics`] in the Prometheus text format.
//! - a WebSocket upgrade on `/` or `/ws`: an IRC session (`websocket`).
//!
//! [`Store::degraded`]: crate::store::Store::degraded
//!
//! A connection serves requests until it has been idle for `IDLE`, and is closed gracefully
//! at shutdown. An upgraded one becomes a WebSocket connection under the same admission (its
//! place under the connection limits), in the same task.

mod page;
mod websocket;

use crate::net::Peer;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::mpsc;

use crate::hub::{self, Outbox};
use crate::metrics::{self, Snapshot};
use crate::net::{Admission, BoxStream};
use crate::proto::{Shared, Stage};

/// Whether a client's first line is an HTTP request's: `GET /path HTTP/1.1` (or `HEAD`); a
/// line cut short by the sniffing deadline (`complete` false) needs at least `GET /`. Only
/// these: a person's `GET the build from CI` is text.
pub fn recognises(line: &str, complete: bool) -> bool {
    match line.split_once(' ') {
        Some(("GET" | "HEAD", rest)) if complete => {
            rest.starts_with('/') && rest.split(' ').nth(1).is_some_and(|version| version.starts_with("HTTP/"))
        }
        Some(("GET" | "HEAD", rest)) => rest.starts_with('/'),
        _ => false,
    }
}

/// The longest request head read (request line and headers), in bytes.
const MAX_HEAD: usize = 16 * 1024;

/// How long a client may take to send a request's head, and how long an idle connection is
/// kept open between requests.
const IDLE: Duration = Duration::from_secs(30);

/// What `/healthz` says while history cannot be written.
const DEGRADED: &str = "degraded: history is not being written (a full disk, or the database unreachable); chat goes on, and what is \
said meanwhile waits in memory; the server's log says more\n";

/// How long a connection opened while the server stops may take to send its request.
const STOPPING_IDLE: Duration = Duration::from_secs(1);

type Body = Full<Bytes>;

/// Serves HTTP on `stream` until the client closes it, it idles, or the server stops; then,
/// if a request upgraded it, runs its WebSocket session.
pub async fn serve(stream: BoxStream, peer: Peer, shared: Arc<Shared>, mut admission: Admission) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(IDLE).max_buf_size(MAX_HEAD);
    // Known to the server like a session's queue, so that shutdown can close the connection
    // once its request in progress is answered. One opened while the server stops (a load
    // balancer's health check) is answered once, quickly, then closed.
    let stopping = Outbox::new(1);
    if shared.stage() == Stage::Stopping {
        http.keep_alive(false).header_read_timeout(STOPPING_IDLE);
    } else {
        shared.sessions.add(&stopping);
    }
    let (upgraded, mut upgrade) = mpsc::channel(1);
    let clear_refused = shared.tls.refuses(&peer);
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |request| {
            let answer = if clear_refused {
                to_https(&request, page::Address::of(&request, &shared), shared.tls.port)
            } else {
                respond(request, &shared, &upgraded)
            };
            async move { Ok::<_, Infallible>(answer) }
        })
    };
    let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
    let mut connection = pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = poll_fn(|cx| stopping.poll_closed(cx)) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    shared.sessions.remove(&stopping);
    if let Ok(accepted) = upgrade.try_recv() {
        admission.open.became(metrics::Speaks::WebSocket);
        websocket::run(accepted, peer, shared, admission).await;
    }
}

/// The answer to one request; a WebSocket upgrade is also sent to `upgraded`.
fn respond(
    mut request: Request<Incoming>,
    shared: &Arc<Shared>,
    upgraded: &mpsc::Sender<websocket::Accepted>,
) -> Response<Body> {
    let path = request.uri().path();
    if matches!(path, "/" | "/ws") && websocket::is_upgrade(&request) {
        return match websocket::accept(&mut request, shared) {
            Ok((response, accepted)) => {
                let _ = upgraded.try_send(accepted);
                response
            }
            Err(refused) => text(refused.status(), &format!("{refused}\n")),
        };
    }
    // hyper leaves out the body of an answer to HEAD.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/healthz" => match shared.stage() {
            Stage::Ready if shared.store.degraded() => text(StatusCode::SERVICE_UNAVAILABLE, DEGRADED),
            Stage::Ready if let Some(bus) = shared.bus.as_ref().filter(|bus| bus.degraded()) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "degraded: cut off from the other nodes (NATS at {} is unreachable); this node's users chat among \
                     themselves, and it meets the others again when NATS returns; the server's log says more\n",
                    bus.url()
                ),
            ),
            Stage::Ready => text(StatusCode::OK, "ok\n"),
            Stage::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Stage::Stopping => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
        },
        "/metrics" => {
            let snapshot = {
                let hub = hub::lock(&shared.hub);
                let (users, rooms) = hub.counts();
                Snapshot { rooms, users, uptime: shared.started.elapsed().unwrap_or_default() }
            };
            let mut response = text(StatusCode::OK, &metrics::get().encode(snapshot));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        _ => match page::file(path, &page::Address::of(&request, shared), &shared.tls) {
            Some(response) => response,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// The answer to a clear-text request, made to `address`, when the server requires TLS: a
/// redirect to the same place over https on `tls_port` (a WebSocket upgrade, which cannot
/// follow one, gets a 403 saying where to go).
fn to_https<B>(request: &Request<B>, address: page::Address, tls_port: Option<u16>) -> Response<Body> {
    let host = if address.host.contains(':') { format!("[{}]", address.host) } else { address.host };
    let port = tls_port.unwrap_or(address.port);
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("https://{host}:{port}{path}");
    if websocket::is_upgrade(request) {
        return text(
            StatusCode::FORBIDDEN,
            &format!("this server requires TLS: connect to wss://{host}:{port}{path}\n"),
        );
    }
    let mut response = text(StatusCode::TEMPORARY_REDIRECT, &format!("this server requires TLS: {url}\n"));
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A plain-text answer.
fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_is_sent_to_https() {
        let request = Request::builder().uri("/app.js?v=1").body(()).unwrap();
        let address = page::Address { host: "chat.example.org".into(), port: 1313 };
        let response = to_https(&request, address, Some(6697));
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "https://chat.example.org:6697/app.js?v=1");

        let upgrade = Request::builder()
            .uri("/")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        let response = to_https(&upgrade, page::Address { host: "::1".into(), port: 1313 }, Some(1313));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(!response.headers().contains_key(header::LOCATION));
    }
}
