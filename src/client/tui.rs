//! The full-screen client's main loop: puts the terminal in raw mode on the alternate screen,
//! feeds key presses and connection events to the [`App`], sends what it answers, and draws.
//!
//! The terminal is restored however the loop ends: by `TerminalGuard`'s drop on return or
//! error (SIGTERM and SIGHUP end the loop like `/quit`), and by a panic hook (installed before raw mode) that restores it before the panic
//! message is printed, so a crash never leaves a shell in raw mode on the alternate screen.

use std::io::{Stdout, stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::app::{Action, App, Config, Link};
use super::irc::{self, Connection, NetEvent};
use super::tls::Dial;
use super::{ClientError, ui};
use crate::proto::irc::message::Message;

/// How long `/quit` waits for the server to close the connection before leaving anyway.
const QUIT_GRACE: Duration = Duration::from_secs(2);
/// Most events applied between two redraws, so a burst of history draws once.
const EVENTS_PER_DRAW: usize = 512;

/// Raw mode and the alternate screen, undone on drop.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, ClientError> {
        install_panic_hook();
        enable_raw_mode().map_err(ClientError::Terminal)?;
        ENTERED.store(true, Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste).map_err(ClientError::Terminal)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is in raw mode on the alternate screen, so restoring is needed.
static ENTERED: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as the shell expects it, once: after a panic both the hook and the
/// guard's drop call it, and leaving the alternate screen twice would move the cursor back over
/// the panic message.
fn restore() {
    if ENTERED.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), DisableBracketedPaste, LeaveAlternateScreen, cursor::Show);
    }
}

/// Restores the terminal before the default panic message is printed.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks) into a channel.
fn read_terminal_events() -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
    rx
}

/// Connects as `dial` says and runs the full-screen client until the user quits.
pub async fn run(config: Config, dial: Dial) -> Result<(), ClientError> {
    // A server that is not there, or a certificate not trusted, is reported on the normal
    // screen, like line mode does.
    let stream = dial.connect().await?;
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout())).map_err(ClientError::Terminal)?;
    let mut app = App::new(config);
    if let Some(notice) = dial.first_use() {
        app.notice(notice);
    }
    let size = terminal.size().map_err(ClientError::Terminal)?;
    app.resize(size.width, size.height);
    let mut keys = read_terminal_events();
    let addr = dial.addr.clone();
    let mut connection = irc::spawn(dial, stream);
    let result = main_loop(&mut terminal, &mut app, &mut keys, &mut connection, &addr).await;
    let quit = match result {
        Ok(reason) => reason,
        Err(error) => {
            drop(guard);
            return Err(error);
        }
    };
    if let Some(reason) = quit
        && app.link == Link::Ready
    {
        let _ = connection.out.send(Message::new("QUIT", &[&reason])).await;
    }
    let Connection { out, task, .. } = connection;
    drop(out);
    let _ = tokio::time::timeout(QUIT_GRACE, task).await;
    drop(guard);
    Ok(())
}

/// Runs until the user quits; returns the quit reason (`None` if the connection task ended).
async fn main_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    keys: &mut mpsc::Receiver<Event>,
    connection: &mut Connection,
    addr: &str,
) -> Result<Option<String>, ClientError> {
    // `kill` or a closed terminal window: leave as /quit does, so the terminal is restored.
    let mut terminate = signal(SignalKind::terminate()).map_err(ClientError::Terminal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(ClientError::Terminal)?;
    loop {
        terminal.draw(|frame| ui::draw(frame, app)).map_err(ClientError::Terminal)?;
        let mut applied = 0;
        loop {
            let step = tokio::select! {
                biased;
                event = keys.recv() => match event {
                    Some(event) => on_terminal_event(app, event, connection),
                    None => return Ok(Some("Leaving".into())),
                },
                _ = terminate.recv() => return Ok(Some("Terminated".into())),
                _ = hangup.recv() => return Ok(Some("Terminal closed".into())),
                event = connection.events.recv() => match event {
                    // No attempt can succeed: said on the normal screen, as a failed connect is.
                    Some(NetEvent::PasswordRefused) => {
                        let given = app.config.credentials.server_password.is_some();
                        return Err(ClientError::PasswordRefused { addr: addr.to_string(), given });
                    }
                    Some(event) => {
                        on_net_event(app, event, connection);
                        None
                    }
                    None => return Ok(None),
                },
            };
            if let Some(reason) = step {
                return Ok(Some(reason));
            }
            applied += 1;
            // Draw when nothing else is waiting, or after a long burst.
            if applied >= EVENTS_PER_DRAW || (keys.is_empty() && connection.events.is_empty()) {
                break;
            }
        }
    }
}

/// Applies a key, paste or resize; returns the quit reason when the user quits.
fn on_terminal_event(app: &mut App, event: Event, connection: &Connection) -> Option<String> {
    match event {
        Event::Key(key) => match app.handle_key(key) {
            Some(Action::Send(messages)) => send(app, connection, messages),
            Some(Action::Quit(reason)) => return Some(reason),
            None => {}
        },
        Event::Paste(text) => app.handle_paste(&text),
        Event::Resize(columns, rows) => app.resize(columns, rows),
        _ => {}
    }
    None
}

fn on_net_event(app: &mut App, event: NetEvent, connection: &Connection) {
    let replies = match event {
        NetEvent::Connecting => {
            app.connecting();
            Vec::new()
        }
        NetEvent::Connected => app.connected(),
        NetEvent::Line(message) => app.handle_irc(&message),
        NetEvent::Disconnected(reason) => {
            app.disconnected(&reason);
            Vec::new()
        }
        NetEvent::Waiting(secs) => {
            app.waiting(secs);
            Vec::new()
        }
        NetEvent::PasswordRefused => Vec::new(),
    };
    send(app, connection, replies);
}

/// Queues lines for the connection task without waiting: the task may itself be waiting for
/// the UI to take its events, so waiting here could stall both.
fn send(app: &mut App, connection: &Connection, messages: Vec<Message>) {
    for message in messages {
        match connection.out.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return app.report("Too much to send at once: the rest was dropped; try again in a moment.");
            }
            // The connection task is ending; the main loop notices.
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
