//! What being logged in to an account means in the hub: the account shown with everything the
//! user does (IRC `account-tag`, `account-notify`, `extended-join`, WHOIS), the nicks that
//! accounts own, and whose private history a user may read.
//!
//! A registered nick belongs to its account. Whoever else takes it (by connecting with it or
//! changing to it) is told by the NickServ service to log in, and if it has not logged in to
//! that account within the grace period ([`HubConfig::nick_grace`](super::HubConfig)), it is
//! renamed to a guest nick; [`crate::accounts::enforce_nicks`] calls [`Hub::enforce_nicks`]
//! for that.
//!
//! Passwords and the store are not the hub's business: [`crate::accounts`] checks them and
//! then calls [`Hub::log_in`].

use std::sync::Arc;
use std::time::Instant;

use super::text::fold;
use super::{ConnId, Event, EventKind, Hub, MsgKind, Out, Source, Target};

/// The service that speaks for accounts: its nick is reserved, and `/msg NickServ …` reaches
/// the account commands from any client.
pub const SERVICE: &str = "NickServ";

/// Is `nick` the service's (whatever its case)?
pub fn is_service(nick: &str) -> bool {
    nick.eq_ignore_ascii_case(SERVICE)
}

/// A user's grace period for a nick an account owns.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    /// When the user is renamed.
    until: Instant,
    /// The user was told to log in.
    told: bool,
}

/// The service as the source of its notices.
fn service() -> Source {
    Source { id: 0, nick: SERVICE.into(), user: SERVICE.into(), host: "services".into(), bot: true, account: None }
}

impl Hub {
    /// May a user who gave `password` (or none) come in? Always, unless the server is private.
    pub fn admits(&self, password: Option<&str>) -> bool {
        self.config.password.as_deref().is_none_or(|wanted| Some(wanted) == password)
    }

    /// Learns the accounts that exist (at start-up): their nicks are owned from now on.
    pub fn restore_accounts(&mut self, names: impl IntoIterator<Item = String>) {
        self.registered.extend(names.into_iter().map(|n| fold(&n).into_boxed_str()));
    }

    /// A new account exists: its nick is owned from now on.
    pub fn account_created(&mut self, name: &str) {
        self.registered.insert(fold(name).into());
        self.share_note(super::cluster::Note::Account { name: name.to_string() });
    }

    /// Is there an account called `name`?
    pub fn is_registered(&self, name: &str) -> bool {
        self.registered.contains(fold(name).as_str())
    }

    /// The account `id` is logged in to.
    pub fn account(&self, id: ConnId) -> Option<&str> {
        self.user(id).source.account.as_deref()
    }

    /// Logs `id` in to `account` (its password was checked): from now on others see the
    /// account, and the users sharing a room are told (IRC `account-notify`).
    pub fn log_in(&mut self, id: ConnId, account: &str) -> Arc<Event> {
        self.users.get_mut(&id).expect("registered").source.account = Some(account.into());
        self.claim(id);
        let event = self.event(EventKind::Account { who: self.user(id).source.clone() });
        self.share(&event, super::cluster::Extra::None);
        self.deliver(self.peers(id), &event);
        event
    }

    /// Logs `id` out; `None` if it was not logged in. Keeping an account's nick, it has the
    /// grace period to log in again.
    pub fn log_out(&mut self, id: ConnId) -> Option<Arc<Event>> {
        let account = self.users.get_mut(&id).expect("registered").source.account.take()?;
        self.forget_read_markers(&account);
        let event = self.event(EventKind::Account { who: self.user(id).source.clone() });
        self.share(&event, super::cluster::Extra::None);
        self.deliver(self.peers(id), &event);
        self.claim(id);
        Some(event)
    }

    /// Called whenever `id` takes a nick: if an account owns it and `id` is not logged in to
    /// that account, the grace period starts (and [`Hub::enforce_nicks`] tells it to log in).
    pub(super) fn claim(&mut self, id: ConnId) {
        let source = &self.user(id).source;
        let nick = fold(&source.nick);
        let owned = self.registered.contains(nick.as_str());
        if !owned || source.account.as_deref().is_some_and(|a| fold(a) == nick) {
            self.claims.remove(&id);
        } else {
            self.claims.insert(id, Claim { until: Instant::now() + self.config.nick_grace, told: false });
        }
    }

    /// A notice from the service to `id` alone; not history.
    pub fn service_notice(&mut self, id: ConnId, text: &str) {
        let to = Target::User(self.user(id).source.nick.to_string());
        let event = self.event(EventKind::Message {
            from: service(),
            target: to,
            kind: MsgKind::Notice,
            text: text.into(),
            tags: Vec::new(),
        });
        self.user(id).outbox.push(Out::Event(event));
    }

    /// Tells whoever took an owned nick since the last call to log in, and renames to a guest
    /// nick everyone whose grace period ended by `now`; they and everyone sharing a room with
    /// them see the change. Telling happens here, not when the nick is taken, so that the
    /// notice follows the answer to the command that took it (an IRC welcome, a NICK).
    pub fn enforce_nicks(&mut self, now: Instant) {
        if self.claims.is_empty() {
            return;
        }
        let mut untold = Vec::new();
        let mut overdue = Vec::new();
        for (&id, claim) in &mut self.claims {
            if claim.until <= now {
                overdue.push(id);
            } else if !std::mem::replace(&mut claim.told, true) {
                untold.push((id, claim.until - now));
            }
        }
        for (id, left) in untold {
            let text = format!(
                "{} belongs to a registered account. Log in within {} seconds (/msg {SERVICE} IDENTIFY PASSWORD) or you will be renamed.",
                self.user(id).source.nick,
                left.as_secs_f64().ceil() as u64
            );
            self.service_notice(id, &text);
        }
        for id in overdue {
            self.claims.remove(&id);
            let old = self.user(id).source.nick.clone();
            let guest = self.guest_nick();
            if let Ok(event) = self.set_nick(id, &guest) {
                self.user(id).outbox.push(Out::Event(event));
                tracing::info!("{old} renamed to {guest}: the nick belongs to an account");
            }
        }
    }

    /// Keeps the read markers of an account being logged in to (read from the store), so that
    /// a join can show them at once; they are forgotten when its last connection leaves.
    pub fn remember_read_markers(&mut self, account: &str, markers: Vec<(String, u64)>) {
        self.read_markers.insert(fold(account).into(), markers.into_iter().collect());
    }

    /// How far `id` has read `target` (its account's marker, or its own as a guest): `None`
    /// for a target it never read.
    pub fn read_marker(&self, id: ConnId, target: &str) -> Option<u64> {
        let markers = match self.user(id).source.account.as_deref() {
            Some(account) => self.read_markers.get(fold(account).as_str()),
            None => self.guest_read_markers.get(&id),
        };
        markers.and_then(|m| m.get(&fold(target)).copied())
    }

    /// Forgets the read markers of `account` if none of its connections is left.
    pub(super) fn forget_read_markers(&mut self, account: &str) {
        if !self.users.values().any(|u| u.source.account.as_deref() == Some(account)) {
            self.read_markers.remove(fold(account).as_str());
        }
    }

    /// `id` has read `target` up to `at` (as stored): its other connections logged in to the same
    /// account are told, and no one else. Nothing happens if `id` is not logged in.
    pub fn read_marker_moved(&mut self, id: ConnId, target: &str, at: u64) {
        let Some(account) = self.user(id).source.account.clone() else { return };
        self.read_markers.entry(fold(&account).into()).or_default().insert(fold(target), at);
        let devices: Vec<ConnId> = self
            .users
            .iter()
            .filter(|&(&other, user)| other != id && user.source.account.as_deref() == Some(&*account))
            .map(|(&other, _)| other)
            .collect();
        if devices.is_empty() {
            return;
        }
        let event =
            self.event(EventKind::ReadMarker { who: self.user(id).source.clone(), target: target.to_string(), at });
        self.share(&event, super::cluster::Extra::None);
        self.deliver(devices, &event);
    }

    /// A guest's read marker on `target` (`draft/read-marker` lets a server keep one for a client
    /// that is not logged in, for its connection's life): moved forward to `at` if given (it
    /// never moves back), then returned; `None` for a target never read.
    pub fn guest_read_marker(&mut self, id: ConnId, target: &str, at: Option<u64>) -> Option<u64> {
        let markers = self.guest_read_markers.entry(id).or_default();
        match at {
            Some(at) => {
                let stored = markers.entry(fold(target)).or_insert(at);
                *stored = (*stored).max(at);
                Some(*stored)
            }
            None => markers.get(&fold(target)).copied(),
        }
    }

    /// The party `id` is in a private conversation: its account if it is logged in (so that
    /// the conversation follows the account), else its nick. Account parties start with `~`,
    /// which no nick has.
    pub fn party(&self, id: ConnId) -> String {
        let source = &self.user(id).source;
        match &source.account {
            Some(account) => format!("~{account}"),
            None => source.nick.to_string(),
        }
    }

    /// The party called `name` in a history query: the account of that name if there is one,
    /// else the nick.
    pub fn party_named(&self, name: &str) -> String {
        if self.is_registered(name) { format!("~{name}") } else { name.to_string() }
    }
}
