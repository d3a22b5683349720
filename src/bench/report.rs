//! What a run tells: a summary table for people, one JSON line for scripts, and a progress bar
//! on standard error while it runs (drawn only on a terminal).
//!
//! Loss is always shown, next to what was expected, so a fast number that dropped messages
//! cannot pass for a good one. The bench's own CPU time is shown too: a generator near 100 % of
//! a core is measuring itself, not the server.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};

use super::payload::Counts;

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub proto: &'static str,
    /// Connections asked for.
    pub clients: usize,
    /// Connections that registered (and joined, when a room was asked for).
    pub registered: usize,
    pub connect_failed: usize,
    /// The first error a client met, if any.
    pub first_error: Option<String>,
    /// From the start until every client registered (or failed).
    pub connect_time: Duration,
    /// The whole run.
    pub wall: Duration,
    /// Whether `--timeout` cut the run short.
    pub timed_out: bool,
    /// This process's CPU time during the run.
    pub generator_cpu: Duration,
    /// The server's CPU time during the run (with `--server-pid`).
    pub server_cpu: Option<Duration>,
    pub details: Details,
}

/// What is particular to a kind of scenario.
#[derive(Debug, Clone)]
pub enum Details {
    Messages(Messages),
    Idle(Idle),
    Churn(Churn),
}

/// A message scenario's deliveries.
#[derive(Debug, Clone)]
pub struct Messages {
    pub senders: usize,
    pub size: usize,
    pub rate: Option<f64>,
    pub sent: u64,
    /// Messages sent times the registered clients other than their sender.
    pub expected: u64,
    pub counts: Counts,
    /// Payloads that arrived cut or altered.
    pub corrupt: u64,
    /// Clients the server disconnected during the run.
    pub disconnected: usize,
    /// From the first send to the last delivery.
    pub active: Duration,
    pub listeners: Option<Latency>,
    pub speakers: Option<Latency>,
    /// How late the generator's own timers fired while messages went (a probe asking to wake
    /// every millisecond): its scheduling lag, which every latency above may include. A
    /// latency near this lag is the machine's, not the server's.
    pub generator_lag: Option<Latency>,
    /// The servers' memory (RSS, summed) once the deliveries ended (with `--server-pid`).
    pub server_rss_kib: Option<u64>,
}

/// The idle scenario's memory figures.
#[derive(Debug, Clone)]
pub struct Idle {
    pub hold: Duration,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub disconnected: usize,
}

/// The churn scenario's cycles.
#[derive(Debug, Clone)]
pub struct Churn {
    pub workers: usize,
    pub cycles: u64,
    pub failures: u64,
    pub elapsed: Duration,
    pub cycle: Option<Latency>,
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    /// The percentiles of `histogram` (in microseconds); `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        (!histogram.is_empty()).then(|| Latency {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        })
    }

    fn text(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
            micros(self.p50),
            micros(self.p90),
            micros(self.p99),
            micros(self.p999),
            micros(self.max),
            thousands(self.count)
        )
    }

    fn json(&self, map: &mut Map<String, Value>, who: &str) {
        for (name, value) in
            [("p50", self.p50), ("p90", self.p90), ("p99", self.p99), ("p999", self.p999), ("max", self.max)]
        {
            map.insert(format!("{name}_{who}_us"), json!(value));
        }
    }
}

impl Messages {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.counts.delivered)
    }

    pub fn per_sec(&self) -> f64 {
        per_sec(self.counts.delivered, self.active)
    }
}

impl Idle {
    /// Server memory per registered connection, in bytes.
    pub fn per_conn(&self, registered: usize) -> Option<u64> {
        (registered > 0).then(|| self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024 / registered as u64)
    }
}

fn per_sec(n: u64, over: Duration) -> f64 {
    if over.is_zero() { 0.0 } else { n as f64 / over.as_secs_f64() }
}

fn percent(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() { 0.0 } else { part.as_secs_f64() / whole.as_secs_f64() * 100.0 }
}

/// Rounds to three decimals, for JSON.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Report {
    /// The human summary, one `label  value` row per line.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> =
            vec![("scenario", format!("{} → {} ({})", self.scenario, self.target, self.proto))];
        if !matches!(self.details, Details::Churn(_)) {
            rows.push((
                "connections",
                format!(
                    "{} of {} registered in {:.2} s ({} failed)",
                    thousands(self.registered as u64),
                    thousands(self.clients as u64),
                    self.connect_time.as_secs_f64(),
                    self.connect_failed
                ),
            ));
        }
        match &self.details {
            Details::Messages(m) => {
                let receivers = self.registered.saturating_sub(1);
                rows.push((
                    "messages",
                    format!(
                        "{} sent by {} sender(s), {} bytes each{} → {} expected ({} receivers each)",
                        thousands(m.sent),
                        m.senders,
                        m.size,
                        m.rate.map(|r| format!(", paced at {r} msg/s")).unwrap_or_default(),
                        thousands(m.expected),
                        thousands(receivers as u64)
                    ),
                ));
                rows.push((
                    "delivered",
                    format!(
                        "{}   lost {}   reordered {}   duplicates {}   corrupt {}   disconnected {}",
                        thousands(m.counts.delivered),
                        thousands(m.lost()),
                        thousands(m.counts.reordered),
                        thousands(m.counts.duplicates),
                        thousands(m.corrupt),
                        m.disconnected
                    ),
                ));
                rows.push((
                    "throughput",
                    format!(
                        "{} deliveries/s over {:.3} s (first send to last delivery)",
                        thousands(m.per_sec().round() as u64),
                        m.active.as_secs_f64()
                    ),
                ));
                let none = || "none measured".to_string();
                rows.push(("latency listeners", m.listeners.map(|l| l.text()).unwrap_or_else(none)));
                rows.push(("latency senders", m.speakers.map(|l| l.text()).unwrap_or_else(none)));
                rows.push(("generator lag", m.generator_lag.map(|l| l.text()).unwrap_or_else(none)));
                if let Some(rss) = m.server_rss_kib {
                    rows.push(("server memory", format!("{} KiB once the deliveries ended", thousands(rss))));
                }
            }
            Details::Idle(idle) => {
                rows.push((
                    "server memory",
                    format!(
                        "{} KiB before, {} KiB after {:.1} s held",
                        thousands(idle.rss_before_kib),
                        thousands(idle.rss_after_kib),
                        idle.hold.as_secs_f64()
                    ),
                ));
                rows.push((
                    "per connection",
                    idle.per_conn(self.registered)
                        .map(|b| format!("{} bytes", thousands(b)))
                        .unwrap_or_else(|| "n/a (nothing registered)".into()),
                ));
                rows.push(("disconnected", idle.disconnected.to_string()));
            }
            Details::Churn(churn) => {
                rows.push((
                    "cycles",
                    format!(
                        "{} connect/register/join/quit cycles in {:.2} s by {} workers: {:.1}/s ({} failed)",
                        thousands(churn.cycles),
                        churn.elapsed.as_secs_f64(),
                        churn.workers,
                        per_sec(churn.cycles, churn.elapsed),
                        churn.failures
                    ),
                ));
                rows.push(("cycle time", churn.cycle.map(|l| l.text()).unwrap_or_else(|| "none completed".into())));
            }
        }
        rows.push((
            "generator CPU",
            format!(
                "{:.2} s = {:.0} % of one core over {:.2} s",
                self.generator_cpu.as_secs_f64(),
                percent(self.generator_cpu, self.wall),
                self.wall.as_secs_f64()
            ),
        ));
        if let Some(cpu) = self.server_cpu {
            rows.push((
                "server CPU",
                format!("{:.2} s = {:.0} % of one core", cpu.as_secs_f64(), percent(cpu, self.wall)),
            ));
        }
        if self.timed_out {
            rows.push(("TIMED OUT", "the run hit --timeout; the figures above are partial".into()));
        }
        if let Some(error) = &self.first_error {
            rows.push(("first error", error.clone()));
        }
        let mut out = String::new();
        for (label, value) in rows {
            let _ = writeln!(out, "{label:<18} {value}");
        }
        out
    }

    /// The report as one line of JSON.
    pub fn json_line(&self) -> String {
        let mut map = Map::new();
        let mut put = |key: &str, value: Value| {
            map.insert(key.to_string(), value);
        };
        put("scenario", json!(self.scenario));
        put("target", json!(self.target));
        put("proto", json!(self.proto));
        put("clients", json!(self.clients));
        put("registered", json!(self.registered));
        put("connect_failed", json!(self.connect_failed));
        put("connect_secs", json!(round3(self.connect_time.as_secs_f64())));
        match &self.details {
            Details::Messages(m) => {
                put("senders", json!(m.senders));
                put("size", json!(m.size));
                put("rate", json!(m.rate));
                put("sent", json!(m.sent));
                put("expected", json!(m.expected));
                put("deliveries", json!(m.counts.delivered));
                put("lost", json!(m.lost()));
                put("reordered", json!(m.counts.reordered));
                put("duplicates", json!(m.counts.duplicates));
                put("corrupt", json!(m.corrupt));
                put("foreign", json!(m.counts.foreign));
                put("disconnected", json!(m.disconnected));
                put("active_secs", json!(round3(m.active.as_secs_f64())));
                put("deliveries_per_sec", json!(m.per_sec().round()));
                put("server_rss_kib", json!(m.server_rss_kib));
                if let Some(l) = m.listeners {
                    l.json(&mut map, "listeners");
                }
                if let Some(l) = m.speakers {
                    l.json(&mut map, "senders");
                }
                if let Some(l) = m.generator_lag {
                    l.json(&mut map, "generator_lag");
                }
            }
            Details::Idle(idle) => {
                put("hold_secs", json!(round3(idle.hold.as_secs_f64())));
                put("rss_before_kib", json!(idle.rss_before_kib));
                put("rss_after_kib", json!(idle.rss_after_kib));
                put("rss_per_conn_bytes", json!(idle.per_conn(self.registered)));
                put("disconnected", json!(idle.disconnected));
            }
            Details::Churn(churn) => {
                put("workers", json!(churn.workers));
                put("cycles", json!(churn.cycles));
                put("cycle_failures", json!(churn.failures));
                put("churn_secs", json!(round3(churn.elapsed.as_secs_f64())));
                put("cycles_per_sec", json!(round3(per_sec(churn.cycles, churn.elapsed))));
                if let Some(l) = churn.cycle {
                    l.json(&mut map, "cycle");
                }
            }
        }
        let mut put = |key: &str, value: Value| {
            map.insert(key.to_string(), value);
        };
        put("wall_secs", json!(round3(self.wall.as_secs_f64())));
        put("timed_out", json!(self.timed_out));
        put("generator_cpu_secs", json!(round3(self.generator_cpu.as_secs_f64())));
        put("generator_cpu_pct", json!(percent(self.generator_cpu, self.wall).round()));
        put("server_cpu_secs", json!(self.server_cpu.map(|c| round3(c.as_secs_f64()))));
        put("server_cpu_pct", json!(self.server_cpu.map(|c| percent(c, self.wall).round())));
        put("first_error", json!(self.first_error));
        Value::Object(map).to_string()
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Microseconds, shown in a readable unit.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A progress bar on standard error, hidden when that is not a terminal.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new(len: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        Progress(bar)
    }

    /// Starts a new stage on the same bar.
    pub fn stage(&self, len: u64, what: &str) {
        self.0.set_length(len);
        self.0.set_position(0);
        self.0.set_message(what.to_string());
    }

    pub fn set(&self, position: u64) {
        self.0.set_position(position);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(micros(12), "12 µs");
        assert_eq!(micros(1_500), "1.50 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
    }

    #[test]
    fn json_line_shows_loss() {
        let report = Report {
            scenario: "fanout",
            target: "127.0.0.1:1".into(),
            proto: "irc",
            clients: 3,
            registered: 3,
            connect_failed: 0,
            first_error: None,
            connect_time: Duration::from_millis(10),
            wall: Duration::from_secs(2),
            timed_out: false,
            generator_cpu: Duration::from_secs(1),
            server_cpu: None,
            details: Details::Messages(Messages {
                senders: 1,
                size: 100,
                rate: None,
                sent: 10,
                expected: 20,
                counts: Counts { delivered: 18, ..Counts::default() },
                corrupt: 0,
                disconnected: 0,
                active: Duration::from_secs(1),
                listeners: None,
                speakers: None,
                generator_lag: None,
                server_rss_kib: Some(20_480),
            }),
        };
        let line = report.json_line();
        assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["scenario"], "fanout");
        assert_eq!(value["lost"], 2);
        assert_eq!(value["deliveries_per_sec"], 18.0);
        assert_eq!(value["generator_cpu_pct"], 50.0);
        assert!(line.starts_with(r#"{"scenario":"fanout","target""#));
        assert_eq!(value["server_rss_kib"], 20_480);
        assert!(report.table().contains("lost 2"));
        assert!(report.table().contains("20,480 KiB once the deliveries ended"));
    }
}
