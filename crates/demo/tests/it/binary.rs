//! The real `aviary-demo` binary: environment and flags, the announcement line, stopping on
//! SIGTERM/SIGINT, and exit code 2 with the flag's name for bad values.

use std::process::Stdio;
use std::time::Duration;

use demo::Service;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::forward_proxy::ForwardProxy;
use crate::{BOUND, config, get, start};

/// The binary with an empty environment (so no proxy or fault settings leak in from the test
/// run) plus `env`.
fn demo(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aviary-demo"));
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A started child and the base URL from its announcement line.
async fn spawn(args: &[&str], env: &[(&str, &str)], announced: &str) -> (Child, String) {
    let mut child = demo(args, env).spawn().expect("spawn aviary-demo");
    let stdout = child.stdout.take().unwrap();
    let line = timeout(BOUND, BufReader::new(stdout).lines().next_line())
        .await
        .expect("announcement within BOUND")
        .unwrap()
        .expect("an announcement line");
    let prefix = format!("{announced} listening on http://");
    let addr = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    (child, format!("http://{addr}"))
}

/// Sends `signal` and waits (bounded) for a clean exit.
async fn stop(mut child: Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = timeout(BOUND, child.wait())
        .await
        .expect("exit within BOUND after the signal")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

/// Exit code and stderr of a run expected to end by itself.
async fn exit_of(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = demo(args, env).spawn().unwrap();
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().unwrap();
    let status = timeout(BOUND, async {
        pipe.read_to_string(&mut stderr).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .unwrap_or_else(|_| panic!("{args:?} {env:?} did not exit"));
    (status.code(), stderr)
}

#[tokio::test]
async fn binary_takes_port_and_version_from_env_and_stops_on_sigterm() {
    let env = [("PORT", "0"), ("VERSION", "3.1")];
    let (child, url) = spawn(&["product"], &env, "aviary-demo product 3.1").await;
    // A client that keeps its connection open, as the mesh proxy's pool does: shutdown must not
    // wait out the grace period for it.
    let client = crate::client();
    let answer = crate::get_with(&client, &format!("{url}/"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"service": "Product", "version": "3.1"})
    );
    let stopping = tokio::time::Instant::now();
    stop(child, "-TERM").await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "took {:?}",
        stopping.elapsed()
    );
    let refused = client.get(format!("{url}/")).send().await;
    assert!(
        refused.is_err(),
        "still answering after SIGTERM: {refused:?}"
    );
}

#[tokio::test]
async fn binary_flags_win_over_env() {
    let env = [("PORT", "1"), ("VERSION", "3.1"), ("ERROR_RATE", "1")];
    let args = [
        "customer",
        "--listen",
        "127.0.0.1:0",
        "--version",
        "3.2",
        "--error-rate",
        "0",
    ];
    let (child, url) = spawn(&args, &env, "aviary-demo customer 3.2").await;
    let answer = get(&format!("{url}/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"service": "Customer", "version": "3.2"})
    );
    stop(child, "-INT").await;
}

#[tokio::test]
async fn binary_order_goes_through_http_proxy_from_env() {
    let product = start(config(Service::Product, "1.0")).await;
    let customer = start(config(Service::Customer, "1.0")).await;
    let proxy = ForwardProxy::start(&[
        ("product.demomesh.local:8080", product.addr),
        ("customer.demomesh.local:8080", customer.addr),
    ])
    .await;
    let proxy_url = proxy.url().to_string();
    let env = [("PORT", "0"), ("HTTP_PROXY", proxy_url.as_str())];
    let (child, url) = spawn(&["order"], &env, "aviary-demo order 1.0").await;
    let answer = get(&format!("{url}/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        "{\"service\":\"Order\",\"version\":\"1.0\"}\n\
         {\"service\":\"Product\",\"version\":\"1.0\"}\n\
         {\"service\":\"Customer\",\"version\":\"1.0\"}\n"
    );
    assert_eq!(proxy.seen().len(), 2, "{:?}", proxy.seen());
    stop(child, "-TERM").await;
}

/// A run with `args` and `env` exits 2 and its stderr names `named`.
async fn check_refused(args: &[&str], env: &[(&str, &str)], named: &str) {
    let (code, stderr) = exit_of(args, env).await;
    assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
    assert!(stderr.contains(named), "{args:?} {env:?}: {stderr}");
}

#[tokio::test]
async fn bad_values_exit_2_naming_the_flag() {
    check_refused(&["product", "--error-rate", "1.5"], &[], "--error-rate").await;
    check_refused(&["product", "--latency", "soon"], &[], "--latency").await;
    check_refused(&["product", "--fail-after", "many"], &[], "--fail-after").await;
    check_refused(&["product"], &[("ERROR_RATE", "1.5")], "--error-rate").await;
    check_refused(&["product"], &[("LATENCY", "soon")], "--latency").await;
    check_refused(&["order"], &[("HTTP_PROXY", "not a url")], "HTTP_PROXY").await;
    check_refused(&["shipping"], &[], "shipping").await;
}

#[tokio::test]
async fn a_taken_port_exits_1_saying_so() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = exit_of(&["product", "--listen", &addr], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
