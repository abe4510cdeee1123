//! Unit tests of the webhook allow-list: which URLs pass which prefixes.

use super::*;

#[track_caller]
fn check(prefixes: &[&str], url: &str, allowed: bool) {
    let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    let policy = WebhookPolicy::new(&prefixes).unwrap();
    let got = policy.check(url);
    assert_eq!(got.is_ok(), allowed, "{prefixes:?} {url}: {got:?}");
    if let Err(reason) = got {
        assert!(reason.contains(url), "{reason}");
        for prefix in &prefixes {
            assert!(reason.contains(prefix.as_str()), "{reason}");
        }
    }
}

#[test]
fn urls_pass_only_prefixes_they_really_are_under() {
    let local = ["http://127.0.0.1:9000/"];
    let hooks = ["http://127.0.0.1:9000/hooks"];
    let cases: &[(&[&str], &str, bool)] = &[
        (&[], "http://anywhere.example/x", true),
        (&local, "http://127.0.0.1:9000/", true),
        (&local, "http://127.0.0.1:9000/check", true),
        (&local, "http://127.0.0.1:9000", true),
        (&local, "http://127.0.0.1:9001/check", false),
        (&local, "http://127.0.0.1:90001/check", false),
        (&local, "https://127.0.0.1:9000/check", false),
        (&local, "http://localhost:9000/check", false),
        // Text that starts with the prefix but goes elsewhere.
        (
            &["http://127.0.0.1:9000"],
            "http://127.0.0.1:9000@evil.example/",
            false,
        ),
        (
            &["http://127.0.0.1"],
            "http://127.0.0.1.evil.example/",
            false,
        ),
        (&hooks, "http://127.0.0.1:9000/hooks", true),
        (&hooks, "http://127.0.0.1:9000/hooks/deploy", true),
        (&hooks, "http://127.0.0.1:9000/hooksx", false),
        (&hooks, "http://127.0.0.1:9000/hooks/../admin", false),
        (&hooks, "http://127.0.0.1:9000/hooks/%2e%2e/admin", false),
        (&hooks, "not a url", false),
        // The default port is the same port.
        (&["http://example.test/"], "http://example.test:80/x", true),
        (&["HTTP://Example.TEST/"], "http://example.test/x", true),
        (
            &["http://a.test/", "http://b.test/"],
            "http://b.test/x",
            true,
        ),
    ];
    for (prefixes, url, allowed) in cases {
        check(prefixes, url, *allowed);
    }
}

#[test]
fn prefixes_must_be_plain_http_urls() {
    for bad in [
        "",
        "127.0.0.1:9000",
        "ftp://127.0.0.1/",
        "http://127.0.0.1/?a=b",
        "http://user@127.0.0.1/",
        "file:///etc/passwd",
    ] {
        let error = WebhookPolicy::new(&[bad.to_string()]).err();
        let error = error.unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(error.to_string().contains("--webhook-allow"), "{error}");
    }
}
