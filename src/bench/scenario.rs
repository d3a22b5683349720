//! The scenarios: how connections are started, driven and stopped, and what is measured.
//!
//! Message scenarios (fanout, crowd, latency) run in three stages. First every client connects,
//! registers and joins the room (at most `--connect-parallel` at a time), reading from the start
//! so that the join traffic never backs up. Then, once all have joined, the senders start:
//! unpaced senders write batches as fast as the server takes them; paced ones follow a tokio
//! interval. Last, the run waits until every expected delivery has arrived, or until nothing new
//! has arrived for `--settle` seconds after the last send, or until `--timeout`; then every
//! client is told to stop and hands back its tally.
//!
//! Client 0 to `senders - 1` send; every registered client except a message's own sender is
//! expected to receive it, so expected = sent × (registered − 1). A client the server drops
//! still counts in that: what it missed is lost.
//!
//! Idle connects, registers and holds; churn cycles connect/register/join/quit in parallel
//! workers for a fixed time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::client::{ClientError, Conn, Incoming, Lines, classify, framing, pong};
use super::payload::{self, Arrival, Counts, Tally};
use super::report::{self, Details, Latency, Progress, Report};
use super::{BenchError, Plan, Scenario, sys};

/// Bytes of messages an unpaced sender gathers before one write.
const BATCH_BYTES: usize = 32 * 1024;
/// How often the coordinator looks at the counters.
const TICK: Duration = Duration::from_millis(50);
/// How long stopped clients get to hand back their tallies.
const COLLECT_GRACE: Duration = Duration::from_secs(10);
/// How long a connecting client holds its `--connect-parallel` turn at most. Short: the turn
/// exists because servers with a short listen backlog (ngIRCd's is 10) drop SYNs in a burst, and
/// each dropped SYN costs a 1 s retransmit; but a server that registers users on a timer
/// (InspIRCd 3 answers on its next 1 s tick) would make turns held until registration crawl.
const GATE_HOLD: Duration = Duration::from_millis(20);
/// Highest latency recorded (10 minutes, in microseconds); longer ones count as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Runs the scenario of `plan`.
pub async fn run(plan: &Plan) -> Result<Report, BenchError> {
    match plan.scenario {
        Scenario::Fanout | Scenario::Crowd | Scenario::Latency | Scenario::Idle => connections(plan).await,
        Scenario::Churn => churn(plan).await,
    }
}

/// What every client task shares with the coordinator.
struct Ctx {
    plan: Plan,
    epoch: Instant,
    registered: AtomicUsize,
    registered_senders: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    delivered: AtomicU64,
    sent: AtomicU64,
    senders_done: AtomicUsize,
    first_send_ns: AtomicU64,
    last_delivery_ns: AtomicU64,
    listeners: Mutex<Histogram<u64>>,
    speakers: Mutex<Histogram<u64>>,
    /// Set once every client has joined: senders may start.
    go: watch::Receiver<bool>,
    /// Set when the run is over.
    stop: watch::Receiver<bool>,
    /// Limits the connections being set up at once.
    gate: Semaphore,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ctx {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Keeps the first error for the report.
    fn note_error(&self, error: &ClientError) {
        locked(&self.first_error).get_or_insert_with(|| error.to_string());
    }

    /// Messages sender `id` sends.
    fn quota(&self, id: usize) -> u64 {
        let senders = self.plan.senders.max(1) as u64;
        self.plan.messages / senders + u64::from((id as u64) < self.plan.messages % senders)
    }
}

/// Resolves once the run is over (or the coordinator is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What one client hands back.
#[derive(Default)]
struct Outcome {
    registered: bool,
    sent: u64,
    counts: Counts,
    corrupt: u64,
    disconnected: bool,
}

/// One receiving client's state.
struct Receiver {
    id: usize,
    sender: bool,
    tally: Tally,
    counts: Counts,
    corrupt: u64,
    /// Latencies (µs) of the current read, recorded into the shared histogram per read.
    latencies: Vec<u64>,
    last_error: Option<String>,
    /// Give the read buffer back whenever it empties (idle connections).
    release: bool,
}

/// Starts `plan.clients` connections and runs a message scenario or idle over them.
async fn connections(plan: &Plan) -> Result<Report, BenchError> {
    let rss_before = match (plan.scenario, plan.server_pids.first()) {
        (Scenario::Idle, Some(&pid)) => {
            Some(sys::total_rss_kib(&plan.server_pids).map_err(|source| BenchError::ServerPid { pid, source })?)
        }
        _ => None,
    };
    let server_cpu = sys::total_cpu_time(&plan.server_pids);
    let own_cpu = sys::own_cpu_time();
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        epoch: Instant::now(),
        registered: AtomicUsize::new(0),
        registered_senders: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        delivered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        senders_done: AtomicUsize::new(0),
        first_send_ns: AtomicU64::new(u64::MAX),
        last_delivery_ns: AtomicU64::new(0),
        listeners: Mutex::new(histogram()),
        speakers: Mutex::new(histogram()),
        go,
        stop,
        gate: Semaphore::new(plan.connect_parallel),
    });
    let deadline = ctx.epoch + plan.timeout;
    let mut tasks = JoinSet::new();
    for id in 0..plan.clients {
        tasks.spawn(client(id, ctx.clone()));
    }

    let progress = Progress::new(plan.clients as u64, "connecting");
    let mut timed_out = true;
    let mut tick = tokio::time::interval(TICK);
    while Instant::now() < deadline {
        tick.tick().await;
        let done = ctx.registered.load(Ordering::Relaxed) + ctx.failed.load(Ordering::Relaxed);
        progress.set(done as u64);
        if done >= plan.clients {
            timed_out = false;
            break;
        }
    }
    let connect_time = ctx.epoch.elapsed();
    let registered = ctx.registered.load(Ordering::Relaxed);
    if registered == 0 {
        let _ = stop_tx.send(true);
        let reason = locked(&ctx.first_error)
            .clone()
            .unwrap_or_else(|| format!("none registered within --timeout {}s", plan.timeout.as_secs_f64()));
        return Err(BenchError::NothingConnected { target: plan.target_text.clone(), reason });
    }

    let mut rss_after = None;
    let mut lag_probe = None;
    if let Scenario::Idle = plan.scenario {
        progress.stage(plan.hold.as_millis() as u64, "holding");
        let held = Instant::now();
        while !timed_out && held.elapsed() < plan.hold {
            tick.tick().await;
            progress.set(held.elapsed().as_millis() as u64);
            timed_out = Instant::now() >= deadline;
        }
        rss_after = sys::total_rss_kib(&plan.server_pids).ok();
    } else if !timed_out {
        let senders = ctx.registered_senders.load(Ordering::Relaxed);
        let receivers = registered.saturating_sub(1) as u64;
        progress.stage(plan.messages * receivers, "delivering");
        let _ = go_tx.send(true);
        lag_probe = Some(tokio::spawn(lag(ctx.stop.clone())));
        let mut last_seen = 0;
        let mut quiet_since = Instant::now();
        loop {
            tick.tick().await;
            let delivered = ctx.delivered.load(Ordering::Relaxed);
            progress.set(delivered);
            let sending = ctx.senders_done.load(Ordering::Acquire) < senders;
            let expected = ctx.sent.load(Ordering::Relaxed) * receivers;
            if !sending && delivered >= expected {
                break;
            }
            if sending || delivered != last_seen {
                last_seen = delivered;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= plan.settle {
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
        }
    }
    let server_rss = match plan.scenario {
        Scenario::Idle => None,
        _ if plan.server_pids.is_empty() => None,
        _ => sys::total_rss_kib(&plan.server_pids).ok(),
    };
    let _ = stop_tx.send(true);
    drop(progress);
    let generator_lag = match lag_probe {
        Some(probe) => probe.await.ok().and_then(|lags| Latency::of(&lags)),
        None => None,
    };

    let mut outcomes = Vec::with_capacity(plan.clients);
    let collected = tokio::time::timeout(COLLECT_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
    })
    .await;
    if collected.is_err() {
        tasks.abort_all();
        locked(&ctx.first_error)
            .get_or_insert_with(|| "some clients did not stop in time; their deliveries count as lost".into());
    }

    let wall = ctx.epoch.elapsed();
    let generator_cpu = sys::own_cpu_time().saturating_sub(own_cpu);
    let server_cpu = server_cpu.and_then(|before| Some(sys::total_cpu_time(&plan.server_pids)?.saturating_sub(before)));
    let disconnected = outcomes.iter().filter(|o| o.disconnected).count();
    let details = match (plan.scenario, rss_before) {
        (Scenario::Idle, Some(before)) => Details::Idle(report::Idle {
            hold: plan.hold,
            rss_before_kib: before,
            rss_after_kib: rss_after.unwrap_or(before),
            disconnected,
        }),
        _ => {
            let mut counts = Counts::default();
            let (mut sent, mut corrupt) = (0, 0);
            for outcome in &outcomes {
                counts.merge(outcome.counts);
                sent += outcome.sent;
                corrupt += outcome.corrupt;
            }
            let first = ctx.first_send_ns.load(Ordering::Relaxed);
            let last = ctx.last_delivery_ns.load(Ordering::Relaxed);
            Details::Messages(report::Messages {
                senders: plan.senders,
                size: plan.size,
                rate: plan.rate,
                sent,
                expected: sent * registered.saturating_sub(1) as u64,
                counts,
                corrupt,
                disconnected,
                active: Duration::from_nanos(last.saturating_sub(first)),
                listeners: Latency::of(&locked(&ctx.listeners)),
                speakers: Latency::of(&locked(&ctx.speakers)),
                generator_lag,
                server_rss_kib: server_rss,
            })
        }
    };
    Ok(Report {
        scenario: plan.scenario.name(),
        target: plan.target_text.clone(),
        proto: plan.proto_name(),
        clients: plan.clients,
        registered,
        connect_failed: ctx.failed.load(Ordering::Relaxed),
        first_error: locked(&ctx.first_error).clone(),
        connect_time,
        wall,
        timed_out,
        generator_cpu,
        server_cpu,
        details,
    })
}

/// The generator's scheduling lag until `stop` is set, sampled every millisecond: how many
/// microseconds a task that is ready to run waits for its turn (it yields and times how long
/// until it runs again), on the same runtime as the clients, whose reads wait the same way.
/// (A timer's lateness would not do: tokio's timers round to the millisecond.)
async fn lag(mut stop: watch::Receiver<bool>) -> Histogram<u64> {
    let mut lags = histogram();
    let mut every = tokio::time::interval(Duration::from_millis(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = every.tick() => {
                let ready = Instant::now();
                tokio::task::yield_now().await;
                lags.saturating_record(ready.elapsed().as_micros() as u64);
            }
            _ = stop.changed() => {}
        }
    }
    lags
}

/// One client of a message scenario or of idle, from connecting to the end of the run.
async fn client(id: usize, ctx: Arc<Ctx>) -> Outcome {
    let plan = &ctx.plan;
    let sender = plan.scenario != Scenario::Idle && id < plan.senders;
    let mut outcome = Outcome::default();
    let mut stop = ctx.stop.clone();
    let setup = async {
        let turn = ctx.gate.acquire().await;
        let conn = Conn::open(plan.target(id), plan.source(id), plan.proto).await?;
        let mut lines = Lines::default();
        let nick = format!("b{id}");
        {
            let registering = conn.register(&mut lines, &nick, plan.channel.as_deref());
            tokio::pin!(registering);
            // The turn is given up once registered, or after GATE_HOLD for a server that is
            // slow to answer, so only connection bursts are limited, not registrations.
            let early = tokio::select! {
                registered = &mut registering => Some(registered),
                () = tokio::time::sleep(GATE_HOLD) => None,
            };
            drop(turn);
            match early {
                Some(registered) => registered?,
                None => registering.await?,
            }
        }
        Ok::<_, ClientError>((conn, lines))
    };
    let (conn, mut lines) = tokio::select! {
        setup = setup => match setup {
            Ok(ready) => ready,
            Err(e) => {
                ctx.note_error(&e);
                ctx.failed.fetch_add(1, Ordering::Relaxed);
                return outcome;
            }
        },
        () = stopped(&mut stop) => return outcome,
    };
    outcome.registered = true;
    if sender {
        ctx.registered_senders.fetch_add(1, Ordering::Relaxed);
    }
    ctx.registered.fetch_add(1, Ordering::Relaxed);

    let quota_limit = ctx.quota(0).max(1);
    let mut receiver = Receiver {
        id,
        sender,
        tally: Tally::new(plan.senders, quota_limit),
        counts: Counts::default(),
        corrupt: 0,
        latencies: Vec::new(),
        last_error: None,
        release: plan.scenario == Scenario::Idle,
    };
    let mut sent = 0;
    let reading = receive(&conn, &mut lines, &mut receiver, &ctx);
    let writing = async {
        if sender {
            let mut go = ctx.go.clone();
            if go.wait_for(|g| *g).await.is_ok() {
                transmit(&conn, id, &ctx, &mut sent).await;
            }
            // Release: whoever sees this sender done also sees everything it counted as sent.
            ctx.senders_done.fetch_add(1, Ordering::Release);
        }
    };
    tokio::select! {
        (lost, ()) = async { tokio::join!(reading, writing) } => {
            ctx.note_error(&lost);
            outcome.disconnected = true;
        }
        () = stopped(&mut stop) => {}
    }
    outcome.sent = sent;
    outcome.counts = receiver.counts;
    outcome.corrupt = receiver.corrupt;
    outcome
}

/// Reads until the connection ends (returning why) or the caller stops caring.
async fn receive(conn: &Conn, lines: &mut Lines, rx: &mut Receiver, ctx: &Ctx) -> ClientError {
    let plan = &ctx.plan;
    let mut pongs = Vec::new();
    loop {
        match conn.fill(lines).await {
            Ok(0) => {
                let why = rx.last_error.take();
                return ClientError::Closed(why.unwrap_or_else(|| "without a word".into()));
            }
            Ok(_) => {}
            Err(e) => return e,
        }
        let now = ctx.now_ns();
        let mut new = 0;
        while let Some(line) = lines.next_line() {
            match classify(plan.proto, line) {
                Incoming::Message(text) => {
                    let Some(p) = payload::decode(text, plan.size) else {
                        continue;
                    };
                    if rx.sender && p.sender as usize == rx.id {
                        continue;
                    }
                    if !p.intact {
                        rx.corrupt += 1;
                    }
                    let arrival = rx.tally.record(p.sender, p.seq);
                    rx.counts.add(arrival);
                    if let Arrival::InOrder | Arrival::Reordered = arrival {
                        new += 1;
                        rx.latencies.push(now.saturating_sub(p.sent_ns) / 1_000);
                    }
                }
                Incoming::Ping(params) => pongs.extend_from_slice(&pong(params)),
                Incoming::Error(text) => {
                    rx.last_error = Some(String::from_utf8_lossy(text).into_owned());
                }
                Incoming::Other => {}
            }
        }
        if new > 0 {
            ctx.delivered.fetch_add(new, Ordering::Relaxed);
            ctx.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            let histogram = if rx.sender { &ctx.speakers } else { &ctx.listeners };
            let mut histogram = locked(histogram);
            for &us in &rx.latencies {
                histogram.saturating_record(us);
            }
            drop(histogram);
            rx.latencies.clear();
        }
        if !pongs.is_empty() {
            if let Err(e) = conn.send(&pongs).await {
                return e.into();
            }
            pongs.clear();
        }
        if rx.release {
            lines.release();
        }
    }
}

/// Sends sender `id`'s messages, unpaced in batches or paced by the plan's rate; counts what
/// was written in `sent`.
async fn transmit(conn: &Conn, id: usize, ctx: &Ctx, sent: &mut u64) {
    let plan = &ctx.plan;
    let quota = ctx.quota(id);
    let channel = plan.channel.as_deref().unwrap_or_default();
    let (prefix, suffix) = framing(plan.proto, channel);
    let started = Instant::now();
    let mut sending_until = plan.duration.map(|d| started + d);
    let mut batch = Vec::with_capacity(BATCH_BYTES + plan.size + 64);
    let mut pace = plan.rate.map(|rate| {
        let per_sender = rate / plan.senders as f64;
        let period = Duration::from_secs_f64((1.0 / per_sender).max(0.001));
        // Senders are spread over one period so that their messages do not all coincide; the
        // sending time counts from each one's start, plus a period for timer jitter.
        let offset = period.mul_f64(id as f64 / plan.senders as f64);
        let start = started + offset;
        sending_until = sending_until.map(|until| until + offset + period);
        let mut interval = tokio::time::interval_at(start, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        (interval, start, per_sender)
    });
    while *sent < quota {
        let mut due = quota;
        if let Some((interval, start, per_sender)) = &mut pace {
            interval.tick().await;
            let elapsed = Instant::now().saturating_duration_since(*start);
            due = ((elapsed.as_secs_f64() * *per_sender) as u64 + 1).min(quota);
            if due <= *sent {
                continue;
            }
        }
        if sending_until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        batch.clear();
        let mut n = *sent;
        while n < due && batch.len() < BATCH_BYTES {
            batch.extend_from_slice(&prefix);
            payload::encode(&mut batch, id as u32, n, ctx.now_ns(), plan.size);
            batch.extend_from_slice(suffix);
            n += 1;
        }
        ctx.first_send_ns.fetch_min(ctx.now_ns(), Ordering::Relaxed);
        if conn.send(&batch).await.is_err() {
            break;
        }
        ctx.sent.fetch_add(n - *sent, Ordering::Relaxed);
        *sent = n;
    }
}

/// Churn: workers connect, register, join and quit over and over for the planned time.
async fn churn(plan: &Plan) -> Result<Report, BenchError> {
    let epoch = Instant::now();
    let own_cpu = sys::own_cpu_time();
    let server_cpu = sys::total_cpu_time(&plan.server_pids);
    let run_for = plan.duration.unwrap_or(plan.timeout).min(plan.timeout);
    let until = epoch + run_for;
    let deadline = epoch + plan.timeout;
    let nicks = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let cycles = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let times = Arc::new(Mutex::new(histogram()));
    let mut workers = JoinSet::new();
    for _ in 0..plan.workers {
        let (plan, nicks, failures, cycles) = (plan.clone(), nicks.clone(), failures.clone(), cycles.clone());
        let (first_error, times) = (first_error.clone(), times.clone());
        workers.spawn(async move {
            while Instant::now() < until {
                let n = nicks.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                let cycle = async {
                    let conn = Conn::open(plan.target(n as usize), plan.source(n as usize), plan.proto).await?;
                    let mut lines = Lines::default();
                    conn.register(&mut lines, &format!("c{n}"), plan.channel.as_deref()).await?;
                    conn.quit(&mut lines).await
                };
                match tokio::time::timeout_at(deadline, cycle).await {
                    Ok(Ok(())) => {
                        cycles.fetch_add(1, Ordering::Relaxed);
                        locked(&times).saturating_record(began.elapsed().as_micros() as u64);
                    }
                    Ok(Err(e)) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        locked(&first_error).get_or_insert_with(|| e.to_string());
                        // A refusing server must not turn the bench into a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => break,
                }
            }
        });
    }
    let progress = Progress::new(run_for.as_millis() as u64, "churning");
    let mut tick = tokio::time::interval(TICK);
    while !workers.is_empty() {
        tokio::select! {
            _ = workers.join_next() => {}
            _ = tick.tick() => progress.set(epoch.elapsed().as_millis() as u64),
        }
    }
    drop(progress);
    let elapsed = epoch.elapsed();
    let timed_out = Instant::now() >= deadline;
    let cycles = cycles.load(Ordering::Relaxed);
    let failures = failures.load(Ordering::Relaxed);
    let first_error = locked(&first_error).clone();
    if cycles == 0 {
        return Err(BenchError::NothingConnected {
            target: plan.target_text.clone(),
            reason: first_error.unwrap_or_else(|| {
                format!("no cycle completed within {}s", run_for.as_secs_f64().min(plan.timeout.as_secs_f64()))
            }),
        });
    }
    Ok(Report {
        scenario: plan.scenario.name(),
        target: plan.target_text.clone(),
        proto: plan.proto_name(),
        clients: plan.workers,
        registered: cycles as usize,
        connect_failed: failures as usize,
        first_error,
        connect_time: Duration::ZERO,
        wall: elapsed,
        timed_out,
        generator_cpu: sys::own_cpu_time().saturating_sub(own_cpu),
        server_cpu: server_cpu.and_then(|before| Some(sys::total_cpu_time(&plan.server_pids)?.saturating_sub(before))),
        details: Details::Churn(report::Churn {
            workers: plan.workers,
            cycles,
            failures,
            elapsed,
            cycle: Latency::of(&locked(&times)),
        }),
    })
}
