//! Canary webhooks under `aviary control --webhook-allow`: a real child control plane and a real
//! local HTTP server as the webhook. Outside the list a canary is refused at creation; one
//! stored before the list was set is refused at call time with the reason; redirects are not
//! followed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ControlProcess, http, http_json};

use crate::bin;

/// A webhook server on 127.0.0.1: records each request's path and body; `/redirect` answers
/// 302 to `redirect_to`, everything else 200. Serves at most 100 requests or 3 minutes.
pub(crate) struct HookServer {
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl HookServer {
    pub(crate) fn start(redirect_to: Option<String>) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(180);
            let mut served = 0;
            while served < 100 && Instant::now() < end {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                served += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let (path, body) = read_request(&mut stream);
                let answer = match (&redirect_to, path.ends_with("/redirect")) {
                    (Some(to), true) => format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    _ => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string(),
                };
                seen.lock().unwrap().push((path, body));
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        HookServer { base, requests }
    }

    fn paths(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|(path, _)| path.clone()).collect()
    }

    /// The JSON bodies received so far, in order (those that were JSON).
    pub(crate) fn bodies(&self) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter_map(|(_, body)| serde_json::from_str(body).ok())
            .collect()
    }
}

/// One request's path and body: the head, then as much body as its content-length says.
fn read_request(stream: &mut std::net::TcpStream) -> (String, String) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).into_owned();
        let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length || n == 0 {
                return (path, body[..length.min(body.len())].to_string());
            }
        } else if n == 0 {
            return (path, String::new());
        }
    }
}

/// Mesh `m`: route `rt` of router `r` sends everything to `stable-vn`; `canary-vn` waits.
fn create_mesh(url: &str) {
    let listener = json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]});
    let calls = [
        ("/v20190125/meshes", json!({"meshName": "m"})),
        (
            "/v20190125/meshes/m/virtualNodes",
            json!({"virtualNodeName": "stable-vn", "spec": listener}),
        ),
        (
            "/v20190125/meshes/m/virtualNodes",
            json!({"virtualNodeName": "canary-vn", "spec": listener}),
        ),
        (
            "/v20190125/meshes/m/virtualRouters",
            json!({"virtualRouterName": "r", "spec": listener}),
        ),
        (
            "/v20190125/meshes/m/virtualRouter/r/routes",
            json!({"routeName": "rt", "spec": crate::route_spec(&[("stable-vn", 100)])}),
        ),
    ];
    for (path, body) in calls {
        let (status, _, answer) = http("PUT", &format!("{url}{path}"), Some(&body.to_string()));
        assert_eq!(status, 200, "{path}: {answer}");
    }
}

fn canary_body(name: &str, hook_url: &str, timeout: &str) -> String {
    json!({"name": name, "spec": {
        "router": "r", "route": "rt", "stableNode": "stable-vn", "canaryNode": "canary-vn",
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "1s"},
        "analysis": {"webhooks": [{"name": "smoke", "url": hook_url, "timeout": timeout}]}
    }})
    .to_string()
}

fn canaries(url: &str) -> Value {
    let (status, _, body) = http_json("GET", &format!("{url}/v1/meshes/m/canaries"), None);
    assert_eq!(status, 200, "{body}");
    body["canaries"].clone()
}

/// Waits (bounded) until canary `name` has failed, and returns why.
fn failure_reason(url: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, canary) = http_json("GET", &format!("{url}/v1/meshes/m/canaries/{name}"), None);
        if canary["state"]["phase"] == "failed" {
            return canary["state"]["reason"].as_str().unwrap_or("").to_string();
        }
        assert!(Instant::now() < deadline, "{name} never failed: {canary:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_outside_the_allow_list_are_refused_and_redirects_are_not_followed() {
    let elsewhere = HookServer::start(None);
    let allowed = HookServer::start(Some(format!("{}/stolen", elsewhere.base)));
    let prefix = format!("{}/hooks/", allowed.base);
    let control = ControlProcess::start_with(bin(), &["--webhook-allow", &prefix]);
    let url = control.url();
    create_mesh(url);

    let post = |body: &str| http("POST", &format!("{url}/v1/meshes/m/canaries"), Some(body));
    let refused = [
        (
            canary_body("c", &format!("{}/hooks/x", elsewhere.base), "2s"),
            "not allowed",
        ),
        (
            canary_body("c", &format!("{}/hooks/../admin", allowed.base), "2s"),
            "not allowed",
        ),
        (
            canary_body("c", &format!("{}/other", allowed.base), "2s"),
            "not allowed",
        ),
        (
            canary_body("c", &format!("{}/hooks/x", allowed.base), "61s"),
            "timeout",
        ),
    ];
    for (body, why) in &refused {
        let (status, headers, answer) = post(body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(headers.get("x-amzn-ErrorType"), Some("BadRequestException"));
        for named in [why, "smoke", "spec.analysis.webhooks[0]"] {
            assert!(answer.contains(named), "{named} not in {answer}");
        }
        if *why == "not allowed" {
            assert!(answer.contains(&prefix), "the prefixes are named: {answer}");
        }
    }
    assert_eq!(canaries(url), json!([]), "nothing was stored");

    // Allowed, but the hook redirects elsewhere: the 302 is the answer, a failure.
    let (status, _, answer) = post(&canary_body(
        "c",
        &format!("{}/hooks/redirect", allowed.base),
        "2s",
    ));
    assert_eq!(status, 201, "{answer}");
    let reason = failure_reason(url, "c");
    assert!(
        reason.contains("302") && reason.contains("redirects are not followed"),
        "{reason}"
    );
    assert_eq!(allowed.paths(), ["/hooks/redirect"]);
    assert_eq!(elsewhere.paths(), Vec::<String>::new(), "redirect followed");
}

#[test]
fn a_canary_stored_before_the_allow_list_fails_its_webhook_without_sending() {
    let hook = HookServer::start(None);
    let mut control = ControlProcess::start_with(bin(), &[]);
    create_mesh(control.url());
    let body = canary_body("c", &format!("{}/hook", hook.base), "2s");
    let (status, _, answer) = http(
        "POST",
        &format!("{}/v1/meshes/m/canaries", control.url()),
        Some(&body),
    );
    assert_eq!(status, 201, "{answer}");
    // Without the list the hook is called (the canary then waits for traffic that never comes).
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.paths().is_empty() {
        assert!(Instant::now() < deadline, "the webhook was never called");
        std::thread::sleep(Duration::from_millis(50));
    }
    let calls_before = hook.paths().len();

    control.set_args(&["--webhook-allow", "http://127.0.0.1:1/only-here/"]);
    control.restart();
    let reason = failure_reason(control.url(), "c");
    for named in [
        "smoke",
        "not sent",
        "http://127.0.0.1:1/only-here/",
        "--webhook-allow",
    ] {
        assert!(reason.contains(named), "{named} not in {reason}");
    }
    assert_eq!(
        hook.paths().len(),
        calls_before,
        "the restarted control plane called a webhook outside its list"
    );
}
