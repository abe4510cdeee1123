//! The web console in a real headless Chromium (Debian's `chromium`, driven through its
//! `chromedriver` over WebDriver): it follows route changes and canary decisions live, shows a
//! rollback's failed step in red, gives a viewer no enabled action and refuses a forged one,
//! lets an operator pause and resume, shows each pipeline run's stages with their logs and lets
//! an operator approve one, and fits a phone's width. It saves the screenshots
//! README shows; with `AVIARY_UPDATE_SCREENSHOTS=1` into `docs/console/`, else into the
//! target directory's `tmp/console`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use testkit::{http, http_json};

use crate::canary::{Load, Proc, aviary, free_port, spawn_until, up_demo};
use crate::demomesh_dir;
use crate::pipeline::{Repo, create_product_pipeline, files, product, wait_run};

mod firefox;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session, with the runtime its async client needs; every call blocks.
struct Browser {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
    _driver: Proc,
    _profile: testkit::TempDir,
}

impl Browser {
    fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "the console tests need Debian's chromium and chromium-driver (.ci/run installs them)"
        );
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"));
        let (driver, _) = spawn_until(&mut cmd, "started successfully");
        let profile = testkit::temp_dir();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The flags this machine needs: root (no sandbox), no GPU, and nothing that reaches
        // for the network on its own (which a closed network refuses, slowly).
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a chromium session");
        Browser {
            client: Some(client),
            runtime,
            _driver: driver,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.runtime.block_on(self.client().goto(url)).unwrap();
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns.
    fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.runtime
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Like [`Browser::js`] for a script that calls `arguments[arguments.length - 1]` when done.
    fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.runtime
            .block_on(self.client().execute_async(script, args))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The computed top border colour of the first element `css` matches, `rgb(r, g, b)`.
    fn border_colour(&self, css: &str) -> Value {
        self.js(
            "return getComputedStyle(document.querySelector(arguments[0])).borderTopColor;",
            vec![json!(css)],
        )
    }

    fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .map_or(0, |found| found.len())
    }

    /// Waits, at most `limit`, until `css` matches an element; returns when it first did.
    fn wait_for(&self, css: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if self.count(css) > 0 {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "'{css}' never appeared on the page; it shows:\n{}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn text(&self, css: &str) -> String {
        self.runtime
            .block_on(async { self.client().find(Locator::Css(css)).await?.text().await })
            .unwrap_or_else(|e| format!("(no '{css}': {e})"))
    }

    fn click(&self, css: &str) {
        self.runtime
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    fn sign_in(&self, control: &str, token: &str) {
        self.goto(&format!("{control}/ui/"));
        self.wait_for("#sign-in:not([hidden]) #token", Duration::from_secs(10));
        self.runtime
            .block_on(async {
                let input = self.client().find(Locator::Css("#token")).await?;
                input.send_keys(token).await?;
                self.client()
                    .find(Locator::Css("#sign-in-form button"))
                    .await?
                    .click()
                    .await
            })
            .unwrap();
        self.wait_for("#console:not([hidden]) .service", Duration::from_secs(10));
        self.wait_for(".live.on", Duration::from_secs(10));
    }

    fn sign_out(&self) {
        self.click("#sign-out");
        self.wait_for("#sign-in:not([hidden])", Duration::from_secs(10));
    }

    fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .unwrap();
    }

    /// Saves a screenshot of the window as `name` in [`screenshot_dir`], scrolled to `css`.
    fn screenshot(&self, name: &str, css: &str) -> PathBuf {
        self.js(
            "document.querySelector(arguments[0]).scrollIntoView(); return true;",
            vec![json!(css)],
        );
        let png = self.runtime.block_on(self.client().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        assert!(
            png.len() > 10_000,
            "{name} is nearly empty: {} bytes",
            png.len()
        );
        let path = screenshot_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Whether the page is no wider than the window (nothing scrolls sideways).
    fn fits_width(&self) -> bool {
        self.js(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        ) == json!(true)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
    }
}

fn screenshot_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = if std::env::var_os("AVIARY_UPDATE_SCREENSHOTS").is_some() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
        } else {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("console")
        };
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
    .clone()
}

/// A new token of `role`, created by the seeded admin.
fn token(control: &str, role: &str) -> String {
    crate::new_token(
        control,
        &json!({"name": format!("console-{role}"), "role": role}),
    )
}

fn canary(control: &str, name: &str) -> Value {
    let url = format!("{control}/v1/meshes/demomesh/canaries/{name}");
    let (status, _, body) = http_json("GET", &url, None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until `node` has a healthy endpoint.
fn wait_healthy(control: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{control}/v1/meshes/demomesh/endpoints");
        let (_, _, body) = http("GET", &url, None);
        let list: model::wire::EndpointList = serde_json::from_str(&body).unwrap();
        let healthy = list
            .endpoints
            .iter()
            .any(|e| e.virtual_node == node && e.healthy);
        if healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} never got healthy: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Product's share of traffic to `node` at `weight`, as the map draws it.
fn share(node: &str, weight: u32) -> String {
    format!(".share[data-route='product-vr/product-r'][data-node='{node}'][data-weight='{weight}']")
}

/// The walkthrough's route change, product 1.0 75% / 1.5 25%; returns when it was answered.
fn product_75_25(control: &str) -> Instant {
    aviary(
        control,
        &[
            "route",
            "set",
            "product-r",
            "--router",
            "product-vr",
            "product-vn=75",
            "product-v15-vn=25",
        ],
    );
    Instant::now()
}

/// A canary on product's route from product-vn to `canary`, with `flags`.
fn start_product_canary(control: &str, name: &str, canary: &str, flags: &[&str]) {
    let mut args = vec![
        "canary",
        "start",
        name,
        "--router",
        "product-vr",
        "--route",
        "product-r",
        "--stable",
        "product-vn",
        "--canary",
        canary,
    ];
    args.extend_from_slice(flags);
    aviary(control, &args);
}

/// A product version whose every answer is a 500, as its own node and workload.
fn broken_product(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(demomesh_dir().join("product-v15.yaml"))
        .unwrap()
        .replace("product-v15", "product-v2")
        .replace("\"1.5\"]", "\"2.0\", --error-rate, \"1\"]");
    assert!(manifest.contains("--error-rate"), "{manifest}");
    let path = dir.join("product-v2.yaml");
    std::fs::write(&path, manifest).unwrap();
    path
}

#[test]
fn the_map_shows_a_route_change_within_a_second_and_fits_a_phone() {
    let (_demo, control, _gateway, data) = up_demo(&[]);
    let v15 = demomesh_dir().join("product-v15.yaml");
    aviary(&control, &["apply", "-f", &v15.display().to_string()]);
    let browser = Browser::start();
    browser.sign_in(&control, &token(&control, "viewer"));
    browser.wait_for(&share("product-vn", 100), Duration::from_secs(10));
    // Marks this page load: a reload would lose it.
    browser.js("window.aviaryTestMark = 42; return true;", vec![]);

    let written = product_75_25(&control);
    let seen = browser.wait_for(&share("product-v15-vn", 25), Duration::from_secs(5));
    let took = seen - written;
    assert!(browser.count(&share("product-vn", 75)) == 1);
    assert_eq!(
        browser.js("return window.aviaryTestMark;", vec![]),
        json!(42),
        "the page reloaded"
    );
    assert!(
        took < Duration::from_secs(1),
        "the route change took {took:?} to appear"
    );
    eprintln!("route change on the page {took:?} after `aviary route set` returned");

    // Node stats arrive through the stats stream once traffic flows.
    let _load = Load::start(_gateway, 20);
    browser.wait_for(
        ".node[data-node='order-vn'] .node-stats .num",
        Duration::from_secs(10),
    );
    assert!(browser.fits_width(), "the map is wider than 1280 px");
    // The last lines of a replica's log, read when its panel opens.
    browser.click(".workload[data-workload='order-v1'] details summary");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .text(".workload[data-workload='order-v1'] pre.log")
        .contains("order-v1-0 | ")
    {
        assert!(Instant::now() < deadline, "order-v1's log never showed");
        std::thread::sleep(Duration::from_millis(50));
    }
    browser.screenshot("mesh-map.png", "#map");

    browser.resize(390, 844);
    std::thread::sleep(Duration::from_millis(300));
    assert!(browser.fits_width(), "the page is wider than a phone");
    browser.screenshot("mesh-map-phone.png", "#map");
    drop(data);
}

#[test]
fn a_rolled_back_canary_shows_its_failed_step_in_red_within_a_second() {
    let (_demo, control, gateway, data) = up_demo(&[]);
    let manifest = broken_product(data.path());
    aviary(&control, &["apply", "-f", &manifest.display().to_string()]);
    wait_healthy(&control, "product-v2-vn");
    let browser = Browser::start();
    browser.sign_in(&control, &token(&control, "viewer"));
    let _load = Load::start(gateway, 50);
    browser.wait_for(
        ".node[data-node='product-vn'] .node-stats .num",
        Duration::from_secs(10),
    );
    start_product_canary(
        &control,
        "c1",
        "product-v2-vn",
        &["--step-weight", "10", "--interval", "3s", "--max-5xx", "0"],
    );
    let failed = ".canary[data-canary='c1'] .step.failed";
    browser.wait_for(failed, Duration::from_secs(30));
    let seen = now_millis();
    let canary = canary(&control, "c1");
    let history = canary["state"]["history"].as_array().unwrap();
    let decision = history.last().unwrap();
    assert_eq!(decision["event"], "rolled back", "{canary:#}");
    let after = seen.saturating_sub(decision["at"].as_u64().unwrap());
    assert!(
        after < 1000,
        "the failed step appeared {after} ms after the decision"
    );
    eprintln!("failed step on the page {after} ms after the decision (polled every ~10 ms)");
    let reason = canary["state"]["reason"].as_str().unwrap();
    let shown = browser.text(failed);
    assert!(
        shown.contains("step 1 of") && shown.contains(reason),
        "the failed step shows '{shown}', the reason is '{reason}'"
    );
    assert_eq!(
        browser.border_colour(failed),
        json!("rgb(192, 38, 45)"),
        "the failed step is not red"
    );
    browser.wait_for(
        ".canary[data-canary='c1'] .chart polyline.l1[points*=',']",
        Duration::from_secs(10),
    );
    browser.screenshot("canary-rolled-back.png", ".canary[data-canary='c1']");
}

#[test]
fn a_viewer_cannot_act_and_an_operator_pauses_and_resumes_from_the_page() {
    let (_demo, control, gateway, _data) = up_demo(&[]);
    let v15 = demomesh_dir().join("product-v15.yaml");
    aviary(&control, &["apply", "-f", &v15.display().to_string()]);
    wait_healthy(&control, "product-v15-vn");
    let _load = Load::start(gateway, 50);
    start_product_canary(
        &control,
        "c2",
        "product-v15-vn",
        &["--weights", "20,50", "--interval", "3s"],
    );
    let card = ".canary[data-canary='c2']";
    let browser = Browser::start();
    browser.sign_in(&control, &token(&control, "viewer"));
    browser.wait_for(&format!("{card} .step.running"), Duration::from_secs(10));

    // The running step says what it waits for, in the control plane's words.
    let waits = format!("{card} .step.running .step-detail");
    browser.wait_for(&waits, Duration::from_secs(5));
    let said = browser.text(&waits);
    assert!(
        said.contains("analysis interval") || said.contains("needs"),
        "the running step says '{said}'"
    );
    // A viewer: four actions shown, none enabled, and the reason field too.
    let actions = format!("{card} button[data-action]");
    assert_eq!(browser.count(&actions), 4);
    assert_eq!(browser.count(&format!("{actions}:disabled")), 4);
    assert_eq!(browser.count(&format!("{card} .abort-reason:disabled")), 1);
    // Forged: the page's own script posts without the CSRF token, then with it but as a viewer.
    let post = r#"
        const [withCsrf, done] = arguments;
        const headers = {'content-type': 'application/json'};
        (async () => {
          if (withCsrf) {
            const session = await (await fetch('/ui/session')).json();
            headers['x-csrf-token'] = session.csrfToken;
          }
          const r = await fetch('/v1/meshes/demomesh/canaries/c2/pause',
            {method: 'POST', headers, body: '{}'});
          done([r.status, await r.text()]);
        })();"#;
    let forged = browser.js_async(post, vec![json!(false)]);
    assert_eq!(forged[0], json!(403), "{forged}");
    assert!(
        forged[1].as_str().unwrap().contains("x-csrf-token"),
        "{forged}"
    );
    let as_viewer = browser.js_async(post, vec![json!(true)]);
    assert_eq!(as_viewer[0], json!(403), "{as_viewer}");
    assert!(
        as_viewer[1].as_str().unwrap().contains("needs the role"),
        "{as_viewer}"
    );
    assert_eq!(canary(&control, "c2")["state"]["phase"], "progressing");
    assert_eq!(
        browser.js("return document.cookie.includes('aviary_session');", vec![]),
        json!(false),
        "page script can read the session cookie"
    );
    browser.screenshot("canary-running.png", card);

    // An operator pauses and resumes from the page.
    browser.sign_out();
    browser.sign_in(&control, &token(&control, "operator"));
    browser.wait_for(
        &format!("{card} button[data-action='pause']:enabled"),
        Duration::from_secs(10),
    );
    browser.click(&format!("{card} button[data-action='pause']"));
    browser.wait_for(
        &format!("{card}[data-phase='paused']"),
        Duration::from_secs(5),
    );
    assert_eq!(canary(&control, "c2")["state"]["phase"], "paused");
    browser.click(&format!("{card} button[data-action='resume']"));
    browser.wait_for(
        &format!("{card}[data-phase='progressing']"),
        Duration::from_secs(5),
    );
    let history: Vec<Value> = canary(&control, "c2")["state"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].clone())
        .collect();
    assert!(
        history.contains(&json!("paused")) && history.contains(&json!("resumed")),
        "{history:?}"
    );
    browser.wait_for(
        &format!("{card}[data-phase='succeeded']"),
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.count(&format!("{card} .step.passed")),
        3,
        "every step passed"
    );
    browser.wait_for(
        &format!("{card} .chart polyline.l1[points*=',']"),
        Duration::from_secs(10),
    );
    browser.screenshot("canary-promoted.png", card);
}

/// Waits, at most `limit`, until the text of `css` contains `wanted`.
fn wait_text(browser: &Browser, css: &str, wanted: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = browser.text(css);
        if text.contains(wanted) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "'{wanted}' never showed in '{css}', which shows:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pipeline_shows_each_runs_stages_and_logs_and_an_operator_approves_from_the_page() {
    let (_demo, control, gateway, data) = up_demo(&[]);
    let _load = Load::start(gateway, 50);
    let repo = Repo::new(data.path().join("repo"));
    let first = repo.commit(&files(&product("2.0", &[])), "product 2.0");
    let out = create_product_pipeline(&control, &repo, &["--approval"]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    let browser = Browser::start();
    browser.sign_in(&control, &token(&control, "operator"));

    // Run 1 waits for approval: Source and Build green, Approval waiting, Deploy pending.
    let run1 = ".pipeline[data-pipeline='p'] .run[data-run='1']";
    browser.wait_for(
        &format!("{run1} .stage.waiting[data-log-stage='approval']"),
        Duration::from_secs(30),
    );
    for (stage, state) in [
        ("source", "succeeded"),
        ("build", "succeeded"),
        ("deploy", "pending"),
    ] {
        assert_eq!(
            browser.count(&format!(
                "{run1} .stage[data-log-stage='{stage}'][data-state='{state}']"
            )),
            1,
            "{stage} is not {state}: {}",
            browser.text(run1)
        );
    }
    assert!(
        browser.text(run1).contains(&first[..8]),
        "{}",
        browser.text(run1)
    );
    // Its build's output, read when its chip is clicked.
    browser.click(&format!("{run1} .stage[data-log-stage='build']"));
    wait_text(
        &browser,
        &format!("{run1} pre.log"),
        &format!("building 2.0 of {first} (run 1)"),
        Duration::from_secs(10),
    );
    browser.screenshot("pipeline-approval.png", ".pipeline[data-pipeline='p']");

    // The operator approves it on the page; it deploys, and the deploy is listed with its run.
    browser.click(&format!("{run1} button[data-approve='true']"));
    browser.wait_for(
        &format!("{run1}[data-phase='succeeded']"),
        Duration::from_secs(60),
    );
    let run = wait_run(
        &control,
        "demomesh",
        "p",
        1,
        &["succeeded"],
        Duration::from_secs(5),
    );
    assert!(
        run["approvedBy"]
            .as_str()
            .is_some_and(|by| by.contains("console-operator")),
        "{run}"
    );
    let deploy = ".deploy[data-deploy='product-1-1']";
    browser.wait_for(
        &format!("{deploy}[data-phase='succeeded']"),
        Duration::from_secs(10),
    );
    assert!(
        browser.text(deploy).contains("from pipeline p run 1"),
        "{}",
        browser.text(deploy)
    );

    // Run 2's build fails: its Build chip is red, the run says why, its log shows the error.
    repo.commit(
        &[(
            "specfiles/build.sh",
            "echo compiling; echo 'error: 3 tests failed' >&2; exit 2\n",
        )],
        "break the build",
    );
    let run2 = ".pipeline[data-pipeline='p'] .run[data-run='2']";
    let failed = format!("{run2} .stage.failed[data-log-stage='build']");
    browser.wait_for(&failed, Duration::from_secs(30));
    assert_eq!(
        browser.border_colour(&failed),
        json!("rgb(192, 38, 45)"),
        "the failed build is not red"
    );
    wait_text(
        &browser,
        &format!("{run2} .reason"),
        "build failed; nothing was deployed",
        Duration::from_secs(5),
    );
    assert_eq!(
        browser.count(&format!(
            "{run2} .stage[data-log-stage='deploy'][data-state='skipped']"
        )),
        1,
        "{}",
        browser.text(run2)
    );
    browser.click(&failed);
    wait_text(
        &browser,
        &format!("{run2} pre.log"),
        "error: 3 tests failed",
        Duration::from_secs(10),
    );
    assert!(browser.fits_width(), "the pipelines are wider than 1280 px");
    browser.screenshot("pipeline-failed-build.png", ".pipeline[data-pipeline='p']");
    browser.resize(390, 844);
    std::thread::sleep(Duration::from_millis(300));
    assert!(browser.fits_width(), "the pipelines are wider than a phone");
}

#[test]
fn a_mesh_of_100_services_fits_the_page_and_filters_to_one() {
    let control = crate::start();
    let mut manifest = String::from(
        "kind: Mesh\nmetadata: {name: big}\nspec: {egressFilter: {type: ALLOW_ALL}}\n",
    );
    for i in 0..100 {
        let listener = "{listeners: [{portMapping: {port: 8080, protocol: http}}]}";
        manifest.push_str(&format!(
            "---\nkind: VirtualNode\nmetadata: {{name: svc{i}-vn, mesh: big}}\nspec: {listener}\n\
             ---\nkind: VirtualRouter\nmetadata: {{name: svc{i}-vr, mesh: big}}\nspec: {listener}\n\
             ---\nkind: Route\nmetadata: {{name: svc{i}-r, mesh: big, virtualRouter: svc{i}-vr}}\n\
             spec: {{httpRoute: {{match: {{prefix: /}}, action: {{weightedTargets: [{{virtualNode: svc{i}-vn, weight: 1}}]}}}}}}\n\
             ---\nkind: VirtualService\nmetadata: {{name: svc{i}.big.local, mesh: big}}\n\
             spec: {{provider: {{virtualRouter: {{virtualRouterName: svc{i}-vr}}}}}}\n"
        ));
    }
    let dir = testkit::temp_dir();
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, manifest).unwrap();
    aviary(control.url(), &["apply", "-f", &file.display().to_string()]);

    let browser = Browser::start();
    browser.sign_in(control.url(), &token(control.url(), "viewer"));
    browser.wait_for("#services .service:nth-child(100)", Duration::from_secs(10));
    assert_eq!(browser.count("#services .service"), 100);
    assert!(
        browser
            .text("#map-summary")
            .starts_with("100 services of 100"),
        "{}",
        browser.text("#map-summary")
    );
    assert!(
        browser.fits_width(),
        "100 services make the page wider than 1280 px"
    );
    browser.screenshot("mesh-map-100.png", "#map");
    // What one render of the whole page costs at this size (the page renders once a second).
    let millis = browser.js(
        "const start = performance.now(); for (let i = 0; i < 10; i++) render(); \
         return (performance.now() - start) / 10;",
        vec![],
    );
    let millis = millis.as_f64().expect("a duration in ms");
    eprintln!("one render of a 100-service mesh: {millis:.1} ms");
    browser.runtime.block_on(async {
        let filter = browser
            .client()
            .find(Locator::Css("#filter"))
            .await
            .unwrap();
        filter.send_keys("svc42-vn").await.unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser.count("#services .service") != 1 {
        assert!(
            Instant::now() < deadline,
            "the filter never left one service"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(browser.text("#services").contains("svc42.big.local"));
}

#[test]
fn sign_in_sets_a_strict_http_only_cookie_and_actions_need_its_csrf_token() {
    let control = crate::start();
    let url = control.url();
    let sign_in =
        |body: &str| testkit::http_as("POST", &format!("{url}/ui/session"), Some(body), &[]);

    // Refused, with the problem named and no cookie: an unknown token, a proxy token, no JSON.
    let (status, headers, body) = sign_in(r#"{"token": "aviary_0000000000000000_nope"}"#);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unknown or revoked"), "{body}");
    assert!(headers.get("set-cookie").is_none());
    let proxy = crate::proxy_token(url, "m", "p");
    let (status, _, body) = sign_in(&json!({ "token": proxy }).to_string());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("proxy token"), "{body}");
    let (status, _, body) = sign_in(r#"{"tokn": "x"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("token"), "{body}");

    let operator = token(url, "operator");
    let (status, headers, body) = sign_in(&json!({ "token": operator }).to_string());
    assert_eq!(status, 200, "{body}");
    let cookie = headers.get("set-cookie").unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["role"], "operator");
    assert_eq!(session["canAct"], true);
    let csrf = session["csrfToken"].as_str().unwrap();
    assert!(!csrf.is_empty() && !operator.contains(csrf));
    let jar = cookie.split(';').next().unwrap().to_string();

    // The cookie reads like the token; a change needs the CSRF token as well.
    let (status, _, body) = testkit::http_as(
        "GET",
        &format!("{url}/v1/tokens"),
        None,
        &[("Cookie", &jar)],
    );
    assert_eq!(status, 403, "an operator may not list tokens: {body}");
    let (status, _, body) = testkit::http_as(
        "GET",
        &format!("{url}/v20190125/meshes"),
        None,
        &[("Cookie", &jar)],
    );
    assert_eq!(status, 200, "{body}");
    let create = json!({"meshName": "ui"}).to_string();
    let (status, _, body) = testkit::http_as(
        "PUT",
        &format!("{url}/v20190125/meshes"),
        Some(&create),
        &[("Cookie", &jar)],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("x-csrf-token"), "{body}");
    let (status, _, body) = testkit::http_as(
        "PUT",
        &format!("{url}/v20190125/meshes"),
        Some(&create),
        &[("Cookie", &jar), ("X-CSRF-Token", "0".repeat(32).as_str())],
    );
    assert_eq!(status, 403, "a wrong CSRF token: {body}");
    let (status, _, body) = testkit::http_as(
        "PUT",
        &format!("{url}/v20190125/meshes"),
        Some(&create),
        &[("Cookie", &jar), ("X-CSRF-Token", csrf)],
    );
    assert_eq!(
        status, 403,
        "with its CSRF token an operator is still no admin: {body}"
    );
    assert!(body.contains("needs the role admin"), "{body}");

    // Signing out clears the cookie; the page itself holds no data and says so in its policy.
    let (status, headers, _) = testkit::http_as("DELETE", &format!("{url}/ui/session"), None, &[]);
    assert_eq!(status, 204);
    assert!(headers.get("set-cookie").unwrap().contains("Max-Age=0"));
    let (status, headers, page) = testkit::http_as("GET", &format!("{url}/ui/"), None, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/ui/app.js\""));
    let policy = headers.get("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));

    // The console's views: bad parameters are named.
    for (query, named) in [
        ("stats/series", "nodes"),
        ("stats/series?nodes=a&step=forever", "step"),
        ("stats/series?nodes=a&window=11m", "window"),
        ("workloads/w/logs?lines=0", "lines"),
    ] {
        let (status, _, body) = http("GET", &format!("{url}/v1/meshes/m/{query}"), None);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(named), "{query}: {body}");
    }
    // A command's body is read strictly, like every request body.
    let (status, _, body) = http(
        "POST",
        &format!("{url}/v1/meshes/m/canaries/c/abort"),
        Some(r#"{"reson": "typo"}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reson"), "{body}");
    let (status, _, body) = http("GET", &format!("{url}/v1/meshes/m/workloads/w/logs"), None);
    assert_eq!(status, 404, "aviary control runs no workloads: {body}");
    assert!(body.contains("agent"), "{body}");
}
