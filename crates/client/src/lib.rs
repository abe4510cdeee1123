//! Typed client of the aviary control plane: the App Mesh REST API (`/v20190125`) addressed by
//! `model::ResourcePath`, and aviary's `/v1` snapshot and watch stream.
//!
//! It owns request building, error decoding (App Mesh's `x-amzn-ErrorType` + `message`), which
//! TLS roots to trust, and the server-sent-events parser. It must not know server code: it
//! speaks only the wire contract.

mod sse;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use model::ResourcePath;
use serde_json::{Value, json};

pub use sse::{WatchEvent, WatchStream};
pub use tls::install_crypto_provider;

/// Idle pooled connections are dropped before the control plane's idle timeout (60 s by default)
/// closes them, so a request is never sent on a connection the server is closing.
const POOL_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `error_type` is App Mesh's (e.g. NotFoundException).
    #[error("{error_type}: {message}")]
    Api {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("cannot reach the control plane at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The TLS session failed: most often the server's certificate is not trusted.
    #[error("no trusted TLS connection to the control plane at {url}: {problem}")]
    Tls { url: String, problem: String },
    /// The CA file given in [`ClientOptions::ca`] cannot be used.
    #[error("cannot use the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("unexpected answer from the control plane: {0}")]
    Protocol(String),
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// How to reach the control plane, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// For `https://` URLs: trust only the CA certificates of this PEM file (as the AWS CLI's
    /// `--ca-bundle` does). `None` trusts the system's roots.
    pub ca: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Sent as `Authorization: Bearer` on every request.
    token: Option<String>,
}

impl Client {
    /// A client of `http://` (or `https://` with a certificate the system trusts).
    ///
    /// # Panics
    ///
    /// As `reqwest::Client::new` does, if the system's TLS roots cannot be set up at all.
    pub fn new(base_url: &str) -> Client {
        Client::with_options(base_url, &ClientOptions::default())
            .expect("without a CA file the only failure is a broken TLS setup of the system")
    }

    /// A client that trusts `options.ca` (if given) for `https://`; fails when that file cannot
    /// be read or holds no certificate.
    pub fn with_options(base_url: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().pool_idle_timeout(POOL_IDLE);
        if let Some(path) = &options.ca {
            builder = builder.tls_certs_only(tls::read_ca(path)?);
        }
        let http = builder.build().map_err(|e| ClientError::Ca {
            path: options
                .ca
                .as_ref()
                .map_or("(system roots)".into(), |p| p.display().to_string()),
            reason: e.to_string(),
        })?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: None,
        })
    }

    /// The same client, authenticating with `token` (none: anonymous).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `Describe*`: the resource's `*Data`, or `Ok(None)` when it does not exist.
    pub async fn describe(&self, path: &ResourcePath) -> Result<Option<Value>, ClientError> {
        match self
            .call(reqwest::Method::GET, &path.url_path(), None)
            .await
        {
            Ok(data) => Ok(Some(data)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `Create*` with `spec` (and optional tags); returns the new `*Data`.
    pub async fn create(
        &self,
        path: &ResourcePath,
        spec: &Value,
        tags: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({ path.kind.name_field(): path.name, "spec": spec });
        if let Some(tags) = tags {
            body["tags"] = tags.clone();
        }
        self.call(reqwest::Method::PUT, &path.collection_path(), Some(&body))
            .await
    }

    /// `Update*` with a whole new spec; returns the updated `*Data`.
    pub async fn update(&self, path: &ResourcePath, spec: &Value) -> Result<Value, ClientError> {
        let body = json!({ "spec": spec });
        self.call(reqwest::Method::PUT, &path.url_path(), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &ResourcePath) -> Result<Value, ClientError> {
        self.call(reqwest::Method::DELETE, &path.url_path(), None)
            .await
    }

    /// `List*` in the scope of `path` (its name is ignored), following every page.
    pub async fn list(&self, path: &ResourcePath) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = path.collection_path();
            if let Some(token) = &token {
                url.push_str(&format!("?nextToken={token}"));
            }
            let out = self.call(reqwest::Method::GET, &url, None).await?;
            if let Some(page) = out[path.kind.plural()].as_array() {
                items.extend(page.iter().cloned());
            }
            match out["nextToken"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// `PUT /v1/meshes/{mesh}/{collection}/{name}` for aviary's own kinds: `collection` is
    /// `workloads`, or `endpoints/{virtualNode}`.
    pub async fn put_object(
        &self,
        mesh: &str,
        collection: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/meshes/{mesh}/{collection}/{name}");
        self.call(reqwest::Method::PUT, &path, Some(body)).await
    }

    /// `POST /v1/meshes/{mesh}/{path}`: create a canary (`canaries`) or command one
    /// (`canaries/{name}/pause`).
    pub async fn post_object(
        &self,
        mesh: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/meshes/{mesh}/{path}");
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// `GET` of one object; `Ok(None)` when there is none.
    pub async fn get_object(
        &self,
        mesh: &str,
        collection: &str,
        name: &str,
    ) -> Result<Option<Value>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/{collection}/{name}");
        match self.call(reqwest::Method::GET, &path, None).await {
            Ok(object) => Ok(Some(object)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn delete_object(
        &self,
        mesh: &str,
        collection: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/meshes/{mesh}/{collection}/{name}", self.base);
        self.send(self.http.delete(url)).await.map(drop)
    }

    /// `GET /v1/meshes/{mesh}/{collection}`: `{"<collection>": [...]}`'s list.
    pub async fn list_objects(
        &self,
        mesh: &str,
        collection: &str,
    ) -> Result<Vec<Value>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/{collection}");
        let mut out = self.call(reqwest::Method::GET, &path, None).await?;
        match out.get_mut(collection).map(Value::take) {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(ClientError::Protocol(format!(
                "answer has no '{collection}' list"
            ))),
        }
    }

    /// `GET /v1/meshes/{mesh}/stats?window=W`: per-node aggregates over the window.
    pub async fn stats(&self, mesh: &str, window: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/meshes/{mesh}/stats?window={window}");
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// `POST /v1/meshes/{mesh}/stats`: a proxy's request counts since its last report.
    pub async fn post_stats(
        &self,
        mesh: &str,
        report: &model::wire::StatsReport,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/meshes/{mesh}/stats", self.base);
        let body =
            serde_json::to_string(report).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await.map(drop)
    }

    /// `/v1/meshes/{mesh}/snapshot`: every resource of the mesh at one store revision.
    pub async fn snapshot(&self, mesh: &str) -> Result<Value, ClientError> {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/meshes/{mesh}/snapshot"),
            None,
        )
        .await
    }

    /// `/v1/meshes/{mesh}/watch`: every change after `from_revision`.
    pub async fn watch(&self, mesh: &str, from_revision: u64) -> Result<WatchStream, ClientError> {
        let url = format!(
            "{}/v1/meshes/{mesh}/watch?fromRevision={from_revision}",
            self.base
        );
        let response = self.send(self.http.get(&url)).await?;
        Ok(WatchStream::new(response))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = self.send(request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| self.unreachable(source))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `POST /v1/tokens`: a new token (its text is in `token`, shown only once).
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        mesh: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({ "name": name, "role": role });
        if let Some(mesh) = mesh {
            body["mesh"] = json!(mesh);
        }
        self.call(reqwest::Method::POST, "/v1/tokens", Some(&body))
            .await
    }

    /// `GET /v1/tokens`: every token's record, without secrets.
    pub async fn list_tokens(&self) -> Result<Vec<Value>, ClientError> {
        let out = self.call(reqwest::Method::GET, "/v1/tokens", None).await?;
        Ok(out["tokens"].as_array().cloned().unwrap_or_default())
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.call(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
            .await
            .map(drop)
    }

    /// Sends, and turns a non-2xx answer into `ClientError::Api`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let error_type = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(ClientError::Api {
            status: status.as_u16(),
            error_type,
            message,
        })
    }

    /// A failed exchange: a TLS problem is named as such, anything else is unreachable.
    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        match tls::tls_problem(&source) {
            Some(problem) => ClientError::Tls {
                url: self.base.clone(),
                problem,
            },
            None => ClientError::Unreachable {
                url: self.base.clone(),
                source,
            },
        }
    }
}
