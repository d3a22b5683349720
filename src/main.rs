//! The `charla` command: `serve`, `connect`, `backup`, `migrate-store`, `bench`. An error becomes a message on
//! standard error (each cause said once) and exit code 1.

use std::ffi::OsString;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use charla::net::tls::CertSource;
use charla::net::{FloodLimit, Limits};
use charla::proto::{HistoryConfig, Protocol};
use charla::server::{Config, Server, TlsConfig, settings};
use charla::store::{Retention, StoreLocation};

/// Self-hosted group chat. One server, one port; nc, the original lab client and charla connect
/// all join the same rooms.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a chat server (default: every interface, port 1313, data in ./charla-data).
    ///
    /// Join it with `nc HOST 1313`, `charla connect HOST 1313`, or the original lab client.
    #[command(override_usage = "charla serve [HOST] [PORT] [OPTIONS]", after_help = SETTINGS_HELP)]
    Serve(Box<ServeArgs>),
    /// Join a chat server: a full-screen chat client on a terminal, line mode in a pipe.
    ///
    /// On a terminal it shows rooms, messages and members side by side and speaks IRC, so it
    /// works with other IRC servers too; /help inside lists commands and keys.
    ///
    /// When standard input or output is not a terminal (or with --plain) it is line mode, which
    /// speaks charla's plain-text protocol, like nc: it waits for the server's greeting, sends
    /// /nick and /join for --nick and --join, then sends each input line as it is and prints
    /// everything the server says. At the end of input it stops sending and exits once the
    /// server has closed the connection; it also ends, quietly, when its output is closed.
    Connect(ConnectArgs),
    /// Copy the history (rooms, messages) to FILE: a consistent copy, also while the server
    /// runs.
    ///
    /// To restore it, stop the server, remove charla.db-wal and charla.db-shm from the data
    /// directory if they are there, and copy FILE over DATA_DIR/charla.db.
    Backup(BackupArgs),
    // Its help text is the doc comment of `charla::bench::Args`.
    Bench(charla::bench::Args),
    /// Copy a server's history, rooms, accounts, read markers, certificates, server bans and
    /// guest counter from its SQLite data directory into PostgreSQL, for `serve --store
    /// postgres://…`.
    ///
    /// Stop the server first. The copy is one transaction: the database gets all of it or
    /// nothing. Running it again copies nothing twice; what the database already holds is kept.
    /// It refuses, copying nothing, when the database holds another server's data under the
    /// same names (a message id with another text, an account with another password).
    MigrateStore(MigrateStoreArgs),
}

#[derive(clap::Args)]
struct MigrateStoreArgs {
    /// The store to copy from: sqlite:DIR, the server's data directory (or DIR alone).
    #[arg(long, value_name = "sqlite:DIR")]
    from: String,
    /// The PostgreSQL database to copy into: postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, value_name = "postgres://…")]
    to: String,
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// Server name or address.
    host: String,
    /// Server port.
    #[arg(default_value_t = 1313)]
    port: u16,
    /// Nick to use. Full-screen: default the account of --login, else your login name, else
    /// `guest`, and `_` is appended while it is taken. Line mode: sent as /nick NICK (if it is taken, the server says so and
    /// you keep the guest nick it gave you).
    #[arg(long, value_name = "NICK")]
    nick: Option<String>,
    /// Room to join on connect instead of #lobby. Full-screen: repeatable (--join #dev --join
    /// #ops). Line mode: once, sent as /join #ROOM (a plain-text user is in one room at a time).
    #[arg(long = "join", value_name = "#ROOM")]
    join: Vec<String>,
    /// Line mode even on a terminal: send each input line as it is, print what the server says.
    #[arg(long)]
    plain: bool,
    /// Connect over TLS. A certificate signed by an authority this system trusts is checked as
    /// a browser would; a self-signed one (charla serve --tls-self-signed) is remembered on
    /// first use in ~/.config/charla/known_servers, and a changed one is refused.
    #[arg(long)]
    tls: bool,
    /// Accept only the server certificate with this SHA-256 fingerprint (as `charla serve`
    /// prints it; colons and case do not matter). Implies --tls.
    #[arg(long, value_name = "SHA256", value_parser = parse_fingerprint)]
    tls_fingerprint: Option<charla::net::Fingerprint>,
    /// Show this client certificate (PEM) to the server, to log in with SASL EXTERNAL once its
    /// fingerprint is added to your account; needs --tls-key. Implies --tls.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The server's password, for a private server (charla serve --password): the first line
    /// of FILE. The environment variable CHARLA_SERVER_PASSWORD gives it too.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Log in to the account NAME (SASL PLAIN; /login in line mode), and take NAME as nick
    /// unless --nick says otherwise. The password is asked for on the terminal, or taken from
    /// the environment variable CHARLA_LOGIN_PASSWORD.
    #[arg(long, value_name = "NAME")]
    login: Option<String>,
}

impl ConnectArgs {
    /// The server's password and the account to log in to, as the flags and the environment
    /// give them; asks for the account's password on the terminal when it is not given.
    fn credentials(&self) -> anyhow::Result<charla::client::Credentials> {
        let server_password = match (&self.password_file, std::env::var("CHARLA_SERVER_PASSWORD")) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the --password-file {}", file.display()))?;
                Some(text.lines().next().unwrap_or_default().trim().to_string())
            }
            (None, Ok(password)) => Some(password),
            (None, Err(_)) => None,
        };
        let login = match &self.login {
            Some(account) => {
                let password = match std::env::var("CHARLA_LOGIN_PASSWORD") {
                    Ok(password) => password,
                    Err(_) => rpassword::prompt_password(format!("Password for the account {account}: ")).context(
                        "cannot ask for the account's password on a terminal: set CHARLA_LOGIN_PASSWORD instead",
                    )?,
                };
                Some((account.clone(), password))
            }
            None => None,
        };
        Ok(charla::client::Credentials { server_password, login })
    }
}

fn parse_fingerprint(s: &str) -> Result<charla::net::Fingerprint, String> {
    charla::net::Fingerprint::parse(s)
        .ok_or_else(|| format!("'{s}' is not a SHA-256 fingerprint: 64 hex digits, with or without colons"))
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Where to write the copy (replaced if it exists, only once the copy is complete).
    file: PathBuf,
    /// The data directory of the server to back up.
    #[arg(long, value_name = "DIR", default_value = "charla-data")]
    data_dir: PathBuf,
}

/// How `charla serve --help` ends: where else its options can be set.
const SETTINGS_HELP: &str = "\
Every option can also be set in the environment, as CHARLA_ and its name in capitals with _ for -
(--max-conns 100: CHARLA_MAX_CONNS=100), or in a --config file (TOML), by its name without the
dashes (max-conns = 100; repeatable ones as lists: listen = [\"0.0.0.0:1313\"]; switches as
true or false). The command line wins over the environment, the environment over the file, the
file over the defaults; a list given at one level replaces the lower ones' (operators from
CHARLA_OPER are added to the others). kill -HUP reloads the MOTD, the operators and the limits
that can change while it runs (max-conns, max-conns-per-ip, flood-limit, sendq,
max-rooms-per-user), from the files and the config file as they are then.";

#[derive(clap::Args)]
struct ServeArgs {
    /// Read settings from FILE (TOML: `max-conns = 100`), below the command line and the
    /// environment; see the end of this help. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, as in the original `c_server.py 0.0.0.0 1313`.
    host: Option<IpAddr>,
    /// Port to listen on.
    #[arg(value_parser = parse_port)]
    port: Option<u16>,
    /// The same as PORT.
    #[arg(long = "port", value_name = "PORT", value_parser = parse_port, conflicts_with = "port")]
    port_flag: Option<u16>,
    /// Listen on ADDR:PORT instead of 0.0.0.0:1313 (repeatable; IPv6 as [::]:1313); with HOST or
    /// PORT given, in addition to HOST:PORT.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Also listen for IRC clients only at ADDR:PORT (repeatable), e.g. --irc-listen 0.0.0.0:6667.
    #[arg(long = "irc-listen", value_name = "ADDR:PORT")]
    irc_listen: Vec<SocketAddr>,
    /// Where history and state are kept; created if missing.
    #[arg(long, value_name = "DIR", default_value = "charla-data")]
    data_dir: PathBuf,
    /// Where history, rooms and accounts are kept: `sqlite` (a file in --data-dir, no setup) or
    /// a PostgreSQL database, postgres://USER:PASSWORD@HOST:PORT/DATABASE, which several
    /// nodes can share (its tables are created on first use). The data directory still holds
    /// the self-signed TLS certificate.
    #[arg(long, value_name = "sqlite|postgres://…", default_value = "sqlite")]
    store: StoreLocation,
    /// Longest plain-text line accepted, in bytes; longer lines are refused with an error.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_line)]
    max_line: usize,
    /// Most connections at once (0 = no cap).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_conns)]
    max_conns: usize,
    /// Most connections from one IP address (0 = no cap).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_conns_per_ip)]
    max_conns_per_ip: usize,
    /// Lines per second each client may send, as RATE or RATE/BURST; `off` disables flood control.
    #[arg(long, value_name = "RATE[/BURST]|off", default_value = "10/30", value_parser = parse_flood)]
    flood_limit: Flood,
    /// Messages (or N/4 KiB, counting what is being written) queued for a client before it is
    /// dropped as too slow a reader; one answer it asked for (history) may be bigger.
    #[arg(long, value_name = "N", default_value_t = Limits::default().sendq)]
    sendq: usize,
    /// Recent lines shown when joining a room, to clients that cannot ask for history
    /// themselves (plain text, IRC without chathistory); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = HistoryConfig::default().join_replay)]
    join_replay: usize,
    /// Keep at most N messages per room or private conversation (default: all).
    #[arg(long, value_name = "N")]
    retain_count: Option<usize>,
    /// Keep messages for at most DAYS days (default: forever).
    #[arg(long, value_name = "DAYS")]
    retain_days: Option<u64>,
    /// Most rooms one user may be in at once (IRC `CHANLIMIT`; 0 = no cap). Joining one more is
    /// refused with a message saying to leave one first.
    #[arg(long, value_name = "N", default_value_t = charla::hub::limits::DEFAULT_MAX_ROOMS)]
    max_rooms_per_user: usize,
    /// Rooms with more than N members take newcomers in quietly (delayed join): their join,
    /// part and quit are not sent to the other members until they first speak or act there,
    /// so a crowd coming and going costs no one anything; 0 announces every join, as small
    /// rooms always do.
    #[arg(long, value_name = "N", default_value_t = charla::hub::DEFAULT_QUIET_JOINS_ABOVE)]
    quiet_joins_above: usize,
    /// Acknowledge an IRC client's message (its echo-message echo, its labeled ACK) only once it
    /// is written to history, so that a crash or kill -9 never loses a message its sender saw
    /// accepted. Others receive it at once either way. Costs each sender about one disk commit
    /// (around a millisecond) per message.
    #[arg(long)]
    ack_when_stored: bool,
    /// The name IRC clients see the server by (the source of its lines, WHOIS, WHO, LINKS),
    /// e.g. irc.example.org; default: this machine's host name.
    #[arg(long, value_name = "NAME", value_parser = parse_server_name)]
    server_name: Option<String>,
    /// A server operator as NAME:PASSWORD (repeatable); operators may /kill. Anyone on this
    /// machine can read it with `ps`: prefer --oper-file, or the environment variable
    /// CHARLA_OPER (NAME:PASSWORD, several separated by spaces).
    #[arg(long, value_name = "NAME:PASSWORD", value_parser = parse_oper)]
    oper: Vec<(String, String)>,
    /// Join a cluster of charla nodes through the NATS server at URL (nats://HOST:4222, run with
    /// JetStream: `nats-server -js`): every node started with the same --bus (and the same
    /// --store postgres://…) is one chat: same rooms, nicks and users.
    #[arg(long, value_name = "nats://HOST:PORT")]
    bus: Option<String>,
    /// Server operators from FILE, one NAME:PASSWORD a line (`#` starts a comment line);
    /// keep it readable only by the user running charla. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    oper_file: Option<PathBuf>,
    /// The message of the day from FILE (UTF-8 text), shown to IRC clients when they connect
    /// and to plain-text users after the welcome; lines over 400 bytes are split. Read again
    /// on SIGHUP. Default: a short built-in one for IRC clients.
    #[arg(long, value_name = "FILE")]
    motd: Option<PathBuf>,
    /// Make the server private: IRC clients must send this password (PASS), plain-text users
    /// type /pass PASSWORD before anything else. Visible to `ps`: prefer --password-file or the
    /// environment variable CHARLA_PASSWORD.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// The server password from the first line of FILE (see --password).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Let pages from ORIGIN (scheme://host[:port], e.g. https://chat.example.org) open IRC
    /// WebSocket connections (repeatable; `*` for any). The server's own page is always allowed;
    /// other sites' pages are refused unless listed here.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origin: Vec<String>,
    /// Turn TLS on with this certificate chain (PEM), e.g. certbot's
    /// /etc/letsencrypt/live/HOST/fullchain.pem; needs --tls-key. Every port then takes TLS as
    /// well as clear text (TLS is told by its first byte); SIGHUP reads the files again.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM), e.g. certbot's privkey.pem.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Turn TLS on with a certificate charla makes itself, once, and keeps in the data
    /// directory; clients cannot verify it, `charla connect --tls` remembers it on first use.
    /// Its SHA-256 fingerprint is printed at start, to compare.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Also listen at ADDR:PORT for TLS only (repeatable), e.g. --tls-listen 0.0.0.0:6697 for
    /// IRC clients set to TLS; any protocol is spoken inside. Needs a certificate.
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    tls_listen: Vec<SocketAddr>,
    /// Refuse clear-text connections, except from this machine (loopback), each with a line
    /// saying to connect with TLS (browsers are redirected to https). Needs a certificate.
    #[arg(long)]
    tls_required: bool,
}

/// The environment variable that names server operators, as --oper does; read by
/// [`ServeArgs::opers`], which adds them to the others (several, separated by spaces).
const OPER_ENV: &str = "CHARLA_OPER";

/// The `serve` options whose environment variable is read by the program, not by clap.
const OWN_ENV: &[&str] = &["oper"];

#[derive(Clone, Copy)]
struct Flood(Option<FloodLimit>);

fn parse_flood(s: &str) -> Result<Flood, String> {
    if s.eq_ignore_ascii_case("off") { Ok(Flood(None)) } else { s.parse().map(|l| Flood(Some(l))) }
}

fn parse_server_name(s: &str) -> Result<String, String> {
    if charla::server::valid_server_name(s) {
        Ok(s.into())
    } else {
        Err(format!("'{s}' is not a host name: use letters, digits, '-' and '.', e.g. irc.example.org"))
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("a port is a number from 1 to 65535 (0: any free port), not '{s}'"))
}

/// NAME:PASSWORD; the value is not shown when it is not one: it may hold a password.
fn parse_oper(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, password)) if !name.is_empty() && !password.is_empty() => Ok((name.into(), password.into())),
        _ => Err("an operator is NAME:PASSWORD, a name and a password with a colon between".into()),
    }
}

impl ServeArgs {
    /// The server operators from --oper and CHARLA_OPER (those in the --oper-file are read by
    /// the server, at start and on each reload).
    fn opers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut opers = self.oper.clone();
        if let Some(value) = std::env::var_os(OPER_ENV) {
            let value = value.into_string().map_err(|_| anyhow::anyhow!("{OPER_ENV} is not valid UTF-8"))?;
            let items = value.split_whitespace();
            opers.extend(
                charla::server::reload::opers_in(items, |n| format!("item {n} of {OPER_ENV}"))
                    .map_err(anyhow::Error::msg)?,
            );
        }
        Ok(opers)
    }

    /// Of --password and --password-file, both given at different levels (say, one in the
    /// environment, one in the config file), the higher one's; both at the same level is a
    /// mistake.
    fn pick_password(&mut self, matches: &ArgMatches) -> anyhow::Result<()> {
        if self.password.is_none() || self.password_file.is_none() {
            return Ok(());
        }
        let (given, file) = (matches.value_source("password"), matches.value_source("password_file"));
        if given == file {
            anyhow::bail!(
                "both --password and --password-file are given (the same way, e.g. both on the command line): keep one"
            );
        }
        if given > file {
            self.password_file = None;
        } else {
            self.password = None;
        }
        Ok(())
    }

    /// The server password: from --password or --password-file (or their CHARLA_ variables,
    /// or the config file).
    fn password(&self) -> anyhow::Result<Option<String>> {
        let password = if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the --password-file {}", file.display()))?;
            Some(text.lines().next().unwrap_or_default().trim().to_string())
        } else {
            self.password.clone()
        };
        if password.as_deref().is_some_and(|p| p.is_empty() || p.contains(' ')) {
            anyhow::bail!("the server password must be one word, not empty");
        }
        Ok(password)
    }

    fn config(self) -> anyhow::Result<Config> {
        let opers = self.opers()?;
        let password = self.password()?;
        let mut listen = self.listen;
        let port = self.port.or(self.port_flag);
        if listen.is_empty() || self.host.is_some() || port.is_some() {
            let host = self.host.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            listen.insert(0, SocketAddr::new(host, port.unwrap_or(1313)));
        }
        let limits = Limits {
            max_line: self.max_line,
            max_conns: self.max_conns,
            max_conns_per_ip: self.max_conns_per_ip,
            flood: self.flood_limit.0,
            sendq: self.sendq,
            ..Limits::default()
        };
        let hub = charla::hub::HubConfig {
            opers: opers.into_iter().collect(),
            password,
            limits: charla::hub::limits::HubLimits {
                max_rooms_per_user: self.max_rooms_per_user,
                ..Default::default()
            },
            quiet_joins_above: self.quiet_joins_above,
            ..Default::default()
        };
        let history = HistoryConfig {
            join_replay: self.join_replay,
            retention: Retention {
                max_per_target: self.retain_count,
                max_age: self.retain_days.map(|days| std::time::Duration::from_secs(days * 86_400)),
            },
            ack_when_stored: self.ack_when_stored,
            ..HistoryConfig::default()
        };
        let server_name = self.server_name.unwrap_or_else(charla::server::host_name);
        let cert = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(CertSource::Files { cert, key }),
            _ if self.tls_self_signed => Some(CertSource::SelfSigned {
                dir: self.data_dir.clone(),
                names: vec![server_name.clone(), "localhost".into(), "127.0.0.1".into(), "::1".into()],
            }),
            _ => None,
        };
        if cert.is_none() && (!self.tls_listen.is_empty() || self.tls_required) {
            anyhow::bail!(
                "--tls-listen and --tls-required need a certificate: give --tls-cert FILE --tls-key FILE, or --tls-self-signed"
            );
        }
        let tls = cert.map(|cert| TlsConfig { cert, listen: self.tls_listen, required: self.tls_required });
        Ok(Config {
            listen,
            irc_listen: self.irc_listen,
            data_dir: self.data_dir,
            store: self.store,
            limits,
            hub,
            history,
            server_name,
            allowed_origins: self.allowed_origin,
            oper_file: self.oper_file,
            motd: self.motd,
            tls,
            bus: self.bus,
        })
    }
}

/// Reads the command line `args`, with the `CHARLA_*` environment variables and the `--config`
/// file below it ([`settings`]).
fn parse_cli(args: &[OsString]) -> anyhow::Result<Cli> {
    let command = Cli::command().mut_subcommand("serve", |serve| settings::from_env(serve, OWN_ENV));
    let matches = command.clone().try_get_matches_from(args)?;
    let file = match matches.subcommand() {
        Some(("serve", serve)) => serve.get_one::<PathBuf>("config").cloned(),
        _ => None,
    };
    let matches = match file {
        Some(file) => {
            let serve = command.find_subcommand("serve").expect("serve is a subcommand").clone();
            let serve = settings::from_file(serve, &file)?;
            command.mut_subcommand("serve", |_| serve).try_get_matches_from(args)?
        }
        None => matches,
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Serve(serve), Some(("serve", serve_matches))) = (&mut cli.command, matches.subcommand()) {
        serve.pick_password(serve_matches)?;
    }
    Ok(cli)
}

/// The server's settings as they are now: the same command line, read again with the
/// environment and the config file as they are now (for a reload).
fn serve_config(args: &[OsString]) -> Result<Config, String> {
    let one_line = |error: anyhow::Error| match error.downcast_ref::<clap::Error>() {
        Some(clap) => clap.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string(),
        None => format!("{error:#}"),
    };
    match parse_cli(args).map_err(one_line)?.command {
        Command::Serve(serve) => serve.config().map_err(one_line),
        _ => Err("the command line is not charla serve's".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse_cli(&args) {
        Ok(cli) => cli,
        Err(error) => match error.downcast::<clap::Error>() {
            Ok(usage) => usage.exit(),
            Err(error) => {
                let _ = writeln!(std::io::stderr(), "{}", report(&error));
                return ExitCode::FAILURE;
            }
        },
    };
    match run(cli, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Standard error may be closed too; there is no one left to tell then.
            let _ = writeln!(std::io::stderr(), "{}", report(&error));
            ExitCode::FAILURE
        }
    }
}

/// `Error: MESSAGE`, then each cause the message does not already say, one a line. charla's
/// own errors name their cause in their message, so most reports are one line.
fn report(error: &anyhow::Error) -> String {
    let mut report = format!("Error: {error}");
    for cause in error.chain().skip(1).map(ToString::to_string) {
        if !report.contains(&cause) {
            report.push_str(&format!("\n  because: {cause}"));
        }
    }
    report
}

fn run(cli: Cli, command_line: Vec<OsString>) -> anyhow::Result<()> {
    // Before any thread exists: finding the local time zone is not thread-safe.
    let utc_offset = charla::client::local_offset();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            // rustls warns of what clients do (irssi sends an IP address as the TLS server name,
            // on every connection); a failed handshake is logged by charla itself. The engines'
            // drivers narrate at info what charla says once in its own words (PostgreSQL's
            // notices of a migration another node already ran, NATS's connects).
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rustls=error,tokio_postgres=warn,async_nats=warn".into());
            let _log = charla::logging::init(filter);
            charla::panics::install();
            runtime.block_on(serve(config, move || serve_config(&command_line)))
        }
        Command::Connect(args) => {
            let credentials = args.credentials()?;
            let client_cert = args.tls_cert.zip(args.tls_key);
            let tls = (args.tls || args.tls_fingerprint.is_some() || client_cert.is_some()).then(|| {
                charla::client::tls::TlsOptions {
                    fingerprint: args.tls_fingerprint,
                    client_cert,
                    known_servers: charla::client::tls::known_servers_file(),
                }
            });
            let options = charla::client::Options {
                credentials,
                host: args.host,
                port: args.port,
                nick: args.nick,
                join: args.join,
                plain: args.plain,
                utc_offset,
                tls,
            };
            let result = runtime.block_on(charla::client::run(options));
            // Line mode reads standard input on a thread that no one can interrupt; waiting for
            // it would hang the exit until the next input line.
            runtime.shutdown_background();
            Ok(result?)
        }
        Command::Bench(args) => Ok(runtime.block_on(charla::bench::run(args))?),
        Command::MigrateStore(args) => {
            let dir = PathBuf::from(args.from.strip_prefix("sqlite:").unwrap_or(&args.from));
            let file = dir.join(charla::store::SqliteStore::FILE_NAME);
            if !file.is_file() {
                anyhow::bail!(
                    "there is no {} in {}: give the stopped server's data directory as --from sqlite:DIR",
                    charla::store::SqliteStore::FILE_NAME,
                    dir.display()
                );
            }
            let copied = charla::store::postgres::copy_from_sqlite(&dir, &args.to)?;
            say(format_args!("copied {} into PostgreSQL:\n{copied}", file.display()));
            Ok(())
        }
        Command::Backup(args) => {
            let bytes = charla::store::SqliteStore::backup(&args.data_dir, &args.file)?;
            say(format_args!(
                "backed up {} to {} ({} KiB)",
                args.data_dir.join(charla::store::SqliteStore::FILE_NAME).display(),
                args.file.display(),
                bytes.div_ceil(1024)
            ));
            Ok(())
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM; on each SIGHUP, reloads it with the settings
/// `reconfigure` reads.
async fn serve(
    config: Config,
    reconfigure: impl Fn() -> Result<Config, String> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    // Before the banner: whoever reads it may stop or reload the server at once.
    let shutdown = shutdown_signal()?;
    charla::memory::tune();
    let mut hangups =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    let server = Server::bind(config).await?;
    let reloader = server.reloader();
    let reconfigure = std::sync::Arc::new(reconfigure);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let (reloader, reconfigure) = (reloader.clone(), reconfigure.clone());
            // Reading files and taking the hub's lock: off the async workers.
            let _ = tokio::task::spawn_blocking(move || reloader.reload(reconfigure())).await;
        }
    });
    let charla = own_command();
    let tls = server.tls_fingerprint();
    let required = server.tls_required();
    for (addr, protocol) in server.listeners() {
        let shown = if addr.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), addr.port()) } else { addr };
        let (host, port) = (shown.ip(), shown.port());
        let url_host = if host.is_ipv6() { format!("[{host}]") } else { host.to_string() };
        match protocol {
            Some(Protocol::Tls) => {
                say(format_args!("charla listening on {addr} for TLS only (any protocol inside)"));
                say(format_args!(
                    "  join with:  {charla} connect --tls {host} {port}   |   any IRC client with TLS: {host}/{port}"
                ));
                say(format_args!("  or open in a browser:  https://{url_host}:{port}/"));
            }
            Some(Protocol::Irc) => {
                say(format_args!("charla listening on {addr} for IRC clients only"));
                say(format_args!(
                    "  join with:  irssi -c {host} -p {port}   |   any IRC client: {host}/{port}   (not nc: this port speaks IRC only)"
                ));
            }
            // Clear text is for this machine only: others are shown the ways in with TLS.
            _ if required => {
                say(format_args!("charla listening on {addr}"));
                say(format_args!(
                    "  join with:  {charla} connect --tls {host} {port}   |   any IRC client with TLS: {host}/{port}"
                ));
                say(format_args!("  or open in a browser:  https://{url_host}:{port}/"));
                say(format_args!("  (TLS required: nc and http:// work only from this machine)"));
            }
            _ => {
                say(format_args!("charla listening on {addr}"));
                say(format_args!(
                    "  join with:  nc {host} {port}   |   {charla} connect {host} {port}   |   any IRC client: {host}/{port}"
                ));
                say(format_args!("  or open in a browser:  http://{url_host}:{port}/"));
                if tls.is_some() {
                    say(format_args!(
                        "  with TLS:  {charla} connect --tls {host} {port}   |   https://{url_host}:{port}/"
                    ));
                }
            }
        }
    }
    if let Some((fingerprint, self_signed)) = tls {
        let kind = if self_signed { "self-signed " } else { "" };
        say(format_args!("TLS {kind}certificate SHA-256 fingerprint: {fingerprint}"));
        tracing::info!("TLS {kind}certificate SHA-256 fingerprint: {fingerprint}");
    }
    server.run(shutdown).await;
    say(format_args!("charla stopped"));
    Ok(())
}

/// How to run this very program from a shell here: `charla` when that is what PATH finds,
/// else its path (after `cargo run`, `./target/release/charla`).
fn own_command() -> String {
    let Some(me) = std::env::current_exe().ok().and_then(|me| me.canonicalize().ok()) else { return "charla".into() };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("charla")).find(|candidate| candidate.is_file())
    });
    if on_path.and_then(|found| found.canonicalize().ok()).is_some_and(|found| found == me) {
        return "charla".into();
    }
    let shown = match std::env::current_dir().ok().and_then(|here| me.strip_prefix(here).ok().map(PathBuf::from)) {
        Some(inside) => format!("./{}", inside.display()),
        None => me.display().to_string(),
    };
    if shown.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("'{}'", shown.replace('\'', r"'\''"))
    } else {
        shown
    }
}

/// Prints a line of the server's own output. Standard output may be a pipe whose reader is
/// gone (`charla serve | tee log`, tee stopped): the line is lost then, and the server goes on.
fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Watches for Ctrl-C (SIGINT) and SIGTERM from now on; the future resolves on either.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_each_cause_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let repeated = anyhow::Error::from(charla::server::ServerError::DataDir { dir: "d".into(), source: io() });
        assert_eq!(
            report(&repeated),
            "Error: cannot use data directory d: permission denied (pick a writable one with --data-dir)"
        );
        let wrapped = anyhow::Error::from(io()).context("cannot start the async runtime");
        assert_eq!(report(&wrapped), "Error: cannot start the async runtime\n  because: permission denied");
    }
}
