//! Where the load goes: the target address (loopback only, always) and the source addresses
//! connections are spread over.
//!
//! The bench is for servers on this machine. Every address a target name resolves to must be in
//! 127.0.0.0/8 or be `::1`; anything else is refused before a single connection is made.
//!
//! One source address has about 28,000 ephemeral ports, so past [`PER_SOURCE`] connections the
//! load is spread over 127.0.0.1, 127.0.0.2, … (each connection binds its source before
//! connecting). Linux routes the whole 127.0.0.0/8 to the loopback interface, so these need no
//! setup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use super::BenchError;

/// Connections per source address before another one is used.
pub const PER_SOURCE: usize = 20_000;

/// Resolves `target` (`ADDR:PORT` or `localhost:PORT`) and checks that it is loopback.
pub fn resolve(target: &str) -> Result<SocketAddr, BenchError> {
    let addrs: Vec<SocketAddr> =
        target.to_socket_addrs().map_err(|source| BenchError::Resolve { target: target.into(), source })?.collect();
    if let Some(outside) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(BenchError::NotLoopback { target: target.into(), addr: outside.ip() });
    }
    // Prefer IPv4: it is the one that can spread over several source addresses.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| BenchError::Resolve { target: target.into(), source: std::io::ErrorKind::NotFound.into() })
}

/// The source addresses for `connections` connections to `target`: empty when the kernel may
/// choose (few connections), else `wanted` (or enough for [`PER_SOURCE`] each) addresses
/// 127.0.0.1, 127.0.0.2, ….
pub fn sources(target: SocketAddr, connections: usize, wanted: Option<usize>) -> Result<Vec<IpAddr>, BenchError> {
    let count = wanted.unwrap_or_else(|| connections.div_ceil(PER_SOURCE));
    if count <= 1 {
        return Ok(Vec::new());
    }
    if !target.is_ipv4() {
        return Err(BenchError::Args(format!(
            "{count} source addresses are needed for {connections} connections, but only IPv4 \
             has more than one loopback address; use a 127.x.x.x target"
        )));
    }
    if count > 250 {
        return Err(BenchError::Args(format!(
            "{count} source addresses asked for; at most 250 (127.0.0.1 to 127.0.0.250)"
        )));
    }
    Ok((1..=count).map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n as u8))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        assert_eq!(resolve("127.0.0.1:6667").expect("loopback"), "127.0.0.1:6667".parse().expect("address"));
        assert!(resolve("127.1.2.3:1313").is_ok());
        assert!(resolve("[::1]:1313").is_ok());
        assert!(resolve("localhost:1313").expect("localhost").ip().is_loopback());
    }

    #[test]
    fn other_targets_are_refused() {
        for target in ["10.0.0.1:6667", "192.168.1.1:1313", "[2001:db8::1]:1313", "0.0.0.0:1313"] {
            assert!(matches!(resolve(target), Err(BenchError::NotLoopback { .. })), "{target}");
        }
        assert!(matches!(resolve("no port"), Err(BenchError::Resolve { .. })));
    }

    #[test]
    fn sources_spread_only_when_needed() {
        let v4: SocketAddr = "127.0.0.1:1".parse().expect("address");
        assert!(sources(v4, 20_000, None).expect("ok").is_empty());
        let spread = sources(v4, 50_000, None).expect("ok");
        assert_eq!(spread.len(), 3);
        assert_eq!(spread[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        let v6: SocketAddr = "[::1]:1".parse().expect("address");
        assert!(sources(v6, 50_000, None).is_err());
        assert!(sources(v6, 50_000, Some(1)).expect("ok").is_empty());
    }
}
