//! Plain-text lines and `/commands`, handled as a plain-text session handles them, by the real
//! hub and a real SQLite store, without sockets.
//!
//! Each input is a few lines, typed in turn by three users (`alice`, who is a server
//! operator's password away from being one, `bob` and `carol`, all in `#lobby` to begin with),
//! on a fresh hub. Checked:
//! - no line panics (a bug in a command ends the fuzzer, as it would end that connection);
//! - everything a user is sent, replies and other users' doings alike, is whole lines of text
//!   for a terminal: UTF-8, ending in `\n`;
//! - what others do reaches a user's terminal with no control character but line ends and tabs
//!   (an escape sequence from another user must never reach a terminal). Answers to the user's
//!   own line may quote it as typed (`unknown command /…`): the user's own bytes go back to
//!   the user's own terminal only.
#![no_main]

mod common;

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use charla::hub::{ConnId, Out, Outbox, Protocol, Registration};
use charla::net::Render;
use charla::proto::plain::{PlainRender, handle_line};
use common::shared;
use libfuzzer_sys::fuzz_target;

struct User {
    id: ConnId,
    outbox: Outbox,
    gone: bool,
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let shared = shared();
    let mut users: Vec<User> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|nick| {
            let outbox = Outbox::new(1 << 16);
            let registration = Registration {
                nick: Some(nick.into()),
                user: "plain".into(),
                host: "127.0.0.1".into(),
                realname: "plain-text client".into(),
                protocol: Protocol::Plain,
                secure: false,
                certfp: None,
                outbox: outbox.clone(),
            };
            let (id, _) = charla::hub::lock(&shared.hub).register(registration).expect("a free nick");
            assert_eq!(handle_line(&shared, id, &outbox, "/join #lobby"), None);
            User { id, outbox, gone: false }
        })
        .collect();
    drain(&users, None);

    for (i, line) in text.split('\n').take(64).enumerate() {
        let user = &mut users[i % 3];
        if user.gone {
            continue;
        }
        if let Some(reason) = handle_line(&shared, user.id, &user.outbox, line) {
            charla::hub::lock(&shared.hub).quit(user.id, &reason);
            user.gone = true;
        }
        drain(&users, Some(i % 3));
    }
});

/// Takes everything queued for each user, renders it as the user's connection would, and
/// checks that it is text for a terminal. `typist`: the user whose line was just handled.
fn drain(users: &[User], typist: Option<usize>) {
    let cx = Context::from_waker(Waker::noop());
    let mut batch = VecDeque::new();
    for (i, user) in users.iter().enumerate() {
        let render = PlainRender { me: user.id };
        // What the server's `Deferred::run` does for comings and goings left waiting.
        user.outbox.release();
        loop {
            let last = !matches!(user.outbox.poll_batch(&cx, &mut batch), Poll::Ready(None));
            for out in batch.drain(..) {
                match &out {
                    Out::Line(line) => check(line, typist == Some(i)),
                    events => events.events().for_each(|event| check(&render.event(event), false)),
                }
            }
            if last {
                break;
            }
        }
    }
}

/// Checks that `bytes`, if any, are text for a terminal: whole lines, and no control characters
/// unless they are the `answer` to the user's own line.
fn check(bytes: &[u8], answer: bool) {
    if bytes.is_empty() {
        return;
    }
    let text = std::str::from_utf8(bytes).expect("plain text output is UTF-8");
    assert!(text.ends_with('\n'), "output without a line end: {text:?}");
    assert!(
        answer || !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character reached a terminal: {text:?}"
    );
}
