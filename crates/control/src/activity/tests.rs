//! The watchdog's deadlines on tokio's paused clock: a head has `header_read`, an idle spell `idle`, an answer no limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, advance, timeout};

use super::{Activity, Expired, Watched};

const HEAD: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(10);

/// Runs the watchdog for at most `within`; `Some(why)` if it fired, with when.
async fn fires(activity: &Activity, within: Duration) -> Option<(Expired, Duration)> {
    let start = Instant::now();
    let why = timeout(within, activity.watchdog(HEAD, IDLE)).await.ok()?;
    Some((why, start.elapsed()))
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_must_send_its_head_in_time() {
    let activity = Activity::new();
    assert_eq!(
        fires(&activity, IDLE * 2).await,
        Some((Expired::HeaderRead, HEAD))
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_has_no_deadline_and_idleness_starts_when_it_is_sent() {
    let activity = Activity::new();
    let answering = activity.request_started();
    assert_eq!(fires(&activity, IDLE * 10).await, None, "busy for long");
    drop(answering);
    assert_eq!(
        fires(&activity, IDLE * 2).await,
        Some((Expired::Idle, IDLE))
    );
}

#[tokio::test(start_paused = true)]
async fn the_connection_is_idle_only_when_every_answer_is_sent() {
    let activity = Activity::new();
    let first = activity.request_started();
    let second = activity.request_started();
    drop(first);
    assert_eq!(fires(&activity, IDLE * 2).await, None);
    drop(second);
    assert_eq!(
        fires(&activity, IDLE * 2).await,
        Some((Expired::Idle, IDLE))
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_byte_of_the_next_request_starts_the_head_deadline() {
    let activity = Activity::new();
    drop(activity.request_started());
    let (mut client, server) = tokio::io::duplex(64);
    let mut server = Watched::new(server, activity.clone());
    advance(IDLE / 2).await;
    client.write_all(b"G").await.unwrap();
    let mut byte = [0u8; 1];
    server.read_exact(&mut byte).await.unwrap();
    // From the byte on, the head's deadline counts, not what is left of the idle one.
    assert_eq!(
        fires(&activity, IDLE * 2).await,
        Some((Expired::HeaderRead, HEAD))
    );
}

#[tokio::test(start_paused = true)]
async fn bytes_during_a_head_do_not_extend_it() {
    let activity = Activity::new();
    let (mut client, server) = tokio::io::duplex(64);
    let mut server = Watched::new(server, activity.clone());
    let start = Instant::now();
    let watchdog = tokio::spawn(activity.watchdog(HEAD, IDLE));
    // A slowloris: one byte every half second, each well within any per-read timeout.
    let mut byte = [0u8; 1];
    for _ in 0..3 {
        advance(Duration::from_millis(500)).await;
        client.write_all(b"G").await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
    }
    let why = timeout(IDLE, watchdog).await.unwrap().unwrap();
    assert_eq!((why, start.elapsed()), (Expired::HeaderRead, HEAD));
}
