//! `charla connect`: the client.
//!
//! On a terminal (standard input and output both TTYs) it is a full-screen IRC client; in a pipe
//! or with `--plain` it is line mode, which speaks the plain-text protocol much as `nc` would
//! (but never before the server's greeting), so `echo "deploy done" | charla connect chat.lan`
//! keeps working.
//!
//! - [`line`](mod@line): line mode.
//! - [`tui`]: the full-screen client's terminal setup and main loop.
//! - [`app`]: its state (windows, lines, members, input, history requests), with no I/O.
//! - [`replies`]: how the server's numeric replies read (what a person reads, or nothing).
//! - [`ui`]: drawing that state with ratatui.
//! - [`irc`]: the connection task (socket, keep-alive, reconnection with backoff).
//! - [`tls`](mod@tls): dialing the server, in clear text or over TLS (system roots, or a
//!   certificate pinned on first use, like ssh's known_hosts).
//! - [`window`], [`input`], [`text`]: one window's lines and members, the input line,
//!   text safety and styling.
//!
//! The full-screen client speaks IRC with IRCv3 capabilities, so it works with any IRC server;
//! each capability it uses is optional, and without one the feature it serves degrades
//! (no server-time: local timestamps; no echo-message: own lines shown at once; no
//! chathistory: no backlog, and a note after a reconnect that messages may be missing).

pub use app::Credentials;

pub mod app;
pub mod input;
pub mod irc;
pub mod line;
pub mod replies;
pub mod text;
pub mod tls;
pub mod tui;
pub mod ui;
pub mod window;

use std::io::IsTerminal;

use time::UtcOffset;

/// Why the client stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source} (is `charla serve` running there?)")]
    Connect { addr: String, source: std::io::Error },
    #[error(
        "cannot find the server {addr}: its name does not resolve ({source}); check the spelling, or give its IP address"
    )]
    Resolve { addr: String, source: std::io::Error },
    #[error("connection to the server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot use the terminal: {0} (try --plain for line mode)")]
    Terminal(std::io::Error),
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error(
        "{addr} sent no greeting within {} s, so nothing was sent: it does not look like a charla chat port (a port for IRC only needs an IRC client, such as charla connect on a terminal)",
        waited.as_secs()
    )]
    NoGreeting { addr: String, waited: std::time::Duration },
    #[error("TLS with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error(
        "the certificate of {addr} has CHANGED since it was first trusted (SHA-256 was {known}, is now {now}): either the server made a new certificate, or someone is intercepting the connection. Ask the server's operator for its fingerprint (`charla serve` prints it at start); only if it is {now}, remove the line for {addr} from {file} (or connect with --tls-fingerprint {now})"
    )]
    CertificateChanged { addr: String, known: String, now: String, file: std::path::PathBuf },
    #[error(
        "the certificate of {addr} has SHA-256 {now}, not the {wanted} given with --tls-fingerprint: not connecting (check the fingerprint with the server's operator)"
    )]
    CertificateMismatch { addr: String, wanted: String, now: String },
    #[error(
        "cannot remember the server's certificate in {file}: {source} (set XDG_CONFIG_HOME to a writable directory)"
    )]
    KnownServers { file: std::path::PathBuf, source: std::io::Error },
    #[error(
        "{addr} is a private server and refused {}: give it with --password-file FILE (its first line) or the environment variable CHARLA_SERVER_PASSWORD; the server's operator gives it out",
        if *given { "the password given" } else { "to let you in without its password" }
    )]
    PasswordRefused { addr: String, given: bool },
    #[error("cannot use the client certificate: {detail}")]
    ClientCert { detail: String },
    #[error(
        "line mode is in one room at a time: give --join once (the full-screen client, on a terminal, joins several)"
    )]
    SeveralRooms,
}

/// What `charla connect` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    /// The nick to take; `None`: `$USER`, else `guest` in the full-screen client, the guest
    /// nick the server gives in line mode.
    pub nick: Option<String>,
    /// Rooms to join; empty: `#lobby`. Line mode takes at most one.
    pub join: Vec<String>,
    /// Line mode even on a terminal.
    pub plain: bool,
    /// The local time zone for timestamps (see [`local_offset`]).
    pub utc_offset: UtcOffset,
    /// Connect over TLS, trusting as these say; `None`: clear text.
    pub tls: Option<tls::TlsOptions>,
    /// A private server's password, an account to log in to.
    pub credentials: app::Credentials,
}

/// The local UTC offset, or UTC when it cannot be found. Call it before any thread starts: the
/// operating system's time zone lookup is not thread-safe, and `time` refuses it otherwise.
pub fn local_offset() -> UtcOffset {
    UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC)
}

/// `host:port`, with brackets around an IPv6 address.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// A nick from the login name: only the characters IRC allows in nicks, `guest` if none.
pub fn default_nick(user: Option<&str>) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c);
    let nick: String = user.unwrap_or("").chars().filter(|&c| allowed(c)).take(30).collect();
    match nick.chars().next() {
        Some(first) if !first.is_ascii_digit() && first != '-' => nick,
        _ => "guest".to_string(),
    }
}

/// Runs the full-screen client on a terminal, line mode otherwise.
pub async fn run(mut options: Options) -> Result<(), ClientError> {
    // Logging in to an account, one goes by its name unless told otherwise.
    if options.nick.is_none() {
        options.nick = options.credentials.login.as_ref().map(|(account, _)| account.clone());
    }
    let dial = match options.tls {
        Some(tls) => tls::Dial::tls(&options.host, options.port, tls)?,
        None => tls::Dial::clear(&options.host, options.port),
    };
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if options.plain || !terminal {
        let room = match &options.join[..] {
            [] => None,
            [room] => Some(room.as_str()),
            _ => return Err(ClientError::SeveralRooms),
        };
        return line::run(&dial, &options.credentials, options.nick.as_deref(), room).await;
    }
    let user = std::env::var("USER").ok();
    let join = if options.join.is_empty() { vec!["#lobby".to_string()] } else { options.join };
    let join = join.into_iter().map(|r| if r.starts_with(['#', '&']) { r } else { format!("#{r}") }).collect();
    let config = app::Config {
        nick: options.nick.unwrap_or_else(|| default_nick(user.as_deref())),
        join,
        utc_offset: options.utc_offset,
        credentials: options.credentials,
        port: options.port,
        host: options.host.clone(),
    };
    tui::run(config, dial).await
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn default_nicks() {
        assert_eq!(default_nick(Some("ana")), "ana");
        assert_eq!(default_nick(Some("ana.maría")), "anamara");
        assert_eq!(default_nick(Some("1234")), "guest");
        assert_eq!(default_nick(Some("")), "guest");
        assert_eq!(default_nick(None), "guest");
    }

    #[test]
    fn addresses() {
        assert_eq!(address("chat.lan", 1313), "chat.lan:1313");
        assert_eq!(address("::1", 1313), "[::1]:1313");
        assert_eq!(address("[::1]", 1313), "[::1]:1313");
    }
}
