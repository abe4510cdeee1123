//! `aviary pipeline` with real git repositories, real builds (`sh`) and real workloads: each
//! commit runs Source → Build → Deploy; a failed build deploys nothing and says why; a version
//! that fails is rolled back and the pipeline's version stays; a run waits for approval or is
//! rejected; a newer commit supersedes a build under way; `kill -9` of the control plane
//! mid-build builds once more and finishes, and mid-deploy finds its deploy again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{http_json, run};

use crate::canary::{Load, node_names, up_demo};

/// A git repository on the main branch, committed to as a developer would.
pub(crate) struct Repo {
    pub(crate) path: PathBuf,
}

impl Repo {
    pub(crate) fn new(path: PathBuf) -> Repo {
        std::fs::create_dir_all(&path).unwrap();
        let repo = Repo { path };
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = run(
            Command::new("git")
                .args([
                    "-c",
                    "user.name=dev",
                    "-c",
                    "user.email=dev@example.invalid",
                ])
                .args(args)
                .current_dir(&self.path),
            Duration::from_secs(30),
        );
        assert!(out.success(), "git {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    /// Writes `files` and commits them; returns the commit.
    pub(crate) fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (name, text) in files {
            let path = self.path.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

pub(crate) fn aviary(url: &str, args: &[&str]) -> testkit::AwsOutput {
    let mut cmd = crate::aviary_cmd();
    cmd.args(args).env("AVIARY_CONTROL", url);
    run(&mut cmd, Duration::from_secs(180))
}

/// Waits (bounded) for run `number` of `pipeline` to reach one of `phases`.
pub(crate) fn wait_run(
    url: &str,
    mesh: &str,
    pipeline: &str,
    number: u64,
    phases: &[&str],
    limit: Duration,
) -> Value {
    let at = format!("{url}/v1/meshes/{mesh}/pipelines/{pipeline}/runs/{number}");
    let deadline = Instant::now() + limit;
    loop {
        let (status, _, run) = http_json("GET", &at, None);
        if status == 200 && phases.contains(&run["phase"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {number} never reached {phases:?}: {run:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}: {run}"))
}

/// A product version for the demo mesh: its deploy.json runs `aviary-demo product` with
/// `flags`; its build prints and copies a file into the artifact.
pub(crate) fn product(version: &str, flags: &[&str]) -> Vec<(&'static str, String)> {
    let mut command = vec!["aviary-demo", "product", "--version", version];
    command.extend_from_slice(flags);
    let deploy = json!({
        "microservice_name": "product", "percentage_step": 50, "wait_time": 1,
        "failure_threshold_value": 0, "failure_threshold_time": 30, "health_timeout": 30,
        "command": command,
    });
    vec![
        ("VERSION", format!("{version}\n")),
        ("specfiles/deploy.json", deploy.to_string()),
        (
            "specfiles/build.sh",
            "set -eu\necho \"building $(cat VERSION) of $COMMIT (run $RUN)\"\ncp VERSION \"$ARTIFACT_DIR/\"\n".into(),
        ),
    ]
}

/// `aviary pipeline create p` over `repo` (made of [`product`] commits), building with its
/// `specfiles/build.sh`, polling every second, with `extra` flags.
pub(crate) fn create_product_pipeline(
    url: &str,
    repo: &Repo,
    extra: &[&str],
) -> testkit::AwsOutput {
    let mut args = vec![
        "pipeline",
        "create",
        "p",
        "--repository",
        repo.path.to_str().unwrap(),
        "--build",
        "sh specfiles/build.sh",
        "--poll",
        "1",
    ];
    args.extend_from_slice(extra);
    aviary(url, &args)
}

pub(crate) fn files<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(n, t)| (*n, t.as_str())).collect()
}

#[test]
fn each_commit_is_built_and_deployed_and_a_run_that_cannot_says_why() {
    let (_up, url, gateway, data) = up_demo(&[]);
    let _load = Load::start(gateway, 50);
    let repo = Repo::new(data.path().join("repo"));
    let first = repo.commit(&files(&product("2.0", &[])), "product 2.0");

    // Bad pipelines are refused, naming the problem, and make nothing.
    let path = repo.path.to_str().unwrap();
    for (flags, says) in [
        (
            vec!["--repository", "/nonexistent/repo"],
            vec!["repository", "/nonexistent/repo"],
        ),
        (
            vec!["--repository", path, "--build-timeout", "0", "--branch=-x"],
            vec!["build.timeoutSeconds", "branch"],
        ),
        (
            vec!["--repository", path, "--branch", "release"],
            vec!["no branch 'release'"],
        ),
    ] {
        let mut args = vec!["pipeline", "create", "p", "--build", "true"];
        args.extend(flags);
        let out = aviary(&url, &args);
        assert!(!out.success(), "{args:?}");
        for said in says {
            assert!(
                out.stderr.contains(said),
                "{args:?}: '{said}' not in {}",
                out.stderr
            );
        }
    }
    let (_, _, list) = http_json("GET", &format!("{url}/v1/meshes/demomesh/pipelines"), None);
    assert_eq!(list["pipelines"], json!([]), "{list}");

    // Run 1: the branch's commit, built and rolled out as product-1.
    let out = create_product_pipeline(&url, &repo, &[]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&first[..8]), "{}", out.stdout);
    let out = aviary(&url, &["pipeline", "status", "p", "--watch"]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    for said in [
        "run 1 (create",
        "source",
        "build",
        "deploy",
        "succeeded",
        "product-1 serves all traffic",
    ] {
        assert!(out.stdout.contains(said), "'{said}' not in {}", out.stdout);
    }
    let run1 = wait_run(
        &url,
        "demomesh",
        "p",
        1,
        &["succeeded"],
        Duration::from_secs(5),
    );
    assert_eq!(run1["version"], 1, "{run1}");
    assert_eq!(run1["deploy"], "product-1-1", "{run1}");
    let logs = aviary(&url, &["pipeline", "logs", "p", "1"]);
    assert!(
        logs.stdout
            .contains(&format!("building 2.0 of {first} (run 1)")),
        "{}",
        logs.stdout
    );
    let source = aviary(&url, &["pipeline", "logs", "p", "1", "--stage", "source"]);
    assert!(source.stdout.contains("git clone"), "{}", source.stdout);
    let (_, _, body) = testkit::http("GET", &format!("http://127.0.0.1:{gateway}/"), None);
    assert!(body.contains(r#""version":"2.0""#), "{body}");

    // Run 2: a commit whose build fails. Nothing deploys; the run says why.
    repo.commit(
        &[(
            "specfiles/build.sh",
            "echo compiling; echo 'error: 3 tests failed' >&2; exit 2\n",
        )],
        "break the build",
    );
    let run2 = wait_run(
        &url,
        "demomesh",
        "p",
        2,
        &["failed", "succeeded"],
        Duration::from_secs(30),
    );
    assert_eq!(run2["phase"], "failed", "{run2}");
    assert_eq!(run2["trigger"], "poll");
    let reason = run2["reason"].as_str().unwrap();
    assert!(
        reason.contains("build failed; nothing was deployed")
            && reason.contains("error: 3 tests failed"),
        "{reason}"
    );
    assert_eq!(stage(&run2, "deploy")["state"], "skipped", "{run2}");
    assert!(!node_names(&url).contains(&"product-2".to_string()));
    let out = aviary(&url, &["pipeline", "status", "p"]);
    assert!(out.stdout.contains("build failed"), "{}", out.stdout);

    // Run 3: a version answering 500 is rolled back; the pipeline's version stays 1.
    repo.commit(
        &files(&product("3.0", &["--error-rate", "1"])),
        "product 3.0",
    );
    let run3 = wait_run(
        &url,
        "demomesh",
        "p",
        3,
        &["failed", "succeeded"],
        Duration::from_secs(60),
    );
    assert_eq!(run3["phase"], "failed", "{run3}");
    assert!(
        run3["reason"].as_str().unwrap().contains("rolled back"),
        "{run3}"
    );
    assert_eq!(run3["version"], 2, "it tried product-2: {run3}");
    let deploy_log = aviary(&url, &["pipeline", "logs", "p", "3", "--stage", "deploy"]);
    assert!(
        deploy_log.stdout.contains("rolled back"),
        "{}",
        deploy_log.stdout
    );
    let (_, _, pipeline) = http_json(
        "GET",
        &format!("{url}/v1/meshes/demomesh/pipelines/p"),
        None,
    );
    assert_eq!(pipeline["version"], 1, "{pipeline}");
    assert_eq!(pipeline["servingRun"], 1, "{pipeline}");
    assert!(!node_names(&url).contains(&"product-2".to_string()));

    // Run 4: `trigger` builds the newest commit again, now on demand.
    repo.commit(&files(&product("4.0", &[])), "product 4.0");
    let trigger = aviary(&url, &["pipeline", "trigger", "p"]);
    assert!(trigger.success(), "{}", trigger.stderr);
    let run4 = wait_run(
        &url,
        "demomesh",
        "p",
        4,
        &["failed", "succeeded"],
        Duration::from_secs(60),
    );
    assert_eq!(run4["phase"], "succeeded", "{run4}");
    assert_eq!(
        run4["version"], 2,
        "the counter advanced only with a success: {run4}"
    );
    let history = aviary(&url, &["pipeline", "history", "p"]);
    for said in ["succeeded", "failed", "rolled back", "build failed"] {
        assert!(
            history.stdout.contains(said),
            "'{said}' not in {}",
            history.stdout
        );
    }
    let listed = aviary(&url, &["pipeline", "list"]);
    assert!(
        listed.stdout.contains("p ") && listed.stdout.contains(" 2 "),
        "{}",
        listed.stdout
    );
    // The poller may have queued the same commit as run 5; either way nothing else ran.
    let (_, _, runs) = http_json(
        "GET",
        &format!("{url}/v1/meshes/demomesh/pipelines/p/runs"),
        None,
    );
    assert!(runs["runs"].as_array().unwrap().len() <= 5, "{runs}");

    // A mesh with a pipeline is not deleted until the pipeline is.
    let mesh = format!("{url}/v20190125/meshes/solo");
    let (status, _, _) = testkit::http(
        "PUT",
        &format!("{url}/v20190125/meshes"),
        Some(r#"{"meshName":"solo"}"#),
    );
    assert_eq!(status, 200);
    let body = json!({"name": "lone", "spec": {"repository": repo.path.display().to_string(),
        "build": {"command": "true"}, "pollSeconds": 0}});
    let (status, _, view) = http_json(
        "POST",
        &format!("{url}/v1/meshes/solo/pipelines"),
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{view}");
    let (status, _, refused) = testkit::http("DELETE", &mesh, None);
    assert_eq!(status, 409, "{refused}");
    assert!(refused.contains("pipeline 'lone'"), "{refused}");
    assert!(aviary(&url, &["pipeline", "delete", "lone", "--mesh", "solo"]).success());
    assert_eq!(testkit::http("DELETE", &mesh, None).0, 200);

    // The builds directory keeps the serving run's artifact, not the ended checkouts.
    let builds = data.path().join("state/builds/demomesh/p");
    assert!(builds.join("1/artifact/VERSION").exists());
    assert!(
        !builds.join("1/src").exists(),
        "an ended run's checkout is removed"
    );
}

/// A control plane (`aviary control`) with the canary bench's mesh and an agent on host h1,
/// which runs the pipeline's workloads.
#[test]
fn approval_supersede_and_kill_9_mid_build_and_mid_deploy() {
    let mut bench = crate::canary::Bench::start(&[]);
    let data = testkit::temp_dir();
    let _agent = crate::canary::agent_on_h1(bench.control.url(), &data.path().join("agent"));
    let url = bench.control.url().to_string();
    let repo = Repo::new(data.path().join("repo"));
    let deploy = |version: &str| {
        json!({
            "microservice_name": "svc", "percentage_step": 100, "wait_time": 1,
            "failure_threshold_value": 0, "failure_threshold_time": 30,
            "command": ["aviary-demo", "product", "--version", version],
        })
        .to_string()
    };
    // The build records its process id, then takes a while.
    let slow_build =
        "echo $$ > \"$ARTIFACT_DIR/../build.pid\"; echo started; sleep 4; echo finished\n";
    repo.commit(
        &[
            ("specfiles/deploy.json", &deploy("2.0")),
            ("build.sh", slow_build),
        ],
        "2.0",
    );
    let path = repo.path.to_str().unwrap();

    // kill -9 while the build runs: the next control plane ends the orphaned build, builds
    // once more and finishes the run.
    let out = aviary(
        &url,
        &[
            "pipeline",
            "create",
            "slow",
            "--mesh",
            "m",
            "--repository",
            path,
            "--build",
            "sh build.sh",
            "--poll",
            "0",
        ],
    );
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    let pid_file = bench_builds(&bench).join("m/slow/1/build.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the build never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let old_build: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    bench.control.kill9();
    bench.control.restart_on_same_port();
    let run1 = wait_run(
        &url,
        "m",
        "slow",
        1,
        &["succeeded", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(run1["phase"], "succeeded", "{run1}");
    assert_eq!(run1["buildAttempts"], 2, "{run1}");
    assert!(stage(&run1, "build")["detail"].as_str().is_some(), "{run1}");
    let alive = Path::new(&format!("/proc/{old_build}")).exists()
        && std::fs::read_link(format!("/proc/{old_build}/cwd"))
            .is_ok_and(|cwd| cwd.ends_with("src"));
    assert!(!alive, "the orphaned build {old_build} still runs");
    let logs = aviary(&url, &["pipeline", "logs", "slow", "1", "--mesh", "m"]);
    assert!(logs.stdout.contains("finished"), "{}", logs.stdout);
    assert!(aviary(&url, &["pipeline", "delete", "slow", "--mesh", "m"]).success());

    // Approval: the run waits; a rejection fails it with the reason, an approval deploys.
    repo.commit(
        &[
            ("specfiles/deploy.json", &deploy("3.0")),
            ("build.sh", "echo quick\n"),
        ],
        "3.0",
    );
    let out = aviary(
        &url,
        &[
            "pipeline",
            "create",
            "gated",
            "--mesh",
            "m",
            "--repository",
            path,
            "--build",
            "sh build.sh",
            "--poll",
            "0",
            "--approval",
        ],
    );
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    let waiting = |number: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = http_json(
                "GET",
                &format!("{url}/v1/meshes/m/pipelines/gated/runs/{number}"),
                None,
            )
            .2;
            if stage(&run, "approval")["state"] == "waiting" {
                return run;
            }
            assert!(Instant::now() < deadline, "{run}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    waiting(1);
    let out = aviary(
        &url,
        &[
            "pipeline",
            "approve",
            "gated",
            "--mesh",
            "m",
            "--reject",
            "not on a Friday",
        ],
    );
    assert!(out.success(), "{}", out.stderr);
    let run1 = wait_run(&url, "m", "gated", 1, &["failed"], Duration::from_secs(10));
    assert!(
        run1["reason"].as_str().unwrap().contains("not on a Friday"),
        "{run1}"
    );
    assert!(run1["deploy"].is_null(), "{run1}");
    let again = aviary(&url, &["pipeline", "approve", "gated", "1", "--mesh", "m"]);
    assert!(
        !again.success() && again.stderr.contains("not waiting for approval"),
        "{}",
        again.stderr
    );
    assert!(aviary(&url, &["pipeline", "trigger", "gated", "--mesh", "m"]).success());
    waiting(2);
    assert!(aviary(&url, &["pipeline", "approve", "gated", "--mesh", "m"]).success());
    // kill -9 once the deploy stage has started its deploy: the next control plane finds that
    // deploy again by its origin instead of starting a second one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = http_json(
            "GET",
            &format!("{url}/v1/meshes/m/pipelines/gated/runs/2"),
            None,
        )
        .2;
        if run["deploy"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(50));
    }
    bench.control.kill9();
    bench.control.restart_on_same_port();
    let run2 = wait_run(
        &url,
        "m",
        "gated",
        2,
        &["succeeded", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(run2["phase"], "succeeded", "{run2}");
    assert!(run2["approvedBy"].is_string(), "{run2}");
    let (_, _, deploys) = http_json("GET", &format!("{url}/v1/meshes/m/deploys"), None);
    let of_run: Vec<&Value> = deploys["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["origin"] == json!({"pipeline": "gated", "run": 2}))
        .collect();
    assert_eq!(of_run.len(), 1, "one deploy for the run: {deploys}");
    assert_eq!(of_run[0]["phase"], "succeeded", "{deploys}");
    assert!(aviary(&url, &["pipeline", "delete", "gated", "--mesh", "m"]).success());

    // Supersede: a newer commit ends the build under way; only the newest deploys.
    repo.commit(
        &[
            ("specfiles/deploy.json", &deploy("4.0")),
            ("build.sh", "sleep 3\n"),
        ],
        "4.0",
    );
    let out = aviary(
        &url,
        &[
            "pipeline",
            "create",
            "fast",
            "--mesh",
            "m",
            "--repository",
            path,
            "--build",
            "sh build.sh",
            "--poll",
            "1",
            "--supersede",
        ],
    );
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    std::thread::sleep(Duration::from_millis(1500));
    repo.commit(
        &[
            ("specfiles/deploy.json", &deploy("5.0")),
            ("build.sh", "echo quick\n"),
        ],
        "5.0",
    );
    let run1 = wait_run(
        &url,
        "m",
        "fast",
        1,
        &["superseded", "succeeded", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(run1["phase"], "superseded", "{run1}");
    let run2 = wait_run(
        &url,
        "m",
        "fast",
        2,
        &["succeeded", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(run2["phase"], "succeeded", "{run2}");
    let (_, _, body) = testkit::http("GET", &format!("http://127.0.0.1:{}/", bench.gateway), None);
    assert!(body.contains(r#""version":"5.0""#), "{body}");
}

fn bench_builds(bench: &crate::canary::Bench) -> PathBuf {
    bench.control.data_dir().join("builds")
}
