//! What a store asks of its writer, the same for SQLite and PostgreSQL, and what a committed
//! batch settles: the id the readers may now see, and the flushes waiting for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use super::{Record, Retention, RoomState, StoreError};
use crate::chat::MsgId;

/// Where a writer sends the answer to a command that wants one.
pub(super) type Answer<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the store asks of its writer.
pub(super) enum Command {
    Append(Record),
    SaveRoom(RoomState),
    /// Forget the room with this folded name.
    ForgetRoom(String),
    /// Guest number this was given out.
    SaveGuest(u64),
    /// Redact the record with this id of the target with this folded name; the last id is the
    /// redaction's own, which counts as committed with it.
    Redact(String, MsgId, MsgId),
    /// Answer once everything before this is committed.
    Flush(Answer<()>),
    Retain(Retention, Answer<usize>),
}

/// Settles `batch`, just committed: raises `committed` to its newest id, then answers its
/// flushes, moves its retention requests to `retains` (run between batches), and returns how
/// many records it held.
pub(super) fn settle(
    batch: &mut Vec<Command>,
    retains: &mut VecDeque<(Retention, Answer<usize>)>,
    committed: &AtomicU64,
) -> usize {
    let mut records = 0;
    let mut newest = None;
    let mut flushes = Vec::new();
    for command in batch.drain(..) {
        match command {
            Command::Append(Record { id, .. }) => {
                records += 1;
                newest = newest.max(Some(id.0));
            }
            // A redaction's own id counts as committed with it.
            Command::Redact(_, _, id) => newest = newest.max(Some(id.0)),
            Command::Flush(answer) => flushes.push(answer),
            Command::Retain(policy, answer) => retains.push_back((policy, answer)),
            Command::SaveRoom(_) | Command::ForgetRoom(_) | Command::SaveGuest(_) => {}
        }
    }
    if let Some(newest) = newest {
        committed.fetch_max(newest, Ordering::Release);
    }
    // Only now: whoever a flush wakes must find everything before it committed.
    for answer in flushes {
        let _ = answer.send(Ok(()));
    }
    records
}
