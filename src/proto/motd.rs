//! The message of the day (`serve --motd FILE`): shown to IRC clients after registering
//! (375, 372 per line, 376) and to plain-text users after the welcome. Read once at start
//! and again on each reload ([`crate::server::reload`]).

use std::path::Path;

/// The longest MOTD line sent, in bytes: an IRC line of it (`:server 372 nick :- ` and
/// CRLF around it, with the longest server name and nick) stays within IRC's 512 bytes.
pub const MAX_LINE: usize = 400;

/// A message of the day, as lines that each fit one line of any protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Motd {
    pub lines: Vec<String>,
}

impl Motd {
    /// The MOTD in `file` (UTF-8 text; invalid bytes are shown as �). Longer lines are split
    /// at a space where there is one, and tabs and other control characters become spaces.
    pub fn read(file: &Path) -> std::io::Result<Motd> {
        let bytes = std::fs::read(file)?;
        Ok(Motd::from_text(&String::from_utf8_lossy(&bytes)))
    }

    pub fn from_text(text: &str) -> Motd {
        let mut lines = Vec::new();
        for line in text.lines() {
            let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            let mut rest = line.trim_end();
            if rest.is_empty() {
                lines.push(String::new());
            }
            while !rest.is_empty() {
                let (head, tail) = split(rest, MAX_LINE);
                lines.push(head.trim_end().to_string());
                rest = tail.trim_start();
            }
        }
        Motd { lines }
    }
}

/// `line` cut in two so that the first part is at most `max` bytes: at the last space that
/// allows, else at a character boundary.
fn split(line: &str, max: usize) -> (&str, &str) {
    if line.len() <= max {
        return (line, "");
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    match line[..end].rfind(' ') {
        Some(space) if space > 0 => line.split_at(space),
        _ => line.split_at(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_split_at_spaces_and_fit() {
        let word = "palabra ";
        let long = word.repeat(120);
        let motd = Motd::from_text(&format!("hello\n\n{long}\n{}", "é".repeat(300)));
        assert_eq!(motd.lines[0], "hello");
        assert_eq!(motd.lines[1], "");
        assert!(motd.lines.iter().all(|l| l.len() <= MAX_LINE));
        let words: usize = motd.lines.iter().map(|l| l.matches("palabra").count()).sum();
        assert_eq!(words, 120);
        assert!(motd.lines[2].ends_with("palabra"), "{}", motd.lines[2]);
        let accents: String = motd.lines[motd.lines.len() - 2..].concat();
        assert_eq!(accents, "é".repeat(300));
    }

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(Motd::from_text("a\tb\x1b[31m\r\n").lines, ["a b [31m"]);
    }
}
