//! Fault injection over HTTP: error rate, latency and fail-after hit `/` and never `/health`.

use std::time::Duration;

use demo::{ErrorRate, Service};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::{Answer, client, config, get_with, start};

async fn answers(url: &str, n: usize) -> Vec<Answer> {
    let client = client();
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        answers.push(get_with(&client, url, &[]).await);
    }
    answers
}

#[tokio::test]
async fn error_rate_quarter_fails_a_quarter_of_requests() {
    let mut config = config(Service::Product, "1.5");
    config.faults.error_rate = ErrorRate::new(0.25).unwrap();
    let running = start(config).await;
    let answers = answers(&running.url("/"), 100).await;
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::INTERNAL_SERVER_ERROR)
        .collect();
    assert!((20..=30).contains(&failed.len()), "{} failed", failed.len());
    for answer in &failed {
        assert_eq!(answer.content_type, "application/json");
        let body = answer.json();
        assert_eq!(body["service"], "Product");
        assert_eq!(body["version"], "1.5");
        assert!(
            body["error"].as_str().unwrap().contains("error rate 0.25"),
            "{body}"
        );
    }
    let ok = answers.iter().filter(|a| a.status == StatusCode::OK);
    assert_eq!(ok.count() + failed.len(), 100);
}

#[tokio::test]
async fn latency_delays_answers_but_not_health() {
    let latency = Duration::from_millis(500);
    let mut config = config(Service::Customer, "1.0");
    config.faults.latency = latency;
    let running = start(config).await;
    let client = client();

    let started = Instant::now();
    let answer = get_with(&client, &running.url("/"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(started.elapsed() >= latency, "took {:?}", started.elapsed());

    let started = Instant::now();
    let health = get_with(&client, &running.url("/health"), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(
        started.elapsed() < latency,
        "health took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fail_after_three_fails_the_fourth_request_on() {
    let mut config = config(Service::Product, "1.0");
    config.faults.fail_after = Some(3);
    let running = start(config).await;
    let statuses: Vec<StatusCode> = answers(&running.url("/"), 6)
        .await
        .iter()
        .map(|a| a.status)
        .collect();
    let (ok, fail) = (StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(statuses, [ok, ok, ok, fail, fail, fail]);
    let answer = get_with(&client(), &running.url("/"), &[]).await;
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("after 3 requests")
    );
}

#[tokio::test]
async fn health_is_unaffected_by_fault_injection() {
    let mut config = config(Service::Product, "1.0");
    config.faults.error_rate = ErrorRate::new(1.0).unwrap();
    config.faults.fail_after = Some(0);
    let running = start(config).await;
    for answer in answers(&running.url("/"), 3).await {
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    for answer in answers(&running.url("/health"), 3).await {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json(), json!({"status": "ok"}));
    }
}
