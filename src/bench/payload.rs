//! What a bench message carries, and how a receiver accounts for what it got.
//!
//! A payload is `b<sender>:<seq>:<nanos>` followed by a space and `x` padding up to the message
//! size, e.g. `b3:41:1234567 xxxxxxxx`. `nanos` is the send time in nanoseconds since the start
//! of the run; senders and receivers live in one process, so one monotonic clock serves both and
//! latency needs no clock sync. Only ASCII letters, digits, `:` and space are used, so no server
//! rewrites it (plain text strips control characters, IRC truncates long lines: the size check
//! catches either).
//!
//! Each receiver keeps a [`Tally`]: per sender, a bit per sequence number seen. From it come
//! deliveries (first arrival of a sequence number), duplicates (a second arrival), and
//! reorderings (a first arrival below the highest sequence number already seen from that
//! sender). Loss is what is left: messages sent times receivers, minus deliveries.

use std::io::Write as _;

/// One decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub sender: u32,
    pub seq: u64,
    /// Send time, nanoseconds since the run's start.
    pub sent_ns: u64,
    /// Whether the payload arrived whole (as long as it was sent).
    pub intact: bool,
}

/// Appends the payload of message `seq` from `sender`, padded to `size` bytes (or just the header
/// if that is longer).
pub fn encode(out: &mut Vec<u8>, sender: u32, seq: u64, sent_ns: u64, size: usize) {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "b{sender}:{seq}:{sent_ns}");
    let header = out.len() - start;
    if size > header {
        out.push(b' ');
        out.resize(start + size, b'x');
    }
}

/// Reads a payload; `None` if `text` is not one (another kind of line, or garbled).
/// `size` is the size the payloads were sent with, to tell whether this one is whole.
pub fn decode(text: &[u8], size: usize) -> Option<Payload> {
    let rest = text.strip_prefix(b"b")?;
    let (sender, rest) = number(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (sent_ns, rest) = number(rest)?;
    if !rest.is_empty() && rest[0] != b' ' {
        return None;
    }
    let header = text.len() - rest.len();
    let expected = if size > header { size } else { header };
    // Every byte looked at, without stopping at the first wrong one: a loop that cannot stop
    // early is vectorised, and this check was most of the generator's time per line.
    let padding_ok = rest.iter().skip(1).fold(0, |wrong, &b| wrong | (b ^ b'x')) == 0;
    Some(Payload { sender: u32::try_from(sender).ok()?, seq, sent_ns, intact: text.len() == expected && padding_ok })
}

/// A decimal number at the start of `text` and what follows it.
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = text[..digits].iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((value, &text[digits..]))
}

/// How one arrival counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First arrival, in order.
    InOrder,
    /// First arrival, after a later message from the same sender.
    Reordered,
    /// This sequence number had already arrived.
    Duplicate,
    /// Not from a sender of this run, or a sequence number no sender used.
    Foreign,
}

/// What one receiver saw from every sender.
#[derive(Debug, Clone)]
pub struct Tally {
    senders: Vec<SenderLog>,
    /// Highest sequence number a sender may use (exclusive), to bound memory on garbage.
    seq_limit: u64,
}

#[derive(Debug, Clone, Default)]
struct SenderLog {
    seen: Vec<u64>,
    highest: Option<u64>,
}

/// Sums over receivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub reordered: u64,
    pub duplicates: u64,
    pub foreign: u64,
}

impl Tally {
    /// A tally for `senders` senders, each sending fewer than `seq_limit` messages.
    pub fn new(senders: usize, seq_limit: u64) -> Tally {
        Tally { senders: vec![SenderLog::default(); senders], seq_limit }
    }

    /// Records the arrival of message `seq` from `sender` (an index below `senders`).
    pub fn record(&mut self, sender: u32, seq: u64) -> Arrival {
        let Some(log) = self.senders.get_mut(sender as usize) else {
            return Arrival::Foreign;
        };
        if seq >= self.seq_limit {
            return Arrival::Foreign;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if log.seen.len() <= word {
            log.seen.resize(word + 1, 0);
        }
        if log.seen[word] & bit != 0 {
            return Arrival::Duplicate;
        }
        log.seen[word] |= bit;
        match log.highest {
            Some(highest) if seq < highest => Arrival::Reordered,
            _ => {
                log.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }
}

impl Counts {
    /// Counts one arrival.
    pub fn add(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::InOrder => self.delivered += 1,
            Arrival::Reordered => {
                self.delivered += 1;
                self.reordered += 1;
            }
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Foreign => self.foreign += 1,
        }
    }

    /// Adds another receiver's counts.
    pub fn merge(&mut self, other: Counts) {
        self.delivered += other.delivered;
        self.reordered += other.reordered;
        self.duplicates += other.duplicates;
        self.foreign += other.foreign;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_padded_to_size() {
        let mut out = Vec::new();
        encode(&mut out, 7, 42, 123_456_789, 100);
        assert_eq!(out.len(), 100);
        assert!(out.starts_with(b"b7:42:123456789 xxx"));
        let payload = decode(&out, 100).expect("decodes");
        assert_eq!(payload, Payload { sender: 7, seq: 42, sent_ns: 123_456_789, intact: true });
    }

    #[test]
    fn header_longer_than_size_is_sent_whole() {
        let mut out = Vec::new();
        encode(&mut out, 1, 2, 3_000_000_000, 4);
        assert_eq!(out, b"b1:2:3000000000");
        assert!(decode(&out, 4).expect("decodes").intact);
    }

    #[test]
    fn truncated_or_altered_payloads_are_not_intact() {
        let mut out = Vec::new();
        encode(&mut out, 1, 2, 3, 50);
        assert!(!decode(&out[..40], 50).expect("decodes").intact);
        let last = out.len() - 1;
        out[last] = b'y';
        assert!(!decode(&out, 50).expect("decodes").intact);
    }

    #[test]
    fn other_lines_are_not_payloads() {
        for line in [
            &b""[..],
            b"hello",
            b"b",
            b"b1",
            b"b1:2",
            b"b1:2:",
            b"bx:2:3",
            b"b1:2:3x",
            b"b99999999999:1:1",
            b"b1:2:99999999999999999999999",
        ] {
            assert_eq!(decode(line, 10), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn tally_counts_order_gaps_and_duplicates() {
        let mut tally = Tally::new(2, 1000);
        let mut counts = Counts::default();
        for (sender, seq) in [(0, 0), (0, 1), (0, 3), (1, 0), (0, 2), (0, 3), (1, 0), (0, 200)] {
            counts.add(tally.record(sender, seq));
        }
        assert_eq!(counts, Counts { delivered: 6, reordered: 1, duplicates: 2, foreign: 0 });
    }

    #[test]
    fn tally_rejects_unknown_senders_and_wild_sequence_numbers() {
        let mut tally = Tally::new(1, 10);
        assert_eq!(tally.record(1, 0), Arrival::Foreign);
        assert_eq!(tally.record(0, 10), Arrival::Foreign);
        assert_eq!(tally.record(0, u64::MAX), Arrival::Foreign);
        assert_eq!(tally.record(0, 9), Arrival::InOrder);
        assert_eq!(tally.record(0, 0), Arrival::Reordered);
    }
}
