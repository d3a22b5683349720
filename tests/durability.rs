//! Nothing acknowledged is lost: a full disk pauses history without losing what waits, a
//! server killed with `kill -9` under `--ack-when-stored` has stored every message it
//! acknowledged, and a damaged database shows clients a short error, not the server's paths.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};

use charla::store::{Include, Record, RecordKind, Selector, SqliteStore, Store};
use common::{Client, Irc, TempDir, WAIT, start_at};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Everything logged by the servers this test binary runs in-process (the store's writer logs
/// from its own thread, so the subscriber is global).
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("the one subscriber of this test binary");
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop. Mounting needs root (or
/// CAP_SYS_ADMIN); the test fails, rather than skips, without it.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let path = std::env::temp_dir().join(format!("charla-small-disk-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("the mount command runs");
        assert!(status.success(), "this test mounts a small tmpfs to fill it up, which needs root: {status}");
        SmallDisk(path)
    }

    /// Writes files of `chunk` bytes until the disk refuses (ENOSPC); returns them, the last
    /// one partly written.
    fn fill(&self, chunk: usize) -> Vec<PathBuf> {
        let mut files = Vec::new();
        loop {
            let path = self.0.join(format!("filler-{}", files.len()));
            let written = std::fs::write(&path, vec![0x55; chunk]);
            files.push(path);
            if let Err(e) = written {
                assert_eq!(e.raw_os_error(), Some(28), "the disk is full (ENOSPC): {e}");
                return files;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The texts of the messages of `#lobby` stored in `data_dir`, oldest first.
fn stored(data_dir: &Path) -> Vec<String> {
    let store = SqliteStore::open(data_dir).expect("the store opens");
    let records = store.history("#lobby", &Selector::Latest(None), 1_000_000, Include::Messages).unwrap();
    records.into_iter().map(|r| r.text).collect()
}

const PAUSED: &str = "History is paused";
const RESUMED: &str = "History is being written again";

/// Alice says `text` in #lobby and bob hears it; returns the lines alice was sent meanwhile
/// that speak of history (read up to the answer to a `/who`).
async fn say(alice: &mut Client, bob: &mut Client, text: &str) -> Vec<String> {
    alice.send(text).await;
    bob.expect(&format!("<alice> {text}")).await;
    alice.send("/who").await;
    let lines = alice.expect_where(|l| l.contains(" in #lobby")).await;
    lines.into_iter().filter(|l| l.contains("History")).collect()
}

/// The status line and the body of `GET /healthz`.
async fn healthz(addr: std::net::SocketAddr) -> (String, String) {
    let mut http = Client::connect(addr).await;
    http.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    let response = http.until_closed().await;
    (response.first().cloned().unwrap_or_default(), response.last().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_full_disk_pauses_history_says_so_and_loses_nothing() {
    let log = log();
    let disk = SmallDisk::mount("2m");
    let data = disk.0.join("data");
    let mut server = start_at(&data, |_| {}).await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    let mut said = Vec::new();
    assert!(say(&mut alice, &mut bob, "before the disk fills").await.is_empty());
    said.push("before the disk fills".to_string());

    let mut fillers = disk.fill(64 * 1024);
    // Chat goes on. Alice is told when the writer meets the full disk, once per change: the
    // writer's first retry may find room again (it empties the write-ahead log), so the disk
    // is filled again after each notice that history is paused, until it stays paused.
    let mut notices = Vec::new();
    let mut quiet = 0;
    for n in 0.. {
        assert!(n < 5_000, "history did not stay paused: {notices:?}");
        let text = format!("while full {n}");
        let told = say(&mut alice, &mut bob, &text).await;
        said.push(text);
        if told.iter().any(|t| t.contains(PAUSED)) {
            fillers.extend(disk.fill(4 * 1024));
        }
        quiet = if told.is_empty() { quiet + 1 } else { 0 };
        notices.extend(told);
        if quiet == 100 && notices.last().is_some_and(|t| t.contains(PAUSED)) {
            break;
        }
    }
    assert_eq!(healthz(server.addr).await.0, "HTTP/1.1 503 Service Unavailable");
    assert!(healthz(server.addr).await.1.starts_with("degraded"));

    // Free 700 KB, what the test in issue 12 freed, and chat on: the writer tries again within
    // two seconds and history resumes by itself; alice is told when she next speaks.
    let mut freed = 0;
    while freed < 700 * 1024 {
        let filler = fillers.pop().unwrap();
        freed += std::fs::metadata(&filler).map_or(0, |m| m.len());
        let _ = std::fs::remove_file(filler);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "history did not resume within {WAIT:?}");
        let text = format!("freed {n}");
        let told = say(&mut alice, &mut bob, &text).await;
        said.push(text);
        n += 1;
        if !told.is_empty() {
            assert_eq!(told.len(), 1, "{told:?}");
            assert!(told[0].contains(RESUMED), "{told:?}");
            notices.extend(told);
            break;
        }
        // The writer's next try is an event no client can wait for: look again shortly.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(healthz(server.addr).await, ("HTTP/1.1 200 OK".to_string(), "ok".to_string()));
    for n in 0..300 {
        let text = format!("after {n}");
        assert!(say(&mut alice, &mut bob, &text).await.is_empty());
        said.push(text);
    }
    server.stop().await;

    let kept = stored(&data);
    assert_eq!(kept.len(), said.len(), "every message said is stored");
    assert_eq!(kept, said);
    // Told once per change: paused, resumed, paused… never the same twice in a row.
    for (n, notice) in notices.iter().enumerate() {
        assert!(notice.contains(if n % 2 == 0 { PAUSED } else { RESUMED }), "{notices:?}");
    }
    // Logged once per change too.
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let disk_name = disk.0.display().to_string();
    let paused = log.lines().filter(|l| l.contains("history is paused") && l.contains(&disk_name)).count();
    let resumed = log.matches("history is being written again").count();
    assert!(paused >= 1 && paused == resumed, "{paused} pauses, {resumed} resumptions logged: {log}");
    assert!(paused >= notices.len() / 2, "{notices:?}: {log}");
    // A nearly full disk may let a retry through and refuse the next commit a few times
    // before the test fills it again (more often on a loaded machine): a change now and then,
    // never one per message.
    assert!(paused * 4 <= said.len(), "{paused} changes for {} messages: {log}", said.len());
}

/// A database whose message pages are overwritten with noise, its schema and rooms intact.
fn damaged_database(dir: &Path) {
    let store = SqliteStore::open(dir).unwrap();
    for i in 0..5_000u64 {
        let record = Record {
            id: charla::hub::MsgId((1_700_000_000_000 + i) << 20),
            target: "#lobby".into(),
            kind: RecordKind::Privmsg,
            nick: "alice".into(),
            user: "a".into(),
            host: "127.0.0.1".into(),
            text: format!("line {i} of a history that is about to be damaged"),
            extra: String::new(),
            tags: Vec::new(),
            redacted: false,
        };
        store.append(record).unwrap();
    }
    store.flush().wait().unwrap();
    drop(store);
    let path = dir.join(SqliteStore::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let roots: i64 = conn.query_row("SELECT max(rootpage) FROM sqlite_master", [], |row| row.get(0)).unwrap();
    let page: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let from = ((roots + 1) * page) as usize;
    assert!(bytes.len() > from + 10 * page as usize, "the history spans many pages");
    for (i, byte) in bytes[from..].iter_mut().enumerate() {
        *byte = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1];
    }
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test]
async fn a_damaged_database_shows_clients_a_short_error_and_the_log_the_details() {
    let log = log();
    let dir = TempDir::new();
    let made = dir.0.clone();
    std::thread::spawn(move || damaged_database(&made)).join().unwrap();
    let mut server = start_at(&dir.0, |_| {}).await;
    let path = dir.0.display().to_string();

    let mut plain = Client::plain_as(server.addr, "carol").await;
    plain.send("/history 50").await;
    let error = loop {
        let line = plain.line().await;
        if line.contains("history") {
            break line;
        }
    };
    assert!(error.contains("damaged") && !error.contains(&path) && !error.contains("malformed"), "{error}");
    let mut irc = Irc::register(server.addr, "dave", &["draft/chathistory", "batch", "standard-replies"]).await;
    irc.join("#lobby").await;
    irc.send("CHATHISTORY LATEST #lobby * 50").await;
    let fail = irc.expect("FAIL").await;
    assert_eq!(fail.params[..3], ["CHATHISTORY", "MESSAGE_ERROR", "LATEST"], "{fail:?}");
    let text = fail.params.last().unwrap();
    assert!(text.contains("damaged") && !text.contains(&path) && !text.contains("malformed"), "{text}");
    server.stop().await;

    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let details: Vec<&str> = log.lines().filter(|l| l.contains("CHATHISTORY LATEST #lobby failed")).collect();
    assert_eq!(details.len(), 1, "{log}");
    assert!(details[0].contains(&path) && details[0].contains("malformed"), "{}", details[0]);
}

/// A `charla serve` child process on 127.0.0.1, with its port.
struct Child {
    process: tokio::process::Child,
    port: u16,
}

impl Child {
    async fn start(data_dir: &Path, extra: &[&str]) -> Child {
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", "127.0.0.1", "0", "--flood-limit", "off", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("charla starts");
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let banner = tokio::time::timeout(WAIT, lines.next_line()).await.expect("banner in time").unwrap().unwrap();
        let port = banner.rsplit(':').next().and_then(|p| p.trim().parse().ok()).expect(&banner);
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Child { process, port }
    }

    async fn kill9(mut self) {
        self.process.start_kill().unwrap();
        self.process.wait().await.unwrap();
    }
}

/// What one burst ended with.
struct Burst {
    /// The texts echoed (acknowledged), including those still arriving after the kill.
    echoed: Vec<String>,
    /// The texts stored after the kill.
    stored: Vec<String>,
    /// Echoes per second before the kill.
    rate: f64,
}

impl Burst {
    /// Echoed messages missing from the store.
    fn lost(&self) -> usize {
        let stored: std::collections::HashSet<&String> = self.stored.iter().collect();
        self.echoed.iter().filter(|text| !stored.contains(text)).count()
    }
}

/// Sends a burst of `count` messages to #lobby with echo-message on and kills the server with
/// SIGKILL once `kill_after` have been echoed.
async fn burst_and_kill(extra: &[&str], count: usize, kill_after: usize) -> Burst {
    let dir = TempDir::new();
    let child = Child::start(&dir.0, extra).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], child.port));
    let mut irc = Irc::register(addr, "burst", &["echo-message"]).await;
    irc.join("#lobby").await;
    let Client { mut reader, mut writer } = irc.client;
    let lines: String = (0..count).map(|i| format!("PRIVMSG #lobby :burst {i}\r\n")).collect();
    // The burst goes out on its own; a write that fails when the server dies is expected.
    let sending = tokio::spawn(async move {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut writer, lines.as_bytes()).await;
        writer
    });
    let mut echoed = Vec::new();
    let mut killed = Some(child);
    let mut first = None;
    let mut rate = 0.0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(WAIT, reader.read_until(b'\n', &mut line)).await.expect("echoes arrive");
        if n.unwrap_or(0) == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&line);
        if let Some((_, text)) = line.trim_end().split_once(" PRIVMSG #lobby :") {
            echoed.push(text.to_string());
            first.get_or_insert_with(std::time::Instant::now);
        }
        if echoed.len() == kill_after
            && let Some(child) = killed.take()
        {
            rate = kill_after as f64 / first.map_or(1.0, |t| t.elapsed().as_secs_f64());
            child.kill9().await;
        }
    }
    assert!(killed.is_none(), "the server was killed during the burst ({} echoed)", echoed.len());
    let _ = sending.await;
    Burst { echoed, stored: stored(&dir.0), rate }
}

#[tokio::test]
async fn with_ack_when_stored_kill_9_during_a_burst_loses_nothing_acknowledged() {
    let burst = burst_and_kill(&["--ack-when-stored"], 20_000, 5_000).await;
    assert!(burst.echoed.len() >= 5_000, "{}", burst.echoed.len());
    assert_eq!(burst.lost(), 0, "{} echoed, {} stored", burst.echoed.len(), burst.stored.len());
    println!("--ack-when-stored: {} echoed at {:.0}/s, 0 lost", burst.echoed.len(), burst.rate);
    // For the record, the default: acknowledged as soon as delivered, stored a few ms later.
    let burst = burst_and_kill(&[], 200_000, 50_000).await;
    println!(
        "default mode, kill -9 during a burst: {} echoed at {:.0}/s, {} stored, {} echoed but not stored ({:.1} ms of the burst)",
        burst.echoed.len(),
        burst.rate,
        burst.stored.len(),
        burst.lost(),
        burst.lost() as f64 / burst.rate * 1000.0
    );
}
