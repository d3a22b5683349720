//! Names and text: case folding, nick and room validation, and the sanitiser that keeps one
//! user's control characters and escape sequences away from everyone else's terminal.

/// Folds a nick or room name for comparison (`CASEMAPPING=ascii`): `Bob` and `bob` are one nick.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Orders two names as their [`fold`]s compare, without building them.
pub fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Longest nick accepted (advertised to IRC clients as `NICKLEN`).
pub const NICK_LEN: usize = 30;
/// Longest room name accepted, `#` included (`CHANNELLEN`).
pub const ROOM_LEN: usize = 50;
/// Longest topic accepted (`TOPICLEN`).
///
/// This and the other text lengths below are chosen so that the longest line carrying them
/// still fits IRC's 512 bytes with the longest source a user can have here (nick 30, user 17,
/// host 39: an IPv6 address) and the longest room name: `:SOURCE TOPIC #ROOM :TEXT`.
pub const TOPIC_LEN: usize = 350;
/// Longest kick reason (`KICKLEN`): `:SOURCE KICK #ROOM NICK :REASON`.
pub const KICK_LEN: usize = 320;
/// Longest away message (`AWAYLEN`): `:SOURCE AWAY :TEXT` and `301`.
pub const AWAY_LEN: usize = 390;
/// Longest part reason: `:SOURCE PART #ROOM :REASON`.
pub const PART_LEN: usize = 350;
/// Longest quit reason, `Quit: ` included: `:SOURCE QUIT :REASON`.
pub const QUIT_LEN: usize = 390;
/// Longest real name accepted by `SETNAME` (`NAMELEN`); a longer one given at registration is cut.
pub const REALNAME_LEN: usize = 128;
/// Longest room key (`KEYLEN`), as most IRC servers have it.
pub const KEY_LEN: usize = 23;
/// Longest ban mask: all a `nick!user@host` mask can match (30 + 1 + 17 + 1 + 64).
pub const MASK_LEN: usize = 113;

/// Characters IRC allows in nicks besides letters and digits.
const NICK_SPECIALS: &str = "[]\\`_^{|}";

/// A nick is 1..=30 characters: a letter or one of ``[]\`_^{|}`` first, then letters, digits,
/// those specials or `-`. This is what every IRC client accepts, so plain-text nicks follow it too.
pub fn valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    nick.len() <= NICK_LEN
        && (first.is_ascii_alphabetic() || NICK_SPECIALS.contains(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || NICK_SPECIALS.contains(c))
}

/// A room name starts with `#`, is at most 50 bytes, and is a [`token`] that reads as what
/// it is: its letters come from one script (with Japanese, Korean and Chinese counted as one
/// each), so `#lоbby` with a Cyrillic `о` is no second `#lobby`.
pub fn valid_room(name: &str) -> bool {
    use unicode_security::MixedScript;
    name.len() > 1 && name.len() <= ROOM_LEN && name.starts_with('#') && token(name) && name.is_single_script()
}

/// What two room names that look alike have in common (Unicode's confusable skeleton, case
/// folded): `#lobby`, `#LOBBY` and `#1obby` share one. A new room may not look like another.
pub fn skeleton(name: &str) -> String {
    unicode_security::skeleton(&name.to_lowercase()).collect::<String>().to_lowercase()
}

/// Can `word` be a name, key or mask others will see and type: no spaces or commas, no
/// control characters, nothing [hidden](hidden).
pub fn token(word: &str) -> bool {
    !word.chars().any(|c| c == ',' || c.is_whitespace() || c.is_control() || hidden(c))
}

/// Characters that show as nothing, or change how the text around them reads: bidirectional
/// embeddings, overrides, isolates and marks, zero-width spaces and joiners, fillers, soft
/// hyphens, variation selectors, tags. Fine inside a sentence (an emoji needs its joiner), but
/// a name holding one is not the name it looks like.
pub fn hidden(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// [`sanitize`]s a text and cuts it to at most `max` bytes, between characters.
pub fn clean(text: &str, max: usize) -> String {
    let mut text = sanitize(text);
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// Client tags (`+typing`, `+draft/reply`) as others may receive them: a key of letters,
/// digits, `-`, `.` and `/` after its `+`, and a [`sanitize`]d value of at most 4 KiB (a
/// tag section is 8 KiB).
pub fn clean_tags(tags: Vec<(String, Option<String>)>) -> Vec<(String, Option<String>)> {
    tags.into_iter()
        .filter(|(key, _)| {
            key.strip_prefix('+')
                .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-./".contains(c)))
        })
        .map(|(key, value)| (key, value.map(|v| clean(&v, 4096)).filter(|v| !v.is_empty())))
        .collect()
}

/// The longest line any client must accept: IRC's 512 bytes, CR LF included, tags aside.
pub const MAX_LINE: usize = 512;

/// Cuts `text` into pieces of at most `max` bytes (at least one character each), between words
/// where a piece can end in a space in its second half, else between characters. The spaces
/// a piece ends at are dropped. A text that fits is one piece.
pub fn split_to_fit(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, next) = match rest[..end].rfind(' ') {
            Some(space) if space >= end / 2 => (&rest[..space], &rest[space + 1..]),
            _ => (&rest[..end], &rest[end..]),
        };
        pieces.push(piece);
        rest = next;
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// IRC formatting codes (bold, colour, reset, reverse, italic, strike, underline) and the CTCP
/// delimiter. They are harmless to terminals, so IRC users keep them; plain-text output drops them.
pub const IRC_FORMATTING: &[char] = &['\x01', '\x02', '\x03', '\x0f', '\x16', '\x1d', '\x1e', '\x1f'];

/// Cleans text a user sent before anyone else sees it: ANSI/VT escape sequences are removed
/// whole (CSI, OSC and two-byte escapes), every other control character except IRC formatting
/// codes becomes nothing, tabs become spaces, and so do the bidirectional embeddings, overrides
/// and isolates (U+202A–U+202E, U+2066–U+2069) that make a line read other than it is written.
/// What remains is safe to print on a terminal.
pub fn sanitize(text: &str) -> String {
    // Most lines hold none of it: one pass over the bytes, then one copy.
    if !text.bytes().any(may_be_removed) {
        return text.to_owned();
    }
    sanitize_chars(text)
}

/// Whether `byte` can begin a character [`sanitize`] removes or changes: a C0 control or DEL,
/// or the UTF-8 lead byte of the C1 controls (U+0080–U+009F, `C2`) and of the bidirectional
/// controls (U+202A–U+202E, U+2066–U+2069, `E2`). A text without any is kept as it is.
fn may_be_removed(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f || byte == 0xc2 || byte == 0xe2
}

/// [`sanitize`], a character at a time.
fn sanitize_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' | '\u{9b}' | '\u{9d}' => skip_escape(c, &mut chars),
            '\t' => out.push(' '),
            c if IRC_FORMATTING.contains(&c) => out.push(c),
            c if c.is_control() => {}
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Consumes the rest of an escape sequence that began with `start` (ESC, CSI or OSC).
fn skip_escape(start: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let kind = match start {
        '\x1b' => match chars.next() {
            Some('[') => '[',
            Some(']') | Some('P') | Some('_') | Some('^') => ']',
            // A two-character escape such as `ESC c` (reset): the one character is gone.
            _ => return,
        },
        '\u{9b}' => '[',
        _ => ']',
    };
    if kind == '[' {
        // CSI: parameter and intermediate bytes, then one final byte in 0x40..=0x7e.
        for c in chars.by_ref() {
            if ('\x40'..='\x7e').contains(&c) {
                return;
            }
        }
    } else {
        // OSC/DCS/APC/PM: runs until BEL or ST (`ESC \`).
        while let Some(c) = chars.next() {
            if c == '\x07' || c == '\u{9c}' {
                return;
            }
            if c == '\x1b' {
                chars.next_if_eq(&'\\');
                return;
            }
        }
    }
}

/// Drops IRC formatting codes, for output to plain-text terminals.
pub fn strip_formatting(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(IRC_FORMATTING) {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x03' {
                // Colour code: up to two digits, optionally `,` and two more.
                skip_digits(&mut chars);
                if chars.peek() == Some(&',') {
                    chars.next();
                    skip_digits(&mut chars);
                }
            } else if !IRC_FORMATTING.contains(&c) {
                out.push(c);
            }
        }
        out.into()
    } else {
        text.into()
    }
}

fn skip_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for _ in 0..2 {
        if chars.next_if(|c| c.is_ascii_digit()).is_none() {
            return;
        }
    }
}

/// Does `text` match the IRC wildcard `mask` (`*` any run, `?` one character), ignoring ASCII case?
pub fn wildcard_match(mask: &str, text: &str) -> bool {
    let (m, t): (Vec<char>, Vec<char>) =
        (mask.to_ascii_lowercase().chars().collect(), text.to_ascii_lowercase().chars().collect());
    let (mut mi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            backtrack = Some((mi, ti));
            mi += 1;
        } else if let Some((bm, bt)) = backtrack {
            mi = bm + 1;
            ti = bt + 1;
            backtrack = Some((bm, bt + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_split_between_words_then_characters() {
        assert_eq!(split_to_fit("short", 10), ["short"]);
        assert_eq!(split_to_fit("", 10), [""]);
        assert_eq!(split_to_fit("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(split_to_fit("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(
            split_to_fit("ab cdefghij", 8),
            ["ab cdefg", "hij"],
            "a space early in the piece is no place to cut"
        );
        assert_eq!(split_to_fit("ééé", 3), ["é", "é", "é"], "never inside a character");
        assert_eq!(split_to_fit("🎉🎉", 2), ["🎉", "🎉"], "a character wider than the room still goes, whole");
    }

    #[test]
    fn nicks() {
        assert!(valid_nick("bob"));
        assert!(valid_nick("guest-7"));
        assert!(valid_nick("[away]_x"));
        assert!(!valid_nick("7up"));
        assert!(!valid_nick("-dash"));
        assert!(!valid_nick("has space"));
        assert!(!valid_nick(""));
        assert!(!valid_nick(&"a".repeat(31)));
        assert!(valid_nick(&"a".repeat(30)));
    }

    #[test]
    fn rooms() {
        assert!(valid_room("#lobby"));
        assert!(!valid_room("lobby"));
        assert!(!valid_room("#"));
        assert!(!valid_room("#a,b"));
        assert!(!valid_room("#a b"));
        assert!(!valid_room("#a\x07"));
        assert!(valid_room("#café"));
        assert!(valid_room("#日本語チャット"));
        assert!(valid_room("#c++"));
        assert!(!valid_room("#lobby\u{200b}"), "invisible");
        assert!(!valid_room("#\u{202e}ybbol"), "bidi override");
        assert!(!valid_room("#a\u{a0}b"), "no-break space");
        assert!(!valid_room("#l\u{43e}bby"), "Latin with a Cyrillic o");
        assert_eq!(skeleton("#LOBBY"), skeleton("#lobby"));
        assert_eq!(skeleton("#1obby"), skeleton("#lobby"));
        assert_ne!(skeleton("#lobby2"), skeleton("#lobby"));
    }

    #[test]
    fn tags_are_cleaned() {
        let tags = vec![
            ("+typing".to_string(), Some("active".to_string())),
            ("+draft/reply".into(), Some("a\x1b[2Jb\u{202e}c".into())),
            ("+bad key".into(), Some("x".into())),
            ("label".into(), Some("x".into())),
        ];
        assert_eq!(
            clean_tags(tags),
            [("+typing".to_string(), Some("active".to_string())), ("+draft/reply".into(), Some("abc".into()))]
        );
        assert_eq!(clean(&"é".repeat(10), 5), "éé");
    }

    #[test]
    fn escapes_are_removed_whole() {
        assert_eq!(sanitize("a\x1b[2J\x1b[31mred\x1b[0m"), "ared");
        assert_eq!(sanitize("t\x1b]0;pwned\x07itle"), "title");
        assert_eq!(sanitize("t\x1b]0;pwned\x1b\\itle"), "title");
        assert_eq!(sanitize("bell\x07 back\x08space\r"), "bell backspace");
        assert_eq!(sanitize("c1\u{9b}31mx"), "c1x");
        assert_eq!(sanitize("\x02bold\x02 \x0304red"), "\x02bold\x02 \x0304red");
        assert_eq!(sanitize("tab\there"), "tab here");
        assert_eq!(sanitize("¿qué tal? 🎉"), "¿qué tal? 🎉");
        assert_eq!(sanitize("invoice\u{202e}fdp.exe \u{2067}x\u{2069}"), "invoicefdp.exe x");
        assert_eq!(sanitize("שלום \u{200f}hi"), "שלום \u{200f}hi", "right-to-left text and marks stay");
    }

    #[test]
    fn formatting_is_stripped_for_terminals() {
        assert_eq!(strip_formatting("\x02bold\x02 \x0304,12red\x0f!"), "bold red!");
        assert_eq!(strip_formatting("\x033x"), "x");
        assert_eq!(strip_formatting("plain"), "plain");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*!*@127.0.0.1", "bob!~b@127.0.0.1"));
        assert!(wildcard_match("B?b!*", "bob!x@y"));
        assert!(!wildcard_match("*!*@10.*", "bob!x@127.0.0.1"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn the_quick_path_keeps_only_what_the_slow_one_keeps() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            assert_eq!(sanitize(&text), sanitize_chars(&text), "U+{:04X}", c as u32);
        }
    }

    proptest::proptest! {
        #[test]
        fn sanitized_text_has_no_terminal_controls(s in "\\PC*|[\\x00-\\x1f\\x7f-\\x9f a-z\\[\\]]*") {
            let clean = sanitize(&s);
            proptest::prop_assert!(!clean.chars().any(|c| c.is_control() && !IRC_FORMATTING.contains(&c)));
        }

        #[test]
        fn names_compare_as_their_folds_do(a in "[A-Za-z\\[\\]_é0-9]{0,6}", b in "[A-Za-z\\[\\]_é0-9]{0,6}") {
            proptest::prop_assert_eq!(cmp_folded(&a, &b), fold(&a).cmp(&fold(&b)));
        }
    }
}
