//! Who gets in, as clients meet it: the secrets a first start writes, SigV4 with the real AWS
//! CLI and boto3 (good, wrong, unknown, missing, expired), the role table walked route by
//! route with every role, tokens from the `aviary` CLI, workload `env` hidden below admin, and
//! the requests a web page can send without a preflight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use control::auth::Role;
use control::auth::policy::{Access, RULES};
use serde_json::{Value, json};
use testkit::{
    ControlProcess, TEST_ACCESS_KEY, TEST_ADMIN_TOKEN, TEST_SECRET_KEY, aws, aws_command, aws_json,
    http, http_as, http_json, parse_head, run,
};

use crate::{aviary_cmd, bin, http_with, start};

/// `aws appmesh ARGS` with the given keys (`None`: unsigned, `--no-sign-request`).
fn aws_as(url: &str, keys: Option<(&str, &str)>, args: &[&str]) -> testkit::AwsOutput {
    let mut cmd = aws_command("aws");
    match keys {
        Some((id, secret)) => {
            cmd.env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        None => {
            cmd.arg("--no-sign-request");
        }
    }
    cmd.args(["--endpoint-url", url, "--output", "json", "appmesh"])
        .args(args);
    run(&mut cmd, Duration::from_secs(60))
}

/// `aws appmesh ARGS` with only a shared-credentials file, as a user points it at aviary's.
fn aws_with_file(url: &str, credentials: &Path, args: &[&str]) -> testkit::AwsOutput {
    let mut cmd = aws_command("aws");
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .args(["--endpoint-url", url, "--output", "json", "appmesh"])
        .args(args);
    run(&mut cmd, Duration::from_secs(60))
}

fn mesh_names(url: &str) -> Vec<String> {
    let out = aws_json(url, &["list-meshes"]);
    let mut names: Vec<String> = out["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meshName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_first_start_writes_owner_only_secrets_that_work_and_survive_a_restart() {
    let mut control = ControlProcess::start_unseeded(bin());
    let dir = control.data_dir().to_path_buf();
    for file in ["admin.token", "credentials"] {
        let path = dir.join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is mode {mode:o}");
        let said = control.stdout_text();
        assert!(
            said.contains(&path.display().to_string()),
            "stdout does not say where {file} is:\n{said}"
        );
    }
    let token = control.admin_token();
    assert_ne!(token, TEST_ADMIN_TOKEN, "a fresh token, not the test one");
    let url = control.url().to_string();
    let tokens = format!("{url}/v1/tokens");
    assert_eq!(http_with("GET", &tokens, None, &token).0, 200);
    assert_eq!(
        http("GET", &tokens, None).0,
        401,
        "another token gets nowhere"
    );

    // The walkthrough the AWS CLI way (create.sh, then step 3's route updates), signed with
    // nothing but the credentials file the first start wrote.
    let credentials = dir.join("credentials");
    let mut script = aws_command("bash");
    script
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .arg(crate::demomesh_dir().join("create.sh"))
        .arg(&url);
    let out = run(&mut script, Duration::from_secs(180));
    assert!(out.success(), "create.sh: {}{}", out.stdout, out.stderr);
    let create = |file: &str| {
        let input = crate::cli_input(file);
        let out = aws_with_file(
            &url,
            &credentials,
            &["create-virtual-node", "--cli-input-json", &input],
        );
        assert!(out.success(), "{file}: {}", out.stderr);
    };
    create("product-v15-vn");
    for step in ["product-r-75-25", "product-r-v15", "product-r-v1"] {
        let input = crate::cli_input(step);
        let out = aws_with_file(
            &url,
            &credentials,
            &["update-route", "--cli-input-json", &input],
        );
        assert!(out.success(), "{step}: {}", out.stderr);
    }
    let out = aws_with_file(
        &url,
        &credentials,
        &["list-virtual-services", "--mesh-name", "demomesh"],
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(
        out.json()["virtualServices"].as_array().map(Vec::len),
        Some(3)
    );
    let out = aws_with_file(&url, &credentials, &["create-mesh", "--mesh-name", "m"]);
    assert!(out.success(), "{}", out.stderr);
    aws_as(
        &url,
        Some((TEST_ACCESS_KEY, TEST_SECRET_KEY)),
        &["list-meshes"],
    )
    .expect_error("UnrecognizedClientException");

    let written = std::fs::read_to_string(&credentials).unwrap();
    control.restart();
    let url = control.url().to_string();
    assert_eq!(std::fs::read_to_string(&credentials).unwrap(), written);
    assert_eq!(control.admin_token(), token, "the token file is kept");
    let out = aws_with_file(&url, &credentials, &["describe-mesh", "--mesh-name", "m"]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(
        http_with("GET", &format!("{url}/v1/tokens"), None, &token).0,
        200
    );

    // Deleting the file and restarting retires the token it held.
    std::fs::remove_file(dir.join("admin.token")).unwrap();
    control.restart();
    let url = control.url().to_string();
    let tokens = format!("{url}/v1/tokens");
    assert_eq!(http_with("GET", &tokens, None, &token).0, 401, "retired");
    assert_eq!(
        http_with("GET", &tokens, None, &control.admin_token()).0,
        200
    );
}

#[test]
fn the_aws_cli_is_verified_with_encoding_and_pagination_and_bad_signatures_change_nothing() {
    let control = start();
    let url = control.url();
    for mesh in ["a", "b", "c"] {
        aws_json(url, &["create-mesh", "--mesh-name", mesh]);
    }
    // Pagination: every page after the first carries nextToken (and limit) in the query.
    let paged = aws_json(url, &["list-meshes", "--page-size", "1"]);
    assert_eq!(paged["meshes"].as_array().unwrap().len(), 3, "{paged}");
    // An ARN in the query: colons and slashes percent-encoded, and signed that way.
    let arn = aws_json(url, &["describe-mesh", "--mesh-name", "a"])["mesh"]["metadata"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    aws_json(
        url,
        &[
            "tag-resource",
            "--resource-arn",
            &arn,
            "--tags",
            "key=team,value=a b/c+d",
        ],
    );
    let tags = aws_json(url, &["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(tags["tags"], json!([{"key": "team", "value": "a b/c+d"}]));
    // A path segment that needs encoding passes the signature check and meets validation.
    let odd = aws(url, &["describe-mesh", "--mesh-name", "we ird:näme"]);
    assert!(
        matches!(
            odd.error_code(),
            Some("BadRequestException" | "NotFoundException")
        ),
        "{}",
        odd.stderr
    );

    let before = mesh_names(url);
    let create = ["create-mesh", "--mesh-name", "intruder"];
    aws_as(url, Some((TEST_ACCESS_KEY, "not-the-secret")), &create)
        .expect_error("InvalidSignatureException");
    aws_as(
        url,
        Some(("AKIAUNKNOWN000000000", TEST_SECRET_KEY)),
        &create,
    )
    .expect_error("UnrecognizedClientException");
    aws_as(url, None, &create).expect_error("MissingAuthenticationTokenException");
    aws_as(url, None, &["list-meshes"]).expect_error("MissingAuthenticationTokenException");
    assert_eq!(
        mesh_names(url),
        before,
        "no rejected request changed anything"
    );
}

/// boto3 as SDK code uses it: a paginator, tags, presigned URLs (the query-string form), and a
/// header signature from 2020 (outside the 15-minute window).
const BOTO3: &str = r#"
import datetime, json, sys, time, unittest.mock, urllib.error, urllib.request
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

url, key, secret = sys.argv[1:4]
session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                region_name="eu-west-1")
c = session.client("appmesh", endpoint_url=url, config=Config(retries={"max_attempts": 1}))
out = {}
for name in ["boto-1", "boto-2", "boto-3"]:
    c.create_mesh(meshName=name)
pages = list(c.get_paginator("list_meshes").paginate(PaginationConfig={"PageSize": 2}))
out["pages"] = len(pages)
out["meshes"] = sorted(m["meshName"] for p in pages for m in p["meshes"])
arn = c.describe_mesh(meshName="boto-1")["mesh"]["metadata"]["arn"]
c.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v=1&w=2"}])
out["tags"] = c.list_tags_for_resource(resourceArn=arn)["tags"]

def status(request):
    try:
        with urllib.request.urlopen(request) as r:
            return [r.status, None]
    except urllib.error.HTTPError as e:
        return [e.code, e.headers.get("x-amzn-ErrorType")]

presigned = c.generate_presigned_url("list_meshes", ExpiresIn=60)
assert "X-Amz-Signature=" in presigned, presigned
out["presigned"] = status(presigned)
out["tampered"] = status(presigned.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
short = c.generate_presigned_url("list_meshes", ExpiresIn=1)
time.sleep(2.2)
out["expired"] = status(short)

old = datetime.datetime(2020, 1, 1, 12, 0, 0)
request = AWSRequest(method="GET", url=url + "/v20190125/meshes")
with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=old):
    SigV4Auth(Credentials(key, secret), "appmesh", "eu-west-1").add_auth(request)
assert request.headers["X-Amz-Date"].startswith("2020"), request.headers["X-Amz-Date"]
prepared = request.prepare()
out["stale"] = status(urllib.request.Request(prepared.url, headers=dict(prepared.headers)))
print(json.dumps(out))
"#;

/// The Python that has boto3: `AVIARY_PYTHON` (set by `.ci/run`), else `python3`.
fn python() -> String {
    std::env::var("AVIARY_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

#[test]
fn boto3_signs_pages_tags_and_presigned_urls_and_stale_or_tampered_ones_are_refused() {
    let control = start();
    let mut cmd = std::process::Command::new(python());
    cmd.args(["-c", BOTO3, control.url(), TEST_ACCESS_KEY, TEST_SECRET_KEY])
        .env("AWS_CONFIG_FILE", "/nonexistent/aviary-testkit/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aviary-testkit/credentials",
        );
    let out = run(&mut cmd, Duration::from_secs(90));
    assert!(
        out.success(),
        "boto3 script failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    let got: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("boto3 script printed no JSON ({e}):\n{}", out.stdout));
    assert_eq!(got["pages"], 2, "{got}");
    assert_eq!(got["meshes"], json!(["boto-1", "boto-2", "boto-3"]));
    assert_eq!(got["tags"], json!([{"key": "k", "value": "v=1&w=2"}]));
    assert_eq!(got["presigned"], json!([200, null]));
    assert_eq!(got["tampered"], json!([403, "InvalidSignatureException"]));
    assert_eq!(got["expired"], json!([403, "InvalidSignatureException"]));
    assert_eq!(got["stale"], json!([403, "InvalidSignatureException"]));
}

/// The walkthrough's App Mesh steps as SDK code runs them: boto3 with nothing but the
/// credentials file a first start wrote, every step-1 file, then the route updates of step 3.
const BOTO3_WALKTHROUGH: &str = r#"
import json, os, sys
import boto3
url, folder = sys.argv[1], sys.argv[2]
names = sys.argv[3].split(",")
c = boto3.session.Session(region_name="us-west-2").client("appmesh", endpoint_url=url)
def create(name):
    body = json.load(open(os.path.join(folder, name + ".json")))
    for key, op in [("gatewayRouteName", "create_gateway_route"), ("routeName", "create_route"),
                    ("virtualGatewayName", "create_virtual_gateway"),
                    ("virtualServiceName", "create_virtual_service"),
                    ("virtualRouterName", "create_virtual_router"),
                    ("virtualNodeName", "create_virtual_node"), ("meshName", "create_mesh")]:
        if key in body:
            return getattr(c, op)(**body)
for name in names:
    create(name)
create("product-v15-vn")
weights = {}
for step in ["product-r-75-25", "product-r-v15", "product-r-v1"]:
    c.update_route(**json.load(open(os.path.join(folder, step + ".json"))))
    route = c.describe_route(meshName="demomesh", virtualRouterName="product-vr",
                             routeName="product-r")["route"]
    weights[step] = {t["virtualNode"]: t["weight"]
                     for t in route["spec"]["httpRoute"]["action"]["weightedTargets"]}
print(json.dumps({"weights": weights,
                  "services": sorted(s["virtualServiceName"] for s in
                                     c.list_virtual_services(meshName="demomesh")["virtualServices"])}))
"#;

#[test]
fn boto3_runs_the_walkthrough_with_the_credentials_a_first_start_wrote() {
    let control = ControlProcess::start_unseeded(bin());
    let folder = crate::demomesh_dir().join("appmesh");
    let mut cmd = std::process::Command::new(python());
    cmd.args(["-c", BOTO3_WALKTHROUGH, control.url()])
        .arg(&folder)
        .arg(crate::STEP1.join(","))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/aviary-testkit/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            control.data_dir().join("credentials"),
        );
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(
        out.success(),
        "boto3 walkthrough failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    let got: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("boto3 walkthrough printed no JSON ({e}):\n{}", out.stdout));
    assert_eq!(
        got["weights"],
        json!({
            "product-r-75-25": {"product-vn": 75, "product-v15-vn": 25},
            "product-r-v15": {"product-vn": 0, "product-v15-vn": 100},
            "product-r-v1": {"product-vn": 100, "product-v15-vn": 0},
        })
    );
    assert_eq!(
        got["services"],
        json!([
            "customer.demomesh.local",
            "order.demomesh.local",
            "product.demomesh.local"
        ])
    );
}

/// Status and `x-amzn-ErrorType` of one request, reading only the response head (so watch
/// streams, which never end, answer too).
fn head(url: &str, method: &str, path: &str, token: Option<&str>) -> (u16, Option<String>) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        request.push_str("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some((status, headers, _)) = parse_head(&raw) {
            return (status, headers.get("x-amzn-ErrorType").map(str::to_string));
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "{method} {path}: no status in {:?}",
                String::from_utf8_lossy(&raw)
            ),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
}

fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            "{mesh}" => "m",
            "{*rest}" => "meshes",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_admits_exactly_the_roles_of_its_row() {
    let control = start();
    let url = control.url();
    aws_json(url, &["create-mesh", "--mesh-name", "m"]);
    let mut callers: Vec<(String, Option<Role>, Option<String>)> =
        vec![("anonymous".into(), None, None)];
    for role in Role::ALL {
        let mesh = (role == Role::Proxy).then_some("m");
        let name = format!("matrix-{}", role.as_str());
        let mut body = json!({"name": name, "role": role.as_str()});
        if let Some(mesh) = mesh {
            body["mesh"] = json!(mesh);
        }
        let token = crate::new_token(url, &body);
        callers.push((name, Some(role), Some(token)));
    }
    let (_, _, other) = http_json(
        "POST",
        &format!("{url}/v1/tokens"),
        Some(r#"{"name":"other-mesh-proxy","role":"proxy","mesh":"other"}"#),
    );
    let other = other["token"].as_str().unwrap().to_string();

    // The mesh CA's routes are in the table, so the walk below covers them: its trust bundle
    // for every role of the mesh, identities for its proxies and admins only.
    for (method, path, roles) in [
        (
            "GET",
            "/v1/meshes/{mesh}/ca",
            &[Role::Admin, Role::Operator, Role::Viewer, Role::Proxy][..],
        ),
        (
            "POST",
            "/v1/meshes/{mesh}/certificates",
            &[Role::Admin, Role::Proxy][..],
        ),
    ] {
        let row = RULES
            .iter()
            .find(|rule| rule.method == method && rule.path == path)
            .unwrap_or_else(|| panic!("no row for {method} {path}"));
        assert_eq!(row.access, Access::Roles(roles), "{method} {path}");
    }
    // Per caller: (allowed, refused); each must see both, or the table says nothing of it.
    let mut outcomes = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for rule in RULES {
        // Signing in to the console is open and checks the token it is given in its body or
        // cookie, not a caller's header: console.rs tests it.
        if rule.path == "/ui/session" {
            continue;
        }
        let path = concrete(rule.path);
        for (name, role, token) in &callers {
            let (status, error_type) = head(url, rule.method, &path, token.as_deref());
            let allowed = match (rule.access, role) {
                (Access::Open, _) => true,
                (Access::Roles(roles), Some(role)) => roles.contains(role),
                (Access::Roles(_), None) => false,
            };
            let what = format!("{} {path} as {name}: {status} {error_type:?}", rule.method);
            if allowed {
                assert!(!matches!(status, 401 | 403), "{what}: should be allowed");
            } else if role.is_none() && path.starts_with("/v20190125/") {
                assert_eq!(
                    (status, error_type.as_deref()),
                    (403, Some("MissingAuthenticationTokenException")),
                    "{what}"
                );
            } else if role.is_none() {
                assert_eq!(status, 401, "{what}");
            } else {
                assert_eq!(
                    (status, error_type.as_deref()),
                    (403, Some("ForbiddenException")),
                    "{what}"
                );
            }
            let seen = outcomes.entry(name.clone()).or_default();
            if allowed {
                seen.0 += 1;
            } else {
                seen.1 += 1;
            }
        }
        // A proxy token of another mesh is refused wherever proxies of `m` are let in.
        if let Access::Roles(roles) = rule.access
            && roles.contains(&Role::Proxy)
        {
            let (status, _) = head(url, rule.method, &path, Some(&other));
            assert_eq!(
                status, 403,
                "{} {path} with another mesh's proxy token",
                rule.method
            );
        }
    }
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    for (name, (allowed, refused)) in &outcomes {
        assert!(
            *allowed > 0 && *refused > 0,
            "{name}: {allowed} allowed, {refused} refused"
        );
    }
    // A path in no row is refused before any handler, whoever asks.
    assert_eq!(
        head(url, "GET", "/v1/secret-new-route", Some(TEST_ADMIN_TOKEN)).0,
        404
    );
}

#[test]
fn tokens_from_the_cli_grant_their_role_until_revoked() {
    let control = start();
    let url = control.url();
    let aviary = |token: Option<&str>, args: &[&str]| {
        let mut cmd = aviary_cmd();
        cmd.env("AVIARY_CONTROL", url);
        if let Some(token) = token {
            cmd.env("AVIARY_TOKEN", token);
        }
        cmd.args(args);
        run(&mut cmd, Duration::from_secs(30))
    };
    let created = aviary(
        None,
        &["token", "create", "--name", "ci-viewer", "--role", "viewer"],
    );
    assert!(created.success(), "{}", created.stderr);
    let token = created.stdout.trim().to_string();
    assert!(token.starts_with("aviary_"), "{token}");
    assert!(
        created.stderr.contains("not shown again"),
        "{}",
        created.stderr
    );

    aws_json(url, &["create-mesh", "--mesh-name", "m"]);
    let got = aviary(Some(&token), &["get", "meshes"]);
    assert!(
        got.success() && got.stdout.contains('m'),
        "{}{}",
        got.stdout,
        got.stderr
    );
    let denied = aviary(Some(&token), &["delete", "mesh", "m"]);
    assert!(!denied.success());
    assert!(
        denied.stderr.contains("needs the role admin"),
        "{}",
        denied.stderr
    );

    let list = aviary(None, &["token", "list"]);
    let row = list
        .stdout
        .lines()
        .find(|l| l.contains("ci-viewer"))
        .unwrap_or_else(|| panic!("no ci-viewer in:\n{}", list.stdout));
    assert!(row.contains("viewer"), "{row}");
    assert!(!list.stdout.contains(&token[20..]), "list shows no secret");
    let id = row.split_whitespace().next().unwrap();

    let bad = aviary(None, &["token", "create", "--name", "p", "--role", "proxy"]);
    assert!(
        !bad.success() && bad.stderr.contains("mesh"),
        "{}",
        bad.stderr
    );
    let dup = aviary(
        None,
        &["token", "create", "--name", "ci-viewer", "--role", "viewer"],
    );
    assert!(
        !dup.success() && dup.stderr.contains("exists"),
        "{}",
        dup.stderr
    );

    assert!(aviary(None, &["token", "revoke", id]).success());
    let after = aviary(Some(&token), &["get", "meshes"]);
    assert!(!after.success());
    assert!(after.stderr.contains("revoked"), "{}", after.stderr);
}

#[test]
fn a_workloads_env_is_shown_only_to_admins_and_proxies() {
    let control = start();
    let url = control.url();
    aws_json(url, &["create-mesh", "--mesh-name", "m"]);
    aws_json(
        url,
        &[
            "create-virtual-node",
            "--mesh-name",
            "m",
            "--virtual-node-name",
            "db-vn",
            "--spec",
            "{}",
        ],
    );
    let workload = json!({"virtualNode": "db-vn", "command": ["sleep", "60"],
        "env": {"PGPASSWORD": "hunter2"}, "replicas": 1});
    let path = format!("{url}/v1/meshes/m/workloads/db");
    let (status, _, body) = http("PUT", &path, Some(&workload.to_string()));
    assert_eq!(status, 200, "{body}");
    let viewer = {
        let (_, _, out) = http_json(
            "POST",
            &format!("{url}/v1/tokens"),
            Some(r#"{"name":"v","role":"viewer"}"#),
        );
        out["token"].as_str().unwrap().to_string()
    };
    let proxy = crate::proxy_token(url, "m", "p");
    let snapshot = format!("{url}/v1/meshes/m/snapshot");
    for (who, token, sees) in [
        ("admin", TEST_ADMIN_TOKEN, true),
        ("proxy", proxy.as_str(), true),
        ("viewer", viewer.as_str(), false),
    ] {
        for target in [&path, &format!("{url}/v1/meshes/m/workloads"), &snapshot] {
            let (status, _, text) = http_with("GET", target, None, token);
            assert_eq!(status, 200, "{who} {target}: {text}");
            assert_eq!(text.contains("hunter2"), sees, "{who} {target}: {text}");
            assert!(
                text.contains("PGPASSWORD"),
                "{who} still sees the key: {text}"
            );
        }
    }
}

#[test]
fn what_a_web_page_can_send_without_a_preflight_changes_nothing() {
    let control = start();
    let url = control.url();
    aws_json(url, &["create-mesh", "--mesh-name", "m"]);
    let revision = crate::snapshot_revision(url, "m");
    let canary = json!({"name": "c", "router": "r", "route": "rt", "stable": "a",
        "canary": "b", "strategy": {"stepWeight": 60, "interval": "1s"}})
    .to_string();
    let evil = [("Origin", "http://evil.example")];
    let canaries = format!("{url}/v1/meshes/m/canaries");
    // A simple POST as a page sends it: text/plain, form-encoded, multipart; no token.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let headers = [evil[0], ("Content-Type", content_type)];
        let (status, answer, _) = http_as("POST", &canaries, Some(&canary), &headers);
        assert_eq!(status, 401, "{content_type}");
        assert_eq!(answer.get("access-control-allow-origin"), None);
        let (status, _, body) = http_as(
            "POST",
            &format!("{url}/v20190125/meshes"),
            Some("{}"),
            &headers,
        );
        assert_eq!(status, 403, "{body}");
        // Even with a token (which a page cannot attach), a non-JSON write is refused.
        let auth = format!("Bearer {TEST_ADMIN_TOKEN}");
        let with_token = [
            evil[0],
            ("Content-Type", content_type),
            ("Authorization", &auth),
        ];
        let (status, _, body) = http_as("POST", &canaries, Some(&canary), &with_token);
        assert_eq!(status, 415, "{body}");
        assert!(body.contains("application/json"), "{body}");
    }
    // DNS rebinding: the page's own name resolving to us. Refused even with a token.
    let auth = format!("Bearer {TEST_ADMIN_TOKEN}");
    for host in [
        "evil.example",
        "evil.example:7070",
        "localhost.evil.example",
    ] {
        let headers = [("Host", host), ("Authorization", auth.as_str())];
        let (status, _, body) = http_as(
            "GET",
            &format!("{url}/v1/meshes/m/snapshot"),
            None,
            &headers,
        );
        assert_eq!(status, 403, "{host}: {body}");
        assert!(body.contains("Host"), "{body}");
    }
    // A preflight gets no CORS grant.
    let preflight = [
        evil[0],
        ("Access-Control-Request-Method", "PUT"),
        (
            "Access-Control-Request-Headers",
            "authorization,content-type",
        ),
    ];
    let (status, answer, _) = http_as("OPTIONS", &canaries, None, &preflight);
    assert!(status >= 400, "preflight answered {status}");
    assert_eq!(answer.get("access-control-allow-origin"), None);
    assert_eq!(answer.get("access-control-allow-methods"), None);
    assert_eq!(
        crate::snapshot_revision(url, "m"),
        revision,
        "nothing changed"
    );
}

#[test]
fn no_auth_is_refused_off_loopback() {
    let dir = testkit::temp_dir();
    let mut cmd = std::process::Command::new(bin());
    cmd.args([
        "control",
        "--no-auth",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
    ])
    .arg(dir.path());
    let out = run(&mut cmd, Duration::from_secs(20));
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("--no-auth"), "{}", out.stderr);
    assert!(
        !dir.path().join("aviary.redb").exists(),
        "refused before opening anything"
    );
}
