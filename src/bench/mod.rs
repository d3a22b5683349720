//! `charla bench`: a load generator for chat servers on this machine — charla (plain text now,
//! IRC once it speaks it) and other IRC servers, so their figures can be compared
//! (`bench/compare.sh` runs it against ngIRCd, InspIRCd and charla).
//!
//! Every target is a loopback address, and every run stops by itself: a scenario sends a fixed
//! number of messages (or for a fixed time) and is cut off at `--timeout`. What did not arrive
//! by then is reported as lost, never hidden.
//!
//! - [`target`]: the loopback check and the source addresses connections are spread over.
//! - [`client`]: one load connection: connect, register (IRC or plain text), read lines in
//!   place from a large buffer, write batches.
//! - [`payload`]: what a message carries (sender, sequence number, send time) and each
//!   receiver's accounting of deliveries, reordering and duplicates.
//! - [`scenario`]: the runs: messages (fanout, crowd, latency), idle, churn.
//! - [`report`]: the summary table, the final JSON line, the progress bar.
//! - [`sys`]: open-file limit, this process's CPU time, the server's RSS and CPU from `/proc`.
//! - [`ws`]: `--proto ws`, the relay that carries the load connections' IRC over WebSocket.
//! - [`tls`](mod@tls): `--tls`, the relay that carries the load connections over TLS.

pub mod client;
pub mod payload;
pub mod report;
pub mod scenario;
pub mod sys;
pub mod target;
pub mod tls;
pub mod ws;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use report::Report;

/// Load-test a chat server on this machine (loopback only).
///
/// Presets: fanout (100 clients, 1 sender, 20,000 messages), crowd (1,000 clients, 10 senders,
/// 5,000 messages), latency (200 clients, 10 senders, 1,000 msg/s for 15 s), idle (10,000
/// registered connections; needs --server-pid), churn (10 workers connecting, joining and
/// quitting for 10 s). Flags override a preset. Prints a summary table, then one JSON line.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "charla bench")]
pub struct Args {
    /// The scenario (a preset that the flags below adjust).
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The server, as ADDR:PORT; must be loopback (127.0.0.0/8, `[::1]` or localhost). Several
    /// nodes of one cluster (`--target A,B,C` or the flag repeated): connection N goes to node
    /// N mod count, so senders and listeners are spread over them.
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// The protocol the load clients speak.
    #[arg(long, value_enum, default_value_t = Proto::Irc)]
    pub proto: Proto,
    /// Reach the server over TLS (WebSocket over TLS with --proto ws), through a relay in this
    /// process; any certificate is accepted. The server needs TLS on its port, e.g.
    /// `charla serve --tls-self-signed`.
    #[arg(long)]
    pub tls: bool,
    /// Connections, senders included.
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,
    /// How many of the clients send.
    #[arg(long, value_name = "N")]
    pub senders: Option<usize>,
    /// Messages in all, shared among the senders.
    #[arg(long, value_name = "N")]
    pub messages: Option<u64>,
    /// Bytes of each message's text.
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// Messages per second over all senders (0: as fast as the server takes them).
    #[arg(long, value_name = "MSG/S")]
    pub rate: Option<f64>,
    /// Seconds of sending (a cap for message scenarios) or of cycling (churn).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Parallel connect/join/quit workers (churn).
    #[arg(long, value_name = "K")]
    pub workers: Option<usize>,
    /// The room the clients join (idle clients join none unless this is given).
    #[arg(long, value_name = "#ROOM")]
    pub channel: Option<String>,
    /// Seconds the idle connections are held before the server's memory is read again.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub hold: f64,
    /// The server's process id; its memory (VmRSS) and CPU time are read from /proc. Required
    /// for idle. With several nodes, each one's (comma-separated or repeated): the report
    /// sums them.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Seconds the whole scenario may take; what has not arrived by then counts as lost.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
    /// Seconds without a new delivery, once sending is over, before the rest counts as lost.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub settle: f64,
    /// Connections being opened at the same time (each holds its turn until registered, or
    /// 20 ms at most).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub connect_parallel: usize,
    /// Source addresses (127.0.0.1, 127.0.0.2, …) to spread connections over; default one per
    /// 20,000 connections.
    #[arg(long, value_name = "N")]
    pub sources: Option<usize>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One sender, many listeners: how fast one room fans out.
    Fanout,
    /// Many clients and several senders in one room.
    Crowd,
    /// A steady paced rate; latency percentiles for listeners and for senders.
    Latency,
    /// Registered connections that say nothing: the server's memory per connection.
    Idle,
    /// Connect, register, join, quit, over and over.
    Churn,
}

/// What the load clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// IRC: NICK/USER, JOIN, PRIVMSG.
    Irc,
    /// charla's plain text: a line is said to the room, /join moves rooms.
    Plain,
    /// IRC over WebSocket, as the web page speaks it (through a relay in this process).
    Ws,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Crowd => "crowd",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
            Scenario::Churn => "churn",
        }
    }
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Irc => "irc",
            Proto::Plain => "plain",
            Proto::Ws => "ws",
        }
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "refusing target {target}: {addr} is not a loopback address; the bench only loads servers on this machine (127.0.0.0/8 or ::1)"
    )]
    NotLoopback { target: String, addr: IpAddr },
    #[error("cannot resolve target '{target}' ({source}); give it as ADDR:PORT, e.g. 127.0.0.1:6667")]
    Resolve { target: String, source: std::io::Error },
    #[error("{0}")]
    Args(String),
    #[error("cannot read process {pid} in /proc ({source}); is --server-pid the server's pid?")]
    ServerPid { pid: u32, source: std::io::Error },
    #[error("cannot start the WebSocket relay on loopback: {0}")]
    Relay(std::io::Error),
    #[error("no client could register with {target}: {reason}; is the server running there?")]
    NothingConnected { target: String, reason: String },
}

/// A scenario with its preset filled in and every value checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    /// The server, or the nodes of one cluster, in the order given.
    pub targets: Vec<SocketAddr>,
    /// The targets as given, for the report.
    pub target_text: String,
    pub proto: Proto,
    /// Over TLS (`--tls`), through the relay in [`tls`](mod@tls).
    pub tls: bool,
    pub clients: usize,
    pub senders: usize,
    /// Messages in all (message scenarios).
    pub messages: u64,
    pub size: usize,
    /// Messages per second over all senders; `None`: unpaced.
    pub rate: Option<f64>,
    /// Cap on the sending time (message scenarios) or the cycling time (churn).
    pub duration: Option<Duration>,
    pub workers: usize,
    pub channel: Option<String>,
    pub hold: Duration,
    /// The server's processes (one per node); empty when not given.
    pub server_pids: Vec<u32>,
    pub timeout: Duration,
    pub settle: Duration,
    pub connect_parallel: usize,
    pub sources: Vec<IpAddr>,
}

/// Longest payload per protocol: an IRC line is 512 bytes with the sender's prefix and the
/// command around the text; charla's plain text takes 4 KiB lines by default.
fn max_size(proto: Proto) -> usize {
    match proto {
        Proto::Irc | Proto::Ws => 400,
        Proto::Plain => 4000,
    }
}

fn seconds(name: &str, secs: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| BenchError::Args(format!("--{name} must be a positive number of seconds")))
}

impl Plan {
    /// Fills in the preset and checks the arguments (the target first: nothing else matters if
    /// it is not loopback).
    pub fn new(args: Args) -> Result<Plan, BenchError> {
        let targets = args.target.iter().map(|t| target::resolve(t)).collect::<Result<Vec<_>, _>>()?;
        let bad = |msg: String| Err(BenchError::Args(msg));
        let (clients, senders, messages, rate, duration, workers) = match args.scenario {
            Scenario::Fanout => (100, 1, 20_000, None, None, 0),
            Scenario::Crowd => (1_000, 10, 5_000, None, None, 0),
            Scenario::Latency => (200, 10, 0, Some(1_000.0), Some(15.0), 0),
            Scenario::Idle => (10_000, 0, 0, None, None, 0),
            Scenario::Churn => (0, 0, 0, None, Some(10.0), 10),
        };
        let clients = args.clients.unwrap_or(clients);
        let senders = args.senders.unwrap_or(senders);
        let rate = match args.rate.or(rate) {
            Some(r) if r.is_finite() && r > 0.0 => Some(r),
            Some(0.0) => None,
            None => None,
            Some(_) => {
                return bad("--rate must be a positive number of messages per second, or 0".into());
            }
        };
        let duration = args.duration.or(duration).map(|d| seconds("duration", d)).transpose()?;
        let messages = match (args.messages, rate, duration) {
            (Some(n), _, _) => n,
            (None, Some(rate), Some(d)) if messages == 0 => (rate * d.as_secs_f64()).round() as u64,
            _ => messages,
        };
        let size = args.size.unwrap_or(100);
        let workers = args.workers.unwrap_or(workers);
        let channel = match (args.channel, args.scenario) {
            (Some(c), _) => Some(c),
            (None, Scenario::Idle) => None,
            (None, _) => Some("#bench".to_string()),
        };
        if let Some(c) = &channel
            && (!c.starts_with('#') || c.len() < 2 || c.contains([' ', ',', '\r', '\n']))
        {
            return bad(format!("'{c}' is not a room name; use e.g. #bench"));
        }
        match args.scenario {
            Scenario::Fanout | Scenario::Crowd | Scenario::Latency => {
                if clients < 2 || senders == 0 || senders > clients {
                    return bad(format!(
                        "{clients} clients with {senders} senders: need at least 2 clients and 1 to {clients} senders"
                    ));
                }
                if messages == 0 {
                    return bad("--messages must be at least 1".into());
                }
                if size > max_size(args.proto) {
                    return bad(format!(
                        "--size {size} is too long for {}: at most {} bytes fit in a line",
                        args.proto.name(),
                        max_size(args.proto)
                    ));
                }
            }
            Scenario::Idle => {
                if clients == 0 {
                    return bad("--clients must be at least 1".into());
                }
                if args.server_pid.is_empty() {
                    return bad("idle measures the server's memory: give its process id with --server-pid PID".into());
                }
                for &pid in &args.server_pid {
                    sys::rss_kib(pid).map_err(|source| BenchError::ServerPid { pid, source })?;
                }
            }
            Scenario::Churn => {
                if workers == 0 {
                    return bad("--workers must be at least 1".into());
                }
            }
        }
        if args.connect_parallel == 0 {
            return bad("--connect-parallel must be at least 1".into());
        }
        let connections = clients.max(workers);
        Ok(Plan {
            scenario: args.scenario,
            sources: target::sources(targets[0], connections, args.sources)?,
            targets,
            target_text: args.target.join(","),
            proto: args.proto,
            tls: args.tls,
            clients,
            senders,
            messages,
            size,
            rate,
            duration,
            workers,
            channel,
            hold: Duration::try_from_secs_f64(args.hold)
                .map_err(|_| BenchError::Args("--hold must be a number of seconds".into()))?,
            server_pids: args.server_pid,
            timeout: seconds("timeout", args.timeout)?,
            settle: seconds("settle", args.settle)?,
            connect_parallel: args.connect_parallel,
        })
    }

    /// The protocol as the report names it: `irc`, `plain`, `ws`, with `+tls` over TLS.
    pub fn proto_name(&self) -> &'static str {
        match (self.proto, self.tls) {
            (Proto::Irc, true) => "irc+tls",
            (Proto::Plain, true) => "plain+tls",
            (Proto::Ws, true) => "ws+tls",
            (proto, false) => proto.name(),
        }
    }

    /// The node connection `n` goes to: the targets in turn.
    pub fn target(&self, n: usize) -> SocketAddr {
        self.targets[n % self.targets.len()]
    }

    /// The source address of connection `n`.
    pub fn source(&self, n: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()])
    }
}

/// Runs a scenario and returns its report without printing it.
pub async fn execute(args: Args) -> Result<Report, BenchError> {
    let mut plan = Plan::new(args)?;
    // Kept until the run ends: the load connections go through them (one per node).
    let (mut _ws_relays, mut _tls_relays) = (Vec::new(), Vec::new());
    for target in &mut plan.targets {
        if plan.proto == Proto::Ws {
            let tls = plan.tls.then(tls::connector).transpose().map_err(BenchError::Relay)?;
            let relay = ws::Relay::start(*target, tls).await.map_err(BenchError::Relay)?;
            *target = relay.addr;
            _ws_relays.push(relay);
        } else if plan.tls {
            let relay = tls::Relay::start(*target).await.map_err(BenchError::Relay)?;
            *target = relay.addr;
            _tls_relays.push(relay);
        }
    }
    // A relayed connection takes three descriptors here: the load connection and the relay's two.
    let per_connection = if plan.proto == Proto::Ws || plan.tls { 3 } else { 1 };
    let wanted = (plan.clients.max(plan.workers) * per_connection) as u64 + 256;
    let limit = sys::raise_open_files(wanted);
    if limit < wanted {
        eprintln!(
            "warning: the open-file limit is {limit}, below the {wanted} this run needs; raise it with `ulimit -n {wanted}`"
        );
    }
    scenario::run(&plan).await
}

/// `charla bench`: runs the scenario, prints the summary table and then one JSON line.
pub async fn run(args: Args) -> Result<(), BenchError> {
    let report = execute(args).await?;
    // A reader that has gone (`charla bench … | head -3`) is no failure of the run.
    let _ = writeln!(std::io::stdout(), "{}{}", report.table(), report.json_line());
    Ok(())
}
