//! Canary exposure: cookie parsing, A/B rules, the sticky cookie, and what a record exposes.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use model::wire::CanaryRecord;
use rollout::{CanarySpec, Phase, RequestMatch, StepSpec, Sticky};
use serde_json::json;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    map
}

fn rule(source: (&str, &str), test: (&str, &str)) -> RequestMatch {
    serde_json::from_value(json!({source.0: source.1, test.0: test.1})).unwrap()
}

fn exposure(matches: Vec<RequestMatch>, sticky: Option<Sticky>, mirror: Option<u32>) -> Exposure {
    Exposure {
        canary: "c".into(),
        router: "r".into(),
        route: "x".into(),
        canary_node: "b".into(),
        mirror_percent: mirror,
        matches,
        sticky,
    }
}

fn overlay(matches: Vec<RequestMatch>, sticky: Option<Sticky>) -> Overlay {
    let mut problems = Vec::new();
    let overlay = Overlay::compile(&exposure(matches, sticky, None), ["a", "b"], &mut problems)
        .expect("an overlay");
    assert_eq!(problems, Vec::<String>::new());
    overlay
}

#[test]
fn cookies_are_split_trimmed_and_unquoted() {
    let check = |pairs: &[(&str, &str)], want: &[(&str, &str)]| {
        let map = headers(pairs);
        let got: Vec<(&str, &str)> = cookies(&map).collect();
        assert_eq!(got, want, "{pairs:?}");
    };
    check(&[("cookie", "a=b; c=d")], &[("a", "b"), ("c", "d")]);
    check(&[("cookie", "a=b;c=d")], &[("a", "b"), ("c", "d")]);
    check(&[("cookie", "  a = b ;  ")], &[("a", "b")]);
    // HTTP/2 sends one header per cookie.
    check(
        &[("cookie", "a=1"), ("cookie", "b=2")],
        &[("a", "1"), ("b", "2")],
    );
    // Values keep everything after the first '='.
    check(&[("cookie", "t=x=y==")], &[("t", "x=y==")]);
    check(&[("cookie", r#"q="quoted""#)], &[("q", "quoted")]);
    check(&[("cookie", r#"q=""#)], &[("q", "\"")]);
    check(&[("cookie", "e=")], &[("e", "")]);
    // No '=', an empty name, empty pieces: skipped.
    check(&[("cookie", "flag; =v; ;; k=v")], &[("k", "v")]);
    check(&[("cookie", "")], &[]);
    check(&[("x-cookie", "a=b")], &[]);
    // A header that is not visible ASCII is skipped whole; the next one still counts.
    check(&[("cookie", "a=\u{e9}"), ("cookie", "b=2")], &[("b", "2")]);
}

#[test]
fn header_rules_match_names_case_insensitively_and_values_as_told() {
    let check = |rule: RequestMatch, pairs: &[(&str, &str)], want: bool| {
        let overlay = overlay(vec![rule.clone()], None);
        let got = overlay
            .decide(&headers(pairs), &WeightedChoice::new([100, 0]))
            .first;
        assert_eq!(got.is_some(), want, "{rule} against {pairs:?}");
    };
    let exact = rule(("header", "X-Canary"), ("exact", "always"));
    check(exact.clone(), &[("x-canary", "always")], true);
    check(exact.clone(), &[("X-CANARY", "always")], true);
    check(exact.clone(), &[("x-canary", "Always")], false);
    check(exact.clone(), &[("x-canary", "always ")], false);
    check(exact.clone(), &[], false);
    // Any of several values.
    check(exact, &[("x-canary", "no"), ("x-canary", "always")], true);
    check(
        rule(("header", "x-user"), ("prefix", "beta-")),
        &[("x-user", "beta-7")],
        true,
    );
    check(
        rule(("header", "x-user"), ("prefix", "beta-")),
        &[("x-user", "b-7")],
        false,
    );
    check(
        rule(("header", "x-user"), ("suffix", "@corp")),
        &[("x-user", "a@corp")],
        true,
    );
    check(
        rule(("header", "x-user"), ("suffix", "@corp")),
        &[("x-user", "a@corp.x")],
        false,
    );
    // Regexes are anchored at both ends.
    let regex = rule(("header", "x-user"), ("regex", "[0-9]+|admin"));
    check(regex.clone(), &[("x-user", "123")], true);
    check(regex.clone(), &[("x-user", "admin")], true);
    check(regex.clone(), &[("x-user", "a123")], false);
    check(regex, &[("x-user", "administrator")], false);
}

#[test]
fn cookie_rules_read_the_cookie_header() {
    let check = |rule: RequestMatch, cookie: &str, want: bool| {
        let overlay = overlay(vec![rule.clone()], None);
        let got = overlay
            .decide(
                &headers(&[("cookie", cookie)]),
                &WeightedChoice::new([100, 0]),
            )
            .first;
        assert_eq!(got, want.then_some(1), "{rule} against {cookie:?}");
    };
    let exact = rule(("cookie", "canary"), ("exact", "always"));
    check(exact.clone(), "canary=always", true);
    check(exact.clone(), "a=1; canary=always; b=2", true);
    check(exact.clone(), "canary=\"always\"", true);
    check(exact.clone(), "canary=never", false);
    // Cookie names are case-sensitive; a header of that name is not a cookie.
    check(exact.clone(), "Canary=always", false);
    check(exact.clone(), "xcanary=always", false);
    check(exact, "canary", false);
    check(
        rule(("cookie", "v"), ("regex", "2\\.[0-9]+")),
        "v=2.10",
        true,
    );
    check(
        rule(("cookie", "v"), ("regex", "2\\.[0-9]+")),
        "v=12.10",
        false,
    );
}

#[test]
fn rules_that_do_not_compile_are_problems_and_are_left_out() {
    let mut problems = Vec::new();
    let bad = rule(("header", "x-user"), ("regex", "("));
    let good = rule(("header", "x-canary"), ("exact", "yes"));
    let built = Overlay::compile(
        &exposure(vec![bad, good], None, None),
        ["a", "b"],
        &mut problems,
    )
    .expect("the good rule stays");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("canary 'c': match rule header x-user"),
        "{problems:?}"
    );
    let choice = WeightedChoice::new([1, 0]);
    assert_eq!(
        built
            .decide(&headers(&[("x-canary", "yes")]), &choice)
            .first,
        Some(1)
    );
    assert_eq!(
        built.decide(&headers(&[("x-user", "(")]), &choice).first,
        None
    );

    // Nothing left that acts: no overlay at all.
    let mut problems = Vec::new();
    let only_bad = exposure(
        vec![rule(("header", "bad name"), ("exact", "x"))],
        None,
        None,
    );
    assert!(Overlay::compile(&only_bad, ["a", "b"], &mut problems).is_none());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let bad_cookie = Sticky {
        cookie: "a b".into(),
        max_age: Duration::from_secs(60),
    };
    let mut problems = Vec::new();
    assert!(
        Overlay::compile(
            &exposure(vec![], Some(bad_cookie), None),
            ["b"],
            &mut problems
        )
        .is_none()
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn no_overlay_when_the_canary_node_is_not_a_target() {
    let mut problems = Vec::new();
    let e = exposure(vec![], None, Some(10));
    assert!(Overlay::compile(&e, ["a", "c"], &mut problems).is_none());
    let built = Overlay::compile(&e, ["a", "c", "b"], &mut problems).unwrap();
    assert_eq!(built.target, 2);
    assert!(problems.is_empty());
}

#[test]
fn the_sticky_cookie_keeps_a_caller_on_the_canary_while_it_has_weight() {
    let sticky = Sticky {
        cookie: "aviary-canary".into(),
        max_age: Duration::from_secs(3600),
    };
    let built = overlay(vec![], Some(sticky));
    assert_eq!(
        built.set_cookie().unwrap(),
        "aviary-canary=b; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
    );
    let split = WeightedChoice::new([50, 50]);
    let with = headers(&[("cookie", "x=1; aviary-canary=b")]);
    assert_eq!(
        built.decide(&with, &split),
        Decision {
            first: Some(1),
            offer_cookie: false,
            mirror: false
        }
    );
    // The canary back at weight 0: the cookie is ignored, and none is offered.
    let none = built.decide(&with, &WeightedChoice::new([100, 0]));
    assert_eq!((none.first, none.offer_cookie), (None, false));
    // No cookie, or one naming another node: the weighted choice decides and may offer one.
    for cookie in ["x=1", "aviary-canary=a", "aviary-canary=bb"] {
        let decision = built.decide(&headers(&[("cookie", cookie)]), &split);
        assert_eq!(
            (decision.first, decision.offer_cookie),
            (None, true),
            "{cookie}"
        );
    }
    // A sub-second Max-Age would delete the cookie at once.
    let brief = Sticky {
        cookie: "s".into(),
        max_age: Duration::from_millis(10),
    };
    assert!(
        overlay(vec![], Some(brief))
            .set_cookie()
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=1;")
    );
}

#[test]
fn a_rule_match_wins_over_sticky_and_is_never_mirrored() {
    let sticky = Sticky::default();
    let mut problems = Vec::new();
    let both = exposure(
        vec![rule(("header", "x-canary"), ("exact", "yes"))],
        Some(sticky),
        Some(100),
    );
    let built = Overlay::compile(&both, ["a", "b"], &mut problems).unwrap();
    let zero = WeightedChoice::new([100, 0]);
    let matched = built.decide(&headers(&[("x-canary", "yes")]), &zero);
    assert_eq!(
        matched,
        Decision {
            first: Some(1),
            offer_cookie: false,
            mirror: false
        }
    );
    let other = built.decide(&HeaderMap::new(), &zero);
    assert_eq!(
        other,
        Decision {
            first: None,
            offer_cookie: true,
            mirror: true
        }
    );
}

#[test]
fn mirror_draws_follow_the_percentage() {
    let mut problems = Vec::new();
    let built =
        Overlay::compile(&exposure(vec![], None, Some(20)), ["a", "b"], &mut problems).unwrap();
    let choice = WeightedChoice::new([100, 0]);
    let mirrored = (0..10_000)
        .filter(|_| built.decide(&HeaderMap::new(), &choice).mirror)
        .count();
    // 20% of 10,000: 2,000 with a standard deviation of 40.
    assert!((1_800..2_200).contains(&mirrored), "{mirrored}");
}

fn spec() -> CanarySpec {
    serde_json::from_value(json!({
        "mesh": "m", "router": "r", "route": "x", "stableNode": "a", "canaryNode": "b",
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "5m"},
        "mirror": {"percent": 30},
        "match": [{"header": "x-canary", "exact": "yes"}],
        "sticky": {"cookie": "s", "maxAge": "10m"},
    }))
    .unwrap()
}

#[test]
fn a_record_exposes_what_its_step_asks_and_nothing_once_ended() {
    let spec = spec();
    let (mut state, _) = rollout::start(&spec, 0);
    assert_eq!(state.phase, Phase::Progressing, "{:?}", state.reason);
    assert_eq!(state.steps[..2], [StepSpec::Mirror(30), StepSpec::Match]);
    let record = |state: &rollout::CanaryState| CanaryRecord {
        name: "c".into(),
        spec: spec.clone(),
        state: state.clone(),
        acted: 0,
        notes: Vec::new(),
    };
    let mirror = Exposure::of(&record(&state)).unwrap();
    assert_eq!(mirror.mirror_percent, Some(30));
    assert_eq!((mirror.matches.len(), mirror.sticky.as_ref()), (0, None));
    assert_eq!(
        (
            mirror.router.as_str(),
            mirror.route.as_str(),
            mirror.canary_node.as_str()
        ),
        ("r", "x", "b")
    );
    state.step = 1;
    let matching = Exposure::of(&record(&state)).unwrap();
    assert_eq!((matching.mirror_percent, matching.matches.len()), (None, 1));
    assert_eq!(matching.sticky, None, "no sticky cookie at weight 0");
    assert_ne!(mirror, matching);
    state.step = 2;
    state.canary_weight = 50;
    let weighted = Exposure::of(&record(&state)).unwrap();
    assert_eq!(
        weighted.sticky.as_ref().map(|s| s.cookie.as_str()),
        Some("s")
    );
    state.phase = Phase::Aborted;
    assert_eq!(Exposure::of(&record(&state)), None);
}
