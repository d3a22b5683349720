//! Account commands in plain text: `/register PASSWORD` (the current nick), `/login NAME
//! PASSWORD`, `/logout`, `/cert add [FINGERPRINT] | list | del FINGERPRINT` (client
//! certificates for SASL EXTERNAL), and `/msg NickServ …` as any IRC user would type it; and the server
//! operators' `/kline [MINUTES] MASK [REASON]` and `/unkline MASK`. They check passwords or
//! write the store, which takes a while, so the session runs them apart from its other
//! commands, writing the queue meanwhile.

use std::net::IpAddr;

use crate::accounts::{Accounts, CertChange, Request};
use crate::hub::ConnId;
use crate::hub::accounts::{SERVICE, is_service};

/// An account command, and whether it was said to the service (its answer then reads as the
/// service's notice); or a server ban.
pub enum Command {
    Account { request: Request, to_service: bool },
    Kline { minutes: Option<u64>, mask: String, reason: String },
    Unkline { mask: String },
}

/// The account command `line` is, if it is one; `Err(usage)` for one typed wrong.
pub fn parse(line: &str) -> Option<Result<Command, &'static str>> {
    let command = line.strip_prefix('/')?;
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let mine = |request| Some(Ok(Command::Account { request, to_service: false }));
    match name.to_ascii_lowercase().as_str() {
        "register" if rest.is_empty() => Some(Err("/register PASSWORD (registers your current nick)")),
        "register" => mine(Request::Register { password: rest.to_string() }),
        "login" | "identify" => match rest.split_once(' ') {
            Some((name, password)) => {
                mine(Request::Login { name: Some(name.to_string()), password: password.trim().to_string() })
            }
            None => Some(Err("/login NAME PASSWORD")),
        },
        "logout" => mine(Request::Logout),
        "cert" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match CertChange::from_words(&words) {
                Some(change) => mine(Request::Cert(change)),
                None => Some(Err("/cert add [FINGERPRINT] | /cert list | /cert del FINGERPRINT")),
            }
        }
        "msg" | "query" => {
            let (to, text) = rest.split_once(' ')?;
            is_service(to)
                .then(|| Ok(Command::Account { request: Request::from_service_message(text), to_service: true }))
        }
        "kline" => {
            let mut words = rest.splitn(2, ' ');
            let first = words.next().unwrap_or_default();
            let (minutes, rest) = match first.parse::<u64>() {
                Ok(minutes) => (Some(minutes).filter(|&m| m > 0), words.next().unwrap_or_default()),
                Err(_) => (None, rest),
            };
            match rest.trim().split_once(' ').unwrap_or((rest.trim(), "")) {
                ("", _) => Some(Err("/kline [MINUTES] MASK [REASON] (MASK: nick!user@host, user@host or an address)")),
                (mask, reason) => {
                    Some(Ok(Command::Kline { minutes, mask: mask.to_string(), reason: reason.trim().to_string() }))
                }
            }
        }
        "unkline" if rest.is_empty() => Some(Err("/unkline MASK")),
        "unkline" => Some(Ok(Command::Unkline { mask: rest.to_string() })),
        _ => None,
    }
}

impl Command {
    /// Carries the command out for `id`; the line to show.
    pub async fn run(self, accounts: &Accounts, id: ConnId, ip: IpAddr) -> String {
        let (answer, to_service) = match self {
            Command::Account { request, to_service } => {
                (accounts.apply(request, id, ip).await.map_err(|e| e.to_string()), to_service)
            }
            Command::Kline { minutes, mask, reason } => {
                (accounts.kline(id, &mask, &reason, minutes).await.map_err(|e| e.to_string()), false)
            }
            Command::Unkline { mask } => (accounts.unkline(id, &mask).await.map_err(|e| e.to_string()), false),
        };
        match (answer, to_service) {
            (Ok(text), true) => format!("-{SERVICE}- {text}"),
            (Err(e), true) => format!("-{SERVICE}- {e}"),
            (Ok(text), false) => text,
            (Err(e), false) => format!("error: {e}"),
        }
    }
}
