//! SASL as IRC carries it (`AUTHENTICATE`): the client's response arrives base64-encoded in
//! chunks of at most 400 bytes (a chunk of exactly 400 means more follows; `+` alone is an empty
//! chunk). The PLAIN mechanism (RFC 4616) holds `authzid NUL authcid NUL password`; EXTERNAL
//! (RFC 4422) logs in by the client certificate shown in the TLS handshake, and its response
//! is empty or names the account (the authorization identity).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The mechanisms offered, as `CAP LS` and 908 list them.
pub const MECHANISMS: &str = "PLAIN,EXTERNAL";

/// A SASL mechanism charla offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mechanism {
    #[default]
    Plain,
    External,
}

impl Mechanism {
    /// The mechanism called `name`, if it is offered.
    pub fn named(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("EXTERNAL") {
            Some(Mechanism::External)
        } else {
            None
        }
    }
}

/// The account an EXTERNAL response names (its authorization identity), `None` when it is
/// empty (the certificate's account, whichever it is).
pub fn external(response: &str) -> Result<Option<String>, SaslError> {
    let bytes = STANDARD.decode(response).map_err(|_| SaslError::Malformed)?;
    let name = String::from_utf8(bytes).map_err(|_| SaslError::Malformed)?;
    Ok(Some(name).filter(|n| !n.is_empty()))
}

/// The longest chunk of a response; a chunk this long says that more follows.
pub const CHUNK: usize = 400;

/// The longest whole response accepted, encoded (a name and a 300-byte password fit easily).
pub const MAX_RESPONSE: usize = 1200;

/// Why a response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the SASL response is too long")]
    TooLong,
    #[error("the SASL response is not base64-encoded credentials for its mechanism")]
    Malformed,
}

/// A response being received, chunk by chunk, for its mechanism.
#[derive(Debug, Default)]
pub struct Response(String, pub Mechanism);

impl Response {
    pub fn new(mechanism: Mechanism) -> Response {
        Response(String::new(), mechanism)
    }

    /// Adds a chunk; `Some(whole)` once the response is complete.
    pub fn add(&mut self, chunk: &str) -> Result<Option<String>, SaslError> {
        if chunk != "+" {
            self.0.push_str(chunk);
        }
        if self.0.len() > MAX_RESPONSE {
            return Err(SaslError::TooLong);
        }
        Ok((chunk.len() < CHUNK).then(|| std::mem::take(&mut self.0)))
    }
}

/// PLAIN credentials: the account and its password.
#[derive(PartialEq, Eq)]
pub struct Plain {
    pub account: String,
    pub password: String,
}

impl std::fmt::Debug for Plain {
    /// Without the password: debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain").field("account", &self.account).finish_non_exhaustive()
    }
}

impl Plain {
    /// Decodes a whole base64 response. An authorization identity other than the account
    /// itself (logging in as someone else) is refused.
    pub fn decode(response: &str) -> Result<Plain, SaslError> {
        let bytes = STANDARD.decode(response).map_err(|_| SaslError::Malformed)?;
        let text = String::from_utf8(bytes).map_err(|_| SaslError::Malformed)?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslError::Malformed);
        };
        if authcid.is_empty() || !(authzid.is_empty() || authzid == authcid) {
            return Err(SaslError::Malformed);
        }
        Ok(Plain { account: authcid.to_string(), password: password.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str) -> String {
        STANDARD.encode(text)
    }

    #[test]
    fn decodes_plain() {
        let plain = Plain::decode(&encoded("\0alice\0secret pw")).unwrap();
        assert_eq!((plain.account.as_str(), plain.password.as_str()), ("alice", "secret pw"));
        assert!(Plain::decode(&encoded("alice\0alice\0pw")).is_ok());
        assert_eq!(Plain::decode(&encoded("bob\0alice\0pw")), Err(SaslError::Malformed));
        assert_eq!(Plain::decode(&encoded("alice\0pw")), Err(SaslError::Malformed));
        assert_eq!(Plain::decode("not base64!"), Err(SaslError::Malformed));
        assert!(!format!("{plain:?}").contains("secret"));
    }

    #[test]
    fn decodes_external() {
        assert_eq!(external(""), Ok(None), "`+`: an empty response");
        assert_eq!(external(&encoded("alice")), Ok(Some("alice".into())));
        assert_eq!(external("!!"), Err(SaslError::Malformed));
        assert_eq!(Mechanism::named("external"), Some(Mechanism::External));
        assert_eq!(Mechanism::named("SCRAM-SHA-256"), None);
    }

    #[test]
    fn gathers_chunks() {
        let mut response = Response::default();
        let long = "A".repeat(CHUNK);
        assert_eq!(response.add(&long), Ok(None));
        assert_eq!(response.add("QQ=="), Ok(Some(format!("{long}QQ=="))));
        assert_eq!(response.add(&long), Ok(None));
        assert_eq!(response.add("+"), Ok(Some(long.clone())));
        assert_eq!(response.add(&long), Ok(None));
        assert_eq!(response.add(&long), Ok(None));
        assert_eq!(response.add(&long), Ok(None));
        assert_eq!(response.add(&long), Err(SaslError::TooLong));
    }
}
