//! What a panic (a bug) ends in `charla serve`: the one connection it happened in, or else the
//! whole process, never a server left half-alive.
//!
//! A panic in the code of one connection (sniffing it, its session, its writer) ends that
//! connection's task, and so closes that client's socket; everyone else goes on. Those tasks
//! run inside [`connection`]. A panic anywhere else (an accept loop, the history writer thread,
//! the runtime, `main`) or one that leaves the shared chat state half-changed (a poisoned hub
//! lock, see [`fatal`]) would leave a server that accepts connections but no longer serves
//! them: it ends the process instead, with a message on standard error and exit code 101, so
//! that a supervisor (systemd, a container runtime) restarts it.

use std::cell::Cell;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Set while a connection's task is being polled on this thread.
    static IN_CONNECTION: Cell<bool> = const { Cell::new(false) };
}

/// Exit code after a panic outside a connection: Rust's own for a panicking program.
pub const EXIT_CODE: i32 = 101;

/// Runs `task`, the work of one connection, so that a panic in it ends only that connection.
pub fn connection<F: Future>(task: F) -> Connection<F> {
    Connection { task, _unmark: Unmark }
}

pin_project_lite::pin_project! {
    /// A connection's task, marked as one while it is polled and while it is dropped. Not a
    /// tokio task-local, which would add 16 bytes to every connection's task, and idle
    /// connections are counted in bytes (see [`crate::net::conn`]).
    pub struct Connection<F> {
        #[pin]
        task: F,
        // Dropped after `task` (fields drop in order), which the drop below marks.
        _unmark: Unmark,
    }

    impl<F> PinnedDrop for Connection<F> {
        fn drop(_this: Pin<&mut Self>) {
            IN_CONNECTION.set(true);
        }
    }
}

impl<F: Future> Future for Connection<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        IN_CONNECTION.set(true);
        let _unmark = Unmark;
        self.project().task.poll(cx)
    }
}

/// Clears the mark when dropped: when the poll or the drop it ends returns, or panics.
struct Unmark;

impl Drop for Unmark {
    fn drop(&mut self) {
        IN_CONNECTION.set(false);
    }
}

/// Installs the policy of the [module docs](self) as the process's panic hook.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        if IN_CONNECTION.get() {
            // The runtime catches it and ends the task; the connection closes with it.
            tracing::error!("a bug ended a connection: {info}");
            return;
        }
        let thread = std::thread::current();
        fatal(&format!("a bug in thread '{}': {info}", thread.name().unwrap_or("unnamed")));
    }));
}

/// Ends the process at once with [`EXIT_CODE`], saying why on standard error (if it is still
/// there): for a state the server cannot go on from.
pub fn fatal(why: &str) -> ! {
    crate::logging::write_buffered();
    let _ = writeln!(
        std::io::stderr(),
        "charla: stopping: {why}\ncharla: this is a bug; please report it. Exit code {EXIT_CODE}: a supervisor may restart the server."
    );
    std::process::exit(EXIT_CODE)
}
