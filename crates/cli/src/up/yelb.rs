//! `aviary demo yelb`: the voting app of `examples/yelb` (built in), written to the data
//! directory, with its app server's source as a git repository there and a pipeline that builds
//! and deploys every commit to it: the AWS canary pipeline's demo, on this machine.
//!
//! Layout under `DATA_DIR/yelb/`: `home/` (the app's files, written at every start), `state/`
//! (Postgres's data and the addresses the database and cache publish), `repo/` (the app
//! server's repository, made once and then the user's).

use std::path::Path;

use anyhow::{Context, bail};
use model::wire::{CreatePipeline, PipelineSpec};

/// The example's files, by their path under `examples/yelb/`.
const FILES: [(&str, &str); 9] = [
    (
        "mesh.yaml",
        include_str!("../../../../examples/yelb/mesh.yaml"),
    ),
    (
        "README.md",
        include_str!("../../../../examples/yelb/README.md"),
    ),
    (
        "ui/ui.py",
        include_str!("../../../../examples/yelb/ui/ui.py"),
    ),
    (
        "appserver/app.py",
        include_str!("../../../../examples/yelb/appserver/app.py"),
    ),
    (
        "appserver/specfiles/deploy.json",
        include_str!("../../../../examples/yelb/appserver/specfiles/deploy.json"),
    ),
    (
        "appserver/specfiles/build.sh",
        include_str!("../../../../examples/yelb/appserver/specfiles/build.sh"),
    ),
    (
        "appserver/specfiles/template.yaml",
        include_str!("../../../../examples/yelb/appserver/specfiles/template.yaml"),
    ),
    (
        "db/postgres.sh",
        include_str!("../../../../examples/yelb/db/postgres.sh"),
    ),
    (
        "cache/redis.sh",
        include_str!("../../../../examples/yelb/cache/redis.sh"),
    ),
];

/// The pipeline's name, and the app server's service.
pub const PIPELINE: &str = "yelb-appserver";

/// What the demo runs: its manifests (as `(source, text)`), the pipeline to make once the
/// control plane is up, and what to tell the user.
pub struct Yelb {
    pub manifests: Vec<(String, String)>,
    pub pipeline: CreatePipeline,
    pub next_steps: String,
}

/// Writes the app into `data_dir`, makes its repository once, and says what to run.
pub fn prepare(data_dir: &Path) -> anyhow::Result<Yelb> {
    let root = std::path::absolute(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?
        .join("yelb");
    let (home, state, repo) = (root.join("home"), root.join("state"), root.join("repo"));
    for (name, text) in FILES {
        let path = home.join(name);
        std::fs::create_dir_all(path.parent().expect("a file has a directory"))
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    check_postgres_can_enter(&state)?;
    if !repo.join(".git").exists() {
        make_repository(&repo)?;
    }
    let mesh = FILES[0]
        .1
        .replace("@YELB_HOME@", &home.display().to_string())
        .replace("@YELB_STATE@", &state.display().to_string());
    let spec: PipelineSpec = serde_json::from_value(serde_json::json!({
        "repository": repo.display().to_string(),
        "build": { "command": "sh specfiles/build.sh" },
        "pollSeconds": 2,
    }))?;
    let next_steps = format!(
        "The voting app: open the gateway's address above. Its app server counts every vote twice.\n\
         Pipeline {PIPELINE} builds and deploys each commit to {repo}:\n\
         \x20 fix it:    sed -i 's/count = count + 2/count = count + 1/' {repo}/app.py && git -C {repo} commit -qam 'count a vote once'\n\
         \x20 follow:    aviary pipeline status {PIPELINE} --watch\n\
         \x20 break it:  sed -i 's/int(os.environ\\[\"PORT\"\\])/int(os.environ[\"PORT\"]) + 1/' {repo}/app.py && git -C {repo} commit -qam 'wrong port'\n\
         \x20 (rolled back on its own: the new version never passes its health check)\n\
         \x20 history:   aviary pipeline history {PIPELINE};  build output: aviary pipeline logs {PIPELINE}\n",
        repo = repo.display()
    );
    Ok(Yelb {
        manifests: vec![("yelb/mesh.yaml".into(), mesh)],
        pipeline: CreatePipeline {
            name: PIPELINE.into(),
            spec,
        },
        next_steps,
    })
}

/// `repo`: a new git repository holding the app server as shipped, on branch main.
fn make_repository(repo: &Path) -> anyhow::Result<()> {
    for (name, text) in FILES {
        if let Some(inside) = name.strip_prefix("appserver/") {
            let path = repo.join(inside);
            std::fs::create_dir_all(path.parent().expect("a file has a directory"))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=aviary demo",
                "-c",
                "user.email=demo@aviary.invalid",
            ])
            .args(args)
            .current_dir(repo)
            .output()
            .context("cannot run git (the yelb demo keeps its app server in a git repository)")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    git(&["init", "--quiet", "--initial-branch", "main"])?;
    git(&["add", "-A"])?;
    git(&[
        "commit",
        "--quiet",
        "-m",
        "yelb-appserver as shipped (it counts every vote twice)",
    ])
}

/// Postgres refuses to run as root, so as root it runs as the user `postgres`, which must be
/// able to enter every directory above its data: said here, before anything starts.
fn check_postgres_can_enter(state: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == 0);
    if !root {
        return Ok(());
    }
    let blocked = state.ancestors().skip(1).find(|dir| {
        std::fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 == 0)
    });
    match blocked {
        Some(dir) => bail!(
            "the yelb demo runs PostgreSQL as the user postgres (it refuses to run as root), which cannot enter {}: choose a --data-dir under a directory anyone may enter (e.g. /tmp/aviary-yelb), or chmod o+x {}",
            dir.display(),
            dir.display()
        ),
        None => Ok(()),
    }
}
