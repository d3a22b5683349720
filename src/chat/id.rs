//! Message ids and the clock: every event and every stored record is named by a [`MsgId`],
//! which is also its time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unique, time-ordered message id: milliseconds since the Unix epoch in the high 44 bits and a
/// sequence number in the low 20, so ids sort by time and never repeat within one hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct MsgId(pub u64);

impl MsgId {
    /// The millisecond timestamp the id was made at.
    pub fn millis(self) -> u64 {
        self.0 >> 20
    }

    /// The cluster node that made the id (meaningful only for ids made in a cluster).
    pub fn node(self) -> u8 {
        (self.0 & NODE_BITS) as u8
    }
}

impl std::fmt::Display for MsgId {
    /// Sixteen lowercase hex digits: fixed width, so string order is time order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for MsgId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MsgId)
    }
}

/// Hands out [`MsgId`]s that increase strictly, even if the wall clock steps back.
///
/// In a cluster ([`MsgIdGen::for_node`]) the low 8 bits of every id are the node's number,
/// claimed uniquely on the bus, and the 12 above them a sequence: ids of different nodes never
/// collide, and an id tells which node made it ([`MsgId::node`]). A node [observes](MsgIdGen::observe)
/// every id it applies from another, so that its next id is above any it has delivered: ids
/// stay causally ordered across nodes.
#[derive(Debug, Default)]
pub struct MsgIdGen {
    last: u64,
    /// The node's number in a cluster; `None` alone.
    node: Option<u8>,
}

/// The bits of a clustered id that hold its node's number.
const NODE_BITS: u64 = 0xff;

impl MsgIdGen {
    /// A generator for node `node` of a cluster.
    pub fn for_node(node: u8) -> MsgIdGen {
        MsgIdGen { last: 0, node: Some(node) }
    }

    pub fn next_id(&mut self) -> MsgId {
        let now = match self.node {
            None => (now_millis() << 20).max(self.last + 1),
            Some(node) => (now_millis() << 20).max((self.last & !NODE_BITS) + NODE_BITS + 1) | u64::from(node),
        };
        self.last = now;
        MsgId(now)
    }

    /// Takes note of an id made elsewhere: the next id made here is above it.
    pub fn observe(&mut self, id: MsgId) {
        self.last = self.last.max(id.0);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustered_ids_carry_their_node_and_stay_above_what_was_observed() {
        let (mut a, mut b) = (MsgIdGen::for_node(1), MsgIdGen::for_node(2));
        let first = a.next_id();
        assert_eq!(first.node(), 1);
        let far = MsgId(first.0 + (1000 << 20));
        b.observe(far);
        let next = b.next_id();
        assert!(next > far && next.node() == 2, "{next} after {far}");
        let ids: Vec<MsgId> = (0..5000).map(|_| a.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1] && w[1].node() == 1));
    }
}
