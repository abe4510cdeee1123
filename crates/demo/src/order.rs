//! Order's answer: product and customer called in parallel through the mesh, composed into three
//! JSON lines in a fixed order.

use std::error::Error as _;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, StatusCode};
use reqwest::{NoProxy, Proxy, Url};
use serde_json::Value;

use crate::config::{Backends, Service};
use crate::error::DemoError;
use crate::server::failure_line;

/// Request headers order passes on to its backend calls, so a trace spans the whole walk.
const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "x-amzn-trace-id"];

/// How much of a failed backend's body goes into the error line.
const ERROR_BODY_CHARS: usize = 200;

pub(crate) struct Order {
    client: reqwest::Client,
    product: Url,
    customer: Url,
    timeout: Duration,
}

impl Order {
    pub(crate) fn new(backends: &Backends) -> Result<Order, DemoError> {
        // `no_proxy()` first: the library never picks a proxy up from the process environment,
        // only from its config, so tests running side by side cannot disturb each other.
        let mut builder = reqwest::Client::builder().no_proxy();
        install_crypto_provider();
        if let Some(url) = &backends.http_proxy {
            let proxy = Proxy::http(url.clone())
                .map_err(DemoError::Client)?
                .no_proxy(backends.no_proxy.as_deref().and_then(NoProxy::from_string));
            builder = builder.proxy(proxy);
        }
        Ok(Order {
            client: builder.build().map_err(DemoError::Client)?,
            product: backends.product.clone(),
            customer: backends.customer.clone(),
            timeout: backends.timeout,
        })
    }

    /// Order's own line first, then product's, then customer's; 502 if either backend failed.
    pub(crate) async fn answer(
        &self,
        own_line: &str,
        incoming: &HeaderMap,
    ) -> (StatusCode, String) {
        let trace = trace_headers(incoming);
        let (product, customer) = tokio::join!(
            self.call(Service::Product, &self.product, &trace),
            self.call(Service::Customer, &self.customer, &trace),
        );
        let status = if product.is_ok() && customer.is_ok() {
            StatusCode::OK
        } else {
            StatusCode::BAD_GATEWAY
        };
        let mut body = String::new();
        for line in [Ok(own_line.to_owned()), product, customer] {
            body.push_str(&line.unwrap_or_else(|line| line));
            body.push('\n');
        }
        (status, body)
    }

    /// The backend's answer as one compact JSON line, or the error line that replaces it.
    async fn call(&self, service: Service, url: &Url, trace: &HeaderMap) -> Result<String, String> {
        self.fetch(url, trace).await.map_err(|error| {
            tracing::warn!(service = service.id(), %url, %error, "backend call failed");
            failure_line(service, None, &error)
        })
    }

    async fn fetch(&self, url: &Url, trace: &HeaderMap) -> Result<String, String> {
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                format!("timed out after {:?} calling {url}", self.timeout)
            } else {
                chain(&e)
            }
        };
        let response = self
            .client
            .get(url.clone())
            .headers(trace.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        let body = response.text().await.map_err(describe)?;
        if !status.is_success() {
            let excerpt = excerpt(&body);
            return Err(if excerpt.is_empty() {
                status.to_string()
            } else {
                format!("{status}: {excerpt}")
            });
        }
        match serde_json::from_str::<Value>(&body) {
            Ok(value) => Ok(value.to_string()),
            Err(e) => Err(format!(
                "{status} but the body is not JSON ({e}): {}",
                excerpt(&body)
            )),
        }
    }
}

fn trace_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut trace = HeaderMap::new();
    for name in TRACE_HEADERS {
        for value in incoming.get_all(name) {
            trace.append(HeaderName::from_static(name), value.clone());
        }
    }
    trace
}

/// reqwest's own message hides the cause ("error sending request for url"); the chain names it
/// ("... tcp connect error: Connection refused").
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first line of a body, bounded, for an error message.
fn excerpt(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or_default();
    let mut excerpt: String = line.chars().take(ERROR_BODY_CHARS).collect();
    if excerpt.len() < line.len() {
        excerpt.push('…');
    }
    excerpt
}

/// reqwest is built without a TLS crypto provider of its own (the workspace keeps aws-lc-rs
/// out) and panics building any client, plain-http ones too, unless one is installed: ring's.
/// Idempotent; an error only says one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
