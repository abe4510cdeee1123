//! Several control-plane URLs: `--control A,B` and `AVIARY_CONTROL=A,B` reach whichever one
//! answers, for the CLI's commands and for `aviary proxy`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use testkit::{AwsOutput, http_json, run};

use crate::{demomesh_dir, snapshot_revision, start};

/// `http://127.0.0.1:PORT` on which nothing listens (the port was free a moment ago).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn aviary(args: &[&str], control_env: Option<&str>) -> AwsOutput {
    let mut cmd = crate::aviary_cmd();
    cmd.args(args).env_remove("AVIARY_MESH");
    match control_env {
        Some(list) => cmd.env("AVIARY_CONTROL", list),
        None => cmd.env_remove("AVIARY_CONTROL"),
    };
    run(&mut cmd, Duration::from_secs(30))
}

#[test]
fn commands_go_on_to_the_next_url_from_the_flag_or_the_environment() {
    let control = start();
    let (dead, other_dead) = (dead_url(), dead_url());
    let list = format!("{dead},{}", control.url());
    let mesh = demomesh_dir().join("mesh.yaml").display().to_string();

    let applied = aviary(&["apply", "-f", &mesh, "--control", &list], None);
    assert!(applied.success(), "{}{}", applied.stdout, applied.stderr);
    assert!(snapshot_revision(control.url(), "demomesh") > 0);

    let got = aviary(&["get", "virtualnodes", "--mesh", "demomesh"], Some(&list));
    assert!(got.success(), "{}", got.stderr);
    assert!(got.stdout.contains("order-vn"), "{}", got.stdout);

    let none = aviary(&["get", "meshes"], Some(&format!("{dead},{other_dead}")));
    assert!(!none.success(), "{}", none.stdout);
    assert!(
        none.stderr.contains(&dead) && none.stderr.contains(&other_dead),
        "every URL tried is named: {}",
        none.stderr
    );
}

#[test]
fn aviary_proxy_loads_its_configuration_through_the_second_url() {
    let control = start();
    let list = format!("{},{}", dead_url(), control.url());
    let mesh = demomesh_dir().join("mesh.yaml").display().to_string();
    let applied = aviary(&["apply", "-f", &mesh], Some(control.url()));
    assert!(applied.success(), "{}", applied.stderr);
    let revision = snapshot_revision(control.url(), "demomesh");

    let mut child = crate::aviary_cmd()
        .args([
            "proxy",
            "--control",
            &list,
            "--mesh",
            "demomesh",
            "--node",
            "order-vn",
        ])
        .args([
            "--egress-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("aviary proxy listening on ")
                && let Some(url) = rest.strip_suffix(" (admin)")
            {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let admin = rx.recv_timeout(Duration::from_secs(20));
    let config = admin
        .as_ref()
        .map(|url| http_json("GET", &format!("{url}/config"), None));
    child.kill().unwrap();
    child.wait().unwrap();
    let (status, _, config) = config.expect("the proxy prints its admin listener");
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["source"], "control", "{config}");
    assert_eq!(config["revision"].as_u64(), Some(revision), "{config}");
}
