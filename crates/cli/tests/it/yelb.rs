//! `aviary demo yelb`: the voting app of `examples/yelb` on real PostgreSQL and Redis, and the
//! canary pipeline's two stories told by commits to the app server's repository: the fix of the
//! double-counted vote is built and rolled out and a vote then adds exactly one, read back from
//! Postgres; the wrong-port commit never gets traffic (it fails its health check, or exits at
//! once when the port next to its own is taken) and is rolled back. Votes keep working
//! throughout.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testkit::http;

use crate::canary::{free_port, spawn_until};
use crate::pipeline::{Repo, wait_run};

/// The demo's pipeline, and its app server's service.
const PIPELINE: &str = "yelb-appserver";

/// The count of `name` in Postgres itself.
fn votes_in_postgres(state: &Path, name: &str) -> i64 {
    let addr = std::fs::read_to_string(state.join("db.addr")).unwrap();
    let (host, port) = addr.trim().rsplit_once(':').unwrap();
    let out = std::process::Command::new("psql")
        .args([
            "-h", host, "-p", port, "-U", "postgres", "-d", "yelb", "-tA", "-c",
        ])
        .arg(format!(
            "SELECT count FROM restaurants WHERE name = '{name}'"
        ))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Votes for `outback` through the gateway every 50 ms until dropped; counts failures.
struct Voters {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Voters {
    fn start(gateway: u16) -> Voters {
        let (stop, sent, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{gateway}/api/vote/outback");
            // Bounded: at most 20 a second for 5 minutes.
            for _ in 0..6000 {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let (status, _, _) = http("POST", &url, Some("{}"));
                n.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Voters {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Voters {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Edits `file` of the repository (`from` must be there) and commits it.
fn commit_edit(repo: &Repo, file: &str, from: &str, to: &str, message: &str) {
    let code = std::fs::read_to_string(repo.path.join(file)).unwrap();
    assert!(code.contains(from), "{file} has no '{from}'");
    repo.commit(&[(file, &code.replace(from, to))], message);
}

#[test]
fn from_commit_to_canary_the_fix_rolls_out_and_the_wrong_port_is_rolled_back() {
    let dir = testkit::temp_dir();
    // Postgres runs as the user `postgres`, which must reach its data directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("aviary");
    testkit::seed_secrets(&data);
    let gateway = free_port();
    let mut cmd = crate::aviary_cmd();
    cmd.args(["demo", "yelb", "--gateway-port", &gateway.to_string()])
        .args(["--listen", "127.0.0.1:0", "--egress-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    let (_demo, line) = spawn_until(&mut cmd, "control plane");
    let url = line
        .trim()
        .trim_start_matches("control plane")
        .trim()
        .to_string();
    let state = data.join("yelb/state");
    let repo = Repo {
        path: data.join("yelb/repo"),
    };

    let votes = format!("http://127.0.0.1:{gateway}/api/getvotes");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let listening = std::net::TcpStream::connect(("127.0.0.1", gateway)).is_ok();
        if listening && http("GET", &votes, None).0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the app never answered");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (status, _, page) = http("GET", &format!("http://127.0.0.1:{gateway}/"), None);
    assert!(status == 200 && page.contains("ihop"), "{status} {page}");

    // Run 1, made with the pipeline: the repository as shipped, rolled out as version 2.
    // A canary step passes only with traffic: voters vote while it rolls out.
    let voters = Voters::start(gateway);
    let run1 = wait_run(
        &url,
        "yelb",
        PIPELINE,
        1,
        &["succeeded", "failed"],
        Duration::from_secs(120),
    );
    assert_eq!(run1["phase"], "succeeded", "{run1}");
    let (sent, failed) = voters.finish();
    assert_eq!(failed, 0, "{failed} of {sent} votes failed during run 1");
    // The shipped version counts a vote twice.
    let vote = format!("http://127.0.0.1:{gateway}/api/vote/ihop");
    let before = votes_in_postgres(&state, "ihop");
    assert_eq!(http("POST", &vote, Some("{}")).0, 200);
    assert_eq!(votes_in_postgres(&state, "ihop"), before + 2, "the bug");

    // Story one: a commit fixes it; the pipeline builds it and rolls it out under votes.
    let voters = Voters::start(gateway);
    commit_edit(
        &repo,
        "app.py",
        "count = count + 2",
        "count = count + 1",
        "count a vote once",
    );
    let run2 = wait_run(
        &url,
        "yelb",
        PIPELINE,
        2,
        &["succeeded", "failed"],
        Duration::from_secs(120),
    );
    assert_eq!(run2["phase"], "succeeded", "{run2}");
    assert_eq!(run2["version"], 3, "{run2}");
    let (sent, failed) = voters.finish();
    assert!(sent > 20, "only {sent} votes sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} votes failed during the rollout"
    );
    let before = votes_in_postgres(&state, "ihop");
    let (_, headers, _) = http("POST", &vote, Some("{}"));
    assert_eq!(
        votes_in_postgres(&state, "ihop"),
        before + 1,
        "a vote adds one"
    );
    assert!(
        format!("{headers:?}").contains("\"3\""),
        "version 3 answers: {headers:?}"
    );

    // Story two: a commit moves the app server to the wrong port. It never gets traffic and
    // is removed; votes keep working; the pipeline's version stays 3.
    let voters = Voters::start(gateway);
    commit_edit(
        &repo,
        "app.py",
        r#"port = int(os.environ["PORT"])"#,
        r#"port = int(os.environ["PORT"]) + 1"#,
        "listen on the wrong port",
    );
    let run3 = wait_run(
        &url,
        "yelb",
        PIPELINE,
        3,
        &["succeeded", "failed"],
        Duration::from_secs(120),
    );
    assert_eq!(run3["phase"], "failed", "{run3}");
    // Either it listens where nobody checks (never healthy), or PORT + 1 is taken and it
    // exits at once ("could not start"): no traffic either way.
    let reason = run3["reason"].as_str().unwrap();
    assert!(
        reason.contains("yelb-appserver-4 never passed its health check")
            || reason.contains("yelb-appserver-4 could not start"),
        "{reason}"
    );
    let (sent, failed) = voters.finish();
    assert!(sent > 20, "only {sent} votes sent");
    assert_eq!(failed, 0, "{failed} of {sent} votes failed");
    let (_, _, pipeline) = testkit::http_json(
        "GET",
        &format!("{url}/v1/meshes/yelb/pipelines/{PIPELINE}"),
        None,
    );
    assert_eq!(pipeline["version"], 3, "{pipeline}");
    let history = crate::pipeline::aviary(&url, &["pipeline", "history", PIPELINE]);
    println!("{}", history.stdout);
    let status = crate::pipeline::aviary(&url, &["pipeline", "status", PIPELINE]);
    println!("{}", status.stdout);
    assert!(
        status.stdout.contains("run 3") && status.stdout.contains("failed"),
        "{}",
        status.stdout
    );
}
