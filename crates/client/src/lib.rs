//! Typed client of the aviary control plane: the App Mesh REST API (`/v20190125`) addressed by
//! `model::ResourcePath`, and aviary's `/v1` snapshot and watch stream.
//!
//! It owns request building, error decoding (App Mesh's `x-amzn-ErrorType` + `message`), which
//! TLS roots to trust, the server-sent-events parser, and failover between control-plane
//! replicas: a client holds one or more base URLs, sends each request to the one that answered
//! last, and moves on to the next only when that cannot repeat a write (`failover.rs`); a mesh
//! watch survives a lost stream by resuming on the next URL (`follow.rs`). It must not know
//! server code: it speaks only the wire contract.

mod failover;
mod follow;
mod sse;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use model::ResourcePath;
use serde_json::{Value, json};

pub use failover::Tried;
pub use follow::{MeshWatch, Watched};
use model::wire::{
    ApproveBody, CanaryCommand, CanaryList, CanaryView, CommandBody, CreatePipeline, DeployList,
    DeployRecord, Endpoint, EndpointList, MeshSnapshot, PipelineList, PipelineView, ReplicaFailure,
    RunList, RunRecord, StageLog, StageName, StatsView, Workload, WorkloadList,
};
pub use model::wire::{IdentityKind, IssuedCertificate};
pub use sse::{WatchEvent, WatchStream};
pub use tls::install_crypto_provider;

/// Idle pooled connections are dropped before the control plane's idle timeout (60 s by default)
/// closes them, so a request is never sent on a connection the server is closing.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// A replica that does not accept a connection within this is skipped for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// No byte for this long means the replica is gone: more than two of the watch stream's 15 s
/// keep-alives, so only a dead (or unplugged) replica's stream is cut.
const READ_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `error_type` is App Mesh's (e.g. NotFoundException).
    #[error("{error_type}: {message}")]
    Api {
        status: u16,
        error_type: String,
        message: String,
    },
    /// No answer: no connection, or it broke. The message gives the root cause alone
    /// (`connection refused`), so `error` is not a `source()` that would repeat it.
    #[error(
        "cannot reach the control plane at {url}: {}",
        unreachable_reason(error)
    )]
    Unreachable { url: String, error: reqwest::Error },
    /// The TLS session failed: most often the server's certificate is not trusted.
    #[error("no trusted TLS connection to the control plane at {url}: {problem}")]
    Tls { url: String, problem: String },
    /// The CA file given in [`ClientOptions::ca`] cannot be used.
    #[error("cannot use the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("unexpected answer from the control plane: {0}")]
    Protocol(String),
    /// More than one URL was tried and none answered; each is named with its reason.
    #[error("no control plane replica answered: {}", failover::describe(.0))]
    Replicas(Vec<Tried>),
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

/// A client of one control plane, or of several replicas of one (any of which serves every
/// request). Clones share which URL is current.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Never empty.
    bases: Arc<[String]>,
    /// Index into `bases` of the URL that answered last (modulo its length).
    current: Arc<AtomicUsize>,
    /// Sent as `Authorization: Bearer` on every request.
    token: Option<String>,
}

/// `http://a:7070,http://b:7070/` → both URLs without trailing slashes; blanks are dropped. An
/// empty list stays one empty URL, so that requests fail naming it.
pub fn parse_urls(list: &str) -> Vec<String> {
    let urls: Vec<String> = list
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        vec![String::new()]
    } else {
        urls
    }
}

impl Client {
    /// A client of `http://` (or `https://` with a certificate the system trusts). `base_url` is
    /// one URL or a comma-separated list of replicas' URLs.
    ///
    /// # Panics
    ///
    /// As `reqwest::Client::new` does, if the system's TLS roots cannot be set up at all.
    pub fn new(base_url: &str) -> Client {
        Client::with_options(base_url, &ClientOptions::default())
            .expect("without a CA file the only failure is a broken TLS setup of the system")
    }

    /// A client that trusts `options.ca` (if given) for `https://`; fails when that file cannot
    /// be read or holds no certificate. `base_url` is one URL or a comma-separated list.
    pub fn with_options(base_url: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT);
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
            bases: parse_urls(base_url).into(),
            current: Arc::default(),
            token: None,
        })
    }

    /// The same client, authenticating with `token` (none: anonymous).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// The URL the next request goes to first: the one that answered last.
    pub fn base_url(&self) -> &str {
        &self.bases[self.current_index()]
    }

    /// Every URL, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.bases
    }

    fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.bases.len()
    }

    /// Makes the URL after `index` current, unless another request has moved on already: a
    /// watch whose stream ended does not go straight back to a replica that may be leaving.
    fn leave(&self, index: usize) {
        let next = (index + 1) % self.bases.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// `Describe*`: the resource's `*Data`, or `Ok(None)` when it does not exist.
    pub async fn describe(&self, path: &ResourcePath) -> Result<Option<Value>, ClientError> {
        found(
            self.call(reqwest::Method::GET, &path.url_path(), None)
                .await,
        )
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
        found(self.call(reqwest::Method::GET, &path, None).await)
    }

    pub async fn delete_object(
        &self,
        mesh: &str,
        collection: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/meshes/{mesh}/{collection}/{name}");
        self.send(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
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
    pub async fn stats(&self, mesh: &str, window: &str) -> Result<StatsView, ClientError> {
        let path = format!("/v1/meshes/{mesh}/stats?window={window}");
        self.call_as(reqwest::Method::GET, &path, None).await
    }

    /// `GET /v1/meshes/{mesh}/canaries/{name}` with its status; `Ok(None)` when there is none.
    pub async fn canary(&self, mesh: &str, name: &str) -> Result<Option<CanaryView>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/canaries/{name}");
        found(self.call_as(reqwest::Method::GET, &path, None).await)
    }

    /// `GET /v1/meshes/{mesh}/canaries`: every canary of the mesh with its status.
    pub async fn canaries(&self, mesh: &str) -> Result<Vec<CanaryView>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/canaries");
        let list: CanaryList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.canaries)
    }

    /// `POST /v1/meshes/{mesh}/canaries` with `{"name", "spec"}` (the spec as JSON: the control
    /// plane names every problem of it at once).
    pub async fn create_canary(
        &self,
        mesh: &str,
        name: &str,
        spec: &Value,
    ) -> Result<CanaryView, ClientError> {
        let path = format!("/v1/meshes/{mesh}/canaries");
        let body = json!({ "name": name, "spec": spec });
        self.call_as(reqwest::Method::POST, &path, Some(&body))
            .await
    }

    /// `POST /v1/meshes/{mesh}/canaries/{name}/{command}`, with an abort's reason.
    pub async fn command_canary(
        &self,
        mesh: &str,
        name: &str,
        command: CanaryCommand,
        reason: Option<String>,
    ) -> Result<CanaryView, ClientError> {
        let path = format!("/v1/meshes/{mesh}/canaries/{name}/{}", command.as_str());
        let body = serde_json::to_value(CommandBody { reason })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call_as(reqwest::Method::POST, &path, Some(&body))
            .await
    }

    /// `POST /v1/meshes/{mesh}/deploys` with a `deploy.json`'s fields: the stored deploy.
    pub async fn create_deploy(
        &self,
        mesh: &str,
        file: &Value,
    ) -> Result<DeployRecord, ClientError> {
        let path = format!("/v1/meshes/{mesh}/deploys");
        self.call_as(reqwest::Method::POST, &path, Some(file)).await
    }

    pub async fn deploy(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<Option<DeployRecord>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/deploys/{name}");
        found(self.call_as(reqwest::Method::GET, &path, None).await)
    }

    /// Newest first.
    pub async fn deploys(&self, mesh: &str) -> Result<Vec<DeployRecord>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/deploys");
        let list: DeployList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.deploys)
    }

    /// `POST /v1/meshes/{mesh}/pipelines`: the pipeline and its first run.
    pub async fn create_pipeline(
        &self,
        mesh: &str,
        body: &CreatePipeline,
    ) -> Result<PipelineView, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines");
        let body = serde_json::to_value(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call_as(reqwest::Method::POST, &path, Some(&body))
            .await
    }

    pub async fn pipelines(&self, mesh: &str) -> Result<Vec<PipelineView>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines");
        let list: PipelineList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.pipelines)
    }

    pub async fn pipeline(&self, mesh: &str, name: &str) -> Result<PipelineView, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}");
        self.call_as(reqwest::Method::GET, &path, None).await
    }

    pub async fn delete_pipeline(&self, mesh: &str, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}");
        self.send(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// `POST .../pipelines/{name}/trigger`: a run of the branch's newest commit.
    pub async fn trigger_pipeline(&self, mesh: &str, name: &str) -> Result<RunRecord, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}/trigger");
        self.call_as(
            reqwest::Method::POST,
            &path,
            Some(&Value::Object(Default::default())),
        )
        .await
    }

    /// Every kept run, newest first.
    pub async fn runs(&self, mesh: &str, name: &str) -> Result<Vec<RunRecord>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}/runs");
        let list: RunList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.runs)
    }

    pub async fn run(&self, mesh: &str, name: &str, number: u64) -> Result<RunRecord, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}/runs/{number}");
        self.call_as(reqwest::Method::GET, &path, None).await
    }

    /// Approves a run waiting at its Approval stage, or rejects it with a reason.
    pub async fn approve_run(
        &self,
        mesh: &str,
        name: &str,
        number: u64,
        body: &ApproveBody,
    ) -> Result<RunRecord, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/approve");
        let body = serde_json::to_value(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call_as(reqwest::Method::POST, &path, Some(&body))
            .await
    }

    /// A stage's output (`source`, `build`, `approval`, `deploy`).
    pub async fn run_logs(
        &self,
        mesh: &str,
        name: &str,
        number: u64,
        stage: StageName,
    ) -> Result<StageLog, ClientError> {
        let path = format!("/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/logs?stage={stage}");
        self.call_as(reqwest::Method::GET, &path, None).await
    }

    /// A supervisor's report of a replica that could not start or ended before it was healthy.
    pub async fn report_failure(
        &self,
        mesh: &str,
        workload: &str,
        failure: &ReplicaFailure,
    ) -> Result<(), ClientError> {
        let path = format!(
            "/v1/meshes/{mesh}/workloads/{workload}/failures/{}",
            failure.replica
        );
        let body =
            serde_json::to_value(failure).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send(reqwest::Method::PUT, &path, Some(body.to_string()))
            .await
            .map(drop)
    }

    /// `GET /v1/meshes/{mesh}/endpoints`.
    pub async fn endpoints(&self, mesh: &str) -> Result<Vec<Endpoint>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/endpoints");
        let list: EndpointList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.endpoints)
    }

    /// `GET /v1/meshes/{mesh}/workloads` (`env` values hidden unless the token may see them).
    pub async fn workloads(&self, mesh: &str) -> Result<Vec<Workload>, ClientError> {
        let path = format!("/v1/meshes/{mesh}/workloads");
        let list: WorkloadList = self.call_as(reqwest::Method::GET, &path, None).await?;
        Ok(list.workloads)
    }

    /// `POST /v1/meshes/{mesh}/stats`: a proxy's request counts since its last report.
    pub async fn post_stats(
        &self,
        mesh: &str,
        report: &model::wire::StatsReport,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/meshes/{mesh}/stats");
        let body =
            serde_json::to_string(report).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send(reqwest::Method::POST, &path, Some(body))
            .await
            .map(drop)
    }

    /// `POST /v1/meshes/{mesh}/certificates`: a certificate from the mesh's CA naming the node
    /// or gateway `name` (`spiffe://<mesh>/<kind>/<name>`) for `public_key_pem`, a PEM `PUBLIC
    /// KEY` (SubjectPublicKeyInfo; ECDSA P-256 or P-384, or Ed25519), e.g.
    /// `rcgen::KeyPair::public_key_pem()`. The private key stays with the caller. Needs a
    /// `proxy` token of the mesh (or admin). Renew at [`IssuedCertificate::renew_at`].
    pub async fn issue_certificate(
        &self,
        mesh: &str,
        kind: IdentityKind,
        name: &str,
        public_key_pem: &str,
    ) -> Result<IssuedCertificate, ClientError> {
        let request = model::wire::CertificateRequest {
            kind,
            name: name.to_string(),
            public_key: public_key_pem.to_string(),
        };
        let body =
            serde_json::to_string(&request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let path = format!("/v1/meshes/{mesh}/certificates");
        let response = self.send(reqwest::Method::POST, &path, Some(body)).await?;
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| unreachable(&url, source))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("certificate answer: {e}")))
    }

    /// `GET /v1/meshes/{mesh}/ca`: the PEM certificates that verify the mesh's identities,
    /// for a TLS config's roots. Made on first use, so any mesh that exists has one.
    pub async fn trust_bundle(&self, mesh: &str) -> Result<String, ClientError> {
        let path = format!("/v1/meshes/{mesh}/ca");
        let response = self.send(reqwest::Method::GET, &path, None).await?;
        let url = response.url().to_string();
        response
            .text()
            .await
            .map_err(|source| unreachable(&url, source))
    }

    /// `/v1/meshes/{mesh}/snapshot`: every resource of the mesh at one store revision.
    pub async fn snapshot(&self, mesh: &str) -> Result<MeshSnapshot, ClientError> {
        let path = format!("/v1/meshes/{mesh}/snapshot");
        self.call_as(reqwest::Method::GET, &path, None).await
    }

    /// `/v1/meshes/{mesh}/watch`: every change after `from_revision`.
    pub async fn watch(&self, mesh: &str, from_revision: u64) -> Result<WatchStream, ClientError> {
        let path = format!("/v1/meshes/{mesh}/watch?fromRevision={from_revision}");
        let response = self.send(reqwest::Method::GET, &path, None).await?;
        Ok(WatchStream::new(response))
    }

    /// An answer as a `model::wire` type; one that does not fit names the path.
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let bytes = self.answer(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("{}: {e}", path_only(path))))
    }

    /// An answer as JSON; `null` for an empty one.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let bytes = self.answer(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn answer(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, ClientError> {
        let body = body.map(Value::to_string);
        let response = self.send(method, path, body).await?;
        let url = response.url().to_string();
        response
            .bytes()
            .await
            .map_err(|source| unreachable(&url, source))
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

    /// Sends to the current URL, then to the next ones while the failure allows it
    /// (`failover::moves_on`), each at most once. The URL that answers becomes current. With
    /// one URL tried its error is returned as is; with more, `ClientError::Replicas` names them
    /// all.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<reqwest::Response, ClientError> {
        let first = self.current_index();
        let mut tried = Vec::new();
        for step in 0..self.bases.len() {
            let index = (first + step) % self.bases.len();
            let base = &self.bases[index];
            let error = match self.send_to(base, method.clone(), path, body.clone()).await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) => error,
            };
            let Some(failure) = failover::Failure::of(&error) else {
                // An answer: the replica is fine, and the next one would say the same.
                self.current.store(index, Ordering::Relaxed);
                return Err(error);
            };
            tried.push(Tried {
                url: base.clone(),
                error,
            });
            if !failover::moves_on(&method, failure) {
                break;
            }
        }
        if tried.len() == 1 {
            return Err(tried.remove(0).error);
        }
        Err(ClientError::Replicas(tried))
    }

    /// Sends to `base`, and turns a non-2xx answer into `ClientError::Api`.
    async fn send_to(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|source| unreachable(base, source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let header_type = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str::<Value>(&text).ok();
        // AWS's JSON error shape names the type in the body when no header does.
        let error_type = header_type
            .or_else(|| {
                json.as_ref()
                    .and_then(|v| v["__type"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let message = json
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(ClientError::Api {
            status: status.as_u16(),
            error_type,
            message,
        })
    }
}

/// A GET's answer, with a 404 as `None`.
fn found<T>(answer: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match answer {
        Ok(found) => Ok(Some(found)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// `path` without its query string.
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// A failed exchange with `url`: a TLS problem is named as such, anything else is unreachable.
fn unreachable(url: &str, source: reqwest::Error) -> ClientError {
    match tls::tls_problem(&source) {
        Some(problem) => ClientError::Tls {
            url: url.to_string(),
            problem,
        },
        None => ClientError::Unreachable {
            url: url.to_string(),
            error: source,
        },
    }
}

/// Why a request got no answer, in a few words: the root cause of reqwest's error (whose own
/// message, "error sending request for url (...)", names the URL again and says nothing).
pub(crate) fn unreachable_reason(error: &reqwest::Error) -> String {
    use std::io::ErrorKind;
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut root: &(dyn std::error::Error + 'static) = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    let kind = root.downcast_ref::<std::io::Error>().map(|io| io.kind());
    match kind {
        Some(ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(ErrorKind::ConnectionReset) => "connection reset".into(),
        Some(ErrorKind::ConnectionAborted) => "connection aborted".into(),
        Some(ErrorKind::TimedOut) => "timed out".into(),
        _ => root.to_string(),
    }
}
