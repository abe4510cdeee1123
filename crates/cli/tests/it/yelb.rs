//! The voting app of `examples/yelb` on real PostgreSQL and Redis under `aviary up`, and the
//! canary pipeline's two stories carried out with its build script and `aviary deploy` (the
//! pipeline around them is not built yet): the fix of the double-counted vote rolls out and a
//! vote then adds exactly one, read back from Postgres; the wrong-port commit never gets traffic
//! (it fails its health check, or exits at once when the port next to its own is taken).
//! Votes keep working throughout.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{http, run};

use crate::canary::{free_port, spawn_until};

fn yelb_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/yelb")
}

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

/// Builds the app server from `src` as the pipeline would: `specfiles/build.sh` with an
/// artifact directory; returns the deploy.json it wrote.
fn build(src: &Path, artifact: &Path) -> Value {
    std::fs::create_dir_all(artifact).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("specfiles/build.sh")
        .current_dir(src)
        .env("ARTIFACT_DIR", artifact);
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(out.success(), "build failed: {}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(src.join("specfiles/deploy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn deploy(url: &str, file: &Path) -> testkit::AwsOutput {
    let mut cmd = crate::aviary_cmd();
    cmd.arg("deploy").arg(file).env("AVIARY_CONTROL", url);
    run(&mut cmd, Duration::from_secs(120))
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

#[test]
fn the_fixed_vote_rolls_out_and_the_wrong_port_never_gets_traffic() {
    let dir = testkit::temp_dir();
    // Postgres runs as the user `postgres`, which must reach its data directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let home = yelb_dir().canonicalize().unwrap();
    let gateway = free_port();
    let mesh = std::fs::read_to_string(home.join("mesh.yaml"))
        .unwrap()
        .replace("@YELB_HOME@", &home.display().to_string())
        .replace("@YELB_STATE@", &state.display().to_string())
        .replacen("port: 8080", &format!("port: {gateway}"), 1);
    assert!(mesh.contains(&format!("port: {gateway}")));
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, mesh).unwrap();
    testkit::seed_secrets(&dir.path().join("aviary"));
    let mut cmd = crate::aviary_cmd();
    cmd.args(["up", "-f"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:0", "--egress-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("aviary"));
    let (_up, line) = spawn_until(&mut cmd, "control plane");
    let url = line
        .trim()
        .trim_start_matches("control plane")
        .trim()
        .to_string();

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

    // The shipped version counts a vote twice.
    let vote = format!("http://127.0.0.1:{gateway}/api/vote/ihop");
    let before = votes_in_postgres(&state, "ihop");
    assert_eq!(http("POST", &vote, Some("{}")).0, 200);
    assert_eq!(votes_in_postgres(&state, "ihop"), before + 2, "the bug");

    // Story one: the fix, built and deployed as a canary under votes.
    let src = dir.path().join("src");
    let copied = std::process::Command::new("cp")
        .args(["-r"])
        .arg(home.join("appserver"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(copied.success());
    let app = src.join("app.py");
    let code = std::fs::read_to_string(&app).unwrap();
    assert!(code.contains("count = count + 2"));
    std::fs::write(&app, code.replace("count = count + 2", "count = count + 1")).unwrap();
    let built = build(&src, &dir.path().join("artifact-2"));
    assert!(
        built["container_image"].is_array() && built["config_file"].is_string(),
        "{built}"
    );
    let voters = Voters::start(gateway);
    let out = deploy(&url, &src.join("specfiles/deploy.json"));
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("yelb-appserver-2 serves all traffic; yelb-appserver-1 removed"),
        "{}",
        out.stdout
    );
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
        format!("{headers:?}").contains("yelb-appserver"),
        "{headers:?}"
    );

    // Story two: the app server moved to the wrong port. It never passes its health check,
    // gets no traffic and is removed; votes keep working.
    let code = std::fs::read_to_string(&app).unwrap();
    let line = r#"port = int(os.environ["PORT"])"#;
    assert!(code.contains(line));
    std::fs::write(
        &app,
        code.replace(line, r#"port = int(os.environ["PORT"]) + 1"#),
    )
    .unwrap();
    let mut built = build(&src, &dir.path().join("artifact-3"));
    built["health_timeout"] = 10.into();
    let file = src.join("specfiles/deploy.json");
    std::fs::write(&file, built.to_string()).unwrap();
    let voters = Voters::start(gateway);
    let out = deploy(&url, &file);
    assert!(!out.success(), "{}", out.stdout);
    // Either it listens where nobody checks (never healthy), or PORT + 1 is taken and it
    // exits at once ("could not start"): no traffic either way.
    assert!(
        out.stderr
            .contains("yelb-appserver-3 never passed its health check")
            || out.stderr.contains("yelb-appserver-3 could not start"),
        "{}",
        out.stderr
    );
    let (sent, failed) = voters.finish();
    assert!(sent > 20, "only {sent} votes sent");
    assert_eq!(failed, 0, "{failed} of {sent} votes failed");
    let (_, _, list) = testkit::http_json("GET", &format!("{url}/v1/meshes/yelb/deploys"), None);
    let reasons: Vec<&str> = list["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("never passed its health check") || r.contains("could not start")),
        "the history says why: {list}"
    );
}
