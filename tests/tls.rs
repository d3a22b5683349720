//! TLS over real sockets: handshakes on the shared port and on a TLS-only port for each inner
//! protocol (plain text, IRC, HTTP, WebSocket), `--tls-required`, `sts`, certificates
//! switched by SIGHUP under a live connection, a self-signed certificate kept across
//! restarts, and `charla connect --tls` pinning a certificate on first use.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use charla::client::tls::{Dial, TlsOptions};
use charla::net::Fingerprint;
use charla::net::tls::{CertSource, SELF_SIGNED_CERT, SELF_SIGNED_KEY};
use charla::server::TlsConfig;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

/// A TLS connection to `addr` that accepts exactly the certificate `fingerprint`.
async fn tls(addr: SocketAddr, fingerprint: Fingerprint) -> Client {
    let options = TlsOptions { fingerprint: Some(fingerprint), client_cert: None, known_servers: PathBuf::new() };
    let dial = Dial::tls("127.0.0.1", addr.port(), options).expect("a TLS dialer");
    Client::over(tokio::time::timeout(WAIT, dial.connect()).await.expect("in time").expect("TLS handshake"))
}

/// A TLS connection attempt that accepts only `fingerprint`; `Err` with the client's message.
async fn try_tls(addr: SocketAddr, fingerprint: Fingerprint) -> Result<Client, String> {
    let options = TlsOptions { fingerprint: Some(fingerprint), client_cert: None, known_servers: PathBuf::new() };
    let dial = Dial::tls("127.0.0.1", addr.port(), options).expect("a TLS dialer");
    match dial.connect().await {
        Ok(stream) => Ok(Client::over(stream)),
        Err(e) => Err(e.to_string()),
    }
}

/// A server in this process with a self-signed certificate in its data directory, taking TLS
/// on its shared port and on one TLS-only port (`addrs[1]`); its certificate's fingerprint.
async fn self_signed_server(required: bool) -> (TestServer, Fingerprint) {
    let mut dir = None;
    let server = start_with(|config| {
        dir = Some(config.data_dir.clone());
        config.tls = Some(TlsConfig {
            cert: CertSource::SelfSigned { dir: config.data_dir.clone(), names: vec!["localhost".into()] },
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            required,
        });
    })
    .await;
    let cert = std::fs::read(dir.unwrap().join(SELF_SIGNED_CERT)).expect("the certificate was kept");
    (server, fingerprint_of_pem(&cert))
}

fn fingerprint_of_pem(pem: &[u8]) -> Fingerprint {
    use pki_types::pem::PemObject;
    let der = pki_types::CertificateDer::from_pem_slice(pem).expect("a PEM certificate");
    Fingerprint::of(&der)
}

/// Over TLS at `addr`: a plain-text user meets a clear-text one in #lobby.
async fn plain_text_inside(addr: SocketAddr, clear: SocketAddr, fingerprint: Fingerprint) {
    let (mut secure, _) = Client::plain_over(tls(addr, fingerprint).await).await;
    let (mut plain, _) = Client::plain(clear).await;
    secure.send("/nick sealed").await;
    secure.expect("You are now known as sealed.").await;
    secure.send("hello over tls").await;
    plain.expect_where(|l| l.contains("sealed") && l.ends_with("hello over tls")).await;
    plain.send("hello in clear").await;
    secure.expect_where(|l| l.ends_with("hello in clear")).await;
}

/// Over TLS at `addr`: an IRC client registers, has user mode +Z and WHOIS says it is secure.
async fn irc_inside(addr: SocketAddr, fingerprint: Fingerprint, nick: &str) {
    let mut irc = Irc::register_over(tls(addr, fingerprint).await, nick, &[]).await;
    irc.send(&format!("MODE {nick}")).await;
    assert_eq!(irc.expect("221").await.params[1], "+Z");
    irc.send(&format!("WHOIS {nick}")).await;
    let secure = irc.expect_any(&["671", "318"]).await;
    assert_eq!(secure.command, "671", "WHOIS says the connection is secure: {secure:?}");
    assert_eq!(secure.params[2], "is using a secure connection");
}

/// Over TLS at `addr`: `/healthz` answers, and the page's WebSocket carries an IRC session.
async fn http_and_websocket_inside(addr: SocketAddr, fingerprint: Fingerprint, nick: &str) {
    let mut http = tls(addr, fingerprint).await;
    http.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    let response = http.until_closed().await;
    assert_eq!(response.first().map(String::as_str), Some("HTTP/1.1 200 OK"), "{response:?}");
    assert_eq!(response.last().map(String::as_str), Some("ok"));

    let options = TlsOptions { fingerprint: Some(fingerprint), client_cert: None, known_servers: PathBuf::new() };
    let stream = Dial::tls("127.0.0.1", addr.port(), options).unwrap().connect().await.expect("TLS handshake");
    let url = format!("wss://localhost:{}/", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("WebSocket over TLS");
    ws.send(Frame::text(format!("NICK {nick}"))).await.unwrap();
    ws.send(Frame::text(format!("USER {nick} 0 * :{nick}"))).await.unwrap();
    ws.send(Frame::text(format!("MODE {nick}"))).await.unwrap();
    let mut modes = None;
    while modes.is_none() {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time").expect("open").unwrap();
        if let Frame::Text(text) = frame
            && let Ok(message) = Message::parse(&text)
            && message.command == "221"
        {
            modes = Some(message.params[1].clone());
        }
    }
    assert_eq!(modes.as_deref(), Some("+Z"), "a WebSocket over TLS is a secure connection");
}

#[tokio::test]
async fn every_protocol_speaks_inside_tls_on_the_shared_port() {
    let (server, fingerprint) = self_signed_server(false).await;
    plain_text_inside(server.addr, server.addr, fingerprint).await;
    irc_inside(server.addr, fingerprint, "shared").await;
    http_and_websocket_inside(server.addr, fingerprint, "webshared").await;

    let mut metrics = tls(server.addr, fingerprint).await;
    metrics.send_raw(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    let lines = metrics.until_closed().await;
    let handshakes = lines.iter().find_map(|l| l.strip_prefix("charla_tls_handshakes_total "));
    assert!(handshakes.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 5), "{handshakes:?}");
}

#[tokio::test]
async fn every_protocol_speaks_inside_tls_on_a_tls_only_port() {
    let (server, fingerprint) = self_signed_server(false).await;
    let tls_port = server.addrs[1];
    plain_text_inside(tls_port, server.addr, fingerprint).await;
    irc_inside(tls_port, fingerprint, "dedicated").await;
    http_and_websocket_inside(tls_port, fingerprint, "webdedicated").await;
}

#[tokio::test]
async fn a_tls_only_port_takes_no_clear_text() {
    let (server, _) = self_signed_server(false).await;
    let mut clear = Client::connect(server.addrs[1]).await;
    clear.send("NICK bob").await;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_to_end(&mut clear.reader, &mut answer))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(answer.first(), Some(&0x15), "a TLS alert, no chat: {answer:?}");
}

/// The chat page as fetched over TLS at `addr`.
async fn page_over_tls(addr: SocketAddr, fingerprint: Fingerprint) -> String {
    let mut http = tls(addr, fingerprint).await;
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", addr.port());
    http.send_raw(request.as_bytes()).await;
    http.until_closed().await.join("\n")
}

#[tokio::test]
async fn the_page_tells_terminal_users_to_use_tls_where_clear_text_is_refused() {
    let (open, fingerprint) = self_signed_server(false).await;
    let (shared, dedicated) = (open.addr.port(), open.addrs[1].port());
    let page = page_over_tls(open.addr, fingerprint).await;
    assert!(page.contains(&format!("nc 127.0.0.1 {shared}\ncharla connect --tls 127.0.0.1 {shared}")), "{page}");
    let page = page_over_tls(open.addrs[1], fingerprint).await;
    assert!(!page.contains("nc 127.0.0.1"), "no nc on a port that speaks only TLS: {page}");
    assert!(page.contains(&format!("<code>charla connect --tls 127.0.0.1 {dedicated}</code>")), "{page}");

    let (required, fingerprint) = self_signed_server(true).await;
    for addr in [required.addr, required.addrs[1]] {
        let page = page_over_tls(addr, fingerprint).await;
        assert!(!page.contains("nc 127.0.0.1"), "no nc where clear text is refused: {page}");
        assert!(page.contains(&format!("charla connect --tls 127.0.0.1 {}", addr.port())), "{page}");
    }
}

#[tokio::test]
async fn a_clear_text_user_sees_no_secure_mark() {
    let (server, _) = self_signed_server(false).await;
    let mut irc = Irc::register(server.addr, "open", &[]).await;
    irc.send("MODE open").await;
    assert_eq!(irc.expect("221").await.params[1], "+");
    irc.send("WHOIS open").await;
    assert_eq!(irc.expect_any(&["671", "318"]).await.command, "318");
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).expect("binds a loopback address");
    socket.connect(to).await.expect("connects")
}

/// Every address this test can connect from is a loopback one (the tests send nothing past
/// this machine), so `--tls-required` is seen letting them in: clear text from 127.0.0.2 as
/// from 127.0.0.1. That a clear-text client from elsewhere is refused, and with which words,
/// is checked by the unit tests of `TlsPolicy::refuses` and of the refusals.
#[tokio::test]
async fn tls_required_still_lets_this_machine_in_over_clear_text() {
    let (server, fingerprint) = self_signed_server(true).await;
    let (_, nick) = Client::plain_over(Client::over(connect_from([127, 0, 0, 2], server.addr).await)).await;
    assert!(nick.starts_with("guest-"));
    Irc::register(server.addr, "local", &[]).await;
    Client::plain_over(tls(server.addr, fingerprint).await).await;
}

/// A server given a certificate by files, as certbot's are (not self-signed to charla).
async fn file_cert_server(dir: &Path) -> TestServer {
    let (cert, key) = make_cert(dir, "one");
    start_with(|config| {
        config.tls = Some(TlsConfig { cert: CertSource::Files { cert, key }, listen: Vec::new(), required: false })
    })
    .await
}

/// Makes a certificate for localhost in `dir` as `NAME.crt` and `NAME.key`; returns both paths.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

#[tokio::test]
async fn sts_is_offered_with_a_real_certificate_only() {
    let dir = TempDir::new();
    let server = file_cert_server(&dir.0).await;
    let fingerprint = fingerprint_of_pem(&std::fs::read(dir.0.join("one.crt")).unwrap());
    let mut clear = Irc { client: Client::connect(server.addr).await, nick: "c".into() };
    let offered = clear.cap_ls().await;
    assert!(offered.contains(&format!("sts=port={}", server.addr.port())), "{offered:?}");
    let mut secure = Irc { client: tls(server.addr, fingerprint).await, nick: "s".into() };
    let offered = secure.cap_ls().await;
    assert!(offered.iter().any(|c| c.starts_with("sts=duration=")), "{offered:?}");

    let (self_signed, fingerprint) = self_signed_server(false).await;
    let mut clear = Irc { client: Client::connect(self_signed.addr).await, nick: "c".into() };
    assert!(!clear.cap_ls().await.iter().any(|c| c.starts_with("sts")), "no sts for a self-signed certificate");
    let mut secure = Irc { client: tls(self_signed.addr, fingerprint).await, nick: "s".into() };
    assert!(!secure.cap_ls().await.iter().any(|c| c.starts_with("sts")));
}

/// `charla serve` as a process, with its standard error's lines to wait for.
struct Served {
    child: tokio::process::Child,
    addr: SocketAddr,
    fingerprint: Option<String>,
    log: mpsc::UnboundedReceiver<String>,
}

impl Served {
    async fn start(data_dir: &Path, args: &[&str]) -> Served {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", "127.0.0.1", "0", "--flood-limit", "off", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("charla starts");
        let (log_lines, log) = mpsc::unbounded_channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let _ = log_lines.send(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addr = None;
        // The banner ends with the certificate's fingerprint.
        let fingerprint = loop {
            let line = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("charla prints its banner");
            let line = line.unwrap().expect("a banner line");
            if let Some(listening) = line.strip_prefix("charla listening on ") {
                addr = addr.or(Some(listening.parse().unwrap()));
            }
            if let Some((_, fp)) = line.split_once("fingerprint: ") {
                break Some(fp.to_string());
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Served { child, addr: addr.expect("a listening line"), fingerprint, log }
    }

    /// Sends SIGHUP and waits for the log line that says what the reload did.
    async fn hangup(&mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
        loop {
            let line = tokio::time::timeout(WAIT, self.log.recv()).await.expect("a reload log line").expect("log");
            // The reload's line for the certificate (see server::reload).
            if line.contains(" tls: ") {
                return line;
            }
        }
    }
}

#[tokio::test]
async fn sighup_switches_the_certificate_while_a_tls_connection_keeps_chatting() {
    let dir = TempDir::new();
    let (cert, key) = make_cert(&dir.0, "live");
    let first_fp = fingerprint_of_pem(&std::fs::read(&cert).unwrap());
    let mut server =
        Served::start(&dir.0.join("data"), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
            .await;
    assert_eq!(server.fingerprint.as_deref(), Some(first_fp.to_string().as_str()), "the banner shows it");
    let mut old = Irc::register_over(tls(server.addr, first_fp).await, "old", &[]).await;
    old.join("#lobby").await;

    let (next_cert, next_key) = make_cert(&dir.0, "renewed");
    let next_fp = fingerprint_of_pem(&std::fs::read(&next_cert).unwrap());
    std::fs::copy(&next_cert, &cert).unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    let said = server.hangup().await;
    assert!(said.contains(&format!("{first_fp} -> {next_fp}")), "{said}");

    let refused = try_tls(server.addr, first_fp).await.err().expect("new handshakes get the new certificate");
    assert!(refused.contains(&next_fp.to_string()), "{refused}");
    let mut new = Irc::register_over(tls(server.addr, next_fp).await, "new", &[]).await;
    new.join("#lobby").await;
    old.send("PRIVMSG #lobby :still here").await;
    assert_eq!(new.expect("PRIVMSG").await.params[1], "still here");
    new.send("PRIVMSG #lobby :welcome back").await;
    assert_eq!(old.expect("PRIVMSG").await.params[1], "welcome back");

    // A broken file on reload: the certificate in use stays.
    std::fs::write(&cert, b"half a file").unwrap();
    let said = server.hangup().await;
    assert!(said.contains("keeping the previous one") && said.contains("no PEM certificate"), "{said}");
    tls(server.addr, next_fp).await;
}

#[tokio::test]
async fn a_self_signed_certificate_is_made_once_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let server = Served::start(&dir.0, &["--tls-self-signed"]).await;
    let first = server.fingerprint.clone().expect("the banner shows the fingerprint");
    let fp = Fingerprint::parse(&first).expect("a SHA-256 fingerprint");
    tls(server.addr, fp).await;
    drop(server);
    let mode = std::fs::metadata(dir.0.join(SELF_SIGNED_KEY)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is its owner's only");
    let again = Served::start(&dir.0, &["--tls-self-signed"]).await;
    assert_eq!(again.fingerprint, Some(first), "the same certificate after a restart");
    tls(again.addr, fp).await;
}

/// `charla connect --tls` in line mode, through pipes, with its known-servers file under
/// `config`: its exit success, standard output and standard error.
async fn connect_tls(config: &Path, addr: SocketAddr, input: &str) -> (bool, String, String) {
    connect_tls_as(config, addr, &[], &[], input).await
}

/// `charla connect --tls` in line mode with more `args` and `env`, `input` on its standard input.
async fn connect_tls_as(
    config: &Path,
    addr: SocketAddr,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = charla_connect(&["--tls", "127.0.0.1", &addr.port().to_string()])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CHARLA_SERVER_PASSWORD")
        .env("XDG_CONFIG_HOME", config)
        .spawn()
        .expect("charla connect starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("charla connect ends").unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn charla_connect_pins_a_certificate_on_first_use_and_refuses_a_changed_one() {
    let dir = TempDir::new();
    let config = dir.0.join("config");
    let (cert, key) = make_cert(&dir.0, "server");
    let mut server =
        Served::start(&dir.0.join("data"), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
            .await;
    let first = server.fingerprint.clone().unwrap();
    let mut watcher = Irc::register(server.addr, "watcher", &[]).await;
    watcher.join("#lobby").await;

    let (ok, out, err) = connect_tls(&config, server.addr, "first words\n").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.starts_with("Welcome to the chatroom!"), "{out}");
    assert!(err.contains(&first), "the fingerprint is shown on first use: {err}");
    assert_eq!(watcher.expect("PRIVMSG").await.params[1], "first words");
    let known = std::fs::read_to_string(config.join("charla/known_servers")).unwrap();
    assert_eq!(known, format!("127.0.0.1:{} {first}\n", server.addr.port()));

    let (ok, out, err) = connect_tls(&config, server.addr, "known now\n").await;
    assert!(ok && err.is_empty(), "{out}\n{err}");
    assert_eq!(watcher.expect("PRIVMSG").await.params[1], "known now");

    let (other_cert, other_key) = make_cert(&dir.0, "other");
    std::fs::copy(&other_cert, &cert).unwrap();
    std::fs::copy(&other_key, &key).unwrap();
    server.hangup().await;
    let (ok, out, err) = connect_tls(&config, server.addr, "should not arrive\n").await;
    assert!(!ok, "refused: {out}");
    assert!(out.is_empty(), "nothing from the server is shown: {out}");
    assert!(err.contains("has CHANGED") && err.contains("known_servers"), "{err}");
    watcher.send("PING :quiet").await;
    assert_eq!(watcher.expect_any(&["PONG", "PRIVMSG"]).await.command, "PONG", "nothing was said");
}

/// A TLS connection that accepts only `server` and shows the client certificate `cert`.
async fn tls_with_cert(addr: SocketAddr, server: Fingerprint, cert: &(PathBuf, PathBuf)) -> Client {
    let options =
        TlsOptions { fingerprint: Some(server), client_cert: Some(cert.clone()), known_servers: PathBuf::new() };
    let dial = Dial::tls("127.0.0.1", addr.port(), options).expect("a TLS dialer");
    Client::over(tokio::time::timeout(WAIT, dial.connect()).await.expect("in time").expect("TLS handshake"))
}

/// `CAP REQ sasl`, `AUTHENTICATE EXTERNAL`, `AUTHENTICATE +`: the 900s answer.
async fn sasl_external(irc: &mut Irc) -> Message {
    irc.send("CAP LS 302").await;
    irc.send("CAP REQ :sasl").await;
    while irc.expect("CAP").await.params[1] != "ACK" {}
    irc.send("AUTHENTICATE EXTERNAL").await;
    assert_eq!(irc.expect("AUTHENTICATE").await.params[..], ["+"]);
    irc.send("AUTHENTICATE +").await;
    irc.expect_any(&["900", "904"]).await
}

#[tokio::test]
async fn a_client_certificate_added_to_an_account_logs_in_with_sasl_external() {
    let (server, server_fp) = self_signed_server(false).await;
    let dir = TempDir::new();
    let cert = make_cert(&dir.0, "carol");
    let cert_fp = fingerprint_of_pem(&std::fs::read(&cert.0).unwrap()).to_string();

    let (mut carol, _) = Client::plain_over(tls_with_cert(server.addr, server_fp, &cert).await).await;
    carol.send("/cert add").await;
    carol.expect("error: log in first (/login NAME PASSWORD), then manage your account's certificates").await;
    carol.send("/nick carol").await;
    carol.send("/register a-long-password").await;
    carol.expect_where(|l| l.starts_with("Account carol registered")).await;
    carol.send("/cert add").await;
    carol
        .expect(&format!("Certificate {cert_fp} added to carol: connecting with it, SASL EXTERNAL logs you in."))
        .await;
    carol.send("/cert list").await;
    carol.expect(&format!("Client certificates of carol: {cert_fp}")).await;
    carol.send("/quit").await;

    let mut irc = Irc { client: tls_with_cert(server.addr, server_fp, &cert).await, nick: "carol".into() };
    let logged_in = sasl_external(&mut irc).await;
    assert_eq!((logged_in.command.as_str(), logged_in.params[2].as_str()), ("900", "carol"), "{logged_in:?}");
    irc.expect("903").await;
    irc.send("CAP END").await;
    irc.send("NICK carol").await;
    irc.send("USER carol 0 * :Carol").await;
    irc.expect("376").await;
    irc.send("WHOIS carol").await;
    let certfp = irc.expect_any(&["276", "318"]).await;
    assert_eq!(certfp.params[2], format!("has client certificate fingerprint {cert_fp}"), "{certfp:?}");

    let mut eve = Irc::register(server.addr, "eve", &[]).await;
    eve.send("WHOIS carol").await;
    let mut seen = Vec::new();
    loop {
        let line = eve.next().await;
        if line.command == "318" {
            break;
        }
        seen.push(line.command);
    }
    assert!(seen.contains(&"330".into()) && !seen.contains(&"276".into()), "{seen:?}");

    let mut bare = Irc { client: tls(server.addr, server_fp).await, nick: "bare".into() };
    let refused = sasl_external(&mut bare).await;
    assert_eq!(refused.command, "904");
    assert!(refused.params[1].contains("no client certificate"), "{refused:?}");

    let stranger = make_cert(&dir.0, "stranger");
    let mut other = Irc { client: tls_with_cert(server.addr, server_fp, &stranger).await, nick: "x".into() };
    let refused = sasl_external(&mut other).await;
    assert_eq!(refused.command, "904");
    assert!(refused.params[1].contains("no account lists the client certificate"), "{refused:?}");

    let mut carol = Irc { client: tls_with_cert(server.addr, server_fp, &cert).await, nick: "carol".into() };
    let again = sasl_external(&mut carol).await;
    assert_eq!(again.command, "900");
    carol.send("CAP END").await;
    carol.send("NICK carol2").await;
    carol.send("USER carol 0 * :Carol").await;
    carol.expect("376").await;
    carol.send(&format!("PRIVMSG NickServ :CERT DEL {}", cert_fp.to_uppercase())).await;
    let notice = carol.expect("NOTICE").await;
    assert_eq!(notice.params[1], format!("Certificate {cert_fp} removed from carol."));
    let mut gone = Irc { client: tls_with_cert(server.addr, server_fp, &cert).await, nick: "y".into() };
    assert_eq!(sasl_external(&mut gone).await.command, "904", "a removed certificate logs in no more");
}

#[tokio::test]
async fn charla_connect_gives_a_private_servers_password_and_logs_in() {
    let dir = TempDir::new();
    let config = dir.0.join("config");
    let password_file = dir.0.join("server-password");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(&password_file, "clubhouse\n").unwrap();
    let server = Served::start(&dir.0.join("data"), &["--tls-self-signed", "--password", "clubhouse"]).await;
    let fingerprint = Fingerprint::parse(server.fingerprint.as_deref().unwrap()).unwrap();
    let mut watcher = tls(server.addr, fingerprint).await;
    watcher.expect("This server is private: type /pass PASSWORD to come in.").await;
    watcher.send("/pass clubhouse").await;
    watcher.expect_where(|l| l.contains("#lobby")).await;
    let pass = ["--password-file", password_file.to_str().unwrap()];

    // A stranger without the password gets nowhere.
    let (_, out, _) = connect_tls_as(&config, server.addr, &[], &[], "let me in\n").await;
    assert!(out.contains("/pass"), "told to give the password: {out}");
    assert!(!out.contains("#lobby"), "and let into nothing: {out}");

    let (ok, out, err) = connect_tls_as(&config, server.addr, &pass, &[], "/nick ana\n/register correct-horse\n").await;
    assert!(ok && out.contains("registered"), "{out}{err}");

    let login = ["--password-file", password_file.to_str().unwrap(), "--login", "ana"];
    let env = [("CHARLA_LOGIN_PASSWORD", "correct-horse")];
    let (ok, out, err) = connect_tls_as(&config, server.addr, &login, &env, "/join #lobby\nhello from ana\n").await;
    assert!(ok && out.contains("logged in as ana"), "{out}{err}");
    watcher.expect("<ana> hello from ana").await;
}
