//! The bounded outbound queue every connection has.
//!
//! The hub pushes without ever waiting: a push onto a full queue fails, the queue is closed with
//! [`Closed::Overflow`], and the connection's writer drops the client with a clear reason. So a
//! client that stops reading costs at most `capacity` queued items and never slows the room.
//!
//! The queue is counted in bytes too, from the push until the writer has handed the batch to
//! the socket (so a batch being written, which the client may never take, still counts). The
//! budget is [`BYTES_PER_ITEM`] × `capacity`. One item may be bigger than the budget (a history
//! answer is one item, up to a few MB): it is taken while what waits before it is under half
//! the budget, as for a client that reads. A client that asks again without reading has its
//! first answer still waiting and is dropped: a client that never reads holds at most half the
//! budget and one answer.
//!
//! The writer takes everything queued in one [`Outbox::poll_batch`] call and writes it with
//! one syscall: that is where writes coalesce. An idle connection's queue holds no allocation.
//!
//! A room's messages are shared, not pushed to each member as an event of their own: the hub
//! puts a message in the room's current [`Segment`] (32 events, held weakly by the room's
//! [`Log`]) and each member's queue gets a bit in an [`Out::Shared`] item holding that segment,
//! set in place while that item is the queue's last. So a message costs each member's queue a
//! bit under its lock, and a busy room's member one reference count up and down on the segment
//! per batch; a count on the event itself, per member, was the counter every worker thread
//! touched at once (fan-out: about 15 % less server CPU, docs/BENCHMARKS.md round fourteen).
//! A segment keeps its events until the last queue holding it has written them.
//!
//! One task drains a queue (its connection's), so the queue keeps that task's waker itself and
//! wakes it when there is something to do: a first item, the close, an overflow.
//!
//! Some items can wait: another member's join, part or quit ([`Outbox::push_deferred`]). Such
//! an item does not wake the writer, nor does the writer take a queue that holds nothing else;
//! it goes out with the next item that does wake it (an answer, a message, the close), or at the
//! latest about [`DEFER`] later (the timer rounds up to the millisecond), when [`Deferred::run`]
//! wakes every writer left waiting. So a connection that comes and goes in a room costs each
//! member no write of its own when the member's own traffic is flowing, and a big room's
//! comings and goings wake each member at most once per [`DEFER`]. With the last batch and the
//! last words written together ([`Outbox::poll_batch`]), churn makes 3.0 socket writes per
//! cycle instead of 5.4, as many as ngIRCd (docs/BENCHMARKS.md round fifteen).
//!
//! The queue's lock is a spin lock, not `std`'s: releasing it is a plain store, where `std`'s
//! futex lock swaps its word to learn whether to wake a waiter. That locked instruction waits
//! for the pushed item's store, into a buffer the writer last read on the other core, and was
//! half of every push (fan-out: about 8 % less server CPU, docs/BENCHMARKS.md round eleven).
//! The lock is held for a push or a swap of the queue, never across a wait; a thread that finds
//! it taken yields its time slice rather than spin against a holder the scheduler preempted.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::event::{Event, Source};

/// The queue's lock (see the module's docs for why it spins).
type Mutex<T> = spin::mutex::SpinMutex<T, spin::relax::Yield>;
type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, spin::relax::Yield>;

/// One item for a connection: a shared event, events of a [`Segment`] the queue shares with
/// others, or a line already encoded for this connection.
///
/// 16 bytes: the line is boxed. A busy room's queues hold events, and with a `Bytes` in place
/// every item would take 32 bytes, so the hub's pushes, into buffers the writers last read on
/// another core, would touch a new cache line every two items instead of every four (crowd:
/// 14 % less server CPU, docs/BENCHMARKS.md round ten). A line is one answer, not one per
/// recipient, so its box costs little.
#[derive(Debug, Clone)]
pub enum Out {
    Event(Arc<Event>),
    /// The events of the segment whose slots have their bit set, in the order of the slots.
    Shared(Arc<Segment>, u32),
    Line(Box<Bytes>),
}

impl Out {
    /// A line, or several, already encoded for one connection.
    pub fn line(bytes: impl Into<Bytes>) -> Out {
        Out::Line(Box::new(bytes.into()))
    }

    /// The events of this item, in order (none for a line).
    pub fn events(&self) -> Events<'_> {
        match self {
            Out::Event(event) => Events { one: Some(event), segment: None, slots: 0 },
            Out::Shared(segment, slots) => Events { one: None, segment: Some(segment), slots: *slots },
            Out::Line(_) => Events { one: None, segment: None, slots: 0 },
        }
    }

    /// How many events (or lines) this item is.
    pub fn count(&self) -> usize {
        match self {
            Out::Shared(_, slots) => slots.count_ones() as usize,
            Out::Event(_) | Out::Line(_) => 1,
        }
    }

    /// What the item weighs in the queue's byte budget: [`EVENT_BYTES`] for each event, and a
    /// line's length.
    fn weight(&self) -> usize {
        match self {
            Out::Line(line) => line.len(),
            events => EVENT_BYTES * events.count(),
        }
    }
}

/// The events of one [`Out`], in order.
pub struct Events<'a> {
    one: Option<&'a Arc<Event>>,
    segment: Option<&'a Segment>,
    slots: u32,
}

impl<'a> Iterator for Events<'a> {
    type Item = &'a Arc<Event>;

    fn next(&mut self) -> Option<&'a Arc<Event>> {
        if let Some(event) = self.one.take() {
            return Some(event);
        }
        let segment = self.segment?;
        while self.slots != 0 {
            let slot = self.slots.trailing_zeros() as usize;
            self.slots &= self.slots - 1;
            if let Some(event) = segment.slots[slot].get() {
                return Some(event);
            }
        }
        None
    }
}

/// How many events one [`Segment`] holds: a bit each in a queue's [`Out::Shared`].
pub const SEGMENT: usize = 32;

/// Events that many queues share: a room's messages (see the module's docs). Each queue holds
/// the segment once, with a bit for each of its events that is meant for it.
#[derive(Debug, Default)]
pub struct Segment {
    slots: [OnceLock<Arc<Event>>; SEGMENT],
}

/// Where a room puts the events its members' queues share: the segment being filled, held
/// weakly (the queues that hold a segment keep it and its events; a quiet room holds none).
#[derive(Debug, Default)]
pub struct Log {
    segment: Weak<Segment>,
    next: usize,
}

impl Log {
    /// Puts `event` in the segment being filled, or in a new one when that is full or no queue
    /// holds it any more. Returns the segment and the event's slot in it.
    pub fn append(&mut self, event: &Arc<Event>) -> (Arc<Segment>, usize) {
        let segment = match self.segment.upgrade() {
            Some(segment) if self.next < SEGMENT => segment,
            _ => {
                let segment = Arc::new(Segment::default());
                self.segment = Arc::downgrade(&segment);
                self.next = 0;
                segment
            }
        };
        let slot = self.next;
        let _ = segment.slots[slot].set(Arc::clone(event));
        self.next += 1;
        (segment, slot)
    }
}

/// Why a queue stopped accepting items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The client did not read fast enough and its queue filled up; what was queued is dropped.
    Overflow,
    /// The connection is being closed on purpose (quit, kill, shutdown); what was queued before
    /// is still delivered, then the reason is shown.
    Done(String),
    /// A server operator (`by`) disconnected the user (`nick`); delivered like [`Closed::Done`].
    Killed { by: Source, nick: String, reason: String },
}

impl Closed {
    /// Why the connection ended, in words: the quit reason others see.
    pub fn reason(&self) -> String {
        match self {
            Closed::Overflow => "SendQ exceeded".into(),
            Closed::Done(reason) => reason.clone(),
            Closed::Killed { by, reason, .. } => format!("Killed by {}: {reason}", by.nick),
        }
    }
}

/// The byte budget of a queue, per item of its capacity: 1 MiB for the default 4,096 items.
pub const BYTES_PER_ITEM: usize = 256;

/// Batches up to this size leave no buffer behind (see [`Outbox::next_batch`]).
pub const SMALL_BATCH: usize = 4;

/// What a shared event counts for in the byte budget (its encoding is shared, not copied).
const EVENT_BYTES: usize = 256;

/// Handle to one connection's queue; cheap to clone, shared by the hub and the connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

/// Handles are equal when they are handles of the same queue.
impl PartialEq for Outbox {
    fn eq(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Outbox {}

impl std::hash::Hash for Outbox {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.inner).hash(state);
    }
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// A `u32` beside the one-byte liveness: every connection's queue is 16 bytes smaller for
    /// it than with a `usize` (104 bytes, glibc's 112-byte size class).
    capacity: u32,
    liveness: Liveness,
    /// The queue holds deferred items only, and its writer waits without having been woken for
    /// them. Read and written only under the state's lock; an atomic rather than a field of
    /// [`State`] only to sit in the padding beside `liveness`.
    held: AtomicBool,
}

impl Inner {
    /// Clears [`Inner::held`], returning whether it was set: a load, and a store only when
    /// set, since a swap would be a locked instruction on every push.
    fn take_held(&self) -> bool {
        let held = self.held.load(Ordering::Relaxed);
        if held {
            self.held.store(false, Ordering::Relaxed);
        }
        held
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Out>,
    /// What the queued items weigh, in bytes.
    bytes: usize,
    /// What the batch the writer took last weighs, until it asks for the next one (which it
    /// does once it has written the last).
    writing: usize,
    /// Boxed: a reason (a kill names its operator) is over a hundred bytes, and every idle
    /// connection's queue would carry it.
    closed: Option<Box<Closed>>,
    /// The writer waiting for the queue's first item, its close or its overflow (an overflow
    /// also ends a writer stuck on a full socket at once).
    waker: Option<Waker>,
}

impl State {
    /// Remembers the task of `cx` as the one to wake (its waker is cloned only if it changed).
    fn wait(&mut self, cx: &Context<'_>) {
        match &mut self.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => self.waker = Some(cx.waker().clone()),
        }
    }
}

/// Wakes the writer taken from the state, once the lock is released.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Queues `out`, admitted into the locked `state` of `inner`, and wakes the writer if it was
/// waiting for a first item, or had been left waiting with deferred ones. Returns true.
fn enqueue(inner: &Inner, mut state: MutexGuard<'_, State>, out: Out) -> bool {
    state.queue.push_back(out);
    let held = inner.take_held();
    let waker = if state.queue.len() == 1 || held { state.waker.take() } else { None };
    drop(state);
    wake(waker);
    true
}

/// How long a deferred item waits at most before its writer is woken for it.
pub const DEFER: std::time::Duration = std::time::Duration::from_millis(10);

/// The queues whose writers wait with deferred items they were not woken for: the hub adds
/// them, and [`Deferred::run`] wakes them [`DEFER`] after the first.
#[derive(Debug, Default)]
pub struct Deferred {
    queues: std::sync::Mutex<Vec<Outbox>>,
    due: tokio::sync::Notify,
}

impl Deferred {
    fn add(&self, outbox: &Outbox) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.push(outbox.clone());
        if queues.len() == 1 {
            drop(queues);
            self.due.notify_one();
        }
    }

    /// Wakes the writers of the queues added, [`DEFER`] after the first of them, for as long
    /// as the server runs (`crate::server::wake_deferred`).
    pub async fn run(&self) {
        loop {
            self.due.notified().await;
            tokio::time::sleep(DEFER).await;
            let queues = std::mem::take(&mut *self.queues.lock().unwrap_or_else(|e| e.into_inner()));
            for outbox in queues {
                outbox.release();
            }
        }
    }
}

impl Outbox {
    /// A queue holding at most `capacity` items.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                capacity: capacity.clamp(1, u32::MAX as usize) as u32,
                liveness: Liveness::default(),
                held: AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    /// How long the connection has been silent, for the server's liveness sweep.
    pub fn liveness(&self) -> &Liveness {
        &self.inner.liveness
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity as usize
    }

    /// Queues one item. Returns false if the queue was closed or has just overflowed.
    pub fn push(&self, out: Out) -> bool {
        let Some(state) = self.admit(out.weight()) else { return false };
        enqueue(&self.inner, state, out)
    }

    /// Queues an item that can wait (see the module's docs): if the writer waits for a first
    /// item, it is not woken, and the queue goes on `deferred`, whose [`Deferred::run`] wakes
    /// it later unless something else does first. Returns false if the queue was closed or has
    /// just overflowed.
    pub fn push_deferred(&self, out: Out, deferred: &Deferred) -> bool {
        let Some(mut state) = self.admit(out.weight()) else { return false };
        state.queue.push_back(out);
        let first = state.queue.len() == 1 && state.waker.is_some();
        if first {
            self.inner.held.store(true, Ordering::Relaxed);
        }
        drop(state);
        if first {
            deferred.add(self);
        }
        true
    }

    /// Wakes the writer for the deferred items it waits with, if nothing else has.
    pub fn release(&self) {
        let mut state = self.state();
        let waker = if self.inner.take_held() { state.waker.take() } else { None };
        drop(state);
        wake(waker);
    }

    /// Queues the event in `slot` of `segment`, which other queues share: as a bit in the last
    /// item when that holds the same segment. Returns false if the queue was closed or has just
    /// overflowed.
    pub fn push_shared(&self, segment: &Arc<Segment>, slot: usize) -> bool {
        let Some(mut state) = self.admit(EVENT_BYTES) else { return false };
        if let Some(Out::Shared(last, slots)) = state.queue.back_mut()
            && Arc::ptr_eq(last, segment)
        {
            *slots |= 1 << slot;
            return true;
        }
        enqueue(&self.inner, state, Out::Shared(Arc::clone(segment), 1 << slot))
    }

    /// The locked queue with an item of `bytes` counted in, or `None` if it refuses the item:
    /// it is closed, or is now, as overflowed (its items dropped, its writer woken).
    fn admit(&self, bytes: usize) -> Option<MutexGuard<'_, State>> {
        let mut state = self.state();
        if state.closed.is_some() {
            return None;
        }
        let waiting = state.bytes + state.writing;
        let budget = self.capacity() * BYTES_PER_ITEM;
        state.bytes += bytes;
        if state.queue.len() >= self.capacity() || (waiting + bytes > budget && waiting > budget / 2) {
            state.queue = VecDeque::new();
            crate::memory::released(state.bytes);
            state.closed = Some(Box::new(Closed::Overflow));
            crate::metrics::get().slow_consumers.inc();
            let waker = state.waker.take();
            drop(state);
            wake(waker);
            return None;
        }
        Some(state)
    }

    /// Stops accepting items; the writer delivers what is queued, then closes with `reason`.
    /// Has no effect on a queue that is already closed.
    pub fn close(&self, reason: impl Into<String>) {
        self.close_as(Closed::Done(reason.into()));
    }

    /// [`Outbox::close`], saying why as `closed`.
    pub fn close_as(&self, closed: Closed) {
        let mut state = self.state();
        if state.closed.is_none() {
            state.closed = Some(Box::new(closed));
        }
        let waker = state.waker.take();
        drop(state);
        wake(waker);
    }

    /// Why the queue is closed, if it is.
    pub fn closed(&self) -> Option<Closed> {
        self.state().closed.as_deref().cloned()
    }

    /// Ready once the queue is closed, with the reason: the writer checks this while its socket
    /// is full. When pending, the task of `cx` is woken at the close or the overflow.
    pub fn poll_closed(&self, cx: &Context<'_>) -> Poll<Closed> {
        let mut state = self.state();
        if let Some(closed) = &state.closed {
            return Poll::Ready(Closed::clone(closed));
        }
        state.wait(cx);
        Poll::Pending
    }

    /// Swaps every queued item into `batch` (which must be empty; its memory becomes the
    /// queue's), or is pending until something is queued that does not wait (deferred items
    /// alone are not taken until their writer is woken for them) or the queue is closed. Ready
    /// with the close reason once the queue is closed, with what was queued before the close in
    /// `batch`, so that the last batch and the last words go out together.
    ///
    /// A busy connection's two buffers are swapped back and forth without allocating; after a
    /// small batch the queue's memory is given back, so an idle connection holds none.
    pub fn poll_batch(&self, cx: &Context<'_>, batch: &mut VecDeque<Out>) -> Poll<Option<Closed>> {
        debug_assert!(batch.is_empty());
        let mut state = self.state();
        // The writer asks once it has written the batch before.
        state.writing = 0;
        let held = self.inner.held.load(Ordering::Relaxed);
        if !state.queue.is_empty() && (!held || state.closed.is_some()) {
            self.inner.take_held();
            std::mem::swap(&mut state.queue, batch);
            if batch.len() <= SMALL_BATCH {
                state.queue = VecDeque::new();
            }
            state.writing = std::mem::take(&mut state.bytes);
            return Poll::Ready(state.closed.as_deref().cloned());
        }
        if let Some(closed) = &state.closed {
            return Poll::Ready(Some(Closed::clone(closed)));
        }
        state.wait(cx);
        Poll::Pending
    }

    /// Ready once at most `bytes` wait in the queue and in the writer's hands, or the queue is
    /// closed: a session sending a long answer a page at a time waits here between pages. The
    /// session's own connection task writes the queue, and polls this after each write.
    pub fn poll_drained(&self, cx: &Context<'_>, bytes: usize) -> Poll<()> {
        let mut state = self.state();
        if state.closed.is_some() || state.bytes + state.writing <= bytes {
            return Poll::Ready(());
        }
        state.wait(cx);
        Poll::Pending
    }

    /// Waits for [`Outbox::poll_batch`] to be ready.
    pub async fn next_batch(&self, batch: &mut VecDeque<Out>) -> Option<Closed> {
        poll_fn(|cx| self.poll_batch(cx, batch)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &'static str) -> Out {
        Out::line(Bytes::from_static(s.as_bytes()))
    }

    fn event(n: u64) -> Arc<Event> {
        let who = Source {
            id: 1,
            nick: "ann".into(),
            user: "~a".into(),
            host: "127.0.0.1".into(),
            bot: false,
            account: None,
        };
        Event::new(crate::hub::MsgId(n), crate::hub::EventKind::Wallops { who, text: format!("{n}") })
    }

    /// The ids of the events of a batch, in order.
    fn ids(batch: &VecDeque<Out>) -> Vec<u64> {
        batch.iter().flat_map(Out::events).map(|e| e.id.0).collect()
    }

    #[tokio::test]
    async fn a_segments_events_share_one_item_until_something_else_comes_between() {
        let (outbox, other) = (Outbox::new(16), Outbox::new(16));
        let mut log = Log::default();
        for n in 1..=3 {
            let (segment, slot) = log.append(&event(n));
            assert!(outbox.push_shared(&segment, slot));
            if n != 2 {
                assert!(other.push_shared(&segment, slot));
            }
        }
        assert!(outbox.push(line("notice")));
        let (segment, slot) = log.append(&event(4));
        assert!(outbox.push_shared(&segment, slot));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, None);
        assert_eq!(batch.len(), 3, "three events, a line, one event");
        assert_eq!(ids(&batch), [1, 2, 3, 4]);
        let mut batch = VecDeque::new();
        assert_eq!(other.next_batch(&mut batch).await, None);
        assert_eq!((batch.len(), ids(&batch)), (1, vec![1, 3]), "its own events of the segment only");
    }

    #[test]
    fn a_log_starts_a_segment_when_one_is_full_or_no_queue_holds_it() {
        let mut log = Log::default();
        let (first, _) = log.append(&event(0));
        for n in 1..SEGMENT as u64 {
            let (segment, slot) = log.append(&event(n));
            assert!(Arc::ptr_eq(&segment, &first));
            assert_eq!(slot, n as usize);
        }
        let (second, slot) = log.append(&event(99));
        assert!(!Arc::ptr_eq(&second, &first) && slot == 0, "the first is full");
        drop(second);
        let (third, slot) = log.append(&event(100));
        assert_eq!(slot, 0, "nothing held the second: its events are gone with it");
        assert_eq!(Arc::strong_count(&third), 1);
    }

    #[test]
    fn shared_events_count_in_the_budget() {
        let outbox = Outbox::new(2);
        let mut log = Log::default();
        for n in 0..2 {
            let (segment, slot) = log.append(&event(n));
            assert!(outbox.push_shared(&segment, slot));
        }
        let (segment, slot) = log.append(&event(2));
        assert!(!outbox.push_shared(&segment, slot), "a third event in a queue of two");
        assert_eq!(outbox.closed(), Some(Closed::Overflow));
    }

    #[test]
    fn an_item_is_two_words() {
        assert_eq!(std::mem::size_of::<Out>(), 16);
    }

    #[tokio::test]
    async fn batches_everything_queued() {
        let outbox = Outbox::new(8);
        assert!(outbox.push(line("a")));
        assert!(outbox.push(line("b")));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, None);
        assert_eq!(batch.len(), 2);
    }

    #[tokio::test]
    async fn overflow_closes_and_drops_the_backlog() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(line("a")));
        assert!(outbox.push(line("b")));
        assert!(!outbox.push(line("c")));
        assert!(!outbox.push(line("d")));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Some(Closed::Overflow));
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn big_items_overflow_the_byte_budget() {
        let outbox = Outbox::new(4);
        let big = Bytes::from(vec![b'x'; 3 * BYTES_PER_ITEM]);
        assert!(outbox.push(Out::line(big.clone())));
        assert!(!outbox.push(Out::line(big)), "6 items' worth is over the budget of a 4-item queue");
        assert_eq!(outbox.closed(), Some(Closed::Overflow));
    }

    #[tokio::test]
    async fn one_answer_may_exceed_the_budget_but_not_a_second_while_the_first_is_written() {
        let outbox = Outbox::new(4);
        let answer = Bytes::from(vec![b'x'; 10 * BYTES_PER_ITEM]);
        assert!(outbox.push(line("a")), "a little is waiting");
        assert!(outbox.push(Out::line(answer.clone())), "one big answer is taken");
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, None);
        // The writer holds the batch (the client does not read): it still counts.
        assert!(!outbox.push(Out::line(answer)), "a second answer before the first is written");
        assert_eq!(outbox.closed(), Some(Closed::Overflow));
    }

    #[tokio::test]
    async fn a_written_batch_no_longer_counts() {
        let outbox = Outbox::new(4);
        let answer = Bytes::from(vec![b'x'; 10 * BYTES_PER_ITEM]);
        assert!(outbox.push(Out::line(answer.clone())));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, None);
        batch.clear();
        // The writer asks for more once it has written the batch.
        let waker = futures_util::task::noop_waker();
        assert!(outbox.poll_batch(&Context::from_waker(&waker), &mut batch).is_pending());
        assert!(outbox.push(Out::line(answer)), "the first answer was written");
    }

    #[tokio::test]
    async fn drained_once_what_waits_is_written() {
        let outbox = Outbox::new(64);
        let waker = futures_util::task::noop_waker();
        let cx = Context::from_waker(&waker);
        assert!(outbox.poll_drained(&cx, 0).is_ready());
        outbox.push(Out::line(Bytes::from(vec![b'x'; 2000])));
        assert!(outbox.poll_drained(&cx, 1000).is_pending());
        let mut batch = VecDeque::new();
        assert!(outbox.poll_batch(&cx, &mut batch).is_ready());
        assert!(outbox.poll_drained(&cx, 1000).is_pending(), "taken, not yet written");
        batch.clear();
        assert!(outbox.poll_batch(&cx, &mut batch).is_pending());
        assert!(outbox.poll_drained(&cx, 1000).is_ready());
    }

    #[tokio::test]
    async fn close_delivers_what_was_queued_first_with_the_reason() {
        let outbox = Outbox::new(8);
        outbox.push(line("bye"));
        outbox.close("shutting down");
        assert!(!outbox.push(line("late")));
        let mut batch = VecDeque::new();
        let closed = Some(Closed::Done("shutting down".into()));
        assert_eq!(outbox.next_batch(&mut batch).await, closed, "the last batch comes with the reason");
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert_eq!(outbox.next_batch(&mut batch).await, closed);
        assert!(batch.is_empty());
    }

    /// Counts its wake-ups.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_deferred_item_waits_for_the_next_item_that_wakes_the_writer() {
        let (outbox, deferred) = (Outbox::new(8), Deferred::default());
        let wakes = Arc::new(Wakes(0.into()));
        let waker = Waker::from(wakes.clone());
        let cx = Context::from_waker(&waker);
        let mut batch = VecDeque::new();
        assert!(outbox.poll_batch(&cx, &mut batch).is_pending());
        assert!(outbox.push_deferred(line("bob joined"), &deferred));
        assert!(outbox.push_deferred(line("carol joined"), &deferred));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "the writer sleeps on");
        assert!(outbox.poll_batch(&cx, &mut batch).is_pending(), "deferred items alone are not taken");
        assert_eq!(deferred.queues.lock().unwrap().len(), 1, "the queue is on the list once");
        assert!(outbox.push(line("an answer")));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(outbox.poll_batch(&cx, &mut batch), Poll::Ready(None));
        let lines: Vec<_> = batch.iter().map(|out| matches!(out, Out::Line(l) if l.ends_with(b"joined"))).collect();
        assert_eq!(lines, [true, true, false], "in the order queued");
        // The list's later wake-up finds nothing left waiting.
        batch.clear();
        assert!(outbox.poll_batch(&cx, &mut batch).is_pending());
        outbox.release();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_deferred_item_is_taken_at_once_by_a_writer_not_waiting_or_with_the_close() {
        let (outbox, deferred) = (Outbox::new(8), Deferred::default());
        let cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        // The writer is busy (it has not asked since its last batch): it takes what it finds.
        assert!(outbox.push_deferred(line("bob quit"), &deferred));
        assert_eq!(outbox.poll_batch(&cx, &mut batch), Poll::Ready(None));
        assert_eq!(batch.len(), 1);
        assert!(deferred.queues.lock().unwrap().is_empty());
        batch.clear();
        assert!(outbox.poll_batch(&cx, &mut batch).is_pending());
        assert!(outbox.push_deferred(line("carol quit"), &deferred));
        outbox.close("bye");
        assert_eq!(outbox.poll_batch(&cx, &mut batch), Poll::Ready(Some(Closed::Done("bye".into()))));
        assert_eq!(batch.len(), 1, "what waited goes out with the last words");
    }

    #[tokio::test]
    async fn the_list_wakes_writers_left_waiting() {
        let deferred = Arc::new(Deferred::default());
        let waking = tokio::spawn({
            let deferred = deferred.clone();
            async move { deferred.run().await }
        });
        let (outbox, writer) = waiting_writer().await;
        outbox.push_deferred(line("bob left"), &deferred);
        let written = tokio::time::timeout(std::time::Duration::from_secs(10), writer).await;
        assert_eq!(written.expect("woken by the list").unwrap(), 1);
        waking.abort();
    }

    /// A queue, and a writer task waiting for its first batch, which returns the batch's length.
    async fn waiting_writer() -> (Outbox, tokio::task::JoinHandle<usize>) {
        let outbox = Outbox::new(8);
        let writer = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut batch = VecDeque::new();
                outbox.next_batch(&mut batch).await;
                batch.len()
            })
        };
        tokio::task::yield_now().await;
        (outbox, writer)
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_on_push() {
        let (outbox, writer) = waiting_writer().await;
        outbox.push(line("x"));
        assert_eq!(writer.await.unwrap(), 1);
    }
}

/// How long a connection has been silent, counted in sweeps of the server's liveness check
/// (`crate::net::Sessions::sweep`), which pings and drops silent clients. One byte that fits in
/// the queue's padding, instead of a timer in every connection's task.
///
/// A session opts in ([`Liveness::watch`]): plain-text clients are never pinged. Until it
/// registers, the count runs from the connection's start whatever the client says; after, it
/// runs from the last line heard.
#[derive(Debug, Default)]
pub struct Liveness(AtomicU8);

const WATCHED: u8 = 0x80;
const REGISTERED: u8 = 0x40;
const SWEEPS: u8 = 0x3f;

impl Liveness {
    /// Has this connection checked from now on, as one that has not registered yet.
    pub fn watch(&self) {
        self.0.store(WATCHED, Ordering::Relaxed);
    }

    /// The client registered: its silence counts from now, and from each line it sends.
    pub fn registered(&self) {
        self.0.store(WATCHED | REGISTERED, Ordering::Relaxed);
    }

    /// The client sent a line. (A load and, rarely, a store: this runs for every line.)
    pub fn heard(&self) {
        let now = self.0.load(Ordering::Relaxed);
        if now & REGISTERED != 0 && now & SWEEPS != 0 {
            self.0.store(now & !SWEEPS, Ordering::Relaxed);
        }
    }

    /// Counts one more sweep: `None` for a connection that is not watched, else whether it has
    /// registered and the sweeps it has been silent for (including this one).
    pub fn sweep(&self) -> Option<(bool, u8)> {
        let before = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                (now & WATCHED != 0).then(|| if now & SWEEPS == SWEEPS { now } else { now + 1 })
            })
            .ok()?;
        Some((before & REGISTERED != 0, (before & SWEEPS).saturating_add(1).min(SWEEPS)))
    }
}
