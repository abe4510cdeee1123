//! Product and customer answer their name and version; `/health` answers, or refuses on demand.

use demo::Service;
use reqwest::StatusCode;
use serde_json::json;

use crate::{config, get, start};

#[tokio::test]
async fn product_and_customer_answer_name_and_version() {
    for (service, version, expected) in [
        (
            Service::Product,
            "1.5",
            r#"{"service":"Product","version":"1.5"}"#,
        ),
        (
            Service::Customer,
            "2.0",
            r#"{"service":"Customer","version":"2.0"}"#,
        ),
    ] {
        let running = start(config(service, version)).await;
        let answer = get(&running.url("/")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.body, expected);
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let running = start(config(Service::Product, "1.0")).await;
    let answer = get(&running.url("/health")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn unhealthy_makes_health_answer_503_but_still_serves() {
    let mut config = config(Service::Customer, "1.0");
    config.unhealthy = true;
    let running = start(config).await;
    let answer = get(&running.url("/health")).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json(), json!({"status": "unhealthy"}));
    assert_eq!(get(&running.url("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let running = start(config(Service::Product, "1.0")).await;
    assert_eq!(
        get(&running.url("/nope")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// `demo::run`, as the binary calls it: serves on the configured address until cancelled, then
/// returns cleanly.
#[tokio::test]
async fn run_serves_until_cancelled() {
    let mut config = config(Service::Product, "1.5");
    config.listen = crate::dead_addr().await;
    let url = format!("http://{}/", config.listen);
    let token = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(demo::run(config, token.clone()));
    let client = crate::client();
    let deadline = tokio::time::Instant::now() + crate::BOUND;
    let answer = loop {
        match client.get(&url).send().await {
            Ok(response) => break response.text().await.unwrap(),
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(!task.is_finished(), "run ended early: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("run never answered: {e}"),
        }
    };
    assert_eq!(answer, r#"{"service":"Product","version":"1.5"}"#);
    token.cancel();
    let result = tokio::time::timeout(crate::BOUND, task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
