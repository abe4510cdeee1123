//! Bodies on tokio's paused clock: one that trickles past `BODY_READ_TIMEOUT` is refused with
//! 408 and a close; one that arrives in time is read whole.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures_util::StreamExt;

use super::{BODY_READ_TIMEOUT, read_bounded};
use crate::error::ApiError;

/// A body of `chunks` pieces of `b"x"`, each `gap` after the last.
fn trickle(chunks: usize, gap: std::time::Duration) -> Body {
    let stream = futures_util::stream::iter(0..chunks).then(move |_| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
    });
    Body::from_stream(stream)
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_past_the_timeout_is_refused_and_the_connection_closed() {
    let slow = trickle(40, std::time::Duration::from_secs(1));
    let err = read_bounded(&HeaderMap::new(), slow, 1024)
        .await
        .expect_err("40 s for 40 bytes is too slow");
    assert!(
        matches!(err, ApiError::BodyTimeout { seconds } if seconds == BODY_READ_TIMEOUT.as_secs())
    );
    let response = err.into_response();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()["connection"], "close");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_arrives_in_time_is_read_whole() {
    let steady = trickle(20, std::time::Duration::from_secs(1));
    let bytes = read_bounded(&HeaderMap::new(), steady, 1024).await.unwrap();
    assert_eq!(bytes.len(), 20);
}
