//! IRC messages: parse → write → parse.
//!
//! The input is one line as a client could send it (cut at the reader's limit and made UTF-8 the
//! way the line reader does). Checked:
//! - parsing never panics;
//! - a parsed message written back parses to the same message, and writing that again gives
//!   the same line (the written form is canonical), never longer than the line it came from;
//! - a line ending in `\r\n` or `\n` parses as the line without it;
//! - `Message::tag` answers with the last of duplicate tags;
//! - whatever a message holds (arbitrary tags, source, command, params), writing it gives one
//!   line: `\r\n` at the end and no NUL, CR or LF before it.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use charla::proto::irc::message::{MAX_LINE, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(&data[..data.len().min(MAX_LINE)]);
    round_trip(&line);
    any_message_is_one_line(data);
});

fn round_trip(line: &str) {
    let Ok(message) = Message::parse(line) else { return };
    assert!(!message.force_trailing, "parse never asks for a forced colon");

    let written = message.to_line();
    let again = Message::parse(&written).unwrap_or_else(|e| panic!("{line:?} was written as {written:?}: {e}"));
    assert_eq!(again, message, "{line:?} was written as {written:?}");
    assert_eq!(again.to_line(), written, "the written form is canonical");
    assert!(written.len() <= line.len(), "{line:?} grew into {written:?}");

    let mut wire = Vec::new();
    message.write_to(&mut wire);
    assert_eq!(wire, format!("{written}\r\n").into_bytes());

    if !line.ends_with(['\r', '\n']) {
        assert_eq!(Message::parse(&format!("{line}\r\n")).as_ref(), Ok(&message));
        assert_eq!(Message::parse(&format!("{line}\n")).as_ref(), Ok(&message));
    }
    for (key, value) in &message.tags {
        assert!(!key.is_empty() && !key.contains([';', ' ', '=']), "tag key {key:?}");
        assert_ne!(value.as_deref(), Some(""), "an empty tag value is None");
        let last = message.tags.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_deref());
        assert_eq!(message.tag(key), last);
    }
    if let Some((_, middle)) = message.params.split_last() {
        for param in middle {
            assert!(!param.is_empty() && !param.starts_with(':') && !param.contains(' '), "middle param {param:?}");
        }
    }
}

/// A message built from anything, as a careless caller could: written, it is still one line.
fn any_message_is_one_line(data: &[u8]) {
    #[derive(Arbitrary, Debug)]
    struct Parts {
        tags: Vec<(String, Option<String>)>,
        source: Option<String>,
        command: String,
        params: Vec<String>,
        force_trailing: bool,
    }
    let Ok(parts) = Parts::arbitrary(&mut Unstructured::new(data)) else { return };
    let message = Message {
        tags: parts.tags,
        source: parts.source.map(Into::into),
        command: parts.command.into(),
        params: parts.params.into_iter().map(Into::into).collect(),
        force_trailing: parts.force_trailing,
    };
    let mut wire = Vec::new();
    message.write_to(&mut wire);
    let body = wire.strip_suffix(b"\r\n").expect("ends in CRLF");
    assert!(!body.iter().any(|b| matches!(b, b'\0' | b'\r' | b'\n')), "{message:?} wrote {body:?}");
}
