//! The failover policy, method by failure.

use reqwest::Method;

use super::{Failure, moves_on};

#[track_caller]
fn check(method: Method, failure: Failure, expected: bool) {
    assert_eq!(
        moves_on(&method, failure),
        expected,
        "{method} after {failure:?}"
    );
}

#[test]
fn only_requests_that_cannot_have_acted_move_on() {
    let unavailable = Failure::Unavailable {
        service_unavailable: true,
    };
    let plain_503 = Failure::Unavailable {
        service_unavailable: false,
    };
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        check(method.clone(), Failure::NotSent, true);
        check(method.clone(), Failure::MaybeSent, true);
        check(method.clone(), unavailable, true);
        check(method, plain_503, true);
    }
    check(Method::POST, Failure::NotSent, true);
    check(Method::POST, Failure::MaybeSent, false);
    check(Method::POST, unavailable, true);
    check(Method::POST, plain_503, false);
    check(Method::PATCH, Failure::NotSent, true);
    check(Method::PATCH, Failure::MaybeSent, false);
    check(Method::PATCH, unavailable, false);
}
