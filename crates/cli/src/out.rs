//! Standard output that a closed pipe ends quietly: what the crate's `print!`/`println!` write through.
//!
//! std's macros panic when a write fails, and a reader that stops early (`aviary get ... | head
//! -1`) makes every further write fail with `BrokenPipe`. Resetting SIGPIPE to its default would
//! also end the process, but silently kill the servers this binary runs (`control`, `proxy`,
//! `agent`, `up`, `demo`) whenever a pipe of theirs closes; so the choice is made per command
//! instead: one that prints and exits stops, quietly and successfully, when its reader has gone;
//! one that serves drops what it can no longer print and goes on serving.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`stop_when_closed`]: a failed write to stdout ends the process.
static STOP_WHEN_CLOSED: AtomicBool = AtomicBool::new(false);

/// From now on a write to stdout that fails ends the process: quietly with success when the
/// reader has gone, else with the error on stderr.
pub fn stop_when_closed() {
    STOP_WHEN_CLOSED.store(true, Ordering::Relaxed);
}

/// Writes to stdout (line-buffered, as std's macros do).
pub fn write(args: std::fmt::Arguments<'_>) {
    let Err(error) = std::io::stdout().lock().write_fmt(args) else {
        return;
    };
    if !STOP_WHEN_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {error}");
    std::process::exit(1);
}

/// Whether `error` comes from a reader that has gone (a `flush()?` of stdout into a closed
/// pipe), which is how a command learns it may stop.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
