//! `aviary logs WORKLOAD [--replica N] [--follow]`: the replicas' output from the supervisor's
//! log files (`DATA_DIR/logs/<workload>-<replica>.log`), whole or followed until Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use workloads::logs::{LogFollower, LogLine};

/// How often `--follow` looks for new output: short enough to feel live, long enough to cost
/// nothing.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Prints the log of one replica, or of every replica (each line prefixed `<workload>-<n> | `
/// when there may be more than one). Fails, naming the workload and the directory, when the
/// workload has no log there.
pub async fn run(
    data_dir: &Path,
    workload: &str,
    replica: Option<u32>,
    follow: bool,
) -> anyhow::Result<()> {
    let mut follower = LogFollower::new(data_dir, workload, replica)?;
    let prefixed = replica.is_none() && (follow || follower.files() > 1);
    let print = |lines: Vec<LogLine>| -> anyhow::Result<bool> {
        let mut out = std::io::stdout().lock();
        for LogLine { replica, line } in lines {
            let written = if prefixed {
                writeln!(out, "{workload}-{replica} | {line}")
            } else {
                writeln!(out, "{line}")
            };
            match written {
                Ok(()) => {}
                // `aviary logs web | head`: the reader has seen enough.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
                Err(e) => return Err(e).context("cannot write to stdout"),
            }
        }
        out.flush().ok();
        Ok(true)
    };
    loop {
        // Everything there is now (a large log comes in several chunks).
        loop {
            let lines = follower.poll(!follow)?;
            if lines.is_empty() {
                break;
            }
            if !print(lines)? {
                return Ok(());
            }
        }
        if !follow {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
    print(follower.finish())?;
    Ok(())
}
