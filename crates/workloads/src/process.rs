//! Child processes: a free loopback port per replica, the environment, spawning in a process
//! group of its own with output appended to a log file, and the stop sequence.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::lock;

/// How often a stopping process group is looked at while its members exit.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long to wait for a process to be reaped after SIGKILL before giving up on it.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);

/// Ports handed to running replicas, so that two replicas never get the same one even if the
/// kernel offers a port again after its probe socket is closed.
#[derive(Debug, Default)]
pub struct Ports {
    leased: Mutex<HashSet<u16>>,
}

/// A port given to one replica; released when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    ports: Arc<Ports>,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.ports.leased).remove(&self.port);
    }
}

impl Ports {
    /// A free 127.0.0.1 port: bind `:0`, read the port, close. The child binds it moments later;
    /// in between another program could take it, in which case the child fails and restarts.
    pub fn lease(self: &Arc<Self>) -> std::io::Result<PortLease> {
        for _ in 0..32 {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
                .local_addr()?
                .port();
            if lock(&self.leased).insert(port) {
                return Ok(PortLease {
                    port,
                    ports: self.clone(),
                });
            }
        }
        Err(std::io::Error::other(
            "the kernel keeps offering ports already given to other replicas",
        ))
    }
}

/// What a child's environment adds to the supervisor's own: `HTTP_PROXY` and `http_proxy`, a
/// `PATH` with `extra_path` first, the workload's `env` (which may override those), and `PORT`,
/// which nothing overrides.
pub fn child_env(
    workload_env: &BTreeMap<String, String>,
    port: u16,
    http_proxy: Option<&str>,
    extra_path: &[PathBuf],
    inherited_path: Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    if let Some(proxy) = http_proxy {
        env.push(("HTTP_PROXY".into(), proxy.into()));
        env.push(("http_proxy".into(), proxy.into()));
    }
    if !extra_path.is_empty() {
        let inherited: Vec<PathBuf> = inherited_path
            .as_deref()
            .map(|path| std::env::split_paths(path).collect())
            .unwrap_or_default();
        if let Ok(path) = std::env::join_paths(extra_path.iter().chain(&inherited)) {
            env.push(("PATH".into(), path));
        }
    }
    for (key, value) in workload_env {
        env.push((key.into(), value.into()));
    }
    env.push(("PORT".into(), port.to_string().into()));
    env
}

/// Starts `argv` in a new process group (so that stop reaches whatever it spawns), stdin closed,
/// stdout and stderr appended to `log`. `kill_on_drop` is the last resort should the supervisor
/// be dropped without stopping it.
pub fn spawn(
    argv: &[String],
    env: Vec<(OsString, OsString)>,
    log: &Path,
) -> std::io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let out = open_log(log)?;
    let err = out.try_clone()?;
    Command::new(program)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Appends one line of the supervisor's own to a replica's log, between the child's output, so
/// that `aviary logs` shows starts, exits and stops in place. Failing to write is not fatal.
pub fn note(log: &Path, line: &str) {
    if let Err(error) = open_log(log).and_then(|mut file| writeln!(file, "[aviary] {line}")) {
        tracing::warn!(log = %log.display(), %error, "cannot write to a replica's log");
    }
}

/// Sends `signal` to the process group led by `pid`; a group that is already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %signal, %error, "cannot signal a process group"),
    }
}

/// Whether any process of the group led by `pid` still exists (a zombie leader counts).
pub fn group_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|raw| killpg(Pid::from_raw(raw), None).is_ok())
}

/// Stops a child and its process group: SIGTERM to the group, up to `grace` for the leader to
/// exit and the rest of the group to follow, then SIGKILL to whatever is left. Returns how the
/// leader ended, for the log.
///
/// The leader is reaped before the group is checked: until then the group id cannot be reused,
/// and after it the group is empty or holds only the leader's own descendants.
pub async fn stop(child: &mut Child, pid: u32, grace: Duration) -> String {
    signal_group(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut ended = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => Some(status.to_string()),
        Ok(Err(error)) => Some(format!("cannot wait for it: {error}")),
        Err(_) => None,
    };
    if ended.is_some() {
        while group_alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(STOP_POLL).await;
        }
    }
    signal_group(pid, Signal::SIGKILL);
    if ended.is_none() {
        ended = Some(
            match tokio::time::timeout(REAP_AFTER_KILL, child.wait()).await {
                Ok(Ok(status)) => format!("{status} after {grace:?} of grace"),
                Ok(Err(error)) => format!("cannot wait for it: {error}"),
                Err(_) => "still there after SIGKILL".into(),
            },
        );
    }
    ended.unwrap_or_default()
}

#[cfg(test)]
mod tests;
