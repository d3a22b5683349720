//! What the server counts, for `GET /metrics` in the Prometheus text format.
//!
//! One set of metrics per process, as with a `metrics` recorder: the place that sees a thing
//! happen counts it (the hub a message, a queue its overflow, the store writer its batches)
//! without every layer carrying a handle to the others. A process serves one server; tests that
//! run several in one process read differences, never absolute values.
//!
//! Gauges of the hub's state (rooms, users), the uptime and the count of dropped log lines
//! (kept by [`crate::logging`]) are read when scraped, by [`Metrics::encode`].

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// What a connection turned out to speak, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Speaks {
    Plain,
    Irc,
    Http,
    /// IRC over WebSocket (the web page, gamja, Kiwi IRC).
    WebSocket,
}

impl EncodeLabelValue for Speaks {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        let name = match self {
            Speaks::Plain => "plain",
            Speaks::Irc => "irc",
            Speaks::Http => "http",
            Speaks::WebSocket => "websocket",
        };
        std::fmt::Write::write_str(encoder, name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: Speaks,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Connections open now, by protocol.
    pub connections: Family<ProtocolLabel, Gauge>,
    /// Connections accepted since the start, by protocol.
    pub connections_accepted: Family<ProtocolLabel, Counter>,
    /// Connections whose TLS handshake completed (each is counted by protocol as well).
    pub tls_handshakes: Counter,
    /// TLS handshakes that failed (a client that does not trust the certificate, say).
    pub tls_handshake_failures: Counter,
    /// Users registered with the hub (each nc, IRC or browser user once per connection).
    pub registrations: Counter,
    /// Messages (PRIVMSG, NOTICE, TAGMSG, plain lines) accepted from users.
    pub messages_received: Counter,
    /// Copies of those messages queued to recipients.
    pub messages_delivered: Counter,
    /// Clients dropped because their queue overflowed while they read nothing.
    pub slow_consumers: Counter,
    /// Lines held back by the flood limit.
    pub flood_delays: Counter,
    /// How long the history writer took to commit one batch.
    pub store_batch: Histogram,
    /// Batches the history writer failed to commit.
    pub store_errors: Counter,
    /// 1 while history is not being written ([`crate::store::Store::degraded`]), else 0; set
    /// by the writer.
    pub store_degraded: Gauge,
    /// Notes for the other nodes of a cluster dropped because the bus's queue was full.
    pub bus_dropped: Counter,
    /// 1 while a cluster node cannot reach its bus (NATS): its users chat among themselves.
    pub bus_degraded: Gauge,
    /// Other nodes of the cluster heard from lately.
    pub bus_nodes: Gauge,
    /// Log lines dropped ([`crate::logging::dropped`]), brought up to date at each scrape.
    log_lines_dropped: Counter,
    /// One scrape at a time brings the counters read from elsewhere up to date.
    scraping: std::sync::Mutex<()>,
    rooms: Gauge,
    users: Gauge,
    uptime: Gauge<f64, AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// What the hub holds at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub rooms: usize,
    pub users: usize,
    pub uptime: Duration,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("charla");
        let metrics = Metrics {
            connections: Family::default(),
            connections_accepted: Family::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_failures: Counter::default(),
            registrations: Counter::default(),
            messages_received: Counter::default(),
            messages_delivered: Counter::default(),
            slow_consumers: Counter::default(),
            flood_delays: Counter::default(),
            // 100 µs to about 3 s.
            store_batch: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16)),
            store_errors: Counter::default(),
            store_degraded: Gauge::default(),
            bus_dropped: Counter::default(),
            bus_degraded: Gauge::default(),
            bus_nodes: Gauge::default(),
            log_lines_dropped: Counter::default(),
            scraping: std::sync::Mutex::new(()),
            rooms: Gauge::default(),
            users: Gauge::default(),
            uptime: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "Connections open now, by protocol", metrics.connections.clone());
        registry.register(
            "connections_accepted",
            "Connections accepted since the start, by protocol",
            metrics.connections_accepted.clone(),
        );
        registry.register("tls_handshakes", "TLS handshakes completed", metrics.tls_handshakes.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (clients that do not trust the certificate, say)",
            metrics.tls_handshake_failures.clone(),
        );
        registry.register("registrations", "Users registered (one per connection)", metrics.registrations.clone());
        registry.register("messages_received", "Messages accepted from users", metrics.messages_received.clone());
        registry.register(
            "messages_delivered",
            "Copies of messages queued to recipients",
            metrics.messages_delivered.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Clients dropped because they did not read what was sent to them",
            metrics.slow_consumers.clone(),
        );
        registry.register("flood_delays", "Lines held back by the flood limit", metrics.flood_delays.clone());
        registry.register_with_unit(
            "store_batch_duration",
            "Time to commit one batch of history",
            Unit::Seconds,
            metrics.store_batch.clone(),
        );
        registry.register("store_errors", "History batches that failed to commit", metrics.store_errors.clone());
        registry.register(
            "store_degraded",
            "1 while history is not being written (a full disk, PostgreSQL unreachable): it waits in memory",
            metrics.store_degraded.clone(),
        );
        registry.register(
            "bus_dropped",
            "Notes for the other nodes dropped because the bus queue was full",
            metrics.bus_dropped.clone(),
        );
        registry.register("bus_degraded", "1 while this cluster node cannot reach NATS", metrics.bus_degraded.clone());
        registry.register("bus_nodes", "Other cluster nodes heard from lately", metrics.bus_nodes.clone());
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because standard error was slow or failed",
            metrics.log_lines_dropped.clone(),
        );
        registry.register("rooms", "Rooms that exist now", metrics.rooms.clone());
        registry.register("users", "Registered users connected now", metrics.users.clone());
        registry.register_with_unit("uptime", "Time since the server started", Unit::Seconds, metrics.uptime.clone());
        Metrics { registry, ..metrics }
    }

    /// A connection of this kind has opened; the returned guard counts it closed when dropped.
    pub fn opened(&'static self, speaks: Speaks) -> OpenConn {
        let label = ProtocolLabel { protocol: speaks };
        self.connections_accepted.get_or_create(&label).inc();
        self.connections.get_or_create(&label).inc();
        OpenConn(speaks)
    }

    /// Every metric in the Prometheus text format, with the hub's state as of `now`.
    pub fn encode(&self, now: Snapshot) -> String {
        let _scraping = self.scraping.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = crate::logging::dropped();
        self.log_lines_dropped.inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        self.rooms.set(now.rooms as i64);
        self.users.set(now.users as i64);
        self.uptime.set(now.uptime.as_secs_f64());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// One open connection in [`Metrics::connections`]; counted closed when dropped.
#[derive(Debug)]
pub struct OpenConn(Speaks);

impl OpenConn {
    /// The connection now speaks another protocol (an HTTP connection upgraded to WebSocket).
    pub fn became(&mut self, speaks: Speaks) {
        let metrics = get();
        metrics.connections.get_or_create(&ProtocolLabel { protocol: self.0 }).dec();
        let label = ProtocolLabel { protocol: speaks };
        metrics.connections_accepted.get_or_create(&label).inc();
        metrics.connections.get_or_create(&label).inc();
        self.0 = speaks;
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        get().connections.get_or_create(&ProtocolLabel { protocol: self.0 }).dec();
    }
}
