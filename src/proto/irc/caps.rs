//! IRCv3 capabilities: defined once, here. `CAP LS` is produced from [`CAPS`], and every check
//! in the code is against a [`Cap`] from this table.

use std::sync::atomic::{AtomicU32, Ordering};

/// One capability the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Cap {
    CapNotify = 1 << 0,
    MessageTags = 1 << 1,
    ServerTime = 1 << 2,
    EchoMessage = 1 << 3,
    Batch = 1 << 4,
    LabeledResponse = 1 << 5,
    MultiPrefix = 1 << 6,
    UserhostInNames = 1 << 7,
    AwayNotify = 1 << 8,
    ExtendedJoin = 1 << 9,
    StandardReplies = 1 << 10,
    Chathistory = 1 << 11,
    EventPlayback = 1 << 12,
    InviteNotify = 1 << 13,
    Setname = 1 << 14,
    ExtendedMonitor = 1 << 15,
    NoImplicitNames = 1 << 16,
    MessageRedaction = 1 << 17,
    Multiline = 1 << 18,
    Sasl = 1 << 19,
    AccountTag = 1 << 20,
    AccountNotify = 1 << 21,
    AccountRegistration = 1 << 22,
    ReadMarker = 1 << 23,
}

/// Every capability: its name in `CAP LS`, and its value for `CAP LS 302` clients.
pub const CAPS: &[(Cap, &str, Option<&str>)] = &[
    (Cap::AccountNotify, "account-notify", None),
    (Cap::AccountRegistration, "draft/account-registration", Some("custom-account-name")),
    (Cap::AccountTag, "account-tag", None),
    (Cap::AwayNotify, "away-notify", None),
    (Cap::Batch, "batch", None),
    (Cap::CapNotify, "cap-notify", None),
    (Cap::Chathistory, "draft/chathistory", None),
    (Cap::EchoMessage, "echo-message", None),
    (Cap::EventPlayback, "draft/event-playback", None),
    (Cap::ExtendedJoin, "extended-join", None),
    (Cap::ExtendedMonitor, "extended-monitor", None),
    (Cap::InviteNotify, "invite-notify", None),
    (Cap::LabeledResponse, "labeled-response", None),
    (Cap::MessageRedaction, "draft/message-redaction", None),
    (Cap::MessageTags, "message-tags", None),
    (Cap::Multiline, "draft/multiline", Some(MULTILINE_LIMITS)),
    (Cap::MultiPrefix, "multi-prefix", None),
    (Cap::NoImplicitNames, "no-implicit-names", None),
    (Cap::ReadMarker, "draft/read-marker", None),
    (Cap::Sasl, "sasl", Some(crate::accounts::sasl::MECHANISMS)),
    (Cap::ServerTime, "server-time", None),
    (Cap::Setname, "setname", None),
    (Cap::StandardReplies, "standard-replies", None),
    (Cap::UserhostInNames, "userhost-in-names", None),
];

/// The limits of one `draft/multiline` message, as its capability value says them.
pub const MULTILINE_LIMITS: &str = "max-bytes=4096,max-lines=100";
/// The most bytes of text one multiline message holds (its line feeds included).
pub const MULTILINE_MAX_BYTES: usize = 4096;
/// The most lines one multiline message holds.
pub const MULTILINE_MAX_LINES: usize = 100;

/// Looks a capability up by name.
pub fn by_name(name: &str) -> Option<Cap> {
    CAPS.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(name)).map(|(c, _, _)| *c)
}

/// The `CAP LS` words: `name` or, for 302 clients, `name=value`; then `sts=…` when the
/// server has a strict transport security policy for this connection ([`sts`]).
pub fn ls(version: u32, sts: Option<String>) -> Vec<String> {
    let mut words: Vec<String> = CAPS
        .iter()
        .map(|(_, name, value)| match value {
            Some(value) if version >= 302 => format!("{name}={value}"),
            _ => (*name).to_string(),
        })
        .collect();
    words.extend(sts.map(|policy| format!("sts={policy}")));
    words
}

/// How long a client keeps to TLS after seeing the `sts` policy on a TLS connection: 30 days,
/// renewed on every connection.
pub const STS_DURATION_SECS: u64 = 30 * 86_400;

/// The IRCv3 `sts` policy for a connection (`secure`: over TLS), when the server has TLS with
/// a certificate clients can verify (`tls_port`, `verifiable`): on clear text, the port to
/// upgrade to; on TLS, how long to keep to TLS. Only a value, never in [`CAPS`]: clients do not
/// request it. A self-signed certificate gets no policy: it would lock out every client that
/// cannot verify it.
pub fn sts(secure: bool, tls_port: Option<u16>, verifiable: bool) -> Option<String> {
    match tls_port {
        Some(_) if !verifiable => None,
        Some(_) if secure => Some(format!("duration={STS_DURATION_SECS}")),
        Some(port) => Some(format!("port={port}")),
        None => None,
    }
}

/// The capabilities one client enabled, kept by its session and read by its renderer.
#[derive(Debug, Default)]
pub struct CapSet(AtomicU32);

impl CapSet {
    pub fn has(&self, cap: Cap) -> bool {
        self.bits() & cap as u32 != 0
    }

    pub fn bits(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, cap: Cap, on: bool) {
        if on {
            self.0.fetch_or(cap as u32, Ordering::Relaxed);
        } else {
            self.0.fetch_and(!(cap as u32), Ordering::Relaxed);
        }
    }

    /// Names of the enabled capabilities, for `CAP LIST`.
    pub fn names(&self) -> Vec<&'static str> {
        CAPS.iter().filter(|(c, _, _)| self.has(*c)).map(|(_, n, _)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (cap, name, _) in CAPS {
            assert_eq!(by_name(name), Some(*cap));
        }
        assert_eq!(by_name("SERVER-TIME"), Some(Cap::ServerTime));
        assert_eq!(by_name("sasl"), Some(Cap::Sasl));
        assert_eq!(by_name("sts"), None);
    }

    #[test]
    fn sts_only_with_a_verifiable_certificate() {
        assert_eq!(sts(false, Some(6697), true).as_deref(), Some("port=6697"));
        assert_eq!(sts(true, Some(6697), true), Some(format!("duration={STS_DURATION_SECS}")));
        assert_eq!(sts(false, Some(6697), false), None);
        assert_eq!(sts(true, None, true), None);
        assert!(ls(302, Some("port=1".into())).last().is_some_and(|w| w == "sts=port=1"));
    }

    #[test]
    fn sets_and_clears() {
        let caps = CapSet::default();
        caps.set(Cap::EchoMessage, true);
        caps.set(Cap::ServerTime, true);
        caps.set(Cap::EchoMessage, false);
        assert!(caps.has(Cap::ServerTime) && !caps.has(Cap::EchoMessage));
        assert_eq!(caps.names(), ["server-time"]);
    }
}
