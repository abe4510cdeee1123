//! A panicking handler is answered 500 in App Mesh's shape, not with a dropped connection.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

#[tokio::test]
async fn a_panicking_handler_gets_a_500_with_no_details() {
    async fn boom() -> &'static str {
        panic!("secret internals")
    }
    let app = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(super::answer_panics));
    let request = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request("/boom")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["x-amzn-ErrorType"],
        "InternalServerErrorException"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("secret internals"), "{text}");
    let response = app.oneshot(request("/fine")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
