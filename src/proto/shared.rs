//! What every session works with: the hub, the history store, the limits, and where the
//! server is in its life.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::accounts::Accounts;
use crate::hub::{self, MsgId, SharedHub};
use crate::net::{ConnLimiter, Limits, Peer, Sessions, Setup};
use crate::proto::motd::Motd;
use crate::store::sqlite::RETRY_MAX;
use crate::store::{Include, Retention, Store};

/// What history is shown and kept.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Recent lines shown on join to clients that cannot ask for history themselves
    /// (plain text, IRC without `draft/chathistory`); 0 turns it off.
    pub join_replay: usize,
    /// What the store keeps; enforced in the background.
    pub retention: Retention,
    /// How often retention runs.
    pub retention_every: Duration,
    /// Acknowledge an IRC client's message (its echo, a labeled `ACK`) only once the store has
    /// committed it, so that no acknowledged message is lost even to `kill -9`. Others receive
    /// it at once either way. Costs the sender one commit (about a millisecond) per message.
    pub ack_when_stored: bool,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            join_replay: 20,
            retention: Retention::default(),
            retention_every: Duration::from_secs(600),
            ack_when_stored: false,
        }
    }
}

/// State every connection task shares.
pub struct Shared {
    pub hub: SharedHub,
    /// Every open session's queue, for shutdown.
    pub sessions: Arc<Sessions>,
    /// History, for reading; the hub writes to it.
    pub store: Arc<dyn Store>,
    /// Registration and login.
    pub accounts: Accounts,
    pub history: HistoryConfig,
    /// The limits in force; a reload may change some of them ([`Shared::limits`]).
    pub limits: RwLock<Limits>,
    /// Connections open, in all and per address, under [`Limits::max_conns`] and
    /// [`Limits::max_conns_per_ip`].
    pub limiter: Arc<ConnLimiter>,
    /// The message of the day from `--motd`; `None`: the built-in one (IRC) or none (plain
    /// text).
    pub motd: RwLock<Option<Arc<Motd>>>,
    pub server_name: String,
    pub started: std::time::SystemTime,
    /// See [`crate::server::Config::allowed_origins`].
    pub allowed_origins: Vec<String>,
    /// Where the server is in its life, for `/healthz`.
    pub stage: AtomicU8,
    /// What sessions need to know of the server's TLS.
    pub tls: TlsPolicy,
    /// The other nodes of the cluster (`serve --bus`); `None` alone.
    pub bus: Option<crate::bus::Bus>,
}

/// What sessions need to know of the server's TLS (the handshake itself is the transport's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The port where clients can connect with TLS; `None`: the server has no TLS.
    pub port: Option<u16>,
    /// `port` is a port of its own that speaks only TLS (`--tls-listen`), not the shared one.
    pub dedicated: bool,
    /// Clear-text connections are refused, except from loopback addresses.
    pub required: bool,
    /// The certificate is one clients can verify (not self-signed): only then do IRC clients
    /// get the `sts` policy, which would lock them out of a server whose certificate they
    /// cannot check.
    pub verifiable: bool,
}

impl TlsPolicy {
    /// Whether a connection from `peer` is refused for being clear text: under `--tls-required`,
    /// unless it is encrypted or comes from a loopback address (this machine).
    pub fn refuses(&self, peer: &Peer) -> bool {
        self.required && !peer.secure() && !peer.ip().to_canonical().is_loopback()
    }
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Bound, not yet accepting.
    Starting,
    Ready,
    /// Saying goodbye to its clients.
    Stopping,
}

impl Shared {
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Starting,
            1 => Stage::Ready,
            _ => Stage::Stopping,
        }
    }

    /// The limits in force now. A connection takes them when it opens and keeps them: a
    /// reload applies to connections opened after it.
    pub fn limits(&self) -> Limits {
        self.limits.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The message of the day from `--motd`, if one was given.
    pub fn motd(&self) -> Option<Arc<Motd>> {
        self.motd.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How a line-based protocol's connection is opened: with its line limit (`max_line`), and
    /// the server's flood limit and queue size.
    pub fn line_setup(&self, max_line: usize) -> Setup {
        let limits = self.limits();
        Setup { max_line, flood: limits.flood, sendq: limits.sendq }
    }

    pub fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }
}

impl Shared {
    /// The wait until everything a history read of `include` may show is in the store, so that
    /// the read sees all of it (a client catching up after a reconnect must miss nothing): every
    /// message for [`Include::Messages`], every message and room event for
    /// [`Include::Everything`]. `None` when the newest of them is already committed, as it
    /// nearly always is; so a replay on join never waits for other users' joins and quits.
    pub fn settled(&self, include: Include) -> Option<impl Future<Output = ()> + Send + '_> {
        let newest = {
            let hub = hub::lock(&self.hub);
            match include {
                Include::Messages => hub.last_said(),
                Include::Everything => hub.last_recorded(),
            }
        };
        (self.store.committed() < newest).then_some(async move {
            if let Err(e) = self.store.flush().await {
                tracing::warn!("history: {e}");
            }
        })
    }
}

impl Shared {
    /// The wait that lets the store's writer catch up when it has fallen behind
    /// ([`Store::behind`]): a client sending faster than history is written is slowed down (its
    /// next line is read afterwards) instead of running ahead of the disk. `None` otherwise,
    /// and the wait ends at once while the store cannot write at all (its backlog bounds that
    /// case).
    pub fn pace(&self) -> Option<impl Future<Output = ()> + Send + '_> {
        self.store.behind().then_some(async move {
            let _ = self.store.flush().await;
        })
    }

    /// Resolves once the store has committed the record `id`; while the store cannot write,
    /// that is whenever it can again.
    pub async fn stored(&self, id: MsgId) {
        let mut retry = Duration::from_millis(10);
        while self.store.committed() < id {
            if self.store.flush().await.is_err() {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}
