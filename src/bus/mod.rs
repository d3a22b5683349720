//! The bus between the nodes of a cluster (`serve --bus nats://…`): NATS carries what is said
//! now; PostgreSQL (the [store](crate::store)) keeps what was said.
//!
//! Each node's [hub] hands what its users do to the bus as [`Note`]s (see
//! [`crate::hub::cluster`] for what a node keeps of the others); this module publishes them,
//! receives the other nodes' and has the hub apply them, and keeps the cluster together:
//!
//! - **Subjects.** A note about a room goes on `charla.room.<hex of the folded room name>`,
//!   anything else about a user (a private message, a quit, a nick change, away, …) on
//!   `charla.user.<hex of the folded nick>` (of the recipient for a private message); a node's
//!   heartbeat on `charla.node.<n>.hb`, its hello (`send me your users`) on
//!   `charla.node.<n>.hello` and its snapshot (its users, their rooms) on
//!   `charla.node.<n>.snapshot` (in parts of 500 users); server bans on `charla.server`. Every
//!   node subscribes to `charla.>`, without its own echoes.
//! - **Format.** JSON, one [`Envelope`] per message: `{"v":1,"node":N,"boot":B,"body":…}`. A
//!   message of another version is dropped with a warning (a rolling upgrade must keep `v`).
//! - **Node numbers.** A node claims the first free number 1–255 in the JetStream key-value
//!   bucket `charla_nodes` (an atomic `create`), and keeps it alive with each heartbeat; the
//!   bucket forgets a number 15 s after its node stopped.
//! - **Nicks.** Before the hub takes a nick, the session [claims](Bus::claim) it in the bucket
//!   `charla_nicks` (key: hex of the folded nick, an atomic `create`), so that a nick taken on one
//!   node is refused on every other, even at the same instant. A nick is released when its user
//!   quits or changes it, and the nicks of a node that died are released by the survivors.
//! - **Liveness.** Heartbeats every second; a node not heard for [`DEAD_AFTER`] is dead: its users
//!   are seen quitting (`*.net *.split`-like), its nicks freed. A node met (again) gets the
//!   others' snapshots, and they its: a node that returns is resynchronised.
//! - **Faults.** Without NATS a node goes on alone (its users chat among themselves); `/healthz`,
//!   `/metrics` (`charla_bus_degraded`) and the log say so. The client reconnects by itself,
//!   and the heartbeats that resume make the nodes exchange snapshots again.
//!
//! There is no bus trait with an in-process implementation: a single server has no bus at all
//! (the hub's `cluster` is `None`, and nothing here runs), and the seam between the hub and the
//! bus is the queue of [`Note`]s, which the hub's unit tests drive by hand; the cluster tests
//! run a real nats-server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use crate::hub::cluster::{NodeId, Note, Snapshot};
use crate::hub::text::fold;
use crate::hub::{self, EventKind, SharedHub, Target};

/// The version of the messages this node speaks.
pub const VERSION: u8 = 1;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a node may be silent before the others count it dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);

/// How many notes may wait to be published before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// How long a nick claim may wait for NATS before the node lets it through alone.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

const NODES_BUCKET: &str = "charla_nodes";
const NICKS_BUCKET: &str = "charla_nicks";

/// Why the bus could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {reason}; start nats-server (with -js) or correct --bus")]
    Connect { url: String, reason: String },
    #[error("NATS at {url} has no JetStream ({reason}); start nats-server with -js")]
    JetStream { url: String, reason: String },
    #[error("all 255 node numbers are taken in NATS; stop a node or wait 15 s for a dead one's to be freed")]
    Full,
}

/// One message on the bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u8,
    pub node: NodeId,
    /// Which run of the node: a node that restarts gets a new one.
    pub boot: u64,
    pub body: T,
}

/// A node heard from.
#[derive(Debug, Clone, Copy)]
struct Peer {
    boot: u64,
    last: Instant,
}

/// This node's connection to the cluster; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bus(node {})", self.inner.node)
    }
}

struct Inner {
    url: String,
    client: async_nats::Client,
    nodes: kv::Store,
    nicks: kv::Store,
    node: NodeId,
    boot: u64,
    connected: Arc<AtomicBool>,
    /// Woken when the connection comes back: time to meet the others again.
    reconnected: Arc<Notify>,
    peers: Mutex<HashMap<NodeId, Peer>>,
    /// The parts of each node's snapshot received so far.
    snapshots: Mutex<HashMap<NodeId, Snapshot>>,
    hub: OnceLock<SharedHub>,
    /// The hub's end of the queue, to know when it is drained.
    sink: mpsc::Sender<Note>,
}

/// What [`Bus::connect`] gives: the bus, and the queue the hub is to fill.
pub struct Joined {
    pub bus: Bus,
    pub sink: mpsc::Sender<Note>,
    notes: mpsc::Receiver<Note>,
}

fn hex(name: &str) -> String {
    fold(name).bytes().map(|b| format!("{b:02x}")).collect()
}

/// The subject a note goes on.
fn subject(note: &Note) -> String {
    let room = |name: &str| format!("charla.room.{}", hex(name));
    let user = |nick: &str| format!("charla.user.{}", hex(nick));
    match note {
        Note::User(state) => user(&state.source.nick),
        Note::Kill { nick, .. } => user(nick),
        Note::Account { name } => user(name),
        Note::Kline { .. } | Note::Unkline { .. } => "charla.server".to_string(),
        Note::Event { kind, .. } => match kind {
            EventKind::Message { target: Target::Room(name) | Target::RoomStatus(_, name), .. }
            | EventKind::Redact { target: Target::Room(name) | Target::RoomStatus(_, name), .. }
            | EventKind::Join { room: name, .. }
            | EventKind::Part { room: name, .. }
            | EventKind::Topic { room: name, .. }
            | EventKind::Kick { room: name, .. }
            | EventKind::Mode { room: name, .. }
            | EventKind::Invite { room: name, .. } => room(name),
            EventKind::Message { target: Target::User(nick), .. }
            | EventKind::Redact { target: Target::User(nick), .. } => user(nick),
            EventKind::Quit { who, .. }
            | EventKind::Nick { who, .. }
            | EventKind::Away { who, .. }
            | EventKind::SetName { who, .. }
            | EventKind::Account { who }
            | EventKind::Wallops { who, .. }
            | EventKind::Presence { who, .. }
            | EventKind::ReadMarker { who, .. } => user(&who.nick),
        },
    }
}

/// Opens the key-value bucket `name`, made if missing. Made as its stream, the way the
/// key-value specification lays it out (one message per key, deletes as markers): the client's
/// own `create_key_value` asks for account details that nats-server 2.9 (Debian 12) does not
/// give in the form it expects.
async fn bucket(js: &jetstream::Context, name: &str, max_age: Duration) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        duplicate_window: Duration::from_secs(2),
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| e.to_string())?;
    js.get_key_value(name).await.map_err(|e| e.to_string())
}

impl Bus {
    /// Connects to NATS at `url`, opens the key-value buckets and claims a node number.
    pub async fn connect(url: &str) -> Result<Joined, BusError> {
        let connected = Arc::new(AtomicBool::new(false));
        let reconnected = Arc::new(Notify::new());
        let (flag, wake) = (connected.clone(), reconnected.clone());
        let client = async_nats::ConnectOptions::new()
            .no_echo()
            .name("charla")
            .connection_timeout(Duration::from_secs(3))
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).clamp(100, 1000)))
            .event_callback(move |event| {
                let (flag, wake) = (flag.clone(), wake.clone());
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if !flag.swap(true, Ordering::SeqCst) {
                                tracing::info!("bus: connected to NATS again; meeting the other nodes");
                                crate::metrics::get().bus_degraded.set(0);
                                wake.notify_one();
                            }
                        }
                        async_nats::Event::Disconnected => {
                            if flag.swap(false, Ordering::SeqCst) {
                                tracing::warn!(
                                    "bus: lost NATS; degraded: this node's users chat among themselves until it returns"
                                );
                                crate::metrics::get().bus_degraded.set(1);
                            }
                        }
                        other => tracing::debug!("bus: {other}"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Connect { url: url.into(), reason: e.to_string() })?;
        connected.store(true, Ordering::SeqCst);
        let js = jetstream::new(client.clone());
        let jet = |reason| BusError::JetStream { url: url.into(), reason };
        let nodes = bucket(&js, NODES_BUCKET, Duration::from_secs(15)).await.map_err(jet)?;
        let nicks = bucket(&js, NICKS_BUCKET, Duration::ZERO).await.map_err(jet)?;
        let boot = crate::chat::now_millis() ^ u64::from(std::process::id()) << 44;
        let mut node = None;
        for n in 1..=255u8 {
            if nodes.create(n.to_string(), boot.to_string().into()).await.is_ok() {
                node = Some(n);
                break;
            }
        }
        let node = node.ok_or(BusError::Full)?;
        tracing::info!("bus: joined the cluster at {url} as node {node}");
        let (sink, notes) = mpsc::channel(QUEUE);
        let inner = Inner {
            url: url.into(),
            client,
            nodes,
            nicks,
            node,
            boot,
            connected,
            reconnected,
            peers: Mutex::default(),
            snapshots: Mutex::default(),
            hub: OnceLock::new(),
            sink: sink.clone(),
        };
        Ok(Joined { bus: Bus { inner: Arc::new(inner) }, sink, notes })
    }

    /// This node's number.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Whether the node is cut off from the others (NATS unreachable).
    pub fn degraded(&self) -> bool {
        !self.inner.connected.load(Ordering::SeqCst)
    }

    /// Where NATS is.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Peer>> {
        self.inner.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hub(&self) -> &SharedHub {
        self.inner.hub.get().expect("the bus runs with its hub")
    }

    async fn publish<T: Serialize>(&self, subject: String, body: T) {
        let envelope = Envelope { v: VERSION, node: self.inner.node, boot: self.inner.boot, body };
        let bytes = match serde_json::to_vec(&envelope) {
            Ok(bytes) => bytes,
            Err(e) => return tracing::error!("bus: a note could not be encoded: {e}"),
        };
        if let Err(e) = self.inner.client.publish(subject, bytes.into()).await {
            tracing::debug!("bus: publish failed: {e}");
        }
    }

    /// Starts the bus's tasks for `hub`, which [`joined the cluster`](hub::Hub::join_cluster)
    /// with this bus's sink; returns once it receives the other nodes' messages.
    pub async fn start(joined: Joined, hub: SharedHub) -> Result<Bus, BusError> {
        let Joined { bus, notes, .. } = joined;
        let _ = bus.inner.hub.set(hub);
        let subscription = bus
            .inner
            .client
            .subscribe("charla.>")
            .await
            .map_err(|e| BusError::Connect { url: bus.inner.url.clone(), reason: e.to_string() })?;
        tokio::spawn(bus.clone().publisher(notes));
        tokio::spawn(bus.clone().receiver(subscription));
        tokio::spawn(bus.clone().heartbeat());
        tokio::spawn(bus.clone().reaper());
        Ok(bus)
    }

    /// Publishes the hub's notes in order; a local user's quit or nick change frees the nick.
    async fn publisher(self, mut notes: mpsc::Receiver<Note>) {
        while let Some(note) = notes.recv().await {
            let freed = match &note {
                Note::Event { kind: EventKind::Quit { who, .. }, .. } => Some(who.nick.clone()),
                Note::Event { kind: EventKind::Nick { who, new }, .. } if fold(&who.nick) != fold(new) => {
                    Some(who.nick.clone())
                }
                _ => None,
            };
            self.publish(subject(&note), &note).await;
            if let Some(nick) = freed {
                let bus = self.clone();
                tokio::spawn(async move { bus.release(&nick).await });
            }
        }
    }

    /// Receives the other nodes' messages and has the hub apply them.
    async fn receiver(self, mut subscription: async_nats::Subscriber) {
        self.hello().await;
        while let Some(message) = futures_util::StreamExt::next(&mut subscription).await {
            self.receive(&message.subject, &message.payload).await;
        }
    }

    async fn receive(&self, subject: &str, payload: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope<serde_json::Value>>(payload) else {
            return tracing::warn!("bus: a message on {subject} is not a charla note; dropped");
        };
        if envelope.v != VERSION {
            return tracing::warn!(
                "bus: node {} speaks version {}, this node {VERSION}; dropped",
                envelope.node,
                envelope.v
            );
        }
        if envelope.node == self.inner.node {
            return;
        }
        let (node, boot) = (envelope.node, envelope.boot);
        let met = self.heard(node, boot);
        let kind = subject.rsplit('.').next().unwrap_or("");
        if subject.starts_with("charla.node.") {
            match kind {
                "hello" => self.send_snapshot().await,
                "snapshot" => match serde_json::from_value::<Snapshot>(envelope.body) {
                    Ok(part) => {
                        let complete = {
                            let mut snapshots = self.inner.snapshots.lock().unwrap_or_else(|e| e.into_inner());
                            let gathered = snapshots.entry(node).or_default();
                            gathered.gather(part).then(|| std::mem::take(gathered))
                        };
                        if let Some(snapshot) = complete {
                            hub::lock(self.hub()).apply_snapshot(node, snapshot);
                        }
                    }
                    Err(e) => tracing::warn!("bus: node {node}'s snapshot is unreadable: {e}"),
                },
                _ => {}
            }
        } else {
            match serde_json::from_value::<Note>(envelope.body) {
                Ok(note) => hub::lock(self.hub()).apply(note),
                Err(e) => tracing::warn!("bus: node {node}'s note on {subject} is unreadable: {e}"),
            }
        }
        if met {
            tracing::info!("bus: node {node} is here");
            self.hello().await;
        }
    }

    /// Takes note that `node` (run `boot`) spoke; whether it is news (a node not known alive,
    /// or one that restarted, whose users of before are gone).
    fn heard(&self, node: NodeId, boot: u64) -> bool {
        let restarted = {
            let mut peers = self.peers();
            let previous = peers.insert(node, Peer { boot, last: Instant::now() });
            crate::metrics::get().bus_nodes.set(peers.len() as i64);
            match previous {
                None => return true,
                Some(peer) => peer.boot != boot,
            }
        };
        if restarted {
            hub::lock(self.hub()).drop_node(node, "node restarted");
        }
        restarted
    }

    /// Asks the others for their users, and tells them this node's.
    async fn hello(&self) {
        self.publish(format!("charla.node.{}.hello", self.inner.node), ()).await;
        self.send_snapshot().await;
    }

    async fn send_snapshot(&self) {
        let snapshot = hub::lock(self.hub()).snapshot();
        for part in snapshot.parts() {
            self.publish(format!("charla.node.{}.snapshot", self.inner.node), part).await;
        }
    }

    /// Says this node is alive, every [`HEARTBEAT`]; meets the others again after NATS returns.
    async fn heartbeat(self) {
        let mut every = tokio::time::interval(HEARTBEAT);
        let key = self.inner.node.to_string();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.inner.reconnected.notified() => {
                    // What was said while cut off is gone: meet again, with snapshots.
                    self.peers().clear();
                    self.hello().await;
                }
            }
            if self.degraded() {
                continue;
            }
            self.publish(format!("charla.node.{}.hb", self.inner.node), ()).await;
            let refresh = self.inner.nodes.put(&key, self.inner.boot.to_string().into());
            if let Ok(Err(e)) = tokio::time::timeout(HEARTBEAT, refresh).await {
                tracing::debug!("bus: the node number was not refreshed: {e}");
            }
        }
    }

    /// Counts a node silent for [`DEAD_AFTER`] dead: its users quit, its nicks are freed.
    async fn reaper(self) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            let dead: Vec<(NodeId, u64)> = {
                let mut peers = self.peers();
                let dead: Vec<(NodeId, u64)> = peers
                    .iter()
                    .filter(|(_, peer)| peer.last.elapsed() > DEAD_AFTER)
                    .map(|(&node, peer)| (node, peer.boot))
                    .collect();
                for (node, _) in &dead {
                    peers.remove(node);
                }
                crate::metrics::get().bus_nodes.set(peers.len() as i64);
                dead
            };
            for (node, boot) in dead {
                let reason = format!("node {node} stopped answering");
                let nicks = hub::lock(self.hub()).drop_node(node, &reason);
                tracing::warn!("bus: {reason}; its {} users are seen quitting", nicks.len());
                if !self.degraded() {
                    for nick in nicks {
                        self.free_claim_of(&nick, node, boot).await;
                    }
                }
            }
        }
    }

    fn owner(&self) -> String {
        format!("{}:{}", self.inner.node, self.inner.boot)
    }

    /// Claims `nick` for a user of this node before the hub gives it: `Err(())` if a user of
    /// another node has it. `Ok(true)`: claimed now (to be [released](Bus::release) if the
    /// hub refuses the nick after all); `Ok(false)`: nothing to undo (already this node's, or
    /// NATS unreachable: the node is alone and the hub alone decides). Runs as a task of its
    /// own, so that a session may wait for it among its other work.
    pub fn claim(&self, nick: &str) -> impl Future<Output = Result<bool, ()>> + Send + Sync + 'static {
        let (bus, nick) = (self.clone(), nick.to_string());
        let claiming = tokio::spawn(async move { bus.claim_now(&nick).await });
        async move { claiming.await.unwrap_or(Err(())) }
    }

    async fn claim_now(&self, nick: &str) -> Result<bool, ()> {
        if self.degraded() {
            return Ok(false);
        }
        match tokio::time::timeout(CLAIM_WAIT, self.try_claim(nick)).await {
            Ok(claimed) => claimed,
            Err(_) => {
                tracing::warn!("bus: claiming the nick {nick} took over {CLAIM_WAIT:?}; taken without a claim");
                Ok(false)
            }
        }
    }

    async fn try_claim(&self, nick: &str) -> Result<bool, ()> {
        let key = hex(nick);
        for _ in 0..3 {
            if self.inner.nicks.create(&key, self.owner().into()).await.is_ok() {
                return Ok(true);
            }
            let Ok(Some(entry)) = self.inner.nicks.entry(&key).await else { continue };
            if entry.operation != kv::Operation::Put {
                // Deleted meanwhile: `create` takes it on the next turn.
                continue;
            }
            let holder = String::from_utf8_lossy(&entry.value).to_string();
            if holder == self.owner() {
                // Held by this node: bump it, so that a release under way does not free it.
                return self.inner.nicks.update(&key, entry.value, entry.revision).await.map(|_| false).or(Ok(false));
            }
            if self.holder_alive(&holder).await {
                return Err(());
            }
            // A claim of a node that is gone: free it, then take it.
            let _ = self.inner.nicks.delete_expect_revision(&key, Some(entry.revision)).await;
        }
        Err(())
    }

    /// Whether the node that made claim `holder` (`node:boot`) still runs.
    async fn holder_alive(&self, holder: &str) -> bool {
        let Some((node, boot)) = holder.split_once(':') else { return false };
        match self.inner.nodes.get(node).await {
            Ok(Some(value)) => value == boot.as_bytes(),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Frees `nick`'s claim if this node holds it and no user of this node has the nick now.
    pub async fn release(&self, nick: &str) {
        if hub::lock(self.hub()).holds_here(nick) {
            return;
        }
        let key = hex(nick);
        if let Ok(Some(entry)) = self.inner.nicks.entry(&key).await
            && entry.operation == kv::Operation::Put
            && entry.value == self.owner().as_bytes()
        {
            let _ = self.inner.nicks.delete_expect_revision(&key, Some(entry.revision)).await;
        }
    }

    /// Frees the claim of `nick` made by `node` in run `boot`, a node now dead.
    async fn free_claim_of(&self, nick: &str, node: NodeId, boot: u64) {
        let key = hex(nick);
        if let Ok(Some(entry)) = self.inner.nicks.entry(&key).await
            && entry.value == format!("{node}:{boot}").as_bytes()
        {
            let _ = self.inner.nicks.delete_expect_revision(&key, Some(entry.revision)).await;
        }
    }

    /// Publishes what is queued and gives up the node number (a clean shutdown).
    pub async fn close(&self) {
        for _ in 0..50 {
            if self.inner.sink.capacity() == self.inner.sink.max_capacity() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.client.flush()).await;
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.inner.nodes.delete(self.inner.node.to_string())).await;
    }
}
