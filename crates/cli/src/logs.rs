//! `aviary logs WORKLOAD [--mesh M] [--replica N] [--follow]`: the replicas' output from the
//! supervisor's log files (`DATA_DIR/logs/<mesh>/<workload>-<replica>.log`), whole or followed
//! until Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use workloads::logs::{LogFollower, LogLine};

use crate::args::LogsOpts;

/// How often `--follow` looks for new output: short enough to feel live, long enough to cost
/// nothing.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Prints the log of one replica, or of every replica (each line prefixed `<workload>-<n> | `
/// when there may be more than one). Fails, naming the workload and the directory, when the
/// workload has no log there.
pub async fn run(opts: LogsOpts) -> anyhow::Result<()> {
    let mesh = resolve_mesh(&opts.data_dir, opts.mesh.as_deref())?;
    let (workload, replica, follow) = (opts.workload.as_str(), opts.replica, opts.follow);
    let mut follower = LogFollower::new(&opts.data_dir, &mesh, workload, replica)?;
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

/// `--mesh`, or the only mesh with logs in the data directory. Read from the directory, not the
/// control plane, so that logs can be read after everything stopped.
fn resolve_mesh(data_dir: &Path, mesh: Option<&str>) -> anyhow::Result<String> {
    if let Some(mesh) = mesh {
        let problems = model::validate_name("--mesh", mesh);
        if !problems.is_empty() {
            bail!("{}", model::Problems(problems));
        }
        return Ok(mesh.to_string());
    }
    let meshes = workloads::logs::meshes_with_logs(data_dir)?;
    match meshes.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!(
            "no workload logs in {} (is aviary up or aviary demo running with --data-dir {}?)",
            workloads::logs::logs_root(data_dir).display(),
            data_dir.display()
        ),
        many => bail!(
            "--mesh is required: {} has logs of {} meshes ({})",
            data_dir.display(),
            many.len(),
            many.join(", ")
        ),
    }
}
