//! The console in a real headless Firefox. Debian packages Firefox (`firefox-esr`) but no
//! geckodriver, and nothing may be downloaded, so this speaks Firefox's own remote protocol
//! (Marionette: length-prefixed JSON over TCP, which geckodriver would translate WebDriver into)
//! for the few commands it needs: navigate, run a script, take a screenshot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::canary::{Load, Proc, aviary, free_port, up_demo};
use crate::demomesh_dir;

const FIREFOX: &str = "/usr/bin/firefox-esr";

struct Firefox {
    stream: BufReader<TcpStream>,
    next_id: u64,
    _process: Proc,
    _profile: testkit::TempDir,
}

impl Firefox {
    fn start() -> Firefox {
        assert!(
            Path::new(FIREFOX).exists(),
            "the Firefox console test needs Debian's firefox-esr (.ci/run installs it)"
        );
        let port = free_port();
        let profile = testkit::temp_dir();
        // Marionette on our port, and nothing that reaches for the network on its own.
        let prefs = [
            format!("user_pref(\"marionette.port\", {port});"),
            "user_pref(\"app.update.disabledForTesting\", true);".into(),
            "user_pref(\"browser.shell.checkDefaultBrowser\", false);".into(),
            "user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);".into(),
            "user_pref(\"toolkit.telemetry.enabled\", false);".into(),
            "user_pref(\"network.captive-portal-service.enabled\", false);".into(),
            "user_pref(\"network.connectivity-service.enabled\", false);".into(),
            "user_pref(\"browser.safebrowsing.update.enabled\", false);".into(),
            "user_pref(\"extensions.update.enabled\", false);".into(),
            "user_pref(\"browser.startup.homepage\", \"about:blank\");".into(),
            "user_pref(\"remote.prefs.recommended\", true);".into(),
        ];
        std::fs::write(profile.path().join("user.js"), prefs.join("\n")).unwrap();
        let child = Command::new(FIREFOX)
            .args(["--headless", "--marionette", "--no-remote", "--profile"])
            .arg(profile.path())
            .arg("about:blank")
            .env("MOZ_HEADLESS_WIDTH", "1280")
            .env("MOZ_HEADLESS_HEIGHT", "900")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn firefox-esr");
        let process = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                break stream;
            }
            assert!(Instant::now() < deadline, "Firefox never opened Marionette");
            std::thread::sleep(Duration::from_millis(100));
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut firefox = Firefox {
            stream: BufReader::new(stream),
            next_id: 0,
            _process: process,
            _profile: profile,
        };
        let hello = firefox.read();
        assert_eq!(hello["marionetteProtocol"], 3, "{hello}");
        firefox.command("WebDriver:NewSession", json!({"capabilities": {}}));
        firefox
    }

    /// One `len:json` message.
    fn read(&mut self) -> Value {
        let mut len = Vec::new();
        self.stream.read_until(b':', &mut len).unwrap();
        len.pop();
        let len: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// Sends a command and returns its result; panics with Firefox's error.
    fn command(&mut self, name: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!([0, id, name, params]).to_string();
        let stream = self.stream.get_mut();
        write!(stream, "{}:{body}", body.len()).unwrap();
        stream.flush().unwrap();
        loop {
            let answer = self.read();
            if answer[1] != id {
                continue;
            }
            assert!(answer[2].is_null(), "{name}: {}", answer[2]);
            return answer[3].clone();
        }
    }

    fn js(&mut self, script: &str, args: Vec<Value>) -> Value {
        self.command(
            "WebDriver:ExecuteScript",
            json!({"script": script, "args": args}),
        )["value"]
            .clone()
    }

    fn count(&mut self, css: &str) -> u64 {
        self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .as_u64()
        .unwrap()
    }

    fn wait_for(&mut self, css: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if self.count(css) > 0 {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "'{css}' never appeared in Firefox; the page shows:\n{}",
                self.js("return document.body.innerText;", vec![])
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        // Best effort: Proc's drop ends the process anyway.
        let id = self.next_id + 1;
        let body = json!([0, id, "Marionette:Quit", {}]).to_string();
        let _ = write!(self.stream.get_mut(), "{}:{body}", body.len());
    }
}

#[test]
fn in_firefox_too_the_map_follows_a_route_change_and_an_operator_pauses_and_resumes() {
    let (_demo, control, gateway, _data) = up_demo(&[]);
    let v15 = demomesh_dir().join("product-v15.yaml");
    aviary(&control, &["apply", "-f", &v15.display().to_string()]);
    let operator = super::token(&control, "operator");
    let mut firefox = Firefox::start();
    firefox.command(
        "WebDriver:Navigate",
        json!({"url": format!("{control}/ui/")}),
    );
    firefox.wait_for("#sign-in:not([hidden]) #token", Duration::from_secs(10));
    firefox.js(
        "document.getElementById('token').value = arguments[0];
         document.querySelector('#sign-in-form button').click(); return true;",
        vec![json!(operator)],
    );
    firefox.wait_for(&super::share("product-vn", 100), Duration::from_secs(10));
    firefox.wait_for(".live.on", Duration::from_secs(10));
    firefox.js("window.aviaryTestMark = 42; return true;", vec![]);
    let written = super::product_75_25(&control);
    let took =
        firefox.wait_for(&super::share("product-v15-vn", 25), Duration::from_secs(5)) - written;
    assert_eq!(firefox.count(&super::share("product-vn", 75)), 1);
    assert_eq!(
        firefox.js("return window.aviaryTestMark;", vec![]),
        json!(42)
    );
    assert!(
        took < Duration::from_secs(1),
        "Firefox showed it after {took:?}"
    );
    eprintln!("route change in Firefox {took:?} after `aviary route set` returned");
    let fits = firefox.js(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
        vec![],
    );
    assert_eq!(fits, json!(true), "the map is wider than Firefox's window");
    let screenshot = firefox.command("WebDriver:TakeScreenshot", json!({}));
    let png = screenshot["value"].as_str().unwrap_or_default();
    assert!(png.len() > 10_000, "Firefox's screenshot is nearly empty");

    // Actions, with their CSRF token, from Firefox too.
    super::wait_healthy(&control, "product-v15-vn");
    let _load = Load::start(gateway, 20);
    firefox.wait_for(
        ".node[data-node='product-vn'] .node-stats .num",
        Duration::from_secs(15),
    );
    super::start_product_canary(
        &control,
        "ff",
        "product-v15-vn",
        &["--weights", "20,50", "--interval", "30s"],
    );
    let card = ".canary[data-canary='ff']";
    for (action, phase) in [("pause", "paused"), ("resume", "progressing")] {
        let button = format!("{card} button[data-action='{action}']:enabled");
        firefox.wait_for(&button, Duration::from_secs(10));
        firefox.js(
            "document.querySelector(arguments[0]).click(); return true;",
            vec![json!(button)],
        );
        firefox.wait_for(
            &format!("{card}[data-phase='{phase}']"),
            Duration::from_secs(5),
        );
        assert_eq!(super::canary(&control, "ff")["state"]["phase"], phase);
    }
}
