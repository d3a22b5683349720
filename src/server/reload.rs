//! Reloading a running server (SIGHUP): the settings are read again (command line,
//! environment, `--config` file; [`super::settings`]) and each reloadable part takes its new
//! value from them, with one log line saying what changed ("motd: reloaded (12 lines)",
//! "opers: 2 → 3", "limits: unchanged"). A part whose file cannot be read or is not valid
//! keeps its old value and says why. Connections stay open through a reload.
//!
//! The parts are the [`PARTS`] table; making something else reloadable is one entry there
//! and the function it names. What cannot change while the server runs (listen addresses,
//! the data directory, line lengths) is not a part: it takes a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::Config;
use crate::hub;
use crate::net::tls::Tls;
use crate::proto::Shared;
use crate::proto::motd::Motd;

/// One reloadable part: its name in the log, and how it takes its value from the new
/// settings, saying what changed, or why it kept its old value.
pub struct Part {
    pub name: &'static str,
    pub reload: fn(&Config, &Running) -> Result<String, String>,
}

/// What a reload changes: the running server's shared state, and its TLS if it has any.
pub struct Running<'a> {
    pub shared: &'a Shared,
    pub tls: Option<&'a Tls>,
}

/// Everything a reload reloads, in this order.
pub const PARTS: &[Part] = &[
    Part { name: "motd", reload: motd },
    Part { name: "opers", reload: opers },
    Part { name: "limits", reload: limits },
    Part { name: "tls", reload: tls },
];

/// Reloads every part from `config`, logging one line for each.
pub fn reload(config: &Config, running: &Running) {
    for part in PARTS {
        match (part.reload)(config, running) {
            Ok(changed) => tracing::info!("{}: {changed}", part.name),
            Err(why) => tracing::warn!("{}: {why}; keeping the previous one", part.name),
        }
    }
}

/// The message of the day in `file`, or why it cannot be used.
pub fn read_motd(file: &Path) -> Result<Motd, String> {
    Motd::read(file).map_err(|e| format!("cannot read the --motd file {}: {e}", file.display()))
}

fn motd(config: &Config, running: &Running) -> Result<String, String> {
    let shared = running.shared;
    let new = match &config.motd {
        Some(file) => Some(Arc::new(read_motd(file)?)),
        None => None,
    };
    let said = match &new {
        Some(motd) => format!("reloaded ({} lines)", motd.lines.len()),
        None => "none (the built-in one)".into(),
    };
    *shared.motd.write().unwrap_or_else(|e| e.into_inner()) = new;
    Ok(said)
}

/// Every server operator: those of `config` (`--oper`, `CHARLA_OPER`) and those in its
/// `--oper-file`. A bad line is named by its number, never shown: it may hold a password.
pub fn read_opers(config: &Config) -> Result<HashMap<String, String>, String> {
    let mut opers = config.hub.opers.clone();
    if let Some(file) = &config.oper_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the --oper-file {}: {e}", file.display()))?;
        let from_file = opers_in(text.lines(), |n| format!("line {n} of the --oper-file {}", file.display()))?;
        opers.extend(from_file);
    }
    Ok(opers)
}

/// The operators among `items`, one NAME:PASSWORD each (empty items and `#` comments skipped).
/// A bad item is named by its position (`origin` of its number), never shown.
pub fn opers_in<'a>(
    items: impl Iterator<Item = &'a str>,
    origin: impl Fn(usize) -> String,
) -> Result<Vec<(String, String)>, String> {
    let mut opers = Vec::new();
    for (n, item) in items.enumerate() {
        let item = item.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        match item.split_once(':') {
            Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                opers.push((name.to_string(), password.to_string()))
            }
            _ => return Err(format!("{} is not NAME:PASSWORD", origin(n + 1))),
        }
    }
    Ok(opers)
}

fn opers(config: &Config, running: &Running) -> Result<String, String> {
    let shared = running.shared;
    let new = read_opers(config)?;
    let mut hub = hub::lock(&shared.hub);
    let old = hub.config().opers.len();
    let changed = hub.config().opers != new;
    let count = new.len();
    hub.set_opers(new);
    Ok(match (old == count, changed) {
        (_, false) => format!("unchanged ({count})"),
        (true, true) => format!("{count} (passwords or names changed)"),
        (false, true) => format!("{old} → {count}"),
    })
}

/// The limits that can change while clients are connected: connection caps, flood control
/// and queue size (for connections opened from now on), rooms per user, the size above which
/// rooms take newcomers in quietly (joins from now on).
fn limits(config: &Config, running: &Running) -> Result<String, String> {
    let shared = running.shared;
    let new = &config.limits;
    let mut changed = Vec::new();
    {
        let mut limits = shared.limits.write().unwrap_or_else(|e| e.into_inner());
        let show_flood = |f: Option<crate::net::FloodLimit>| {
            f.map_or("off".to_string(), |f| format!("{}/{}", f.per_second, f.burst))
        };
        let mut note = |name: &str, old: String, new: String| {
            if old != new {
                changed.push(format!("{name} {old} → {new}"));
            }
        };
        note("max-conns", limits.max_conns.to_string(), new.max_conns.to_string());
        note("max-conns-per-ip", limits.max_conns_per_ip.to_string(), new.max_conns_per_ip.to_string());
        note("flood-limit", show_flood(limits.flood), show_flood(new.flood));
        note("sendq", limits.sendq.to_string(), new.sendq.to_string());
        limits.max_conns = new.max_conns;
        limits.max_conns_per_ip = new.max_conns_per_ip;
        limits.flood = new.flood;
        limits.sendq = new.sendq;
    }
    shared.limiter.set_caps(new.max_conns, new.max_conns_per_ip);
    let mut hub = hub::lock(&shared.hub);
    let (old_rooms, new_rooms) = (hub.limits().max_rooms_per_user, config.hub.limits.max_rooms_per_user);
    if old_rooms != new_rooms {
        changed.push(format!("max-rooms-per-user {old_rooms} → {new_rooms}"));
        hub.set_max_rooms_per_user(new_rooms);
    }
    let (old_quiet, new_quiet) = (hub.config().quiet_joins_above, config.hub.quiet_joins_above);
    if old_quiet != new_quiet {
        changed.push(format!("quiet-joins-above {old_quiet} → {new_quiet}"));
        hub.set_quiet_joins_above(new_quiet);
    }
    Ok(if changed.is_empty() { "unchanged".into() } else { changed.join(", ") })
}

/// The TLS certificate: its files read again (after certbot renewed it); new handshakes get the
/// new one, connections already open keep theirs.
fn tls(_config: &Config, running: &Running) -> Result<String, String> {
    match running.tls {
        Some(tls) => tls.reload().map_err(|e| e.to_string()),
        None => Ok("off".into()),
    }
}
