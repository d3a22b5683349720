//! `charla bench` against a charla server started in this process: a tiny fanout (plain text,
//! IRC over WebSocket, IRC and WebSocket over TLS) delivers every message and says so in its
//! JSON line; targets off this machine are refused.

mod common;

use clap::Parser;
use common::*;

fn args(list: &[&str]) -> charla::bench::Args {
    charla::bench::Args::try_parse_from(std::iter::once("bench").chain(list.iter().copied())).expect("arguments parse")
}

/// A fanout of 5 clients and 200 messages in `proto` against a fresh server: its JSON line (one
/// line, checked), the report and the server's address.
async fn tiny_fanout(proto: &str) -> (serde_json::Value, charla::bench::Report, String) {
    let mut server = start_server_with(test_limits()).await;
    let target = server.addr.to_string();
    let report = charla::bench::execute(args(&[
        "fanout",
        "--target",
        &target,
        "--proto",
        proto,
        "--clients",
        "5",
        "--messages",
        "200",
        "--timeout",
        "20",
    ]))
    .await
    .expect("the bench runs");
    server.stop().await;
    let line = report.json_line();
    assert!(!line.contains('\n'), "one line: {line}");
    (serde_json::from_str(&line).expect("valid JSON"), report, target)
}

/// A fanout of 5 clients and 200 messages with `--tls` in `proto`, aimed at a TLS-only port of
/// a server with a self-signed certificate (clear text would fail there): its JSON line.
async fn tiny_fanout_over_tls(proto: &str) -> serde_json::Value {
    let mut server = start_with(|config| {
        config.tls = Some(charla::server::TlsConfig {
            cert: charla::net::tls::CertSource::SelfSigned {
                dir: config.data_dir.clone(),
                names: vec!["localhost".into()],
            },
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            required: false,
        });
    })
    .await;
    let target = server.addrs[1].to_string();
    let report = charla::bench::execute(args(&[
        "fanout",
        "--target",
        &target,
        "--proto",
        proto,
        "--tls",
        "--clients",
        "5",
        "--messages",
        "200",
        "--timeout",
        "20",
    ]))
    .await
    .expect("the bench runs");
    server.stop().await;
    serde_json::from_str(&report.json_line()).expect("valid JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanouts_over_tls_lose_nothing() {
    for (proto, named) in [("irc", "irc+tls"), ("ws", "ws+tls")] {
        let json = tiny_fanout_over_tls(proto).await;
        assert_eq!(json["proto"], named);
        assert_eq!(json["registered"], 5, "{json}");
        assert_eq!(json["deliveries"], 800, "{json}");
        assert_eq!(json["lost"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_websocket_fanout_loses_nothing() {
    let (json, _, target) = tiny_fanout("ws").await;
    assert_eq!(json["proto"], "ws");
    assert_eq!(json["target"], target.as_str(), "the server's address, not the relay's");
    assert_eq!(json["registered"], 5);
    assert_eq!(json["deliveries"], 800, "{json}");
    assert_eq!(json["lost"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_plain_fanout_loses_nothing() {
    let (json, report, target) = tiny_fanout("plain").await;
    assert_eq!(json["scenario"], "fanout");
    assert_eq!(json["target"], target.as_str());
    assert_eq!(json["proto"], "plain");
    assert_eq!(json["registered"], 5);
    assert_eq!(json["connect_failed"], 0);
    assert_eq!(json["senders"], 1);
    assert_eq!(json["sent"], 200);
    // Every message reaches the four clients that did not send it.
    assert_eq!(json["expected"], 800);
    assert_eq!(json["deliveries"], 800);
    assert_eq!(json["lost"], 0);
    assert_eq!(json["reordered"], 0);
    assert_eq!(json["duplicates"], 0);
    assert_eq!(json["corrupt"], 0);
    assert_eq!(json["disconnected"], 0);
    assert_eq!(json["timed_out"], false);
    assert!(json["deliveries_per_sec"].as_f64().is_some_and(|r| r > 0.0));
    assert!(json["p99_listeners_us"].is_u64());
    assert!(json["generator_cpu_secs"].is_number());
    assert!(report.table().contains("lost 0"));
}

#[tokio::test]
async fn targets_off_this_machine_are_refused() {
    for target in ["10.0.0.1:6667", "192.168.0.10:1313", "[2001:db8::1]:6667"] {
        let refused = charla::bench::execute(args(&["fanout", "--target", target])).await;
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("not a loopback address"), "{message}");
    }
}

#[tokio::test]
async fn idle_needs_the_server_pid() {
    let refused = charla::bench::execute(args(&["idle", "--target", "127.0.0.1:1"])).await;
    let message = refused.expect_err("refused").to_string();
    assert!(message.contains("--server-pid"), "{message}");
}

/// Several targets (the nodes of a cluster) share the connections in turn: two servers each
/// get half of an idle run's clients, and the memory read is the sum of the given processes'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_spread_over_several_targets() {
    let (mut a, mut b) = (start_server_with(test_limits()).await, start_server_with(test_limits()).await);
    let mut watchers = Vec::new();
    for server in [&a, &b] {
        let mut watcher = Irc::register(server.addr, "watcher", &[]).await;
        watcher.join("#idle").await;
        watchers.push(watcher);
    }
    let targets = format!("{},{}", a.addr, b.addr);
    let pid = std::process::id().to_string();
    let report = charla::bench::execute(args(&[
        "idle",
        "--target",
        &targets,
        "--clients",
        "6",
        "--channel",
        "#idle",
        "--server-pid",
        &format!("{pid},{pid}"),
        "--hold",
        "0.1",
    ]))
    .await
    .expect("the bench runs");
    let json: serde_json::Value = serde_json::from_str(&report.json_line()).expect("valid JSON");
    assert_eq!(json["registered"], 6, "{json}");
    assert_eq!(json["target"], targets.as_str());
    let own = charla::bench::sys::rss_kib(std::process::id()).expect("own memory") as f64;
    let before = json["rss_before_kib"].as_f64().expect("memory read");
    assert!(before > own * 1.5, "twice this process's {own} KiB, not once: {before}");
    for watcher in &mut watchers {
        for _ in 0..3 {
            watcher.expect("JOIN").await;
        }
    }
    a.stop().await;
    b.stop().await;
}
