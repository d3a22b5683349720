//! Soak: the real `charla serve` (a child process, default limits) under thousands of clients
//! on loopback that join, chat, flood, stay silent, read slowly, reset their connections and
//! come back, for a bounded time; then, with every client gone, the server must be back where
//! it started: no file descriptor or thread left over, no user left in the hub, idle, and
//! memory near its baseline. The load runs twice: the first round may leave the allocator
//! holding some freed memory (at most 64 MB), the second must add no more than 8 MB to it
//! (a leak would grow with each round).
//!
//! `CHARLA_SOAK_SECS` sets how long the load runs in all (default 50 s, in two rounds; the
//! whole test takes about 20 s more); `CHARLA_SOAK_CLIENTS` how many clients (default 2,000, fewer when the
//! file descriptor limit does not allow them); `CHARLA_SOAK_LOG=FILE` keeps the server's log.
//! docs/RELIABILITY.md has the figures of runs.
//!
//! Two witnesses chat in a room of their own through all of it: every line one sends, the
//! other must get, in order. Their PING round trips are printed, not asserted (performance is
//! measured by `charla bench`).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Clients per source address: under the default per-address cap (64), as if from many hosts.
const PER_ADDRESS: usize = 50;
/// Rooms the chatting clients spread over.
const ROOMS: usize = 20;

/// What each client does (by its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// IRC: joins a room and says a line every second or two, reading everything.
    IrcChatter,
    /// Plain text (the lab client's way): joins a room and talks, reading everything.
    PlainChatter,
    /// IRC: joins a room and sends 300 lines at once, over the flood limit.
    Flooder,
    /// IRC: registers, then says nothing until the end.
    Silent,
    /// Opens a connection and never sends or reads a byte.
    Mute,
    /// IRC: joins the busiest room and reads 256 bytes a second.
    SlowReader,
    /// Connects, registers, says a line, then resets the connection (SO_LINGER 0), sometimes
    /// in the middle of a line; again and again.
    Resetter,
    /// Connects, joins, says a line and quits; again and again.
    Churner,
}

const KINDS: [Kind; 10] = [
    Kind::IrcChatter,
    Kind::IrcChatter,
    Kind::PlainChatter,
    Kind::PlainChatter,
    Kind::Flooder,
    Kind::Silent,
    Kind::Mute,
    Kind::SlowReader,
    Kind::Resetter,
    Kind::Churner,
];

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    failed_connects: AtomicU64,
    lines_sent: AtomicU64,
    bytes_read: AtomicU64,
    resets: AtomicU64,
    quits: AtomicU64,
}

/// What `/proc` says about the server process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kb: u64,
    fds: usize,
    threads: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the server's fds").count();
    Usage { rss_kb: field("VmRSS:"), fds, threads: field("Threads:") }
}

/// CPU time the process has used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's /proc stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of the line (utime, stime); the name was field 2, state is field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Raises this process's soft file descriptor limit to the hard one (the server, its child,
/// inherits it) and returns it.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// The source address of client `n`: 127.10.x.y, [`PER_ADDRESS`] clients each.
fn source(n: usize) -> IpAddr {
    let host = n / PER_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 10, (host / 250) as u8, (host % 250 + 1) as u8))
}

async fn connect(addr: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Reads until a line containing `needle` (answering PINGs), or fails after [`WAIT`].
async fn read_until(reader: &mut BufReader<TcpStream>, needle: &str) -> std::io::Result<()> {
    let mut line = String::new();
    tokio::time::timeout(WAIT, async {
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(token) = line.strip_prefix("PING ") {
                reader.get_mut().write_all(format!("PONG {token}").as_bytes()).await?;
            }
            if line.contains(needle) {
                return Ok(());
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Opens, registers and joins `room`: an IRC or a plain-text session, ready to talk.
async fn open(
    addr: SocketAddr,
    from: IpAddr,
    nick: &str,
    room: &str,
    irc: bool,
) -> std::io::Result<BufReader<TcpStream>> {
    let stream = connect(addr, from).await?;
    let mut reader = BufReader::new(stream);
    if irc {
        let hello = format!("NICK {nick}\r\nUSER {nick} 0 * :soak\r\nJOIN {room}\r\n");
        reader.get_mut().write_all(hello.as_bytes()).await?;
        read_until(&mut reader, " 366 ").await?;
    } else {
        // Silent until greeted, as a person at `nc` is.
        read_until(&mut reader, "Welcome to the chatroom!").await?;
        reader.get_mut().write_all(format!("/nick {nick}\n/join {room}\n").as_bytes()).await?;
        read_until(&mut reader, &format!("You are now in {room}")).await?;
    }
    Ok(reader)
}

/// Reads and throws away whatever comes, answering PINGs, until `until`.
async fn drain_until(reader: &mut BufReader<TcpStream>, until: tokio::time::Instant, stats: &Stats) {
    let mut line = String::new();
    loop {
        line.clear();
        match tokio::time::timeout_at(until, reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => {
                stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(token) = line.strip_prefix("PING ") {
                    let _ = reader.get_mut().write_all(format!("PONG {token}").as_bytes()).await;
                }
            }
        }
    }
}

/// Ends a connection with a TCP reset instead of a goodbye.
fn reset(stream: TcpStream, stats: &Stats) {
    #[allow(deprecated)] // set_linger: blocking on close is what SO_LINGER 0 avoids anyway.
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
    stats.resets.fetch_add(1, Ordering::Relaxed);
}

async fn client(n: usize, addr: SocketAddr, end: tokio::time::Instant, gate: Arc<Semaphore>, stats: Arc<Stats>) {
    let kind = KINDS[n % KINDS.len()];
    let from = source(n);
    let room = format!("#soak-{}", n % ROOMS);
    let irc = kind != Kind::PlainChatter;
    let mut round = 0u64;
    loop {
        round += 1;
        let nick = format!("s{n}r{round}");
        let opened = {
            // Opening is paced so that thousands of clients do not overflow the listen backlog.
            let _turn = gate.acquire().await.expect("the gate stays open");
            if kind == Kind::Mute {
                connect(addr, from).await.map(BufReader::new)
            } else {
                let room = if kind == Kind::SlowReader { "#soak-0" } else { &room };
                open(addr, from, &nick, room, irc).await
            }
        };
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(_) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                if tokio::time::Instant::now() >= end {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let say = |i: u64| {
            if irc { format!("PRIVMSG {room} :line {i} from {nick}\r\n") } else { format!("line {i} from {nick}\n") }
        };
        match kind {
            Kind::IrcChatter | Kind::PlainChatter => {
                let mut i = 0;
                while tokio::time::Instant::now() < end {
                    i += 1;
                    if reader.get_mut().write_all(say(i).as_bytes()).await.is_err() {
                        break;
                    }
                    stats.lines_sent.fetch_add(1, Ordering::Relaxed);
                    let pause = Duration::from_millis(1000 + (n as u64 * 37 + i * 101) % 1000);
                    drain_until(&mut reader, (tokio::time::Instant::now() + pause).min(end), &stats).await;
                }
            }
            Kind::Flooder => {
                let burst: String = (0..300).map(say).collect();
                if reader.get_mut().write_all(burst.as_bytes()).await.is_ok() {
                    stats.lines_sent.fetch_add(300, Ordering::Relaxed);
                }
                drain_until(&mut reader, end, &stats).await;
            }
            Kind::Silent | Kind::Mute => {
                // Not a byte read: what the server queues for a silent reader stays in the socket.
                tokio::time::sleep_until(end).await;
            }
            Kind::SlowReader => {
                let mut buf = [0u8; 256];
                while tokio::time::Instant::now() < end {
                    match reader.get_mut().read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Kind::Resetter => {
                let line = if round.is_multiple_of(3) { format!("PRIVMSG {room} :half a li") } else { say(1) };
                let _ = reader.get_mut().write_all(line.as_bytes()).await;
                stats.lines_sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50 * (round % 5))).await;
                reset(reader.into_inner(), &stats);
                if tokio::time::Instant::now() < end {
                    continue;
                }
                return;
            }
            Kind::Churner => {
                let bye = format!("{}QUIT :see you\r\n", say(1));
                let _ = reader.get_mut().write_all(bye.as_bytes()).await;
                stats.lines_sent.fetch_add(1, Ordering::Relaxed);
                let _ = read_until(&mut reader, "ERROR").await;
                stats.quits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tokio::time::Instant::now() < end {
                    continue;
                }
                return;
            }
        }
        // The end: some say goodbye, some just close, some reset.
        match n % 3 {
            0 => {
                let bye = if irc { "QUIT :done\r\n" } else { "/quit done\n" };
                let _ = reader.get_mut().write_all(bye.as_bytes()).await;
                stats.quits.fetch_add(1, Ordering::Relaxed);
            }
            1 => reset(reader.into_inner(), &stats),
            _ => drop(reader),
        }
        return;
    }
}

/// Two clients in a room of their own: one says a numbered line every 100 ms, the other must
/// get every one, in order; it also measures PING round trips. Returns (lines, round trips).
async fn witnesses(addr: SocketAddr, end: tokio::time::Instant) -> (u64, Vec<Duration>) {
    let from = IpAddr::V4(Ipv4Addr::new(127, 9, 0, 1));
    let mut speaker = open(addr, from, "witnessA", "#witness", true).await.expect("the speaker connects");
    let listener = open(addr, from, "witnessB", "#witness", true).await.expect("the listener connects");
    let speaking = tokio::spawn(async move {
        let mut said = 0u64;
        let mut every = tokio::time::interval(Duration::from_millis(100));
        while tokio::time::Instant::now() < end {
            every.tick().await;
            said += 1;
            let line = format!("PRIVMSG #witness :w {said}\r\n");
            speaker.get_mut().write_all(line.as_bytes()).await.expect("the speaker is never dropped");
        }
        speaker.get_mut().write_all(b"PRIVMSG #witness :w end\r\nQUIT\r\n").await.expect("the speaker says bye");
        // Leaving as a client should: reading until the server closes. Closing with unread
        // bytes would reset the connection, and the kernel would throw away what the server
        // had not read yet (lines held back by the flood limit stay in the socket).
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(60), speaker.read_to_end(&mut rest)).await;
        closed.expect("the server closes the speaker after its QUIT").expect("the speaker reads to the end");
        said
    });
    // Lines come in through a cancel-safe reader: a PING may be due in the middle of one.
    let (read_half, mut write_half) = listener.into_inner().into_split();
    let mut lines = BufReader::new(read_half).lines();
    let mut heard = 0u64;
    let mut round_trips = Vec::new();
    let mut ping = tokio::time::interval(Duration::from_millis(500));
    let mut sent_ping: Option<Instant> = None;
    let give_up = end + Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(give_up) => {
                let speaker = if speaking.is_finished() { "had finished" } else { "was still speaking" };
                panic!("the witness lines stopped at {heard}; the speaker {speaker}")
            }
            line = lines.next_line() => {
                let line = line.expect("the listener is never dropped").expect("the server keeps the listener");
                if let Some((_, text)) = line.split_once(" :w ") {
                    if text == "end" {
                        break;
                    }
                    heard += 1;
                    assert_eq!(text, heard.to_string(), "a witness line was lost or reordered");
                } else if line.contains("PONG") && let Some(at) = sent_ping.take() {
                    round_trips.push(at.elapsed());
                }
            }
            _ = ping.tick(), if sent_ping.is_none() => {
                write_half.write_all(b"PING :soak\r\n").await.expect("the listener pings");
                sent_ping = Some(Instant::now());
            }
        }
    }
    let said = speaking.await.expect("the speaker finished");
    assert_eq!(heard, said, "every witness line arrived");
    write_half.write_all(b"QUIT\r\n").await.expect("the listener says bye");
    (heard, round_trips)
}

/// Asks the server, as a new IRC client, how many users it has (LUSERS, in the welcome).
async fn users_now(addr: SocketAddr) -> u64 {
    let mut probe =
        BufReader::new(connect(addr, IpAddr::V4(Ipv4Addr::new(127, 9, 0, 2))).await.expect("the probe connects"));
    probe.get_mut().write_all(b"NICK probe\r\nUSER probe 0 * :probe\r\n").await.unwrap();
    let mut line = String::new();
    let users = loop {
        line.clear();
        let read = tokio::time::timeout(WAIT, probe.read_line(&mut line)).await.expect("the welcome comes");
        assert!(read.unwrap() > 0, "the server closed the probe");
        // `:charla 251 probe :There are N users and 0 invisible on 1 servers`
        if let Some(rest) = line.split_once(" 251 ").map(|(_, rest)| rest) {
            break rest.split_whitespace().nth(3).and_then(|n| n.parse().ok()).expect("a user count");
        }
    };
    probe.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    let _ = read_until(&mut probe, "ERROR").await;
    users
}

/// Waits up to `within` for `done` to hold of the server's usage; returns the last reading.
async fn settle(pid: u32, within: Duration, done: impl Fn(&Usage) -> bool) -> Usage {
    let deadline = Instant::now() + within;
    loop {
        let now = usage(pid);
        if done(&now) || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `charla serve 127.0.0.1 0 --data-dir DIR` with every limit at its default, as its own
/// process, once it says where it listens.
async fn serve(data_dir: &std::path::Path) -> ServerProcess {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["serve", "127.0.0.1", "0", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(match std::env::var_os("CHARLA_SOAK_LOG") {
            Some(path) => std::fs::File::create(path).expect("the log file can be written").into(),
            None => std::process::Stdio::null(),
        })
        .kill_on_drop(true)
        .spawn()
        .expect("charla starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("its output")).lines();
    let line = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("charla says where it listens");
    let line = line.expect("its output is readable").expect("charla printed a line");
    let addr = line.strip_prefix("charla listening on ").expect("the listening line").parse().expect("an address");
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    ServerProcess { child, addr }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// How long the server may take to let go of every connection once the clients are gone (a
/// flooder that closed is gone at once, its held-back lines dropped: seconds are plenty on a
/// loaded machine).
const RELEASE: Duration = Duration::from_secs(10);

/// What one round of load left behind, and what it saw on the way.
struct Round {
    peak: Usage,
    after: Usage,
    users: u64,
    idle_ticks: u64,
}

/// Runs `clients` clients against the server for `secs` seconds, waits for them all to be
/// gone, and measures the server.
async fn round(addr: SocketAddr, pid: u32, baseline: Usage, clients: usize, secs: u64) -> Round {
    let started = Instant::now();
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let stats = Arc::new(Stats::default());
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = JoinSet::new();
    for n in 0..clients {
        tasks.spawn(client(n, addr, end, gate.clone(), stats.clone()));
    }
    let witness = tokio::spawn(witnesses(addr, end));

    // The peak, sampled while the load runs.
    let mut peak = baseline;
    while tokio::time::Instant::now() < end {
        let now = usage(pid);
        peak.rss_kb = peak.rss_kb.max(now.rss_kb);
        peak.fds = peak.fds.max(now.fds);
        peak.threads = peak.threads.max(now.threads);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (witness_lines, mut round_trips) = witness.await.expect("the witnesses saw every line");
    while let Some(done) = tokio::time::timeout(WAIT * 3, tasks.join_next()).await.expect("every client ends") {
        done.expect("a client task panicked");
    }
    let load = started.elapsed();

    // Everyone is gone: the server must find out and let go of everything. A flooder's lines
    // held back by the flood limit are still handled after it has closed (300 lines at 10 a
    // second: up to 30 s; issue 12, "A closed connection keeps talking"), so this waits that
    // long, and says how long it took.
    let gone = Instant::now();
    let back = |u: &Usage| u.fds <= baseline.fds && u.threads <= baseline.threads;
    settle(pid, RELEASE, back).await;
    println!("soak: the server let go of every connection {:.1?} after the last client had gone", gone.elapsed());
    let users = users_now(addr).await;
    let after = settle(pid, Duration::from_secs(5), back).await;
    let before_idle = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_ticks = cpu_ticks(pid) - before_idle;

    round_trips.sort();
    let percentile = |p: usize| round_trips.get((round_trips.len() * p / 100).min(round_trips.len().saturating_sub(1)));
    let s = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak: {clients} clients for {load:.0?}: {} connections opened ({} failed to open), {} lines sent, {} MB read, \
         {} resets, {} quits; witness lines {witness_lines}, PING round trip p50 {:?} p99 {:?} max {:?}",
        s(&stats.connections),
        s(&stats.failed_connects),
        s(&stats.lines_sent),
        s(&stats.bytes_read) / 1_000_000,
        s(&stats.resets),
        s(&stats.quits),
        percentile(50),
        percentile(99),
        round_trips.last(),
    );
    println!(
        "soak: server RSS {:.1} MB before, {:.1} MB peak, {:.1} MB after; fds {} / {} / {}; threads {} / {} / {}; \
         idle CPU {idle_ticks} ticks in 2 s; users left {users}",
        mb(baseline.rss_kb),
        mb(peak.rss_kb),
        mb(after.rss_kb),
        baseline.fds,
        peak.fds,
        after.fds,
        baseline.threads,
        peak.threads,
        after.threads,
    );
    assert!(s(&stats.connections) as usize >= clients, "every client connected at least once");
    Round { peak, after, users, idle_ticks }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_clients_leave_nothing_behind() {
    let secs = env_number("CHARLA_SOAK_SECS", 50);
    let fd_limit = raise_fd_limit();
    // Each client costs a descriptor here and one in the server; keep room for everything else.
    let room_for = fd_limit.saturating_sub(300) as usize;
    let clients = (env_number("CHARLA_SOAK_CLIENTS", 2000) as usize).min(room_for);
    assert!(clients >= 100, "the file descriptor limit ({fd_limit}) leaves room for too few clients; raise ulimit -n");

    let dir = TempDir::new();
    let server = serve(&dir.0).await;
    let addr = server.addr;
    let pid = server.child.id().expect("the server runs");

    // Warm up what stays once used (the history reader, worker threads), then take the baseline.
    for i in 0..2 {
        let mut warm = open(addr, IpAddr::V4(Ipv4Addr::new(127, 9, 0, 3)), &format!("warm{i}"), "#soak-0", i == 0)
            .await
            .expect("a warm-up client");
        warm.get_mut().write_all(if i == 0 { b"QUIT\r\n" } else { b"/quit\n" }).await.unwrap();
        let _ = read_until(&mut warm, "disconnected").await;
    }
    assert_eq!(users_now(addr).await, 1, "only the probe is left after the warm-up");
    let baseline = usage(pid);
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;

    // Two rounds of the same load: what the first leaves in memory (allocator arenas keep
    // freed memory) must be bounded, and the second must not add to it (a leak would).
    let rounds =
        [round(addr, pid, baseline, clients, secs / 2).await, round(addr, pid, baseline, clients, secs / 2).await];
    for (i, r) in rounds.iter().enumerate() {
        let n = i + 1;
        assert_eq!(r.users, 1, "round {n}: users left in the hub after every client left (the probe is one)");
        assert!(r.after.fds <= baseline.fds, "round {n}: fds leaked: {} before, {} after", baseline.fds, r.after.fds);
        assert!(
            r.after.threads <= baseline.threads,
            "round {n}: threads leaked: {} before, {} after",
            baseline.threads,
            r.after.threads
        );
        // Idle: under 2 % of one core (no client, no timer due).
        assert!(
            r.idle_ticks * 100 <= ticks_per_second * 2 * 2,
            "round {n}: busy while idle: {} ticks in 2 s",
            r.idle_ticks
        );
    }
    let [first, second] = &rounds;
    assert!(
        first.after.rss_kb <= baseline.rss_kb + 64 * 1024,
        "memory not given back: RSS {:.1} MB before, {:.1} MB peak, {:.1} MB after (64 MB more allowed)",
        mb(baseline.rss_kb),
        mb(first.peak.rss_kb),
        mb(first.after.rss_kb),
    );
    assert!(
        second.after.rss_kb <= first.after.rss_kb + 8 * 1024,
        "memory grows round after round: {:.1} MB after the first, {:.1} MB after the second (8 MB more allowed)",
        mb(first.after.rss_kb),
        mb(second.after.rss_kb),
    );
    let status = server.terminate().await;
    assert!(status.success(), "charla exits cleanly after the soak: {status}");
}
