//! The server, wiring only: binds the listeners, admits connections under the limits
//! ([`crate::net`]), tells each one's protocol from the table in [`crate::proto`] and starts
//! that protocol's session, and shuts everything down in order on request.
//!
//! Shutdown follows mini-redis: the accept loops stop, the hub closes every client's queue with
//! a reason (each connection delivers what was queued, then says goodbye), and [`Server::run`]
//! returns once every connection task has finished, or after a grace period.
//!
//! Each connection's task runs inside [`panics::connection`], so that a bug in one connection
//! ends that connection only; see [`crate::panics`] for what a bug anywhere else ends.
//!
//! Where the settings come from (command line, environment, config file) is [`settings`];
//! what a reload (SIGHUP) changes in a running server is [`reload`], through a [`Reloader`].

pub mod reload;
pub mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::accounts::{self, Accounts};
use crate::bus::Bus;
use crate::hub::{self, History, Hub, HubConfig};
use crate::metrics::{self, Speaks};
use crate::net::tls::CertSource;
use crate::net::{Admission, BoxStream, Conn, ConnLimiter, Peer, Rewind, SWEEPS_PER_INTERVAL, Sessions, Tls};
use crate::panics;
use crate::proto::{Protocol, Shared, Stage, TlsPolicy, classify};
use crate::store::{Retention, StoreError, StoreLocation};

// The parts of a `Config`, defined where they are used.
pub use crate::net::{FloodLimit, Limits};
pub use crate::proto::HistoryConfig;

/// Everything `charla serve` is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses where every protocol is welcome (told apart by the first bytes).
    pub listen: Vec<SocketAddr>,
    /// Addresses for IRC only: no sniffing, no wait for silent clients.
    pub irc_listen: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    /// Where history, rooms and accounts are kept (`--store`): SQLite in `data_dir`, or
    /// PostgreSQL.
    pub store: StoreLocation,
    pub limits: Limits,
    pub hub: HubConfig,
    pub history: HistoryConfig,
    /// Origins (`https://chat.example.org`) whose pages may open a WebSocket; empty: only the
    /// server's own page.
    pub allowed_origins: Vec<String>,
    /// The name the server goes by in IRC: the source of its own lines, 004, WHOIS, WHO,
    /// LINKS, PONG and kill paths. [`host_name`] by default.
    pub server_name: String,
    /// A file of more server operators (`--oper-file`), besides those in `hub.opers`; read at
    /// start and on each reload.
    pub oper_file: Option<PathBuf>,
    /// The message of the day (`--motd`); read at start and on each reload.
    pub motd: Option<PathBuf>,
    /// TLS, when the server has a certificate.
    pub tls: Option<TlsConfig>,
    /// The NATS server of the cluster this node is part of (`--bus nats://…`); `None` alone.
    pub bus: Option<String>,
}

impl Config {
    /// Every default, listening on 127.0.0.1 on a port the system picks and keeping its data in
    /// `data_dir`: a server for this machine alone (and for tests).
    pub fn local(data_dir: PathBuf) -> Config {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            irc_listen: Vec::new(),
            data_dir,
            store: StoreLocation::default(),
            limits: Limits::default(),
            hub: HubConfig::default(),
            history: HistoryConfig::default(),
            allowed_origins: Vec::new(),
            server_name: host_name(),
            oper_file: None,
            motd: None,
            tls: None,
            bus: None,
        }
    }
}

/// The server's TLS: its certificate and where it is spoken.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: CertSource,
    /// Addresses where every client speaks TLS first (e.g. port 6697), then any protocol
    /// inside. The `listen` addresses take TLS too, told by its first byte.
    pub listen: Vec<SocketAddr>,
    /// Clear-text connections are refused, except from loopback addresses.
    pub required: bool,
}

/// This machine's host name, the server name unless `--server-name` says otherwise; `charla`
/// when the system has none that could serve.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length, which is passed; gethostname writes at most
    // that many bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    if ok && valid_server_name(&name) { name } else { "charla".into() }
}

/// Whether `name` can be an IRC server name: a host name (letters, digits, `-`, `.`, up to 63
/// bytes), which no client can take for a nick (`nick!user@host`) or a parameter.
pub fn valid_server_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} ({})", bind_advice(addr, source))]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot use data directory {dir}: {source} (pick a writable one with --data-dir)")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot use data directory {dir}: {file} is a file, not a directory (pick a directory with --data-dir)")]
    NotADirectory { dir: PathBuf, file: PathBuf },
    #[error(
        "cannot create data directory {dir}: {parent} lets no directory be created in it ({source}); it is a virtual file system such as /proc or /sys, pick a directory on a disk with --data-dir"
    )]
    CannotCreate { dir: PathBuf, parent: PathBuf, source: std::io::Error },
    #[error("cannot open the history store: {0}")]
    Store(#[from] StoreError),
    /// A file a setting names (`--motd`, `--oper-file`) cannot be used; says which and why.
    #[error("{0}")]
    File(String),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
    #[error("cannot join the cluster: {0}")]
    Bus(#[from] crate::bus::BusError),
}

/// What to do about a listen address that cannot be bound, by the reason.
fn bind_advice(addr: &SocketAddr, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("another program is using port {}: stop it, or pick another port with --listen", addr.port())
        }
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: listen on one it has (`ip -brief address` lists them), or on 0.0.0.0 for all of them",
            addr.ip()
        ),
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            format!("ports below 1024 need root: pick a port from 1024 up, e.g. --listen {}:1313", addr.ip())
        }
        _ => "pick another address with --listen".into(),
    }
}

/// Creates the data directory if it is missing, saying why it cannot be used when it cannot.
fn create_data_dir(dir: &Path) -> Result<(), ServerError> {
    if let Some(file) = dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
        return Err(ServerError::NotADirectory { dir: dir.to_owned(), file: file.to_owned() });
    }
    std::fs::create_dir_all(dir).map_err(|source| {
        // "No such file or directory" while the parent is there: a file system that makes no
        // directories, like /proc.
        let existing = dir.ancestors().skip(1).find(|a| a.is_dir());
        match existing {
            Some(parent) if source.kind() == std::io::ErrorKind::NotFound => {
                ServerError::CannotCreate { dir: dir.to_owned(), parent: parent.to_owned(), source }
            }
            _ => ServerError::DataDir { dir: dir.to_owned(), source },
        }
    })
}

/// A bound, not yet running server.
pub struct Server {
    /// Each listener, with the protocol it is reserved for (`None`: sniff).
    listeners: Vec<(TcpListener, Option<Protocol>)>,
    shared: Arc<Shared>,
    /// The settings it was started with, the last good ones for a reload.
    config: Config,
    tls: Option<Arc<Tls>>,
}

/// Reloads a running server's settings (on SIGHUP); see [`reload`].
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
    last: Arc<Mutex<Config>>,
}

impl Reloader {
    /// Reloads every part from `config`, the settings read anew; when they could not be read
    /// (`Err`: why, e.g. a broken config file), from the last good ones, so that the files
    /// those name (the MOTD, operators) are still read again.
    pub fn reload(&self, config: Result<Config, String>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match config {
            Ok(config) => *last = config,
            Err(why) => tracing::warn!("config: {why}; keeping the previous settings"),
        }
        reload::reload(&last, &reload::Running { shared: &self.shared, tls: self.tls.as_deref() });
    }
}

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// Creates the data directory, opens the history store (restoring its rooms) and binds every
    /// listen address.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let opers = reload::read_opers(&config).map_err(ServerError::File)?;
        let motd = config.motd.as_deref().map(reload::read_motd).transpose().map_err(ServerError::File)?;
        create_data_dir(&config.data_dir)?;
        let crate::store::Opened { store, accounts: account_store } = config.store.open(&config.data_dir)?;
        let mut hub = Hub::new(HubConfig { opers, ..config.hub.clone() }, History::new(store.clone()));
        hub.restore_rooms(store.rooms()?);
        hub.restore_guests(store.last_guest()?);
        hub.restore_accounts(account_store.account_names()?);
        hub.restore_server_bans(account_store.server_bans()?);
        let joined = match &config.bus {
            Some(url) => {
                let joined = Bus::connect(url).await?;
                hub.join_cluster(joined.bus.node(), joined.sink.clone());
                Some(joined)
            }
            None => None,
        };
        let hub = Arc::new(std::sync::Mutex::new(hub));
        let bus = match joined {
            Some(joined) => Some(Bus::start(joined, hub.clone()).await?),
            None => None,
        };
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(Tls::new(tls.cert.clone())?)),
            None => None,
        };
        let mut listeners = Vec::new();
        let any = config.listen.iter().map(|a| (a, None));
        let irc = config.irc_listen.iter().map(|a| (a, Some(Protocol::Irc)));
        let tls_only = config.tls.iter().flat_map(|tls| &tls.listen).map(|a| (a, Some(Protocol::Tls)));
        for (addr, protocol) in any.chain(irc).chain(tls_only) {
            let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr: *addr, source })?;
            listeners.push((listener, protocol));
        }
        let tls_policy = match (&tls, &config.tls) {
            (Some(tls), Some(config)) => {
                // Clear-text clients are sent to a TLS-only port if there is one, else to the
                // shared port, which takes TLS too.
                let port_of = |wanted: Option<Protocol>| {
                    listeners
                        .iter()
                        .find(|(_, p)| *p == wanted)
                        .and_then(|(l, _)| l.local_addr().ok())
                        .map(|a| a.port())
                };
                let dedicated = port_of(Some(Protocol::Tls));
                let port = dedicated.or_else(|| port_of(None));
                let (required, verifiable) = (config.required, !tls.self_signed());
                TlsPolicy { port, dedicated: dedicated.is_some(), required, verifiable }
            }
            _ => TlsPolicy::default(),
        };
        let shared = Arc::new(Shared {
            accounts: Accounts::new(account_store, hub.clone(), config.limits.logins),
            hub,
            sessions: Arc::new(Sessions::default()),
            store,
            history: config.history.clone(),
            limits: RwLock::new(config.limits.clone()),
            limiter: ConnLimiter::new(config.limits.max_conns, config.limits.max_conns_per_ip),
            motd: RwLock::new(motd.map(Arc::new)),
            server_name: config.server_name.clone(),
            started: std::time::SystemTime::now(),
            allowed_origins: config.allowed_origins.clone(),
            stage: AtomicU8::new(Stage::Starting as u8),
            tls: tls_policy,
            bus,
        });
        Ok(Server { listeners, shared, config, tls })
    }

    /// What reloads this server's settings while it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader { shared: self.shared.clone(), tls: self.tls.clone(), last: Arc::new(Mutex::new(self.config.clone())) }
    }

    /// The addresses actually bound (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners().into_iter().map(|(addr, _)| addr).collect()
    }

    /// The fingerprint of the server's TLS certificate, when it has one, and whether charla
    /// made it itself.
    pub fn tls_fingerprint(&self) -> Option<(crate::net::Fingerprint, bool)> {
        self.tls.as_ref().map(|tls| (tls.fingerprint(), tls.self_signed()))
    }

    /// Whether clear-text connections from other machines are refused (`--tls-required`).
    pub fn tls_required(&self) -> bool {
        self.shared.tls.required
    }

    /// Each address actually bound, with the protocol it is reserved for (`None`: every
    /// protocol, told apart by the first bytes; TLS: TLS first, any protocol inside), for the
    /// startup banner.
    pub fn listeners(&self) -> Vec<(SocketAddr, Option<Protocol>)> {
        self.listeners.iter().filter_map(|(l, protocol)| Some((l.local_addr().ok()?, *protocol))).collect()
    }

    /// Accepts connections until `shutdown` resolves, then closes every connection and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let limiter = self.shared.limiter.clone();
        // Every connection task holds a clone; when all are dropped, `recv` returns None.
        let (alive, mut all_done) = mpsc::channel::<()>(1);
        let accepting = self.listeners.into_iter().map(|(listener, protocol)| {
            let shared = self.shared.clone();
            let limiter = limiter.clone();
            tokio::spawn(accept_loop(listener, protocol, shared, self.tls.clone(), limiter, alive.downgrade()))
        });
        let accepting: Vec<_> = accepting.collect();
        let retention = tokio::spawn(retain(self.shared.clone()));
        let liveness = tokio::spawn(check_liveness(self.shared.clone()));
        let nicks = tokio::spawn(accounts::enforce_nicks(self.shared.hub.clone()));
        let trimming = tokio::spawn(crate::memory::give_back());
        let deferring = tokio::spawn(wake_deferred(self.shared.clone()));
        self.shared.set_stage(Stage::Ready);
        shutdown.await;
        retention.abort();
        liveness.abort();
        nicks.abort();
        trimming.abort();
        deferring.abort();
        tracing::info!("shutting down: closing {} connections", limiter.open());
        // Listeners stay open while clients are told goodbye: a load balancer asking
        // `/healthz` learns that this server is stopping, anyone else is turned away.
        self.shared.set_stage(Stage::Stopping);
        drop(alive);
        hub::lock(&self.shared.hub).shutdown();
        self.shared.sessions.close_all("Server shutting down");
        if tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await.is_err() {
            tracing::warn!("some connections did not close within {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        for task in &accepting {
            task.abort();
        }
        for task in accepting {
            let _ = task.await;
        }
        if let Some(bus) = &self.shared.bus {
            bus.close().await;
        }
        // Everything a sender saw accepted is in the store before `run` returns.
        if let Err(e) = self.shared.store.flush().await {
            tracing::error!("history: the last writes failed: {e}");
        }
    }
}

/// Pings silent IRC clients and drops those that stay silent or do not register, for as long
/// as the server runs (see [`Sessions::sweep`]). [`Server::run`] runs it; a harness that serves
/// connections without a `Server` runs it too, or its silent clients stay forever.
pub async fn check_liveness(shared: Arc<Shared>) {
    let ping = crate::proto::irc::ping(&shared.server_name);
    loop {
        let interval = shared.limits().ping_interval;
        tokio::time::sleep(interval / SWEEPS_PER_INTERVAL).await;
        shared.sessions.sweep(&ping, interval);
    }
}

/// Wakes the writers left waiting with someone's join, part or quit, for as long as the server
/// runs (see [`crate::hub::Deferred::run`]). [`Server::run`] runs it; a harness that serves
/// connections without a `Server` runs it too, or those wait until something else comes.
pub async fn wake_deferred(shared: Arc<Shared>) {
    let deferred = hub::lock(&shared.hub).deferred();
    deferred.run().await
}

/// Applies the retention policy now and then, for as long as the server runs.
async fn retain(shared: Arc<Shared>) {
    let policy = shared.history.retention;
    if policy == Retention::default() {
        return;
    }
    let mut every = tokio::time::interval(shared.history.retention_every);
    loop {
        every.tick().await;
        match shared.store.retain(policy).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!("history: retention removed {deleted} old records"),
            Err(e) => tracing::warn!("history: retention failed: {e}"),
        }
    }
}

/// On each SIGHUP, reads the TLS certificate again (see [`Tls::reload`]) and logs what
/// changed, or why the certificate in use stays.
async fn accept_loop(
    listener: TcpListener,
    protocol: Option<Protocol>,
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
    limiter: Arc<ConnLimiter>,
    alive: mpsc::WeakSender<()>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait for connections to close.
                tracing::warn!("accept failed: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Once the server stops and every connection has gone, there is no one left to wait
        // for, and no one is let in.
        let Some(alive) = alive.upgrade() else { return };
        let tls = tls.clone();
        tokio::spawn(panics::connection(handle(stream, peer, protocol, shared.clone(), tls, limiter.clone(), alive)));
    }
}

/// Admits one connection, tells its protocol (inside TLS, after the handshake, when it starts
/// with one), and starts its session. `alive` goes with the session, so shutdown knows when
/// every session has ended.
async fn handle(
    mut stream: TcpStream,
    addr: SocketAddr,
    protocol: Option<Protocol>,
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
    limiter: Arc<ConnLimiter>,
    alive: mpsc::Sender<()>,
) {
    let permit = match limiter.admit(addr.ip()) {
        Ok(permit) => permit,
        Err(refused) => {
            tracing::info!("{addr} refused: {refused}");
            let _ = stream.write_all(format!("ERROR :{refused}\r\n").as_bytes()).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut stream: BoxStream = Box::new(stream);
    let mut peer = Peer::clear(addr);
    let sniff_timeout = shared.limits().sniff_timeout;
    let mut first = match protocol {
        Some(_) => Vec::new(),
        None => match crate::net::sniff(&mut stream, sniff_timeout, crate::proto::is_tls).await {
            Ok(first) => first,
            Err(_) => return,
        },
    };
    let mut protocol = protocol.unwrap_or_else(|| classify(&first));
    if protocol == Protocol::Tls {
        let Some(tls) = tls else {
            return tracing::info!("{peer} started TLS, which is not enabled on this server; closed");
        };
        // Boxed: a handshake's state is large, and every connection's task would carry it.
        match Box::pin(tls.accept(first, stream)).await {
            Ok((encrypted, info)) => {
                metrics::get().tls_handshakes.inc();
                (stream, peer.tls) = (encrypted, Some(Box::new(info)));
            }
            Err(e) => {
                metrics::get().tls_handshake_failures.inc();
                return tracing::info!("{peer} TLS handshake failed: {e}");
            }
        }
        first = match crate::net::sniff(&mut stream, sniff_timeout, |_| false).await {
            Ok(first) => first,
            Err(_) => return,
        };
        protocol = classify(&first);
    } else if shared.tls.refuses(&peer)
        && let Some(refusal) = crate::proto::clear_text_refusal(protocol, &shared.tls)
    {
        tracing::info!("{peer} refused: clear text, and this server requires TLS");
        let _ = stream.write_all(refusal.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let admit = |speaks| Admission { permit, alive, open: metrics::get().opened(speaks) };
    // Each session becomes a task of its own, its future spawned as it is, and this one ends:
    // a connection then costs the memory of the one session it runs and nothing more (idle
    // connections are counted in bytes). The `Conn` it owns holds the admission.
    match protocol {
        Protocol::Plain => {
            let setup = shared.line_setup(crate::proto::plain::max_line(&shared.limits()));
            let conn = Conn::new(stream, &first, setup, shared.sessions.clone(), admit(Speaks::Plain));
            drop(tokio::spawn(panics::connection(crate::proto::plain::run(conn, shared, peer))))
        }
        Protocol::Irc => {
            let setup = shared.line_setup(crate::proto::irc::MAX_LINE);
            let conn = Conn::new(stream, &first, setup, shared.sessions.clone(), admit(Speaks::Irc));
            drop(tokio::spawn(panics::connection(crate::proto::irc::run(conn, shared, peer))))
        }
        Protocol::Http => {
            let stream = Box::new(Rewind::new(first, stream));
            drop(tokio::spawn(panics::connection(crate::proto::http::serve(stream, peer, shared, admit(Speaks::Http)))))
        }
        Protocol::Tls => tracing::info!("{peer} started TLS inside TLS; closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_host_names() {
        for name in ["irc.example.org", "vm", "node-1.chat.example"] {
            assert!(valid_server_name(name), "{name}");
        }
        for name in ["", "bad name", "a!b", "x@y", ":irc", ".irc", "-irc", &"a".repeat(64)] {
            assert!(!valid_server_name(name), "{name}");
        }
        assert!(valid_server_name(&host_name()));
    }

    /// tokio rounds a task up to a multiple of 128 bytes, with 104 bytes of its own around the
    /// future: a session's future of at most 408 bytes makes each connection's task 512 bytes,
    /// one byte more makes it 640 (idle connections are counted in bytes; `src/net/conn.rs`).
    #[tokio::test]
    async fn a_sessions_future_fits_a_512_byte_task() {
        let dir = std::env::temp_dir().join(format!("charla-task-size-{}", std::process::id()));
        let server = Server::bind(Config::local(dir.clone())).await.expect("server binds");
        let shared = server.shared.clone();
        let peer = Peer::clear("127.0.0.1:40000".parse().unwrap());
        let conn = || {
            let (stream, _) = tokio::io::duplex(64);
            let permit = shared.limiter.admit(peer.ip()).expect("admitted");
            let admission = Admission { permit, alive: mpsc::channel(1).0, open: metrics::get().opened(Speaks::Irc) };
            Conn::new(Box::new(stream), b"", shared.line_setup(512), shared.sessions.clone(), admission)
        };
        let irc = panics::connection(crate::proto::irc::run(conn(), shared.clone(), peer.clone()));
        let plain = panics::connection(crate::proto::plain::run(conn(), shared.clone(), peer.clone()));
        for (protocol, size) in [("IRC", std::mem::size_of_val(&irc)), ("plain", std::mem::size_of_val(&plain))] {
            assert!(size <= 408, "{protocol} session future: {size} bytes");
        }
        drop((irc, plain, server));
        let _ = std::fs::remove_dir_all(dir);
    }
}
