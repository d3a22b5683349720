//! Microbenchmarks of the per-message hot path: parsing an IRC line, encoding an event for IRC
//! and plain text, and the hub's fan-out of one message to a room of 100 (also with a full ban
//! list, checked for each message); and of a room's member list (NAMES, WHO) when every member
//! is in many rooms.
//!
//! Run with `cargo bench --bench hot_paths`.

use charla::hub::{
    Event, EventKind, History, Hub, HubConfig, MsgId, MsgKind, Outbox, Protocol, Registration, Source, Target,
};
use charla::proto::irc::message::Message;
use charla::proto::irc::render;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LINE: &str = "@label=abc;+draft/reply=1a2b3c :alice!~alice@127.0.0.1 PRIVMSG #lobby :hello everyone, this is a line of ordinary chat of about a hundred bytes";

fn event() -> std::sync::Arc<Event> {
    Event::new(
        MsgId(1_764_000_000_000 << 20),
        EventKind::Message {
            from: Source {
                id: 1,
                nick: "alice".into(),
                user: "~alice".into(),
                host: "127.0.0.1".into(),
                bot: false,
                account: None,
            },
            target: Target::Room("#lobby".into()),
            kind: MsgKind::Privmsg,
            text: "hello everyone, this is a line of ordinary chat of about a hundred bytes".into(),
            tags: Vec::new(),
        },
    )
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("irc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse", |b| b.iter(|| Message::parse(std::hint::black_box(LINE))));
    let event = event();
    let caps = u32::MAX;
    group.bench_function("encode_event", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            render::message(std::hint::black_box(&event), caps).expect("a line").write_to(&mut out);
            out
        })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    const MEMBERS: usize = 100;
    let mut hub = Hub::new(HubConfig::default(), History::default());
    let mut outboxes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..MEMBERS {
        let outbox = Outbox::new(1 << 20);
        let (id, _) = hub
            .register(Registration {
                nick: Some(format!("user{i}")),
                user: "u".into(),
                host: "127.0.0.1".into(),
                realname: "".into(),
                protocol: Protocol::Plain,
                secure: false,
                certfp: None,
                outbox: outbox.clone(),
            })
            .expect("free nick");
        hub.join(id, "#lobby", None).expect("joins");
        outboxes.push(outbox);
        ids.push(id);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut batch = std::collections::VecDeque::new();
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(MEMBERS as u64 - 1));
    group.bench_function("say_to_100_and_drain", |b| {
        b.iter(|| {
            hub.say(ids[0], "#lobby", MsgKind::Privmsg, "hello everyone", Vec::new()).expect("said");
            runtime.block_on(async {
                for outbox in &outboxes[1..] {
                    outbox.next_batch(&mut batch).await;
                    batch.clear();
                }
            });
        })
    });
    group.finish();
}

/// A hub with `members` users from different addresses, each in the rooms `#r0`..`#r{rooms}`,
/// and their queues. User `r` creates room `#r{r}` (so user 0 is the operator of `#r0`), each
/// user creating at most one room: `rooms` is at most `members`.
fn crowded_hub(members: usize, rooms: usize) -> (Hub, Vec<u64>, Vec<Outbox>) {
    let mut hub = Hub::new(HubConfig::default(), History::default());
    let (mut ids, mut outboxes) = (Vec::new(), Vec::new());
    for i in 0..members {
        let outbox = Outbox::new(1 << 20);
        let (id, _) = hub
            .register(Registration {
                nick: Some(format!("user{i}")),
                user: "u".into(),
                host: format!("10.0.{}.{}", i / 256, i % 256),
                realname: "".into(),
                protocol: Protocol::Plain,
                secure: false,
                certfp: None,
                outbox: outbox.clone(),
            })
            .expect("free nick");
        ids.push(id);
        outboxes.push(outbox);
    }
    for r in 0..rooms {
        for i in (r..members).chain(0..r) {
            hub.join(ids[i], &format!("#r{r}"), None).expect("joins");
        }
    }
    (hub, ids, outboxes)
}

fn bans_and_names(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut batch = std::collections::VecDeque::new();
    let mut group = c.benchmark_group("hub");

    // 100 members, 100 masks that match none of them; the speaker has no voice, so every
    // message is checked against the ban list.
    let (mut hub, ids, outboxes) = crowded_hub(100, 1);
    for i in 0..100 {
        let mask = format!("*!*@192.168.{i}.*-a-long-and-never-matching-host-name.example.org");
        let changes = charla::hub::modes::parse("+b", &[&mask]).changes;
        hub.set_modes(ids[0], "#r0", changes).expect("op sets bans");
    }
    for outbox in &outboxes {
        runtime.block_on(outbox.next_batch(&mut batch));
        batch.clear();
    }
    group.throughput(Throughput::Elements(99));
    group.bench_function("say_to_100_with_100_bans", |b| {
        b.iter(|| {
            hub.say(ids[1], "#r0", MsgKind::Privmsg, "hello everyone", Vec::new()).expect("said");
            runtime.block_on(async {
                // Everyone but the speaker has the message.
                for (_, outbox) in outboxes.iter().enumerate().filter(|&(i, _)| i != 1) {
                    outbox.next_batch(&mut batch).await;
                    batch.clear();
                }
            });
        })
    });

    // NAMES of a room of 100 whose members are each in 50 rooms.
    let (hub, ids, _outboxes) = crowded_hub(100, 50);
    group.throughput(Throughput::Elements(100));
    group.bench_function("names_of_100_members_in_50_rooms", |b| {
        b.iter(|| hub.room_info(ids[0], "#r0").expect("a room"))
    });
    group.finish();
}

criterion_group!(benches, parse, fan_out, bans_and_names);
criterion_main!(benches);
