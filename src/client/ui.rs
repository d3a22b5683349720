//! Drawing the [`App`] on a terminal frame. Pure: the same state always draws the same screen,
//! so tests render into ratatui's `TestBackend` and read the buffer.
//!
//! ```text
//! ┌ topic bar ─────────────────────────────────────────────────────────────────┐
//! │ windows      │ message pane (timestamps, nicks in their colours)  │ members │
//! │ (unread)     │                                                    │         │
//! ├ status line: nick, window, activity, link state ────────────────────────────┤
//! └ input line ────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The room list's window (`/list`) shows a table of rooms in the message pane instead, the
//! chosen one highlighted, with what Enter does at its foot.
//!
//! Columns are fixed while the terminal is wide enough (the window list from 50 columns, the
//! member list from 70), so the message pane's width does not change when switching windows and
//! [`App`] can count rows for scrolling with [`message_width`] and [`entry_rows`].

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use time::UtcOffset;
use unicode_width::UnicodeWidthChar;

use super::app::{App, Link};
use super::text::{clock, day, day_label, nick_colour, plain, styled};
use super::window::{Entry, EntryKind, Window, WindowKind};

/// Width of the window list, its border included.
const LEFT: u16 = 15;
/// Width of the member list, its border included.
const RIGHT: u16 = 15;
const DIM: Style = Style::new().fg(Color::DarkGray);
const BAR: Style = Style::new().fg(Color::White).bg(Color::Blue);

/// The screen's parts.
struct Areas {
    topic: Rect,
    windows: Rect,
    messages: Rect,
    members: Rect,
    status: Rect,
    input: Rect,
}

fn areas(area: Rect) -> Areas {
    let row = |y: u16, height: u16| Rect { x: area.x, y: area.y + y, width: area.width, height };
    let body_height = area.height.saturating_sub(3);
    let left = if area.width >= 50 { LEFT } else { 0 };
    let right = if area.width >= 70 { RIGHT } else { 0 };
    let body_y = area.y + 1.min(area.height);
    Areas {
        topic: row(0, 1.min(area.height)),
        windows: Rect { x: area.x, y: body_y, width: left, height: body_height },
        messages: Rect {
            x: area.x + left,
            y: body_y,
            width: area.width.saturating_sub(left + right),
            height: body_height,
        },
        members: Rect { x: area.x + area.width - right, y: body_y, width: right, height: body_height },
        status: row(area.height.saturating_sub(2), 1.min(area.height.saturating_sub(1))),
        input: row(area.height.saturating_sub(1), 1.min(area.height)),
    }
}

/// Columns of the message pane on a terminal this wide and high.
pub fn message_width(columns: u16, rows: u16) -> usize {
    areas(Rect::new(0, 0, columns, rows)).messages.width as usize
}

/// Rows of the message pane on a terminal this high.
pub fn message_height(rows: u16) -> usize {
    rows.saturating_sub(3) as usize
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let areas = areas(frame.area());
    let buf = frame.buffer_mut();
    draw_topic(buf, areas.topic, app);
    draw_windows(buf, areas.windows, app);
    if app.window().kind == WindowKind::Rooms {
        // No members to show: the topics get their column too.
        let wide = Rect { width: areas.messages.width + areas.members.width, ..areas.messages };
        draw_room_list(buf, wide, app);
    } else {
        draw_messages(buf, areas.messages, app.window(), app.config.utc_offset);
        draw_members(buf, areas.members, app);
    }
    draw_status(buf, areas.status, app);
    if let Some(cursor) = draw_input(buf, areas.input, app) {
        frame.set_cursor_position(cursor);
    }
}

/// Writes spans on one row, clipped to the area's width; fills the rest of the row with `fill`.
fn put_line(buf: &mut Buffer, area: Rect, y: u16, spans: &[Span], fill: Style) {
    if area.width == 0 || y >= area.y + area.height {
        return;
    }
    buf.set_style(Rect { x: area.x, y, width: area.width, height: 1 }, fill);
    buf.set_line(area.x, y, &Line::from(spans.to_vec()), area.width);
}

/// Cuts text to `width` columns, ending in `…` when something was cut.
fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            if width > 0 {
                while used + 1 > width {
                    let Some(last) = out.pop() else { break };
                    used -= last.width().unwrap_or(0);
                }
                out.push('…');
            }
            return out;
        }
        used += w;
        out.push(c);
    }
    out
}

fn spans(runs: Vec<(String, Style)>) -> Vec<Span<'static>> {
    runs.into_iter().map(|(text, style)| Span::styled(text, style)).collect()
}

fn draw_topic(buf: &mut Buffer, area: Rect, app: &App) {
    let window = app.window();
    let head = match window.kind {
        WindowKind::Server => format!(" {}:{} — server messages", app.config.host, app.config.port),
        WindowKind::Query => format!(" {} — private conversation", window.name),
        WindowKind::Room if !window.joined => format!(" {} (not joined)", window.name),
        WindowKind::Room => format!(" {}", window.name),
        WindowKind::Rooms if window.list.loading => " Rooms on this server: loading…".to_string(),
        WindowKind::Rooms => match window.list.rooms.len() {
            1 => " Rooms on this server: 1 room".to_string(),
            n => format!(" Rooms on this server: {n} rooms"),
        },
    };
    let mut line = vec![Span::styled(head, BAR.add_modifier(Modifier::BOLD))];
    if let Some(topic) = window.topic.as_deref().filter(|_| window.kind == WindowKind::Room) {
        line.push(Span::styled(": ", BAR));
        line.extend(spans(styled(topic, BAR)));
    }
    put_line(buf, area, area.y, &line, BAR);
}

fn draw_windows(buf: &mut Buffer, area: Rect, app: &App) {
    if area.width == 0 {
        return;
    }
    let inner = Rect { width: area.width - 1, ..area };
    for y in area.y..area.y + area.height {
        buf[(area.x + area.width - 1, y)].set_symbol("│").set_style(DIM);
    }
    let rows = area.height as usize;
    // Keep the current window in view when there are more windows than rows.
    let first = (app.current + 1).saturating_sub(rows);
    for (row, (i, window)) in app.windows.iter().enumerate().skip(first).take(rows).enumerate() {
        let number = format!("{:>2} ", i + 1);
        let count = if window.unread > 0 { format!(" {}", window.unread) } else { String::new() };
        let name_width = (inner.width as usize).saturating_sub(number.len() + count.len());
        let name = fit(&window.name, name_width);
        let pad = " ".repeat(name_width.saturating_sub(unicode_width::UnicodeWidthStr::width(name.as_str())));
        let mut style = if window.kind == WindowKind::Room && !window.joined { DIM } else { Style::default() };
        if window.highlight {
            style = style.fg(Color::LightMagenta).add_modifier(Modifier::BOLD);
        } else if window.unread > 0 {
            style = style.fg(Color::White).add_modifier(Modifier::BOLD);
        }
        let fill = if i == app.current { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
        let line = [
            Span::styled(number, DIM),
            Span::styled(name, style),
            Span::raw(pad),
            Span::styled(count, style.fg(if window.highlight { Color::LightMagenta } else { Color::Yellow })),
        ];
        put_line(buf, inner, inner.y + row as u16, &line, fill);
    }
}

/// The rows one entry takes, as styled lines: a day line first when its day differs from the
/// previous entry's, then the entry wrapped to `width` with continuation rows indented.
fn entry_lines(prev: Option<&Entry>, entry: &Entry, width: usize, offset: UtcOffset) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if prev.is_none_or(|p| day(p.time, offset) != day(entry.time, offset)) {
        let label = format!("─── {} ───", day_label(entry.time, offset));
        lines.push(Line::from(Span::styled(fit(&label, width), DIM)));
    }
    let time = Span::styled(format!("{} ", clock(entry.time, offset)), DIM);
    let body = if entry.highlight { Style::default().fg(Color::LightYellow) } else { Style::default() };
    let nick_style = |nick: &str| Style::default().fg(nick_colour(nick));
    let mut prefix = vec![time];
    let text_style = match &entry.kind {
        EntryKind::Message { nick } => {
            prefix.push(Span::styled("<", DIM));
            prefix.push(Span::styled(nick.clone(), nick_style(nick).add_modifier(Modifier::BOLD)));
            prefix.push(Span::styled("> ", DIM));
            body
        }
        EntryKind::Action { nick } => {
            prefix.push(Span::raw("* "));
            prefix.push(Span::styled(nick.clone(), nick_style(nick)));
            prefix.push(Span::raw(" "));
            body.add_modifier(Modifier::ITALIC)
        }
        EntryKind::Notice { nick } => {
            prefix.push(Span::styled("-", DIM));
            prefix.push(Span::styled(nick.clone(), nick_style(nick)));
            prefix.push(Span::styled("- ", DIM));
            body
        }
        EntryKind::Event => DIM,
        EntryKind::Info => Style::default().fg(Color::Gray),
        EntryKind::Error => {
            prefix.push(Span::styled("! ", Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)));
            Style::default().fg(Color::LightRed)
        }
    };
    let mut runs: Vec<(String, Style)> = prefix.into_iter().map(|s| (s.content.into_owned(), s.style)).collect();
    let indent: usize = runs.iter().map(|(s, _)| unicode_width::UnicodeWidthStr::width(s.as_str())).sum();
    let indent = if indent * 2 <= width { indent } else { 0 };
    runs.extend(styled(&entry.text, text_style));
    lines.extend(wrap(&runs, width, indent));
    lines
}

/// How many rows `entry` takes after `prev` in a pane `width` columns wide.
pub fn entry_rows(prev: Option<&Entry>, entry: &Entry, width: usize, offset: UtcOffset) -> usize {
    entry_lines(prev, entry, width, offset).len()
}

/// How many rows all of a window's entries take.
pub fn total_rows(window: &Window, width: usize, offset: UtcOffset) -> usize {
    let entries = &window.entries;
    (0..entries.len()).map(|i| entry_rows(i.checked_sub(1).map(|p| &entries[p]), &entries[i], width, offset)).sum()
}

/// Wraps styled text into rows of at most `width` columns, breaking after spaces where it can;
/// rows after the first start with `indent` spaces.
fn wrap(runs: &[(String, Style)], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut rows: Vec<Vec<(char, Style)>> = vec![Vec::new()];
    let mut used = 0;
    // Where the current row may break: the index just after its last space.
    let mut break_at: Option<usize> = None;
    for (c, style) in runs.iter().flat_map(|(s, style)| s.chars().map(move |c| (c, *style))) {
        let w = c.width().unwrap_or(0);
        if used + w > width && used > indent {
            let row = rows.last_mut().expect("never empty");
            // A space that does not fit is the break itself; otherwise the word being written
            // moves to the next row, unless it is all the row holds.
            let carried = match break_at.filter(|&b| c != ' ' && b > indent && b < row.len()) {
                Some(b) => row.split_off(b),
                None => Vec::new(),
            };
            let mut next: Vec<(char, Style)> = vec![(' ', Style::default()); indent];
            next.extend(carried);
            used = next.iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
            rows.push(next);
            break_at = None;
            if c == ' ' {
                continue;
            }
        }
        let row = rows.last_mut().expect("never empty");
        row.push((c, style));
        used += w;
        if c == ' ' {
            break_at = Some(row.len());
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut text = String::new();
            let mut current = row.first().map(|(_, s)| *s).unwrap_or_default();
            for (c, style) in row {
                if style != current && !text.is_empty() {
                    spans.push(Span::styled(std::mem::take(&mut text), current));
                }
                current = style;
                text.push(c);
            }
            if !text.is_empty() {
                spans.push(Span::styled(text, current));
            }
            Line::from(spans)
        })
        .collect()
}

fn draw_messages(buf: &mut Buffer, area: Rect, window: &Window, offset: UtcOffset) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let width = area.width as usize;
    let height = area.height as usize;
    // Rows from the bottom up, only as many as the scroll position and the pane need.
    let mut rows: Vec<Line<'static>> = Vec::new();
    let entries = &window.entries;
    for i in (0..entries.len()).rev() {
        if rows.len() >= window.scroll + height {
            break;
        }
        let lines = entry_lines(i.checked_sub(1).map(|p| &entries[p]), &entries[i], width, offset);
        rows.extend(lines.into_iter().rev());
    }
    let skip = window.scroll.min(rows.len().saturating_sub(height));
    let shown: Vec<Line<'static>> = rows.into_iter().skip(skip).take(height).collect();
    // New lines sit at the bottom, as in every chat.
    let top = area.y + (height - shown.len()) as u16;
    for (row, line) in shown.into_iter().rev().enumerate() {
        buf.set_line(area.x, top + row as u16, &line, area.width);
    }
}

/// The room list: a header, one row per room that matches what is typed (the chosen one in
/// reverse), then the window's last message if any (an error of the list's own), and a line
/// saying what Enter does.
fn draw_room_list(buf: &mut Buffer, area: Rect, app: &App) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let window = app.window();
    let list = &window.list;
    let filter = app.input.text();
    let filter = filter.trim();
    let rooms = list.matching(filter);
    let chosen = list.chosen(filter);
    let width = area.width as usize;
    let mut foot: Vec<Line> = Vec::new();
    if let Some(last) = window.entries.last() {
        foot.extend(entry_lines(Some(last), last, width, app.config.utc_offset).into_iter().take(2));
    }
    let hint = match chosen {
        Some(room) if app.find(&room.name).is_some_and(|i| app.windows[i].joined) => {
            format!("↑ ↓ choose · Enter shows {} · type to filter · /list refreshes", room.name)
        }
        Some(room) => format!("↑ ↓ choose · Enter joins {} · type to filter · /list refreshes", room.name),
        None if !filter.is_empty() && !filter.contains(' ') => {
            let name = if app.server.is_room(filter) { filter.to_string() } else { format!("#{filter}") };
            format!("No room matches: Enter creates {name}")
        }
        None => "/list refreshes · /close closes this list".to_string(),
    };
    foot.push(Line::from(Span::styled(fit(&hint, width), DIM)));
    let foot_y = (area.y + area.height).saturating_sub(foot.len() as u16).max(area.y);
    for (row, line) in foot.iter().enumerate() {
        put_line(buf, area, foot_y + row as u16, &line.spans, Style::default());
    }
    let rows = foot_y.saturating_sub(area.y) as usize;
    if rows == 0 {
        return;
    }
    let empty = if list.loading && list.rooms.is_empty() {
        Some("Asking the server for its rooms…".to_string())
    } else if list.rooms.is_empty() {
        Some("No rooms on this server yet: type a name and press Enter to create one.".to_string())
    } else if rooms.is_empty() {
        Some(format!("No room's name or topic has \"{filter}\" in it."))
    } else {
        None
    };
    if let Some(text) = empty {
        for (row, line) in wrap(&[(text, Style::default().fg(Color::Gray))], width, 0).iter().take(rows).enumerate() {
            put_line(buf, area, area.y + row as u16, &line.spans, Style::default());
        }
        return;
    }
    // Names get the room they need, up to a third of the pane; the topic the rest.
    let name_width = rooms.iter().map(|r| unicode_width::UnicodeWidthStr::width(r.name.as_str())).max().unwrap_or(0);
    let name_width = name_width.clamp(4, (width / 3).max(4));
    let header = format!(" {:<name_width$} Users  Topic", "Room");
    let topic_width = width.saturating_sub(name_width + 9);
    put_line(
        buf,
        area,
        area.y,
        &[Span::styled(fit(&header, width), DIM.add_modifier(Modifier::BOLD))],
        Style::default(),
    );
    let shown = rows - 1;
    let selected = list.selected.min(rooms.len() - 1);
    let first = (selected + 1).saturating_sub(shown);
    for (row, (i, room)) in rooms.iter().enumerate().skip(first).take(shown).enumerate() {
        let name = fit(&room.name, name_width);
        let pad = " ".repeat(name_width.saturating_sub(unicode_width::UnicodeWidthStr::width(name.as_str())));
        let joined = app.find(&room.name).is_some_and(|w| app.windows[w].joined);
        let name_style = if joined { Style::default().add_modifier(Modifier::BOLD) } else { Style::default() };
        let line = [
            Span::raw(" "),
            Span::styled(name, name_style),
            Span::raw(pad),
            Span::styled(format!(" {:>5}  ", room.users), Style::default().fg(Color::Yellow)),
            Span::raw(fit(&plain(&room.topic), topic_width)),
        ];
        let fill = if i == selected { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
        put_line(buf, area, area.y + 1 + row as u16, &line, fill);
    }
}

fn draw_members(buf: &mut Buffer, area: Rect, app: &App) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    for y in area.y..area.y + area.height {
        buf[(area.x, y)].set_symbol("│").set_style(DIM);
    }
    let inner = Rect { x: area.x + 1, width: area.width - 1, ..area };
    let window = app.window();
    let members: Vec<(String, String)> = match window.kind {
        WindowKind::Room => window
            .members
            .sorted(&app.server.prefix_chars)
            .into_iter()
            .map(|m| (m.prefixes.chars().next().map(String::from).unwrap_or_else(|| " ".into()), m.nick.clone()))
            .collect(),
        WindowKind::Query => vec![(" ".into(), window.name.clone()), (" ".into(), app.nick.clone())],
        WindowKind::Server | WindowKind::Rooms => Vec::new(),
    };
    if members.is_empty() {
        return;
    }
    let title = match members.len() {
        1 => " 1 user".to_string(),
        n => format!(" {n} users"),
    };
    put_line(buf, inner, inner.y, &[Span::styled(title, DIM)], Style::default());
    let rows = inner.height.saturating_sub(1) as usize;
    let width = inner.width.saturating_sub(1) as usize;
    let overflow = members.len() > rows;
    for (row, (prefix, nick)) in members.iter().enumerate().take(if overflow { rows.saturating_sub(1) } else { rows }) {
        let away = app.away.contains(&crate::chat::text::fold(nick));
        let style = if away { DIM } else { Style::default().fg(nick_colour(nick)) };
        let line =
            [Span::styled(prefix.clone(), Style::default().fg(Color::Green)), Span::styled(fit(nick, width), style)];
        put_line(buf, inner, inner.y + 1 + row as u16, &line, Style::default());
    }
    if overflow {
        let more = format!(" +{} more", members.len() - rows.saturating_sub(1));
        put_line(buf, inner, inner.y + inner.height - 1, &[Span::styled(more, DIM)], Style::default());
    }
}

fn draw_status(buf: &mut Buffer, area: Rect, app: &App) {
    let style = Style::new().fg(Color::White).bg(Color::DarkGray);
    let window = app.window();
    let mut parts = vec![
        Span::styled(format!(" [{}]", app.nick), style.add_modifier(Modifier::BOLD)),
        Span::styled(format!(" [{}:{}]", app.current + 1, window.name), style),
    ];
    let active: Vec<String> = app
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| w.unread > 0)
        .map(|(i, w)| format!("{}{}", i + 1, if w.highlight { "!" } else { "" }))
        .collect();
    if !active.is_empty() {
        parts.push(Span::styled(format!(" [Act: {}]", active.join(",")), style.fg(Color::Yellow)));
    }
    let warn = style.fg(Color::LightRed).add_modifier(Modifier::BOLD);
    match &app.link {
        Link::Ready => {}
        Link::Connecting => parts.push(Span::styled(" [connecting…]", warn)),
        Link::Registering => parts.push(Span::styled(" [registering…]", warn)),
        Link::Lost(reason) => parts.push(Span::styled(format!(" [disconnected: {reason}]"), warn)),
        Link::Waiting { secs, reason } if reason.is_empty() => {
            parts.push(Span::styled(format!(" [reconnecting in {secs} s]"), warn))
        }
        Link::Waiting { secs, reason } => {
            parts.push(Span::styled(format!(" [reconnecting in {secs} s: {reason}]"), warn))
        }
    }
    if window.history.pending {
        parts.push(Span::styled(" [loading history…]", style));
    }
    if window.scroll > 0 {
        parts.push(Span::styled(" [-- more below: PgDn --]", style.fg(Color::Yellow)));
    }
    put_line(buf, area, area.y, &parts, style);
}

/// Draws the input line, scrolled sideways so the cursor stays visible; returns the cursor.
fn draw_input(buf: &mut Buffer, area: Rect, app: &App) -> Option<(u16, u16)> {
    if area.width < 4 || area.height == 0 {
        return None;
    }
    let prompt = "> ";
    let room = area.width as usize - prompt.len() - 1;
    let chars: Vec<char> = app.input.text().chars().collect();
    let cursor = app.input.cursor();
    let widths: Vec<usize> = chars.iter().map(|c| c.width().unwrap_or(0)).collect();
    // The first char shown: as far left as keeps the cursor within the line.
    let mut start = 0;
    while widths[start..cursor].iter().sum::<usize>() > room {
        start += 1;
    }
    let mut shown = String::new();
    let mut used = 0;
    for (c, w) in chars[start..].iter().zip(&widths[start..]) {
        if used + w > room {
            break;
        }
        used += w;
        shown.push(*c);
    }
    let line = [Span::styled(prompt, Style::default().fg(Color::Cyan)), Span::raw(shown)];
    put_line(buf, area, area.y, &line, Style::default());
    let x = area.x + (prompt.len() + widths[start..cursor].iter().sum::<usize>()) as u16;
    Some((x, area.y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(text: &str, width: usize, indent: usize) -> Vec<String> {
        let runs = [(text.to_string(), Style::default())];
        wrap(&runs, width, indent).iter().map(|line| line.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn wraps_after_spaces_and_keeps_every_word_whole() {
        assert_eq!(wrapped("show or set this room's topic", 20, 0), ["show or set this ", "room's topic"]);
        assert_eq!(wrapped("aaa bbb ccc", 7, 0), ["aaa bbb", "ccc"]);
        assert_eq!(wrapped("x: one two three four", 10, 3), ["x: one two", "   three ", "   four"]);
        // A word longer than the row is cut where the row ends.
        assert_eq!(wrapped("abcdefghij", 4, 0), ["abcd", "efgh", "ij"]);
        // Wide characters never straddle the edge.
        assert_eq!(wrapped("日本語です", 5, 0), ["日本", "語で", "す"]);
    }

    #[test]
    fn fit_marks_what_was_cut() {
        assert_eq!(fit("#a-very-long-room", 8), "#a-very…");
        assert_eq!(fit("short", 8), "short");
        assert_eq!(fit("日本語", 5), "日本…");
    }
}
