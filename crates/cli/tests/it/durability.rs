//! Nothing acknowledged is lost: writes that returned 2xx survive `kill -9` of the control plane.

use serde_json::json;
use testkit::{ControlProcess, aws_json, http_json};

use crate::{bin, cli_input, route_spec, snapshot_revision, start};

fn describe_node(url: &str) -> serde_json::Value {
    aws_json(
        url,
        &[
            "describe-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
        ],
    )["virtualNode"]
        .clone()
}

#[test]
fn writes_acknowledged_to_the_aws_cli_survive_kill_9() {
    let mut control = start();
    let mesh = aws_json(
        control.url(),
        &["create-mesh", "--cli-input-json", &cli_input("mesh")],
    )["mesh"]
        .clone();
    let node = aws_json(
        control.url(),
        &[
            "create-virtual-node",
            "--cli-input-json",
            &cli_input("product-vn"),
        ],
    )["virtualNode"]
        .clone();
    // Read-only, so it cannot help the writes reach disk before the kill.
    let revision_before = snapshot_revision(control.url(), "demomesh");
    control.kill9();

    control.restart();
    let url = control.url();
    let mesh_after = aws_json(url, &["describe-mesh", "--mesh-name", "demomesh"])["mesh"].clone();
    assert_eq!(mesh_after, mesh);
    assert_eq!(describe_node(url), node);
    assert!(snapshot_revision(url, "demomesh") >= revision_before);

    let updated = aws_json(
        url,
        &[
            "update-virtual-node",
            "--cli-input-json",
            &cli_input("product-vn"),
        ],
    )["virtualNode"]
        .clone();
    assert_eq!(updated["metadata"]["version"], 2);
    assert_eq!(updated["metadata"]["uid"], node["metadata"]["uid"]);
    assert!(
        snapshot_revision(url, "demomesh") > revision_before,
        "the store revision went backwards or stood still across a restart"
    );
}

#[test]
fn the_last_of_many_acknowledged_updates_survives_kill_9() {
    let dir = testkit::temp_dir();
    let mut control = ControlProcess::start_in(bin(), dir.path());
    crate::create_step1_raw(control.url());
    let path = "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r";
    let mut last = json!(null);
    for weight in 1..=20 {
        let body = json!({ "spec": route_spec(&[("product-vn", weight)]) }).to_string();
        let (status, _, route) = http_json("PUT", &format!("{}{path}", control.url()), Some(&body));
        assert_eq!(status, 200, "{route}");
        last = route;
    }
    control.kill9();
    drop(control);

    // A new process on the same directory, as after a crash and a supervisor restart.
    let control = ControlProcess::start_in(bin(), dir.path());
    let (status, _, route) = http_json("GET", &format!("{}{path}", control.url()), None);
    assert_eq!(status, 200, "{route}");
    assert_eq!(route["metadata"]["version"], 21);
    assert_eq!(route, last);
}

#[test]
fn sigterm_stops_the_control_plane_cleanly_and_keeps_its_data() {
    let mut control = start();
    aws_json(
        control.url(),
        &["create-mesh", "--cli-input-json", &cli_input("mesh")],
    );
    let status = control.stop();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        control.stderr_text()
    );
    control.restart();
    let mesh = aws_json(control.url(), &["describe-mesh", "--mesh-name", "demomesh"]);
    assert_eq!(mesh["mesh"]["metadata"]["version"], 1);
}
