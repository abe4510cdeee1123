//! Cookie parsing and the CSRF check of the console.

use axum::http::header;

use crate::auth::tests::headers;

use super::*;

#[test]
fn the_session_cookie_is_found_among_others() {
    let check = |cookies: &[&str], expected: Option<&str>| {
        let pairs: Vec<(&'static str, &str)> = cookies
            .iter()
            .map(|c| (header::COOKIE.as_str(), *c))
            .collect();
        assert_eq!(
            session_cookie(&headers(&pairs)).as_deref(),
            expected,
            "{cookies:?}"
        );
    };
    check(&["aviary_session=tok"], Some("tok"));
    check(&["a=1; aviary_session=tok; b=2"], Some("tok"));
    check(&["a=1", "aviary_session=tok"], Some("tok"));
    check(&["aviary_session="], None);
    check(&["other_aviary_session=tok"], None);
    check(&[], None);
}

#[test]
fn an_action_needs_the_csrf_token_of_its_own_session() {
    let token = "aviary_0123456789abcdef_x";
    let csrf = csrf_token(token);
    assert_eq!(csrf.len(), 32);
    assert!(
        !csrf.contains("aviary"),
        "the CSRF token reveals no part of the session token"
    );
    assert!(csrf_matches(&headers(&[(CSRF_HEADER, &csrf)]), token));
    assert!(!csrf_matches(&headers(&[]), token), "missing");
    assert!(
        !csrf_matches(&headers(&[(CSRF_HEADER, &csrf[..31])]), token),
        "cut"
    );
    let other = csrf_token("aviary_fedcba9876543210_y");
    assert_ne!(other, csrf);
    assert!(
        !csrf_matches(&headers(&[(CSRF_HEADER, &other)]), token),
        "another session's"
    );
}
