//! `aviary control` as a child process: start on an ephemeral port, find its URL, kill or stop it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::wait_bounded;

/// How long a child may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a child may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// What `aviary control` prints on stdout once it accepts connections, followed by its URL.
const LISTENING: &str = "aviary control listening on ";

/// A running `aviary control --listen 127.0.0.1:0 --data-dir DIR [ARGS...]`; killed when dropped.
///
/// The data directory outlives restarts: [`ControlProcess::restart`] runs a new child on the
/// same directory, which is how tests check that nothing acknowledged is lost.
pub struct ControlProcess {
    bin: PathBuf,
    data_dir: PathBuf,
    /// More arguments of every start (TLS files, limits), kept across restarts.
    args: Vec<String>,
    child: Option<Child>,
    url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    // Dropped last, after the child is dead, so the directory is not removed under a live server.
    _temp: Option<TempDir>,
}

impl ControlProcess {
    /// Starts a new child on the same data directory and the same port, so that proxies and
    /// clients holding the URL find it again (after [`ControlProcess::kill9`], say).
    pub fn restart_on_same_port(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let listen = self.addr().to_string();
        self.seed();
        self.spawn_on(&listen);
    }

    /// Starts `bin control` on a fresh temporary data directory, removed when this drops.
    pub fn start(bin: &Path) -> ControlProcess {
        ControlProcess::start_with(bin, &[])
    }

    /// Starts `bin control ARGS...` (`--tls-cert`, `--max-connections`, ...) on a fresh
    /// temporary data directory; every restart passes the same arguments.
    pub fn start_with(bin: &Path, args: &[&str]) -> ControlProcess {
        let temp = crate::temp_dir();
        let mut control = ControlProcess::new(bin, temp.path(), args);
        control._temp = Some(temp);
        control.spawn();
        control
    }

    /// Replaces the extra flags for the next (re)start, e.g. to restart with a new option.
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts `bin control` on `data_dir`, which the caller keeps (and may reuse).
    pub fn start_in(bin: &Path, data_dir: &Path) -> ControlProcess {
        let mut control = ControlProcess::new(bin, data_dir, &[]);
        control.spawn();
        control
    }

    fn new(bin: &Path, data_dir: &Path, args: &[&str]) -> ControlProcess {
        ControlProcess {
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            url: String::new(),
            stdout: Arc::default(),
            stderr: Arc::default(),
            _temp: None,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` (`https://` with `--tls-cert`), without a
    /// trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`, for [`crate::http_raw`].
    pub fn addr(&self) -> &str {
        let url = self.url.as_str();
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The admin token the child uses (seeded, or written by itself when unseeded).
    pub fn admin_token(&self) -> String {
        let path = self.data_dir.join("admin.token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// Whether a child runs (it was not killed or stopped since its last start).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The running child's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("control process is not running")
            .id()
    }

    /// The running child's resident memory now and at its peak, from `/proc/<pid>/status`.
    pub fn memory(&self) -> Memory {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
        };
        Memory {
            rss: kib("VmRSS:") * 1024,
            peak: kib("VmHWM:") * 1024,
        }
    }

    /// Everything the current child has printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the current child has printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for a graceful exit and returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("control process is not running");
        let pid = child.id().to_string();
        // The shell's builtin `kill`: no libc binding, and no dependency on procps being installed.
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -TERM {pid}`: {e}"));
        assert!(sent.success(), "`kill -TERM {pid}` failed: {sent}");
        match wait_bounded(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "aviary control (pid {pid}) did not exit within {STOP_TIMEOUT:?} of SIGTERM; \
                 killed it\n--- stderr\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Starts a new child on the same data directory (stopping the current one first with
    /// SIGTERM if it still runs). The port, and so [`ControlProcess::url`], changes.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        self.seed();
        self.spawn_on("127.0.0.1:0");
    }

    /// Starts `bin control` on a fresh temporary directory without seeding it, so the child
    /// writes its own secrets as on a user's first start.
    pub fn start_unseeded(bin: &Path) -> ControlProcess {
        let temp = crate::temp_dir();
        let mut control = ControlProcess::new(bin, temp.path(), &[]);
        control._temp = Some(temp);
        control.spawn_on("127.0.0.1:0");
        control
    }

    fn seed(&self) {
        crate::seed_secrets(&self.data_dir);
    }

    fn spawn_on(&mut self, listen: &str) {
        let mut child = Command::new(&self.bin)
            .arg("control")
            .args(["--listen", listen, "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));

        self.stdout = Arc::default();
        self.stderr = Arc::default();
        let stderr_done = collect(child.stderr.take().expect("piped stderr"), &self.stderr);
        let (lines_tx, lines) = mpsc::channel();
        let stdout = Arc::clone(&self.stdout);
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        // Keeps draining after the listening line, so a chatty child never blocks on a full pipe.
        thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                stdout.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines_tx.send(line);
            }
        });

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = listening_url(&line) {
                        break url;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "aviary control did not print `{LISTENING}http(s)://...` within \
                         {STARTUP_TIMEOUT:?}; killed it\n--- stdout\n{}--- stderr\n{}",
                        self.stdout_text(),
                        self.stderr_text()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_bounded(&mut child, Duration::from_secs(5));
                    // stderr reaches EOF right after the exit; give the reader a moment to finish.
                    let _ = stderr_done.recv_timeout(Duration::from_secs(2));
                    panic!(
                        "aviary control exited ({}) before listening\n--- stdout\n{}--- stderr\n{}",
                        status.map_or("still running".to_string(), |s| s.to_string()),
                        self.stdout_text(),
                        self.stderr_text()
                    );
                }
            }
        };
        self.url = url;
        self.child = Some(child);
    }
}

/// Resident set sizes of a child, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    /// The most the child has been resident since it started (`VmHWM`).
    pub peak: u64,
}

impl Drop for ControlProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Copies `stream` into `sink` until EOF; the returned channel closes at EOF.
fn collect(
    mut stream: impl Read + Send + 'static,
    sink: &Arc<Mutex<String>>,
) -> mpsc::Receiver<()> {
    let sink = Arc::clone(sink);
    let (done_tx, done) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _done = done_tx;
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    done
}

/// The URL in a listening line, tolerating a log prefix before it and anything after it.
pub(crate) fn listening_url(line: &str) -> Option<String> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let url: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '[' | ']' | '-'))
        .collect();
    let url = url.trim_end_matches('/').to_string();
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}
