//! Account commands in plain text: `/register PASSWORD` (the current nick), `/login NAME
//! PASSWORD`, `/logout`, and `/msg NickServ …` as any IRC user would type it. They check
//! passwords, which takes a while, so the session runs them apart from its other commands,
//! writing the queue meanwhile.

use std::net::IpAddr;

use crate::accounts::{Accounts, Request};
use crate::hub::ConnId;
use crate::hub::accounts::{SERVICE, is_service};

/// An account command, and whether it was said to the service (its answer then reads as the
/// service's notice).
pub struct Command {
    request: Request,
    to_service: bool,
}

/// The account command `line` is, if it is one; `Err(usage)` for one typed wrong.
pub fn parse(line: &str) -> Option<Result<Command, &'static str>> {
    let command = line.strip_prefix('/')?;
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let mine = |request| Some(Ok(Command { request, to_service: false }));
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
        "msg" | "query" => {
            let (to, text) = rest.split_once(' ')?;
            is_service(to).then(|| Ok(Command { request: Request::from_service_message(text), to_service: true }))
        }
        _ => None,
    }
}

impl Command {
    /// Carries the command out for `id`; the line to show.
    pub async fn run(self, accounts: &Accounts, id: ConnId, ip: IpAddr) -> String {
        let answer = accounts.apply(self.request, id, ip).await;
        match (answer, self.to_service) {
            (Ok(text), true) => format!("-{SERVICE}- {text}"),
            (Err(e), true) => format!("-{SERVICE}- {e}"),
            (Ok(text), false) => text,
            (Err(e), false) => format!("error: {e}"),
        }
    }
}
