//! What a pipeline stage runs on the leader's host: `git` for Source, the build's `sh -c` for
//! Build. A [`Job`] runs its commands one after another in the background, each in its own
//! process group (so a timeout or a superseding commit ends whatever the build spawned), with
//! stdout and stderr kept as one bounded tail ([`Tail`]) that the driver stores.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::wire::MAX_STAGE_LOG_BYTES;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `git ls-remote`, a clone or a checkout may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A stage's output: its newest [`MAX_STAGE_LOG_BYTES`], whatever the build prints.
#[derive(Debug, Default)]
pub struct Tail {
    text: String,
    truncated: bool,
    /// Bumped on every append, so the driver stores only what changed.
    changes: u64,
}

impl Tail {
    pub fn push(&mut self, bytes: &[u8]) {
        self.text.push_str(&String::from_utf8_lossy(bytes));
        self.changes += 1;
        if self.text.len() > MAX_STAGE_LOG_BYTES {
            let mut cut = self.text.len() - MAX_STAGE_LOG_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
            self.truncated = true;
        }
    }

    pub fn snapshot(&self) -> (String, bool, u64) {
        (self.text.clone(), self.truncated, self.changes)
    }

    /// The last lines that say something (at most three, oldest first), for a failure's
    /// reason: stdout and stderr arrive in either order, so one line may not be the error.
    fn last_lines(&self) -> Option<String> {
        let mut lines: Vec<String> = self
            .text
            .lines()
            .rev()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("$ "))
            .take(3)
            .map(|line| line.chars().take(200).collect())
            .collect();
        lines.reverse();
        (!lines.is_empty()).then(|| lines.join(" | "))
    }
}

/// One command of a job.
#[derive(Debug, Clone)]
pub struct Step {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Shown in the log and in a failure's reason instead of the argv.
    pub shown: String,
}

/// Commands running in the background; the driver polls [`Job::finished`].
pub struct Job {
    handle: JoinHandle<Result<String, String>>,
    pub tail: Arc<Mutex<Tail>>,
    /// The process group of the command running now (0: none).
    pid: Arc<AtomicU32>,
    cancel: CancellationToken,
    /// The tail's change count last stored, and when.
    pub stored: u64,
    pub stored_at: std::time::Instant,
}

impl Job {
    /// Starts `steps` in order; all of them together may take `timeout`. Succeeds with
    /// `done` when every command exits 0.
    pub fn start(steps: Vec<Step>, timeout: Duration, done: String) -> Job {
        let tail = Arc::new(Mutex::new(Tail::default()));
        let pid = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_steps(
            steps,
            timeout,
            done,
            tail.clone(),
            pid.clone(),
            cancel.clone(),
        ));
        Job {
            handle,
            tail,
            pid,
            cancel,
            stored: 0,
            stored_at: std::time::Instant::now(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }

    /// Its outcome once it ended: `Ok(what it did)` or `Err(why it failed)`.
    pub async fn finished(&mut self) -> Option<Result<String, String>> {
        if !self.handle.is_finished() {
            return None;
        }
        Some(match (&mut self.handle).await {
            Ok(outcome) => outcome,
            Err(error) => Err(format!("the stage's task ended: {error}")),
        })
    }

    /// Ends it and whatever its command spawned.
    pub fn stop(&self) {
        self.cancel.cancel();
        if let Some(pid) = self.pid() {
            kill_group(pid);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILL to the process group led by `pid`; a group that is gone is fine.
pub fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %error, "cannot end a build's process group"),
    }
}

/// Ends a build an earlier leader on this host started, if its process group is still there
/// and its leader still works in `checkout` (a pid alone may have been reused since).
pub fn end_stale_build(pid: u32, checkout: &std::path::Path) {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    if cwd.is_ok_and(|cwd| cwd == checkout) {
        tracing::info!(pid, "ending the build an earlier control plane started");
        kill_group(pid);
    }
}

async fn run_steps(
    steps: Vec<Step>,
    timeout: Duration,
    done: String,
    tail: Arc<Mutex<Tail>>,
    pid: Arc<AtomicU32>,
    cancel: CancellationToken,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    for step in steps {
        push(&tail, format!("$ {}\n", step.shown).as_bytes());
        let (program, args) = step
            .argv
            .split_first()
            .ok_or_else(|| "an empty command".to_string())?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(&step.cwd)
            .envs(step.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", step.shown))?;
        let group = child.id().unwrap_or(0);
        pid.store(group, Ordering::SeqCst);
        let out = child.stdout.take().map(|r| copy_into(r, tail.clone()));
        let err = child.stderr.take().map(|r| copy_into(r, tail.clone()));
        let outcome = tokio::select! {
            status = child.wait() => Ok(status),
            _ = tokio::time::sleep_until(deadline) => Err(format!("timed out after {}s", timeout.as_secs())),
            _ = cancel.cancelled() => Err("stopped".to_string()),
        };
        // Whatever the command left behind in its group goes with it.
        kill_group(group);
        pid.store(0, Ordering::SeqCst);
        for reader in [out, err].into_iter().flatten() {
            // Bounded: the group is gone, so the pipes close.
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        let status = match outcome {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => return Err(format!("`{}`: {error}", step.shown)),
            Err(why) => return Err(format!("`{}` {why}", step.shown)),
        };
        if !status.success() {
            let ends = tail
                .lock()
                .expect("tail lock")
                .last_lines()
                .map(|line| format!("; its output ends: {line}"))
                .unwrap_or_default();
            let code = status
                .code()
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "a signal".into());
            return Err(format!("`{}` failed with {code}{ends}", step.shown));
        }
    }
    Ok(done)
}

fn push(tail: &Mutex<Tail>, bytes: &[u8]) {
    tail.lock().expect("tail lock").push(bytes);
}

fn copy_into<R: AsyncRead + Unpin + Send + 'static>(
    mut reader: R,
    tail: Arc<Mutex<Tail>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 8192];
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            push(&tail, &buffer[..n]);
        }
    })
}

/// The branch's newest commit in `repository` (`git ls-remote`), or why it cannot be read.
pub async fn head_commit(repository: &str, branch: &str) -> Result<String, String> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(["ls-remote", "--", repository])
        .arg(format!("refs/heads/{branch}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("git ls-remote {repository} timed out"))?
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("git cannot read '{repository}': {}", said.trim()));
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .filter(|sha| sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .ok_or_else(|| format!("'{repository}' has no branch '{branch}'"))
}

/// Clones `branch` of `repository` into `dir` and checks out `commit`.
pub fn checkout_steps(
    repository: &str,
    branch: &str,
    commit: &str,
    dir: &std::path::Path,
) -> Vec<Step> {
    let parent = dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let env = vec![("GIT_TERMINAL_PROMPT".to_string(), "0".to_string())];
    let target = dir.display().to_string();
    vec![
        Step {
            argv: [
                "git",
                "clone",
                "--quiet",
                "--no-checkout",
                "--single-branch",
                "--branch",
                branch,
                "--",
                repository,
                &target,
            ]
            .map(String::from)
            .to_vec(),
            cwd: parent,
            env: env.clone(),
            shown: format!("git clone --branch {branch} {repository}"),
        },
        Step {
            argv: [
                "git",
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--detach",
                commit,
            ]
            .map(String::from)
            .to_vec(),
            cwd: dir.to_path_buf(),
            env,
            shown: format!("git checkout {commit}"),
        },
    ]
}
