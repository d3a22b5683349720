//! Text helpers for the terminal client: what others sent made safe and styled, stable nick
//! colours, clock times, and long lines split to fit IRC's 512-byte limit.
//!
//! Safety has two layers. Everything from the network passes [`clean`] when it arrives (escape
//! sequences removed whole, control characters dropped, IRC formatting codes kept); [`styled`]
//! then turns the formatting codes into styles and drops any control character still left, so
//! nothing a peer sends can reach the terminal as a control sequence.

use ratatui::style::{Color, Modifier, Style};
use time::{OffsetDateTime, UtcOffset};

/// Cleans text from the network: the server-side sanitiser, shared so both sides agree.
pub fn clean(text: &str) -> String {
    crate::hub::text::sanitize(text)
}

/// Colours for nicks; a nick always gets the same one.
const NICK_COLOURS: [Color; 12] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Red,
    Color::LightCyan,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightRed,
];

/// The colour of a nick: FNV-1a of its folded form, so it is the same in every run and window.
pub fn nick_colour(nick: &str) -> Color {
    let mut hash: u32 = 0x811c_9dc5;
    for b in nick.bytes() {
        hash ^= u32::from(b.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0193);
    }
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

/// The 16 mIRC colours as terminal colours.
fn irc_colour(code: u8) -> Option<Color> {
    Some(match code {
        0 => Color::White,
        1 => Color::Black,
        2 => Color::Blue,
        3 => Color::Green,
        4 => Color::LightRed,
        5 => Color::Red,
        6 => Color::Magenta,
        7 => Color::Yellow,
        8 => Color::LightYellow,
        9 => Color::LightGreen,
        10 => Color::Cyan,
        11 => Color::LightCyan,
        12 => Color::LightBlue,
        13 => Color::LightMagenta,
        14 => Color::DarkGray,
        15 => Color::Gray,
        _ => return None,
    })
}

/// Reads up to two digits of a colour code.
fn colour_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u8> {
    let mut value = None;
    for _ in 0..2 {
        match chars.peek().and_then(|c| c.to_digit(10)) {
            Some(d) => {
                chars.next();
                value = Some(value.unwrap_or(0) * 10 + d as u8);
            }
            None => break,
        }
    }
    value
}

/// Splits text into runs of one style, interpreting IRC formatting codes (bold `^B`, colour
/// `^C`, italic `^]`, underline `^_`, strike `^^`, reverse `^V`, reset `^O`) on top of `base`.
/// Every other control character is dropped.
pub fn styled(text: &str, base: Style) -> Vec<(String, Style)> {
    let mut runs: Vec<(String, Style)> = Vec::new();
    let mut style = base;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let toggle = |style: Style, m: Modifier| {
            if style.add_modifier.contains(m) { style.remove_modifier(m) } else { style.add_modifier(m) }
        };
        match c {
            '\x02' => style = toggle(style, Modifier::BOLD),
            '\x1d' => style = toggle(style, Modifier::ITALIC),
            '\x1f' => style = toggle(style, Modifier::UNDERLINED),
            '\x1e' => style = toggle(style, Modifier::CROSSED_OUT),
            '\x16' => style = toggle(style, Modifier::REVERSED),
            '\x0f' => style = base,
            '\x03' => match colour_digits(&mut chars) {
                None => style = style.fg(base.fg.unwrap_or(Color::Reset)).bg(base.bg.unwrap_or(Color::Reset)),
                Some(fg) => {
                    if let Some(colour) = irc_colour(fg) {
                        style = style.fg(colour);
                    }
                    let mut ahead = chars.clone();
                    if ahead.next() == Some(',') && ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        if let Some(colour) = colour_digits(&mut chars).and_then(irc_colour) {
                            style = style.bg(colour);
                        }
                    }
                }
            },
            c if c.is_control() => {}
            c => match runs.last_mut() {
                Some((run, s)) if *s == style => run.push(c),
                _ => runs.push((c.to_string(), style)),
            },
        }
    }
    runs
}

/// The text without formatting codes or control characters.
pub fn plain(text: &str) -> String {
    styled(text, Style::default()).into_iter().map(|(s, _)| s).collect()
}

/// Local date and time of a Unix-epoch millisecond timestamp.
fn local(millis: u64, offset: UtcOffset) -> OffsetDateTime {
    let utc = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(millis.min(i64::MAX as u64) as i64);
    utc.to_offset(offset)
}

/// `HH:MM` in local time.
pub fn clock(millis: u64, offset: UtcOffset) -> String {
    let t = local(millis, offset);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The local day of a timestamp, comparable between timestamps.
pub fn day(millis: u64, offset: UtcOffset) -> (i32, u16) {
    let t = local(millis, offset);
    (t.year(), t.ordinal())
}

/// A day as shown above its first message: `Tue 25 Nov 2025`.
pub fn day_label(millis: u64, offset: UtcOffset) -> String {
    let t = local(millis, offset);
    let weekday = &t.weekday().to_string()[..3];
    let month = &t.month().to_string()[..3];
    format!("{weekday} {} {month} {}", t.day(), t.year())
}

/// Whether `text` mentions `nick` as a whole word, case-insensitively.
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = plain(text).to_ascii_lowercase();
    let nick = nick.to_ascii_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || "[]\\`_^{|}-".contains(c);
    text.match_indices(&nick).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + nick.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_survive() {
        let hostile = "a\x1b[2J\x1b]0;title\x07b\u{9b}31mc\x07\x08d\re\u{85}f";
        let cleaned = clean(hostile);
        let shown = plain(&cleaned);
        assert_eq!(shown, "abcdef");
        // Even text that skipped `clean` draws no control character.
        assert!(!plain(hostile).chars().any(char::is_control));
    }

    #[test]
    fn formatting_codes_become_styles() {
        let base = Style::default();
        let runs = styled("a\x02b\x02c\x0304,01d\x03e\x1fu\x0fz", base);
        let texts: Vec<&str> = runs.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", "d", "e", "u", "z"]);
        assert!(runs[1].1.add_modifier.contains(Modifier::BOLD));
        assert_eq!(runs[3].1.fg, Some(Color::LightRed));
        assert_eq!(runs[3].1.bg, Some(Color::Black));
        assert_eq!(runs[4].1.fg, Some(Color::Reset));
        assert!(runs[5].1.add_modifier.contains(Modifier::UNDERLINED));
        assert_eq!(runs[6].1, base);
        // A comma after a colour that is not followed by a digit is text.
        assert_eq!(plain("\x034,x"), ",x");
    }

    #[test]
    fn nick_colours_are_stable_and_case_blind() {
        assert_eq!(nick_colour("alice"), nick_colour("Alice"));
        let colours: std::collections::HashSet<String> = ["alice", "bob", "carol", "dave", "erin", "frank"]
            .iter()
            .map(|n| format!("{:?}", nick_colour(n)))
            .collect();
        assert!(colours.len() > 2, "{colours:?}");
    }

    #[test]
    fn clock_and_day_in_an_offset() {
        let t = 1_764_000_000_123; // 2025-11-24T16:00:00.123Z, a Monday
        assert_eq!(clock(t, UtcOffset::UTC), "16:00");
        let plus_nine = UtcOffset::from_hms(9, 0, 0).unwrap_or(UtcOffset::UTC);
        assert_eq!(clock(t, plus_nine), "01:00");
        assert_eq!(day_label(t, UtcOffset::UTC), "Mon 24 Nov 2025");
        assert_ne!(day(t, UtcOffset::UTC), day(t, plus_nine));
    }

    #[test]
    fn mentions_are_whole_words() {
        assert!(mentions("hey Bob, look", "bob"));
        assert!(mentions("bob: hi", "bob"));
        assert!(!mentions("bobby is here", "bob"));
        assert!(!mentions("jimbob", "bob"));
        assert!(mentions("\x02bob\x02!", "bob"));
    }
}
