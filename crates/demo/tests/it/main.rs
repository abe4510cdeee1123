//! Integration tests of the demo services' public surface: servers run in-process through
//! `demo::Server` and as the real `aviary-demo` binary, on 127.0.0.1:0, driven over real HTTP.
//! Shared helpers live here; each module is one area.

mod binary;
mod faults;
mod forward_proxy;
mod order;
mod services;
mod tidy;

use std::net::SocketAddr;
use std::time::Duration;

use demo::{Config, Server, Service};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bounds every wait in these tests.
pub const BOUND: Duration = Duration::from_secs(10);

/// A demo service serving in this process until dropped.
pub struct Running {
    pub addr: SocketAddr,
    token: CancellationToken,
    task: JoinHandle<Result<(), demo::DemoError>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
        self.task.abort();
    }
}

/// A healthy service with no faults on an ephemeral port.
pub fn config(service: Service, version: &str) -> Config {
    let mut config = Config::new(service, version);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
}

pub async fn start(config: Config) -> Running {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let token = CancellationToken::new();
    let task = tokio::spawn(server.serve(token.clone()));
    Running { addr, token, task }
}

/// A client that never uses a proxy from the environment and never waits longer than `BOUND`.
pub fn client() -> reqwest::Client {
    demo::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(BOUND)
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Every line parsed as JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

pub async fn get(url: &str) -> Answer {
    get_with(&client(), url, &[]).await
}

pub async fn get_with(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

/// An address nothing listens on: bound, then released.
pub async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
