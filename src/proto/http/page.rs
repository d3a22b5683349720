//! The chat page: HTML, CSS and JavaScript embedded in the binary (no build step), served as
//! they are, except for the address the page shows for other clients (`nc HOST PORT`), which is
//! the one the browser used.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Request;
use hyper::header::{self, HeaderValue};

use super::Body;
use crate::proto::{Shared, TlsPolicy};

/// Each file: its path, content type and content.
const FILES: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("page/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_str!("page/app.js")),
    ("/style.css", "text/css; charset=utf-8", include_str!("page/style.css")),
    ("/icon.svg", "image/svg+xml", include_str!("page/icon.svg")),
];

/// The address a client reached the server at, as the page shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    /// From the request's `Host` header; when it is missing or is not a plain host name or
    /// address (it is the client's to write, and goes into a page), the server's own name.
    pub fn of<B>(request: &Request<B>, shared: &Arc<Shared>) -> Address {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        host.and_then(Address::parse).unwrap_or_else(|| Address { host: shared.server_name.clone(), port: 1313 })
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`, made only of characters safe in HTML.
    fn parse(value: &str) -> Option<Address> {
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if value.is_empty() || !value.chars().all(safe) {
            return None;
        }
        let (host, port) = match value.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
            _ => (value, 80),
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        (!host.is_empty()).then(|| Address { host: host.to_string(), port })
    }
}

/// How an IRC client reaches the server, as the page says it: the port, and TLS as `tls` has it.
fn irc_port(address: &Address, tls: &TlsPolicy) -> String {
    match (tls.port, tls.required) {
        (None, _) => format!("port <code>{}</code>, no TLS", address.port),
        (Some(port), true) => format!("port <code>{port}</code> with TLS"),
        (Some(port), false) if port == address.port => format!("port <code>{port}</code>, with or without TLS"),
        (Some(port), false) => format!("port <code>{}</code>, or <code>{port}</code> with TLS", address.port),
    }
}

/// The commands that join from a terminal at `address`, one a line, and the one the welcome
/// dialog shows: `nc` only where clear text gets in (not on a TLS-only port, not under
/// `--tls-required`), `charla connect` with `--tls` wherever the port takes TLS.
fn terminal(address: &Address, tls: &TlsPolicy) -> (String, String) {
    let tls_only_here = tls.dedicated && tls.port == Some(address.port);
    let clear = tls.port.is_none() || !(tls.required || tls_only_here);
    let at = format!("{} {}", address.host, address.port);
    let charla = if tls.port.is_some() { format!("charla connect --tls {at}") } else { format!("charla connect {at}") };
    if clear { (format!("nc {at}\n{charla}"), format!("nc {at}")) } else { (charla.clone(), charla) }
}

/// The file at `path`, if there is one; `tls`: the server's, which the page mentions.
pub fn file(path: &str, address: &Address, tls: &TlsPolicy) -> Option<hyper::Response<Body>> {
    let (_, content_type, content) = FILES.iter().find(|(p, _, _)| *p == path)?;
    let body = if path == "/" {
        let (commands, hint) = terminal(address, tls);
        let page = content.replace("{{IRC_TLS}}", &irc_port(address, tls));
        let page = page.replace("{{TERMINAL}}", &commands).replace("{{TERMINAL_HINT}}", &hint);
        Bytes::from(page.replace("{{HOST}}", &address.host).replace("{{PORT}}", &address.port.to_string()))
    } else {
        Bytes::from_static(content.as_bytes())
    };
    let mut response = hyper::Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page changes with the server's version: always asked again, cheap on a LAN.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; \
             script-src 'self'; frame-ancestors 'none'",
        ),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_header() {
        let at = |host: &str, port| Some(Address { host: host.into(), port });
        assert_eq!(Address::parse("chat.example.org:1313"), at("chat.example.org", 1313));
        assert_eq!(Address::parse("chat.example.org"), at("chat.example.org", 80));
        assert_eq!(Address::parse("[::1]:1313"), at("::1", 1313));
        assert_eq!(Address::parse("[::1]"), at("::1", 80));
        assert_eq!(Address::parse("<script>"), None);
        assert_eq!(Address::parse("a\"b:1"), None);
        assert_eq!(Address::parse(""), None);
    }

    #[test]
    fn tells_irc_users_where_tls_is() {
        let address = Address { host: "chat.example.org".into(), port: 1313 };
        let tls = |port, required| TlsPolicy { port, dedicated: port == Some(6697), required, verifiable: false };
        assert_eq!(irc_port(&address, &tls(None, false)), "port <code>1313</code>, no TLS");
        assert_eq!(irc_port(&address, &tls(Some(1313), false)), "port <code>1313</code>, with or without TLS");
        assert_eq!(
            irc_port(&address, &tls(Some(6697), false)),
            "port <code>1313</code>, or <code>6697</code> with TLS"
        );
        assert_eq!(irc_port(&address, &tls(Some(6697), true)), "port <code>6697</code> with TLS");
    }

    #[test]
    fn offers_nc_only_where_clear_text_gets_in() {
        let at = |port| Address { host: "chat.example.org".into(), port };
        let tls = |port, required| TlsPolicy { port, dedicated: port == Some(6697), required, verifiable: false };
        let shown = |port, policy: TlsPolicy| terminal(&at(port), &policy);
        let nc = "nc chat.example.org 1313".to_string();
        assert_eq!(shown(1313, tls(None, false)), (format!("{nc}\ncharla connect chat.example.org 1313"), nc.clone()));
        let secure = "charla connect --tls chat.example.org 1313".to_string();
        assert_eq!(shown(1313, tls(Some(1313), false)), (format!("{nc}\n{secure}"), nc.clone()));
        assert_eq!(shown(1313, tls(Some(6697), false)), (format!("{nc}\n{secure}"), nc));
        assert_eq!(shown(1313, tls(Some(1313), true)), (secure.clone(), secure.clone()));
        assert_eq!(shown(1313, tls(Some(6697), true)), (secure.clone(), secure));
        let dedicated = "charla connect --tls chat.example.org 6697".to_string();
        assert_eq!(shown(6697, tls(Some(6697), false)), (dedicated.clone(), dedicated));
    }
}
