//! Room modes: which exist, which take an argument, and how a mode string such as
//! `+ov-k bob alice` becomes a list of [`ModeChange`]s. Shared by IRC `MODE` and plain `/mode`.

/// The settings of a room. New rooms start as `+nt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomModes {
    /// `+i`: only invited users may join.
    pub invite_only: bool,
    /// `+m`: only operators and voiced users may speak.
    pub moderated: bool,
    /// `+n`: only members may send to the room.
    pub no_external: bool,
    /// `+s`: the room is not listed to non-members.
    pub secret: bool,
    /// `+t`: only operators may change the topic.
    pub topic_ops: bool,
    /// `+k`: the key needed to join.
    pub key: Option<String>,
    /// `+l`: the most members the room takes.
    pub limit: Option<usize>,
    /// `+R`: only users logged in to an account may join.
    pub registered_only: bool,
}

impl Default for RoomModes {
    fn default() -> Self {
        RoomModes {
            invite_only: false,
            moderated: false,
            no_external: true,
            secret: false,
            topic_ops: true,
            key: None,
            limit: None,
            registered_only: false,
        }
    }
}

impl RoomModes {
    /// The modes as IRC shows them (`+klnt secret 10`); the key is shown only to members.
    pub fn render(&self, show_key: bool) -> String {
        let mut flags = String::from("+");
        let mut args = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (self.key.is_some(), 'k'),
            (self.limit.is_some(), 'l'),
            (self.moderated, 'm'),
            (self.no_external, 'n'),
            (self.secret, 's'),
            (self.topic_ops, 't'),
            (self.registered_only, 'R'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(key) = &self.key {
            args.push(if show_key { key.clone() } else { "*".into() });
        }
        if let Some(limit) = self.limit {
            args.push(limit.to_string());
        }
        std::iter::once(flags).chain(args).collect::<Vec<_>>().join(" ")
    }
}

impl RoomModes {
    /// Applies one flag, key or limit change; returns whether anything changed. Member modes
    /// (`o`, `v`) and bans are not settings of the room and change nothing here.
    pub fn apply(&mut self, change: &ModeChange) -> bool {
        let add = change.add;
        match &change.mode {
            RoomMode::InviteOnly => flip(&mut self.invite_only, add),
            RoomMode::Moderated => flip(&mut self.moderated, add),
            RoomMode::NoExternal => flip(&mut self.no_external, add),
            RoomMode::Secret => flip(&mut self.secret, add),
            RoomMode::TopicOps => flip(&mut self.topic_ops, add),
            RoomMode::RegisteredOnly => flip(&mut self.registered_only, add),
            RoomMode::Key(key) => {
                let new = (add && !key.is_empty()).then(|| key.clone());
                std::mem::replace(&mut self.key, new) != self.key
            }
            RoomMode::Limit(n) => {
                let new = add.then_some(*n);
                std::mem::replace(&mut self.limit, new) != self.limit
            }
            RoomMode::Op(_) | RoomMode::Voice(_) | RoomMode::Ban(_) => false,
        }
    }

    /// Settings from their rendered form ([`RoomModes::render`] with the key shown), as kept
    /// in the history store.
    pub fn from_rendered(rendered: &str) -> RoomModes {
        let mut words = rendered.split(' ');
        let flags = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let mut modes = RoomModes {
            invite_only: false,
            moderated: false,
            no_external: false,
            secret: false,
            topic_ops: false,
            key: None,
            limit: None,
            registered_only: false,
        };
        for change in parse(flags, &args).changes {
            modes.apply(&change);
        }
        modes
    }
}

/// Sets `flag` to `on`; true if that changed it.
pub fn flip(flag: &mut bool, on: bool) -> bool {
    std::mem::replace(flag, on) != on
}

/// One room mode, with its argument where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMode {
    Op(String),
    Voice(String),
    Ban(String),
    InviteOnly,
    Key(String),
    Limit(usize),
    Moderated,
    NoExternal,
    Secret,
    TopicOps,
    RegisteredOnly,
}

impl RoomMode {
    pub fn letter(&self) -> char {
        match self {
            RoomMode::Op(_) => 'o',
            RoomMode::Voice(_) => 'v',
            RoomMode::Ban(_) => 'b',
            RoomMode::InviteOnly => 'i',
            RoomMode::Key(_) => 'k',
            RoomMode::Limit(_) => 'l',
            RoomMode::Moderated => 'm',
            RoomMode::NoExternal => 'n',
            RoomMode::Secret => 's',
            RoomMode::TopicOps => 't',
            RoomMode::RegisteredOnly => 'R',
        }
    }

    pub fn arg(&self) -> Option<String> {
        match self {
            RoomMode::Op(a) | RoomMode::Voice(a) | RoomMode::Ban(a) | RoomMode::Key(a) => Some(a.clone()),
            RoomMode::Limit(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// `+mode` or `-mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    pub add: bool,
    pub mode: RoomMode,
}

/// What a mode string asked for that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeParseError {
    /// A letter that is not a room mode (IRC 472).
    Unknown(char),
    /// A mode that needs an argument had none (IRC 461); `-k` and `-l` need none.
    MissingArg(char),
    /// `+l` with something that is not a positive number.
    BadLimit(String),
    /// A key or mask that could not travel safely: empty, too long (a key over
    /// [`KEY_LEN`](super::text::KEY_LEN), a mask over [`MASK_LEN`](super::text::MASK_LEN)), not a
    /// [`token`](super::text::token) (a space, a control or invisible character) or starting
    /// with `:`. (Such text would split IRC lines, reach terminals raw or read as another.)
    BadArg(char, String),
}

/// Can `arg` be the key (`k`) or ban mask (`b`)?
fn valid_arg(mode: char, arg: &str) -> bool {
    let max = if mode == 'k' { super::text::KEY_LEN } else { super::text::MASK_LEN };
    !arg.is_empty()
        && !arg.starts_with(':')
        && super::text::token(arg)
        && if mode == 'b' { normalize_mask(arg).len() <= max } else { arg.len() <= max }
}

/// Parsed mode string: the changes, the errors, and whether the ban list was asked for
/// (`+b` or `b` with no mask).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedModes {
    pub changes: Vec<ModeChange>,
    pub errors: Vec<ModeParseError>,
    pub list_bans: bool,
}

/// Parses `modes` (e.g. `+ov-k`) with its arguments, as IRC `MODE #room` does.
pub fn parse(modes: &str, args: &[&str]) -> ParsedModes {
    let mut parsed = ParsedModes::default();
    let mut args = args.iter().copied();
    let mut add = true;
    for c in modes.chars() {
        let mode = match c {
            '+' => {
                add = true;
                continue;
            }
            '-' => {
                add = false;
                continue;
            }
            'i' => RoomMode::InviteOnly,
            'm' => RoomMode::Moderated,
            'n' => RoomMode::NoExternal,
            's' => RoomMode::Secret,
            't' => RoomMode::TopicOps,
            'R' => RoomMode::RegisteredOnly,
            'k' | 'b' if args.clone().next().is_some_and(|a| !valid_arg(c, a)) => {
                let arg = args.next().unwrap_or_default();
                parsed.errors.push(ModeParseError::BadArg(c, arg.into()));
                continue;
            }
            'o' | 'v' | 'b' => match args.next() {
                Some(arg) if c == 'o' => RoomMode::Op(arg.into()),
                Some(arg) if c == 'v' => RoomMode::Voice(arg.into()),
                Some(arg) => RoomMode::Ban(normalize_mask(arg)),
                None if c == 'b' => {
                    parsed.list_bans = true;
                    continue;
                }
                None => {
                    parsed.errors.push(ModeParseError::MissingArg(c));
                    continue;
                }
            },
            'k' => match (add, args.next()) {
                (_, Some(key)) => RoomMode::Key(key.into()),
                (false, None) => RoomMode::Key(String::new()),
                (true, None) => {
                    parsed.errors.push(ModeParseError::MissingArg(c));
                    continue;
                }
            },
            'l' if !add => RoomMode::Limit(0),
            'l' => match args.next().map(|a| (a, a.parse::<usize>())) {
                Some((_, Ok(n))) if n > 0 => RoomMode::Limit(n),
                Some((a, _)) => {
                    parsed.errors.push(ModeParseError::BadLimit(a.into()));
                    continue;
                }
                None => {
                    parsed.errors.push(ModeParseError::MissingArg(c));
                    continue;
                }
            },
            other => {
                parsed.errors.push(ModeParseError::Unknown(other));
                continue;
            }
        };
        parsed.changes.push(ModeChange { add, mode });
    }
    parsed
}

/// Completes a ban mask the way IRC servers do: `bob` → `bob!*@*`, `*@host` → `*!*@host`.
pub fn normalize_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.into(),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("{mask}!*@*"),
    }
}

/// Renders applied changes as IRC does: `+o-v bob alice`.
pub fn render(changes: &[ModeChange]) -> String {
    let mut flags = String::new();
    let mut args = Vec::new();
    let mut sign = None;
    for change in changes {
        if sign != Some(change.add) {
            flags.push(if change.add { '+' } else { '-' });
            sign = Some(change.add);
        }
        flags.push(change.mode.letter());
        if let Some(arg) =
            change.mode.arg().filter(|a| !a.is_empty() && (change.add || !matches!(change.mode, RoomMode::Limit(_))))
        {
            args.push(arg);
        }
    }
    std::iter::once(flags).chain(args).collect::<Vec<_>>().join(" ")
}

/// [`render`]s changes as few strings as fit in `max` bytes each (one change is never cut).
pub fn render_within(changes: &[ModeChange], max: usize) -> Vec<String> {
    let mut rendered = Vec::new();
    let mut start = 0;
    while start < changes.len() {
        let mut end = start + 1;
        while end < changes.len() && render(&changes[start..=end]).len() <= max {
            end += 1;
        }
        rendered.push(render(&changes[start..end]));
        start = end;
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_arguments() {
        let parsed = parse("+ov-k+l", &["bob", "alice", "old", "3"]);
        assert_eq!(
            parsed.changes,
            vec![
                ModeChange { add: true, mode: RoomMode::Op("bob".into()) },
                ModeChange { add: true, mode: RoomMode::Voice("alice".into()) },
                ModeChange { add: false, mode: RoomMode::Key("old".into()) },
                ModeChange { add: true, mode: RoomMode::Limit(3) },
            ]
        );
        assert!(parsed.errors.is_empty());
        assert_eq!(parse("-k", &[]).changes, [ModeChange { add: false, mode: RoomMode::Key(String::new()) }]);
    }

    #[test]
    fn reports_unknown_and_missing() {
        let parsed = parse("+xo", &[]);
        assert_eq!(parsed.errors, vec![ModeParseError::Unknown('x'), ModeParseError::MissingArg('o')]);
        assert!(parse("+b", &[]).list_bans);
        assert_eq!(parse("+l", &["zero"]).errors, vec![ModeParseError::BadLimit("zero".into())]);
        assert_eq!(parse("+k", &["\x1b]0;x\x07"]).errors, vec![ModeParseError::BadArg('k', "\x1b]0;x\x07".into())]);
        assert_eq!(parse("+b", &["a b"]).errors, vec![ModeParseError::BadArg('b', "a b".into())]);
        assert!(parse("+bk", &["\x1b[31m", ":x"]).changes.is_empty());
        assert!(parse("+bk", &["\u{202e}x", "a\u{200b}"]).changes.is_empty(), "invisible characters");
        assert!(parse("+k", &[&"k".repeat(24)]).changes.is_empty());
        assert_eq!(parse("+k", &[&"k".repeat(23)]).changes.len(), 1);
        assert!(parse("+b", &[&"b".repeat(110)]).changes.is_empty(), "with its !*@* it is too long");
        assert_eq!(parse("+b", &[&"b".repeat(108)]).changes.len(), 1);
    }

    #[test]
    fn settings_survive_rendering() {
        let mut modes = RoomModes::default();
        for change in parse("+imk-t+l", &["pw", "7"]).changes {
            modes.apply(&change);
        }
        assert_eq!(RoomModes::from_rendered(&modes.render(true)), modes);
        assert_eq!(RoomModes::from_rendered(&RoomModes::default().render(true)), RoomModes::default());
    }

    #[test]
    fn masks_and_rendering() {
        assert_eq!(normalize_mask("bob"), "bob!*@*");
        assert_eq!(normalize_mask("*@10.0.0.1"), "*!*@10.0.0.1");
        let parsed = parse("+m-l+b", &["bob"]);
        assert_eq!(render(&parsed.changes), "+m-l+b bob!*@*");
        let modes = RoomModes { key: Some("pw".into()), limit: Some(5), ..RoomModes::default() };
        assert_eq!(modes.render(true), "+klnt pw 5");
        assert_eq!(modes.render(false), "+klnt * 5");
        let parsed = parse("+bbm", &["a", "b"]);
        assert_eq!(render_within(&parsed.changes, 100), ["+bbm a!*@* b!*@*"]);
        assert_eq!(render_within(&parsed.changes, 12), ["+b a!*@*", "+bm b!*@*"]);
    }
}
