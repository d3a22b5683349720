//! Accounts: registration, login (password, SASL PLAIN, a client certificate with SASL
//! EXTERNAL), and the nicks that accounts own.
//!
//! The parts:
//! - [`Accounts`]: registers an account and checks a login. Passwords are hashed with
//!   argon2id ([`password`]) on a blocking thread, a few at a time, so that hashing never runs
//!   on an async worker or under the hub's lock and cannot starve the chat of CPU. Failed
//!   logins are counted per address and per account ([`throttle`]) and logged (the name and
//!   the address, never the password).
//! - The data is in the store ([`crate::store::accounts`]); the rules that follow from being
//!   logged in are the hub's ([`crate::hub::accounts`]): who owns which nick, the account shown
//!   to others, private history that follows an account.
//! - [`sasl`]: SASL PLAIN and EXTERNAL as IRC's `AUTHENTICATE` carries them. EXTERNAL logs in
//!   the account that lists the SHA-256 fingerprint of the client certificate the connection
//!   showed in its TLS handshake; a logged-in user adds one with `CERT ADD` ([`Request`]).
//! - [`enforce_nicks`]: the task that renames, after the grace period, whoever keeps a nick
//!   that belongs to an account it has not logged in to.
//!
//! Each protocol translates its own commands to these calls: plain text `/register`, `/login`;
//! IRC `REGISTER` (`draft/account-registration`), `AUTHENTICATE`; and for both, the NickServ
//! service (`/msg NickServ IDENTIFY …`).

pub mod password;
pub mod sasl;
pub mod throttle;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::chat::now_millis;
use crate::hub::{self, ConnId, SharedHub, text};
use crate::store::{AccountStore, StoreError, StoredAccount};
pub use throttle::LoginLimit;
use throttle::Throttle;

/// The fewest bytes a password may have.
pub const MIN_PASSWORD: usize = 8;
/// The most bytes a password may have: it must fit in a `PRIVMSG NickServ` line.
pub const MAX_PASSWORD: usize = 300;

/// A refused registration or login, with what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account '{0}' already exists; pick another name, or log in if it is yours")]
    Exists(String),
    #[error(
        "'{0}' cannot be an account name: an account is named like a nick (letters, digits, - _ [ ] {{ }} \\ | ^ `, up to 30)"
    )]
    BadName(String),
    #[error("guest nicks cannot be registered: take a nick of your own first (/nick NAME), then register it")]
    GuestNick,
    #[error("'{0}' is someone else's nick right now; register under your own nick")]
    NickInUse(String),
    #[error("a password needs at least {MIN_PASSWORD} characters")]
    WeakPassword,
    #[error("a password may have at most {MAX_PASSWORD} bytes and no spaces at its ends")]
    BadPassword,
    #[error("wrong account name or password")]
    BadLogin,
    #[error(
        "no client certificate: connect with TLS and a certificate (charla connect --tls-cert FILE --tls-key FILE, or your client's SASL EXTERNAL settings)"
    )]
    NoCertificate,
    #[error(
        "no account lists the client certificate {0}: log in with your password, then add it with /msg NickServ CERT ADD"
    )]
    UnknownCertificate(String),
    #[error("the client certificate {0} belongs to another account, not to {1}")]
    CertificateElsewhere(String, String),
    #[error("log in first (/login NAME PASSWORD), then manage your account's certificates")]
    NotLoggedIn,
    #[error("'{0}' is not a SHA-256 fingerprint: 64 hex digits, with or without colons")]
    BadFingerprint(String),
    #[error("too many failed logins; try again in {0} seconds")]
    Throttled(u64),
    #[error("you are already logged in as {0}")]
    AlreadyLoggedIn(String),
    #[error("accounts are unavailable: {0}")]
    Store(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> AccountError {
        AccountError::Store(e.to_string())
    }
}

/// Registration and login. See the [module docs](self).
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    hub: SharedHub,
    throttle: Mutex<Throttle>,
    /// Passwords hashed at once, at most.
    hashing: Semaphore,
}

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, hub: SharedHub, limit: LoginLimit) -> Accounts {
        // Half the cores at most, so that a burst of logins leaves the chat some.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Accounts { store, hub, throttle: Mutex::new(Throttle::new(limit)), hashing: Semaphore::new((cores / 2).max(1)) }
    }

    /// Creates the account `name` with `password` and, if `id` is given, logs that connection
    /// in to it. Returns the account's name.
    pub async fn register(&self, id: Option<ConnId>, name: &str, password: &str) -> Result<String, AccountError> {
        if name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("guest-")) {
            return Err(AccountError::GuestNick);
        }
        if !text::valid_nick(name) || hub::accounts::is_service(name) {
            return Err(AccountError::BadName(name.to_string()));
        }
        if password.len() > MAX_PASSWORD || password.trim() != password {
            return Err(AccountError::BadPassword);
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(AccountError::WeakPassword);
        }
        {
            let hub = hub::lock(&self.hub);
            if let Some(account) = id.and_then(|id| hub.account(id)) {
                return Err(AccountError::AlreadyLoggedIn(account.to_string()));
            }
            if hub.is_registered(name) {
                return Err(AccountError::Exists(name.to_string()));
            }
            if hub.online(name).is_some() && id.is_none_or(|id| !hub.nick(id).eq_ignore_ascii_case(name)) {
                return Err(AccountError::NickInUse(name.to_string()));
            }
        }
        let account = StoredAccount { name: name.to_string(), hash: String::new(), created: now_millis() };
        let password = password.to_string();
        let store = self.store.clone();
        let created = self
            .blocking(move || {
                let hash = password::hash(&password).map_err(|e| AccountError::Store(e.to_string()))?;
                Ok(store.create_account(&StoredAccount { hash, ..account })?)
            })
            .await?;
        if !created {
            return Err(AccountError::Exists(name.to_string()));
        }
        tracing::info!("account {name} registered");
        let mut hub = hub::lock(&self.hub);
        hub.account_created(name);
        if let Some(id) = id {
            hub.log_in(id, name);
        }
        Ok(name.to_string())
    }

    /// Checks `password` for the account `name`, attempted from `ip`, and, if `id` is given,
    /// logs that connection in. Returns the account's name as registered.
    pub async fn log_in(
        &self,
        id: Option<ConnId>,
        name: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<String, AccountError> {
        if let Some(account) = id.and_then(|id| hub::lock(&self.hub).account(id).map(str::to_string)) {
            return Err(AccountError::AlreadyLoggedIn(account));
        }
        if let Err(wait) = self.throttle().check(ip, name, Instant::now()) {
            tracing::warn!("login to account {name} from {ip} refused: too many failures");
            return Err(AccountError::Throttled(wait.as_secs().max(1)));
        }
        let (store, lookup, password) = (self.store.clone(), name.to_string(), password.to_string());
        let found = self
            .blocking(move || match store.account(&lookup)? {
                Some(account) if password::verify(&password, &account.hash) => {
                    let markers = store.read_markers(&account.name)?;
                    Ok(Some((account.name, markers)))
                }
                Some(_) => Ok(None),
                None => {
                    password::verify_nothing(&password);
                    Ok(None)
                }
            })
            .await?;
        let Some((account, markers)) = found else {
            let failures = self.throttle().failed(ip, name, Instant::now());
            tracing::warn!("failed login to account {name} from {ip} ({failures} in a row)");
            return Err(AccountError::BadLogin);
        };
        self.throttle().succeeded(&account);
        let mut hub = hub::lock(&self.hub);
        hub.remember_read_markers(&account, markers);
        if let Some(id) = id {
            hub.log_in(id, &account);
        }
        drop(hub);
        tracing::info!("{ip} logged in to account {account}");
        Ok(account)
    }

    /// Logs in by the client certificate with SHA-256 `fingerprint` (SASL EXTERNAL): the
    /// account that lists it, which must be `wanted` when that is given; and, if `id` is given,
    /// logs that connection in. Returns the account's name.
    pub async fn log_in_cert(
        &self,
        id: Option<ConnId>,
        fingerprint: Option<String>,
        wanted: Option<String>,
        ip: IpAddr,
    ) -> Result<String, AccountError> {
        if let Some(account) = id.and_then(|id| hub::lock(&self.hub).account(id).map(str::to_string)) {
            return Err(AccountError::AlreadyLoggedIn(account));
        }
        let fingerprint = fingerprint.ok_or(AccountError::NoCertificate)?;
        let (store, lookup) = (self.store.clone(), fingerprint.clone());
        let found = run_blocking(move || {
            let Some(account) = store.cert_account(&lookup)? else { return Ok(None) };
            let markers = store.read_markers(&account)?;
            Ok(Some((account, markers)))
        })
        .await?;
        let (account, markers) = match found {
            Some((account, _)) if wanted.as_ref().is_some_and(|w| !text::fold(w).eq(&text::fold(&account))) => {
                tracing::warn!(
                    "certificate login from {ip}: {fingerprint} is not {}'s",
                    wanted.as_deref().unwrap_or("")
                );
                return Err(AccountError::CertificateElsewhere(fingerprint, wanted.unwrap_or_default()));
            }
            Some(found) => found,
            None => {
                tracing::warn!("certificate login from {ip}: no account lists {fingerprint}");
                return Err(AccountError::UnknownCertificate(fingerprint));
            }
        };
        let mut hub = hub::lock(&self.hub);
        hub.remember_read_markers(&account, markers);
        if let Some(id) = id {
            hub.log_in(id, &account);
        }
        drop(hub);
        tracing::info!("{ip} logged in to account {account} by client certificate");
        Ok(account)
    }

    /// Adds, lists or removes the client certificates of the account `id` is logged in to.
    async fn certs(&self, id: ConnId, change: CertChange) -> Result<String, AccountError> {
        let (account, own) = {
            let hub = hub::lock(&self.hub);
            (hub.account(id).map(str::to_string), hub.certfp(id).map(str::to_string))
        };
        let account = account.ok_or(AccountError::NotLoggedIn)?;
        let normal = |fp: &str| {
            crate::net::Fingerprint::parse(fp)
                .map(|fp| fp.to_string())
                .ok_or_else(|| AccountError::BadFingerprint(fp.to_string()))
        };
        let store = self.store.clone();
        match change {
            CertChange::Add(fingerprint) => {
                let fingerprint = match fingerprint {
                    Some(fp) => normal(&fp)?,
                    None => own.ok_or(AccountError::NoCertificate)?,
                };
                let (name, fp) = (account.clone(), fingerprint.clone());
                let added = run_blocking(move || Ok(store.add_cert(&name, &fp, now_millis())?)).await?;
                if !added {
                    return Ok(format!(
                        "The certificate {fingerprint} already belongs to an account; nothing changed."
                    ));
                }
                tracing::info!("account {account}: client certificate {fingerprint} added");
                Ok(format!(
                    "Certificate {fingerprint} added to {account}: connecting with it, SASL EXTERNAL logs you in."
                ))
            }
            CertChange::List => {
                let name = account.clone();
                let certs = run_blocking(move || Ok(store.certs(&name)?)).await?;
                Ok(match certs.as_slice() {
                    [] => {
                        format!("{account} has no client certificates; CERT ADD adds the one you are connected with.")
                    }
                    certs => format!("Client certificates of {account}: {}", certs.join(", ")),
                })
            }
            CertChange::Del(fingerprint) => {
                let fingerprint = normal(&fingerprint)?;
                let (name, fp) = (account.clone(), fingerprint.clone());
                let removed = run_blocking(move || Ok(store.remove_cert(&name, &fp)?)).await?;
                if removed {
                    tracing::info!("account {account}: client certificate {fingerprint} removed");
                    Ok(format!("Certificate {fingerprint} removed from {account}."))
                } else {
                    Ok(format!("{account} has no certificate {fingerprint}; CERT LIST lists them."))
                }
            }
        }
    }

    /// How far `account` has read `target`, in milliseconds since the Unix epoch.
    pub async fn read_marker(&self, account: &str, target: &str) -> Result<Option<u64>, AccountError> {
        let (store, account, target) = (self.store.clone(), account.to_string(), target.to_string());
        run_blocking(move || Ok(store.read_marker(&account, &target)?)).await
    }

    /// Moves the read marker of `account` on `target` to `at` (never back); returns where it is.
    pub async fn set_read_marker(&self, account: &str, target: &str, at: u64) -> Result<u64, AccountError> {
        let (store, account, target) = (self.store.clone(), account.to_string(), target.to_string());
        run_blocking(move || Ok(store.set_read_marker(&account, &target, at)?)).await
    }

    /// Runs a hashing job on a blocking thread once a hashing slot is free.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let _slot = self.hashing.acquire().await.map_err(|_| AccountError::Store("shutting down".into()))?;
        run_blocking(job).await
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `job` on tokio's blocking threads.
async fn run_blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(job).await.map_err(|e| AccountError::Store(e.to_string()))?
}

/// Renames, for as long as the server runs, whoever has kept a nick owned by an account it has
/// not logged in to past the grace period ([`hub::HubConfig::nick_grace`]); checks four times
/// per grace period, and at least once a second.
pub async fn enforce_nicks(hub: SharedHub) {
    let grace = hub::lock(&hub).config().nick_grace;
    let every = (grace / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        hub::lock(&hub).enforce_nicks(Instant::now());
    }
}

impl Accounts {
    /// Bans `mask` from the server for `minutes` (`None`: for good) on behalf of the operator
    /// `id`, and keeps the ban in the store. Returns what the operator is told.
    pub async fn kline(
        &self,
        id: ConnId,
        mask: &str,
        reason: &str,
        minutes: Option<u64>,
    ) -> Result<String, hub::HubError> {
        let (ban, removed) = hub::lock(&self.hub).kline(id, mask, reason, minutes)?;
        tracing::info!("server ban on {} ({}) by {}", ban.mask, ban.reason, ban.set_by);
        let store = self.store.clone();
        let kept = ban.clone();
        if let Err(e) = run_blocking(move || Ok(store.save_server_ban(&kept)?)).await {
            tracing::warn!("the server ban on {} was not saved: {e}", ban.mask);
        }
        let until = match minutes {
            Some(m) => format!("for {m} minute(s)"),
            None => "until lifted".into(),
        };
        Ok(format!("{} is banned from the server {until}; {removed} user(s) removed.", ban.mask))
    }

    /// Lifts the server ban of `mask` on behalf of the operator `id`.
    pub async fn unkline(&self, id: ConnId, mask: &str) -> Result<String, hub::HubError> {
        let mask = hub::bans::full_mask(mask);
        if !hub::lock(&self.hub).unkline(id, &mask)? {
            return Ok(format!("{mask} was not banned."));
        }
        let store = self.store.clone();
        let forgotten = mask.clone();
        if let Err(e) = run_blocking(move || Ok(store.forget_server_ban(&forgotten)?)).await {
            tracing::warn!("the lifted server ban on {mask} is still in the store: {e}");
        }
        Ok(format!("The server ban on {mask} is lifted."))
    }
}

/// An account command in words, as typed to the NickServ service or as a plain-text command.
#[derive(PartialEq, Eq)]
pub enum Request {
    /// Register an account under the user's nick (`REGISTER PASSWORD`).
    Register {
        password: String,
    },
    /// Log in to `name`, or to the account of the user's nick (`IDENTIFY [NAME] PASSWORD`).
    Login {
        name: Option<String>,
        password: String,
    },
    Logout,
    /// Manage the account's client certificates (`CERT ADD [FINGERPRINT]`, `CERT LIST`,
    /// `CERT DEL FINGERPRINT`).
    Cert(CertChange),
    Help,
}

/// A change to (or a look at) an account's client certificates.
#[derive(Debug, PartialEq, Eq)]
pub enum CertChange {
    /// Add this fingerprint, or (`None`) that of the certificate the user is connected with.
    Add(Option<String>),
    List,
    Del(String),
}

impl CertChange {
    /// `ADD [FINGERPRINT]`, `LIST`, `DEL FINGERPRINT` (also `DELETE`, `REMOVE`), as words.
    pub fn from_words(words: &[&str]) -> Option<CertChange> {
        match words {
            [verb] if is(verb, &["ADD"]) => Some(CertChange::Add(None)),
            [verb, fp] if is(verb, &["ADD"]) => Some(CertChange::Add(Some(fp.to_string()))),
            [verb] if is(verb, &["LIST"]) => Some(CertChange::List),
            [verb, fp] if is(verb, &["DEL", "DELETE", "REMOVE"]) => Some(CertChange::Del(fp.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Request {
    /// Without passwords: debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Register { .. } => f.write_str("Register"),
            Request::Login { name, .. } => write!(f, "Login({name:?})"),
            Request::Logout => f.write_str("Logout"),
            Request::Cert(change) => write!(f, "Cert({change:?})"),
            Request::Help => f.write_str("Help"),
        }
    }
}

/// What the service says to `HELP` and to what it does not understand.
pub const SERVICE_HELP: &str = "Commands: REGISTER PASSWORD (registers your current nick), \
IDENTIFY [ACCOUNT] PASSWORD (logs in), LOGOUT, CERT ADD [FINGERPRINT] | CERT LIST | CERT DEL \
FINGERPRINT (client certificates that log you in with SASL EXTERNAL; ADD alone adds the one you \
are connected with). Passwords need at least 8 characters.";

impl Request {
    /// A message to the service: `IDENTIFY [ACCOUNT] PASSWORD`, `LOGIN …` (the same),
    /// `REGISTER PASSWORD [EMAIL]`, `LOGOUT`; anything else is a request for help.
    pub fn from_service_message(text: &str) -> Request {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [command, password] if is(command, &["IDENTIFY", "LOGIN"]) => {
                Request::Login { name: None, password: password.to_string() }
            }
            [command, name, password] if is(command, &["IDENTIFY", "LOGIN"]) => {
                Request::Login { name: Some(name.to_string()), password: password.to_string() }
            }
            [command, password, ..] if is(command, &["REGISTER"]) => {
                Request::Register { password: password.to_string() }
            }
            [command] if is(command, &["LOGOUT"]) => Request::Logout,
            [command, rest @ ..] if is(command, &["CERT"]) => {
                CertChange::from_words(rest).map_or(Request::Help, Request::Cert)
            }
            _ => Request::Help,
        }
    }
}

fn is(word: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(word))
}

impl Accounts {
    /// Carries out `request` for the connected user `id` (from `ip`); the answer to show.
    pub async fn apply(&self, request: Request, id: ConnId, ip: IpAddr) -> Result<String, AccountError> {
        match request {
            Request::Register { password } => {
                let nick = hub::lock(&self.hub).nick(id).to_string();
                let name = self.register(Some(id), &nick, &password).await?;
                Ok(format!(
                    "Account {name} registered; you are logged in as {name}. Log in next time with IDENTIFY {name} PASSWORD."
                ))
            }
            Request::Login { name, password } => {
                let name = name.unwrap_or_else(|| hub::lock(&self.hub).nick(id).to_string());
                let account = self.log_in(Some(id), &name, &password, ip).await?;
                Ok(format!("You are now logged in as {account}."))
            }
            Request::Logout => match hub::lock(&self.hub).log_out(id) {
                Some(_) => Ok("You are now logged out.".into()),
                None => Ok("You were not logged in.".into()),
            },
            Request::Cert(change) => self.certs(id, change).await,
            Request::Help => Ok(SERVICE_HELP.into()),
        }
    }
}
