//! IRCv3 `draft/multiline`: messages of several lines, or longer than one IRC line.
//!
//! A client opens `BATCH +ref draft/multiline target`, sends its lines as `@batch=ref PRIVMSG
//! target :line` (`draft/multiline-concat` joins a line to the one before without a line
//! feed), and closes with `BATCH -ref`. The lines are collected here, checked against the
//! limits the capability advertises, and said as ONE message ([`Hub::say_lines`]), whose text
//! holds them joined by line feeds; history keeps it so.
//!
//! Out again, such a message is a `draft/multiline` batch for clients with the capability, and
//! one PRIVMSG per line for the others (blank lines left out, the message's id on the first).
//! Long lines are cut to fit 512 bytes between words, the space kept at the end of a piece, and
//! the pieces after the first are marked `draft/multiline-concat`: the line composition is
//! made anew from the text rather than kept as the sender cut it.
//!
//! [`Hub::say_lines`]: crate::hub::Hub::say_lines

use super::caps::{Cap, MULTILINE_MAX_BYTES, MULTILINE_MAX_LINES};
use super::message::Message;
use super::render::{add_tags, mask};
use super::session::Session;
use crate::hub::text::MAX_LINE;
use crate::hub::{self, Event, EventKind, Source, Tags, Target, floor_char_boundary};

/// The batch type, and the tag joining a line to the previous one.
pub const BATCH_TYPE: &str = "draft/multiline";
pub const CONCAT: &str = "draft/multiline-concat";

/// A multiline batch a client has opened and not yet closed.
#[derive(Debug)]
pub struct Collecting {
    reference: String,
    target: String,
    /// The lines so far, concatenated ones already joined.
    lines: Vec<String>,
    /// Bytes so far, the line feeds between lines included.
    bytes: usize,
    /// Lines received, concatenated ones included.
    received: usize,
    /// The client-only tags of the `BATCH +` line: the message's tags.
    tags: Tags,
    /// The label of the `BATCH +` line, for the answer to the whole batch.
    label: Option<Box<str>>,
    /// Refused already: what else comes in the batch is dropped in silence.
    refused: bool,
}

/// `BATCH +ref draft/multiline target` and `BATCH -ref`.
pub fn batch(session: &mut Session, message: &Message) {
    let opening = message.params[0].as_str();
    if let Some(reference) = opening.strip_prefix('+') {
        let kind = message.params.get(1).map(|p| p.as_str());
        if kind != Some(BATCH_TYPE) {
            return fail(session, "UNKNOWN_TYPE", &[], "This server takes only draft/multiline batches");
        }
        if !session.caps.has(Cap::Multiline) {
            return fail(session, "MULTILINE_INVALID", &[], "Enable the draft/multiline capability first");
        }
        let Some(target) = message.params.get(2).filter(|t| !t.is_empty()) else {
            return fail(session, "MULTILINE_INVALID", &[], "A multiline batch needs a target");
        };
        if session.multiline.is_some() || reference.is_empty() {
            session.multiline = None;
            return fail(session, "MULTILINE_INVALID", &[], "Close the open multiline batch first");
        }
        session.multiline = Some(Box::new(Collecting {
            reference: reference.to_string(),
            target: target.to_string(),
            lines: Vec::new(),
            bytes: 0,
            received: 0,
            tags: message.tags.iter().filter(|(k, _)| k.starts_with('+')).cloned().collect(),
            label: session.take_label(),
            refused: false,
        }));
    } else if let Some(reference) = opening.strip_prefix('-') {
        match session.multiline.take() {
            Some(batch) if batch.reference == reference => deliver(session, *batch),
            open => {
                session.multiline = open;
                fail(session, "MULTILINE_INVALID", &[], "No multiline batch is open with that reference");
            }
        }
    } else {
        fail(session, "MULTILINE_INVALID", &[], "Open a batch with BATCH +ref, close it with BATCH -ref");
    }
}

/// Takes a line of the open batch (`true`), or leaves a line that belongs to none to the
/// command table (`false`).
pub fn collect(session: &mut Session, message: &Message) -> bool {
    let Some(batch) = session.multiline.as_deref_mut() else { return false };
    if message.tag("batch").flatten() != Some(batch.reference.as_str()) {
        return false;
    }
    if batch.refused {
        return true;
    }
    let refusal = take_line(batch, message);
    if let Some((code, context, text)) = refusal {
        batch.refused = true;
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        fail(session, code, &context, text);
    }
    true
}

/// Adds one line to `batch`, or says why the batch is refused.
fn take_line(batch: &mut Collecting, message: &Message) -> Option<(&'static str, Vec<String>, &'static str)> {
    if !message.command.eq_ignore_ascii_case("PRIVMSG") || message.params.len() < 2 {
        return Some(("MULTILINE_INVALID", vec![], "A multiline batch holds PRIVMSG lines only"));
    }
    let (target, text) = (&message.params[0], &message.params[1]);
    if !target.eq_ignore_ascii_case(&batch.target) {
        return Some((
            "MULTILINE_INVALID_TARGET",
            vec![batch.target.clone(), target.to_string()],
            "Invalid multiline target",
        ));
    }
    let concat = message.tag(CONCAT).is_some();
    match batch.lines.last_mut() {
        Some(_) if concat && text.is_empty() => {
            return Some(("MULTILINE_INVALID", vec![], "A concatenated line cannot be blank"));
        }
        Some(last) if concat => last.push_str(text),
        Some(_) => {
            batch.bytes += 1;
            batch.lines.push(text.to_string());
        }
        None => batch.lines.push(text.to_string()),
    }
    batch.bytes += text.len();
    batch.received += 1;
    if batch.bytes > MULTILINE_MAX_BYTES {
        let limit = MULTILINE_MAX_BYTES.to_string();
        return Some(("MULTILINE_MAX_BYTES", vec![limit], "Multiline batch max-bytes exceeded"));
    }
    if batch.received > MULTILINE_MAX_LINES {
        let limit = MULTILINE_MAX_LINES.to_string();
        return Some(("MULTILINE_MAX_LINES", vec![limit], "Multiline batch max-lines exceeded"));
    }
    None
}

/// Says a closed batch as one message; the sender sees its echo (with `echo-message`) as the
/// others do.
fn deliver(session: &mut Session, batch: Collecting) {
    if batch.refused {
        return;
    }
    if batch.lines.iter().all(|line| line.trim().is_empty()) {
        return fail(session, "MULTILINE_INVALID", &[], "A multiline message needs some text");
    }
    session.relabel(batch.label);
    let id = session.id.expect("registered");
    let said = hub::lock(&session.shared.hub).say_lines(id, &batch.target, &batch.lines, batch.tags);
    match said {
        Ok(said) => {
            if session.caps.has(Cap::EchoMessage) {
                for event in &said.events {
                    session.own_event(event);
                }
            }
        }
        Err(error) => session.hub_error(&error, true),
    }
}

/// `FAIL BATCH code context… :text`, whether or not the client asked for standard replies:
/// the multiline spec has no other way to refuse.
fn fail(session: &mut Session, code: &str, context: &[&str], text: &str) {
    let mut params = vec!["BATCH", code];
    params.extend_from_slice(context);
    params.push(text);
    let fail = Message::new("FAIL", &params).with_source(&session.shared.server_name).with_trailing_colon();
    session.reply(fail);
}

/// The bytes of `:nick!user@host PRIVMSG target :\r\n` around a message's text.
fn frame(from: &Source, target: &str) -> usize {
    from.nick.len() + from.user.len() + from.host.len() + target.len() + 16
}

/// Does a message need more than one line: several lines (a line feed), or one too long for
/// 512 bytes? Only a multiline message can be either; others were cut to fit when said.
pub fn needed(from: &Source, target: &Target, text: &str) -> bool {
    let target_len = match target {
        Target::Room(name) | Target::User(name) => name.len(),
        Target::RoomStatus(_, name) => name.len() + 1,
    };
    text.len() + frame(from, "") + target_len > MAX_LINE || memchr::memchr(b'\n', text.as_bytes()).is_some()
}

/// A message of several lines, or too long for one, as a client with `caps` receives it: a
/// `draft/multiline` batch, or one PRIVMSG per non-blank piece.
pub fn render(event: &Event, caps: u32) -> Vec<Message> {
    let EventKind::Message { from, target, text, .. } = &event.kind else { return Vec::new() };
    let (source, target) = (mask(from), target.name());
    let room = MAX_LINE.saturating_sub(frame(from, &target)).max(64);
    let pieces = text.split('\n').flat_map(|line| pieces(line, room).into_iter().enumerate());
    let line = |piece: &str| Message::new("PRIVMSG", &[&target, piece]).with_source(&source).with_trailing_colon();
    let batched = caps & Cap::Multiline as u32 != 0 && caps & Cap::Batch as u32 != 0;
    if batched {
        let reference = format!("ml{}", event.id);
        let start = Message::new("BATCH", &[&format!("+{reference}"), BATCH_TYPE, &target]).with_source(&source);
        let mut out = vec![add_tags(start, event, caps)];
        for (i, piece) in pieces {
            let message = line(piece).with_tag("batch", Some(&reference));
            out.push(if i > 0 { message.with_tag(CONCAT, None) } else { message });
        }
        out.push(Message::new("BATCH", &[&format!("-{reference}")]).with_source(&source));
        out
    } else {
        let mut out: Vec<Message> = pieces.filter(|(_, piece)| !piece.is_empty()).map(|(_, p)| line(p)).collect();
        if let Some(first) = out.first_mut() {
            *first = add_tags(std::mem::replace(first, Message::new("", &[])), event, caps);
        }
        out
    }
}

/// `line` cut into pieces of at most `max` bytes: after a space in the piece's second half
/// (the space stays at the end of the piece), else between characters. A blank line is one
/// blank piece.
fn pieces(line: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while rest.len() > max {
        let limit = floor_char_boundary(rest, max);
        let cut = match rest[..limit].rfind(' ') {
            Some(space) if space + 1 > limit / 2 => space + 1,
            _ if limit > 0 => limit,
            _ => rest.chars().next().map_or(rest.len(), char::len_utf8),
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_the_space_and_whole_characters() {
        assert_eq!(pieces("hello", 10), ["hello"]);
        assert_eq!(pieces("", 10), [""]);
        assert_eq!(pieces("how is everyone?", 10), ["how is ", "everyone?"]);
        assert_eq!(pieces("ééééé", 5), ["éé", "éé", "é"]);
        let long = "word ".repeat(300);
        assert!(pieces(&long, 400).iter().all(|p| p.len() <= 400));
        assert_eq!(pieces(&long, 400).concat(), long);
    }
}
