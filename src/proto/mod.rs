//! Protocols: each module translates between its wire format and the hub's verbs and events.
//! No chat rule lives here; the hub decides, protocols only translate.
//!
//! The protocol table: [`classify`] asks each protocol, in turn, whether a new client's first
//! bytes are its own; each line-based protocol declares its line limit ([`irc::MAX_LINE`],
//! [`plain::max_line`]). The server wires listeners to this table; the transport
//! ([`crate::net`]) knows no protocol.
//! [`Shared`] is what every session works with: the hub, the store, the limits, the
//! message of the day ([`motd`]).

pub mod http;
pub mod irc;
pub mod motd;
pub mod plain;
mod shared;

pub use shared::{HistoryConfig, Shared, Stage, TlsPolicy};

/// The protocol a client speaks, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plain,
    Irc,
    /// A browser or monitor (`GET `, `HEAD `).
    Http,
    /// A TLS handshake (first byte 0x16).
    Tls,
}

/// Whether a client's first bytes start a TLS handshake (a ClientHello record), which tells
/// the protocol without waiting for a line.
pub fn is_tls(first: &[u8]) -> bool {
    first.starts_with(&[0x16, 0x03])
}

/// Tells the protocol from the first bytes a client sent (possibly none, from a client that
/// waits for the server to speak): TLS by its handshake's first bytes, then the first line is
/// HTTP's, IRC's, or else plain text.
pub fn classify(first: &[u8]) -> Protocol {
    if is_tls(first) {
        return Protocol::Tls;
    }
    let (line, complete) = match first.iter().position(|&b| b == b'\n') {
        Some(end) => (first[..end].strip_suffix(b"\r").unwrap_or(&first[..end]), true),
        None => (first, false),
    };
    let line = String::from_utf8_lossy(line);
    if http::recognises(&line, complete) {
        Protocol::Http
    } else if irc::sniff::recognises(&line, complete) {
        Protocol::Irc
    } else {
        Protocol::Plain
    }
}

/// What a clear-text client of `protocol` is told, in its protocol, when `--tls-required`
/// refuses it (then the connection closes); `None` for HTTP, which answers each request with a
/// redirect to https instead.
pub fn clear_text_refusal(protocol: Protocol, tls: &TlsPolicy) -> Option<String> {
    let port = tls.port.map_or_else(String::new, |port| format!(" to port {port}"));
    match protocol {
        Protocol::Plain => Some(plain::tls_required(&port)),
        Protocol::Irc => Some(irc::tls_required(&port)),
        Protocol::Http | Protocol::Tls => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_irc_from_text() {
        assert_eq!(classify(b"CAP LS 302\r\n"), Protocol::Irc);
        assert_eq!(classify(b"CAP LS 302\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK :bob\r\n"), Protocol::Irc);
        assert_eq!(classify(b"USER x 0 * :x y\r\n"), Protocol::Irc);
        assert_eq!(classify(b"USER x 0 * x\n"), Protocol::Irc);
        assert_eq!(classify(b"PASS secret\r\n"), Protocol::Irc);
        assert_eq!(classify(b"NICK bo"), Protocol::Irc, "cut short by the deadline");
        assert_eq!(classify(b"hello there\n"), Protocol::Plain);
        assert_eq!(classify(b"NICKNAME\n"), Protocol::Plain);
        assert_eq!(classify(b"User accounts migrated OK\n"), Protocol::Plain);
        assert_eq!(classify(b"USER accounts migrated OK\n"), Protocol::Plain);
        assert_eq!(classify(b"PASS all tests green\n"), Protocol::Plain);
        assert_eq!(classify(b"nick here\n"), Protocol::Plain);
        assert_eq!(classify(b"NICK here and there\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP of the day\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP\n"), Protocol::Plain);
        assert_eq!(classify(b"CAP NOTACOMMAND\r\n"), Protocol::Irc, "answered 410 by the IRC session");
        assert_eq!(classify(b"CAP ls\r\n"), Protocol::Irc);
        assert_eq!(classify(b"CAP LOCK IS ON AGAIN\n"), Protocol::Plain);
        assert_eq!(classify(b""), Protocol::Plain);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Protocol::Http);
        assert_eq!(classify(b"HEAD /healthz HTTP/1.0\r\nHost: x\r\n"), Protocol::Http);
        assert_eq!(classify(b"GET /heal"), Protocol::Http, "cut short by the deadline");
        assert_eq!(classify(b"GET the build from CI before 5pm\n"), Protocol::Plain);
        assert_eq!(classify(b"GET /etc/motd, please\n"), Protocol::Plain);
        assert_eq!(classify(b"GETTING better\n"), Protocol::Plain);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), Protocol::Tls);
    }

    #[test]
    fn tls_required_refuses_clear_text_from_elsewhere_only() {
        use crate::net::{Peer, TlsInfo};
        let policy = TlsPolicy { port: Some(6697), dedicated: true, required: true, verifiable: true };
        let from = |addr: &str| Peer::clear(addr.parse().unwrap());
        assert!(policy.refuses(&from("192.0.2.7:40000")));
        assert!(policy.refuses(&from("[2001:db8::1]:40000")));
        assert!(!policy.refuses(&from("127.0.0.1:40000")));
        assert!(!policy.refuses(&from("127.0.0.2:40000")));
        assert!(!policy.refuses(&from("[::1]:40000")));
        assert!(!policy.refuses(&from("[::ffff:127.0.0.1]:40000")));
        let mut secure = from("192.0.2.7:40000");
        secure.tls = Some(Box::new(TlsInfo { client_cert: None }));
        assert!(!policy.refuses(&secure));
        assert!(!TlsPolicy { required: false, ..policy.clone() }.refuses(&from("192.0.2.7:40000")));

        let plain = clear_text_refusal(Protocol::Plain, &policy).unwrap();
        assert!(plain.starts_with("*** ") && plain.contains("TLS to port 6697") && plain.ends_with('\n'), "{plain}");
        assert_eq!(plain.matches('\n').count(), 1, "one line");
        let irc = clear_text_refusal(Protocol::Irc, &policy).unwrap();
        assert_eq!(irc, "ERROR :This server requires TLS: reconnect with TLS to port 6697\r\n");
        assert_eq!(clear_text_refusal(Protocol::Http, &policy), None, "HTTP redirects each request");
    }
}
