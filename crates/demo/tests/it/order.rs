//! Order calls product and customer in parallel, directly or through a forward proxy by virtual
//! service name, and composes three JSON lines; a failed backend gives its error and a 502.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode as AxumStatus;
use axum::routing::get as route_get;
use demo::{Config, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::forward_proxy::ForwardProxy;
use crate::{Running, client, config, dead_addr, get, get_with, start};

const PRODUCT_NAME: &str = "product.demomesh.local:8080";
const CUSTOMER_NAME: &str = "customer.demomesh.local:8080";

fn order_calling(product: &str, customer: &str) -> Config {
    let mut config = config(Service::Order, "1.0");
    config.backends.product = product.parse().unwrap();
    config.backends.customer = customer.parse().unwrap();
    config
}

async fn backends() -> (Running, Running) {
    (
        start(config(Service::Product, "1.5")).await,
        start(config(Service::Customer, "2.0")).await,
    )
}

/// Serves `router` on 127.0.0.1:0 until the handle is aborted.
async fn serve(router: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, task)
}

fn all_ok() -> Vec<Value> {
    vec![
        json!({"service": "Order", "version": "1.0"}),
        json!({"service": "Product", "version": "1.5"}),
        json!({"service": "Customer", "version": "2.0"}),
    ]
}

/// The error of a failed backend's line, checking the line's shape.
fn error_of(line: &Value, service: &str) -> String {
    let object = line
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    assert_eq!(object.len(), 2, "{line}");
    assert_eq!(object["service"], service, "{line}");
    object["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn order_composes_three_lines_from_explicit_urls() {
    let (product, customer) = backends().await;
    let order = start(order_calling(&product.url("/"), &customer.url("/"))).await;
    let answer = get(&order.url("/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.content_type, "application/x-ndjson");
    assert!(answer.body.ends_with('\n'), "{:?}", answer.body);
    assert_eq!(answer.lines(), all_ok());
    assert_eq!(
        answer.body.lines().next().unwrap(),
        r#"{"service":"Order","version":"1.0"}"#
    );
}

#[tokio::test]
async fn order_reaches_backends_by_name_through_the_proxy_and_passes_trace_headers() {
    let (product, customer) = backends().await;
    let proxy =
        ForwardProxy::start(&[(PRODUCT_NAME, product.addr), (CUSTOMER_NAME, customer.addr)]).await;
    let mut config = config(Service::Order, "1.0");
    config.backends.http_proxy = Some(proxy.url());
    let order = start(config).await;

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let amzn = "Root=1-5759e988-bd862e3fe1be46a994272793";
    let headers = [("traceparent", traceparent), ("x-amzn-trace-id", amzn)];
    let answer = get_with(&client(), &order.url("/"), &headers).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.lines(), all_ok());

    let mut seen = proxy.seen();
    seen.sort_by(|a, b| a.target.cmp(&b.target));
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "http://customer.demomesh.local:8080/",
            "http://product.demomesh.local:8080/"
        ]
    );
    for request in &seen {
        assert_eq!(request.headers["traceparent"], traceparent, "{request:?}");
        assert_eq!(request.headers["x-amzn-trace-id"], amzn, "{request:?}");
    }
}

#[tokio::test]
async fn product_down_gives_502_and_its_line_names_the_error() {
    let (_, customer) = backends().await;
    let dead = format!("http://{}/", dead_addr().await);
    let order = start(order_calling(&dead, &customer.url("/"))).await;
    let answer = get(&order.url("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let lines = answer.lines();
    assert_eq!(lines.len(), 3, "{}", answer.body);
    assert_eq!(lines[0], all_ok()[0]);
    let error = error_of(&lines[1], "Product");
    assert!(error.contains(&dead), "{error}");
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert_eq!(lines[2], all_ok()[2]);
}

#[tokio::test]
async fn no_endpoint_behind_the_proxy_is_reported_with_the_proxys_words() {
    let (_, customer) = backends().await;
    let proxy = ForwardProxy::start(&[(CUSTOMER_NAME, customer.addr)]).await;
    let mut config = config(Service::Order, "1.0");
    config.backends.http_proxy = Some(proxy.url());
    let order = start(config).await;
    let answer = get(&order.url("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let lines = answer.lines();
    assert_eq!(
        error_of(&lines[1], "Product"),
        "503 Service Unavailable: no healthy endpoint for product.demomesh.local:8080"
    );
    assert_eq!(lines[2], all_ok()[2]);
}

#[tokio::test]
async fn a_slow_backend_times_out_within_the_backend_timeout() {
    let mut slow = config(Service::Product, "1.5");
    slow.faults.latency = Duration::from_secs(5);
    let product = start(slow).await;
    let customer = start(config(Service::Customer, "2.0")).await;
    let mut config = order_calling(&product.url("/"), &customer.url("/"));
    config.backends.timeout = Duration::from_millis(200);
    let order = start(config).await;
    let started = Instant::now();
    let answer = get(&order.url("/")).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let error = error_of(&answer.lines()[1], "Product");
    assert!(error.starts_with("timed out after 200ms"), "{error}");
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

#[tokio::test]
async fn non_2xx_and_non_json_answers_are_failures() {
    let (text_addr, text_task) =
        serve(Router::new().route("/", route_get(|| async { "hello" }))).await;
    let (product, _) = backends().await;
    let order = start(order_calling(
        &product.url("/missing"),
        &format!("http://{text_addr}/"),
    ))
    .await;
    let answer = get(&order.url("/")).await;
    text_task.abort();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    let lines = answer.lines();
    assert_eq!(lines.len(), 3, "{}", answer.body);
    let product_error = error_of(&lines[1], "Product");
    assert!(
        product_error.starts_with("404 Not Found"),
        "{product_error}"
    );
    let customer_error = error_of(&lines[2], "Customer");
    assert!(customer_error.contains("not JSON"), "{customer_error}");
    assert!(customer_error.ends_with("hello"), "{customer_error}");
}

/// Product and customer each answer only once both requests have arrived: serial calls would
/// leave the first one waiting alone, and it gives up with a 500.
#[tokio::test]
async fn order_calls_product_and_customer_in_parallel() {
    let barrier = Arc::new(Barrier::new(2));
    let meet = |service: &'static str| {
        let barrier = barrier.clone();
        route_get(move || async move {
            match tokio::time::timeout(Duration::from_secs(2), barrier.wait()).await {
                Ok(_) => (
                    AxumStatus::OK,
                    format!(r#"{{"service":"{service}","version":"9"}}"#),
                ),
                Err(_) => (AxumStatus::INTERNAL_SERVER_ERROR, "called alone".to_owned()),
            }
        })
    };
    let router = Router::new()
        .route("/product", meet("Product"))
        .route("/customer", meet("Customer"));
    let (addr, task) = serve(router).await;
    let mut config = order_calling(
        &format!("http://{addr}/product"),
        &format!("http://{addr}/customer"),
    );
    config.backends.timeout = Duration::from_secs(5);
    let order = start(config).await;
    let answer = get(&order.url("/")).await;
    task.abort();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.lines()[1],
        json!({"service": "Product", "version": "9"})
    );
    assert_eq!(
        answer.lines()[2],
        json!({"service": "Customer", "version": "9"})
    );
}

#[tokio::test]
async fn orders_own_fault_answers_500_without_calling_the_backends() {
    let (product, customer) = backends().await;
    let proxy =
        ForwardProxy::start(&[(PRODUCT_NAME, product.addr), (CUSTOMER_NAME, customer.addr)]).await;
    let mut config = config(Service::Order, "1.0");
    config.backends.http_proxy = Some(proxy.url());
    config.faults.fail_after = Some(0);
    let order = start(config).await;
    let answer = get(&order.url("/")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let lines = answer.lines();
    assert_eq!(lines.len(), 1, "{}", answer.body);
    assert_eq!(lines[0]["service"], "Order");
    assert_eq!(lines[0]["version"], "1.0");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("after 0 requests")
    );
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}
