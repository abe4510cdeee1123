//! Who is calling, and may they: every request passes [`guard`] before any handler. It refuses
//! what a browser page could send on its own (a foreign `Host`, a write that is not JSON),
//! authenticates the caller (SigV4 on the App Mesh API, bearer tokens everywhere), and checks
//! the caller's role against the one table in `policy`. It also owns the secrets a first start
//! writes (`admin.token`, `credentials`). Handlers never decide who may call them; they may
//! read the [`Caller`] to decide what to show (a workload's `env`).

pub mod policy;
pub mod sigv4;
mod sigv4_keys;
pub mod tokens;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::error::ApiError;
use policy::{Access, Matched};
pub use tokens::Role;

/// The file of the bootstrap admin token in the secrets directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The AWS shared-credentials file with the App Mesh API's keys.
pub const CREDENTIALS_FILE: &str = "credentials";

/// How the control plane authenticates.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `false` only with `--no-auth`, which is refused on a non-loopback listener.
    pub enabled: bool,
    /// Where `admin.token` and `credentials` are read, or written on first start. `None`
    /// keeps a generated admin token in memory only (in-process tests).
    pub secrets_dir: Option<PathBuf>,
    /// Host names (besides IP literals and `localhost`) requests may address us by.
    pub allowed_hosts: Vec<String>,
    /// This replica's name among several on one store: its bootstrap token is registered as
    /// `admin.token@<replica>`, so replicas with their own secrets directories do not retire
    /// each other's. `None`: the only control plane on its store.
    pub replica: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            secrets_dir: None,
            allowed_hosts: Vec::new(),
            replica: None,
        }
    }
}

/// The authenticated caller of a request, in its extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The one mesh a `proxy` token may touch.
    pub mesh: Option<String>,
    /// Token name, or `sigv4:<access key>`, for logs.
    pub name: String,
}

impl Caller {
    pub fn admin(name: &str) -> Caller {
        Caller {
            role: Role::Admin,
            mesh: None,
            name: name.to_string(),
        }
    }
}

/// What authentication holds at run time.
pub struct Auth {
    pub config: AuthConfig,
    pub keys: sigv4::Keys,
    /// The bootstrap admin token, for in-process callers (`aviary up`, tests).
    pub admin_token: String,
}

impl Auth {
    /// Reads the secrets directory, writing what is missing (mode 0600), and registers the
    /// bootstrap admin token in the store.
    pub fn load(config: AuthConfig, store: &Arc<dyn store::Store>) -> Result<Auth, SecretsError> {
        let (admin_token, keys) = match &config.secrets_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| SecretsError::io(dir, e))?;
                let token = read_or_create(&dir.join(ADMIN_TOKEN_FILE), || {
                    format!("{}\n", tokens::generate())
                })?;
                let token = token.trim().to_string();
                let credentials_path = dir.join(CREDENTIALS_FILE);
                let text = read_or_create(&credentials_path, sigv4::Keys::generate_file)?;
                let keys = sigv4::Keys::parse(&text).map_err(|problem| SecretsError::Invalid {
                    path: credentials_path,
                    problem,
                })?;
                (token, keys)
            }
            None => (tokens::generate(), sigv4::Keys::default()),
        };
        if tokens::id_of(&admin_token).is_none() {
            return Err(SecretsError::Invalid {
                path: config
                    .secrets_dir
                    .clone()
                    .unwrap_or_default()
                    .join(ADMIN_TOKEN_FILE),
                problem: "not an aviary token (aviary_<16 hex>_<64 hex>)".into(),
            });
        }
        let name = match &config.replica {
            Some(replica) => format!("{ADMIN_TOKEN_FILE}@{replica}"),
            None => ADMIN_TOKEN_FILE.to_string(),
        };
        tokens::register(store, &admin_token, &name, Role::Admin)
            .map_err(|e| SecretsError::Store(e.to_string()))?;
        sigv4_keys::register(store, &keys).map_err(|e| SecretsError::Store(e.to_string()))?;
        Ok(Auth {
            config,
            keys,
            admin_token,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("cannot store the admin token: {0}")]
    Store(String),
}

impl SecretsError {
    fn io(path: &Path, source: std::io::Error) -> SecretsError {
        SecretsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The file's text, or `make()` written to a new file readable by its owner only.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, SecretsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(SecretsError::io(path, e));
        }
        Err(_) => {}
    }
    let text = make();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SecretsError::io(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| SecretsError::io(path, e))?;
    Ok(text)
}

/// The middleware in front of every route.
pub async fn guard(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    match admit(&app, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn admit(app: &Arc<App>, request: &mut Request) -> Result<(), ApiError> {
    check_host(request.headers(), &app.auth.config.allowed_hosts)?;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let (rule, mesh) = match policy::find(method.as_str(), &path) {
        Matched::Rule { rule, mesh } => (rule, mesh.map(str::to_string)),
        Matched::WrongMethod => {
            return Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path,
            });
        }
        Matched::None => return Err(ApiError::NotFound(format!("no API at path {path}"))),
    };
    let Access::Roles(roles) = rule.access else {
        return check_content_type(&method, request.headers());
    };
    if !app.auth.config.enabled {
        // --no-auth: every caller may do everything (loopback only, checked at bind).
        request.extensions_mut().insert(Caller::admin("--no-auth"));
        return check_content_type(&method, request.headers());
    }
    let caller = authenticate(app, request).await?;
    check_content_type(&method, request.headers())?;
    if !roles.contains(&caller.role) {
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::Forbidden(format!(
            "{} {path} needs the role {}; this token ({}) has {}",
            method,
            allowed.join(" or "),
            caller.name,
            caller.role.as_str()
        )));
    }
    if let Some(scope) = &caller.mesh
        && mesh.as_deref() != Some(scope.as_str())
    {
        return Err(ApiError::Forbidden(format!(
            "this token ({}) is valid for mesh '{scope}' only",
            caller.name
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(())
}

async fn authenticate(app: &Arc<App>, request: &mut Request) -> Result<Caller, ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return bearer(app, token.trim()).await;
    }
    // The console: its cookie stands for the token, and a change needs the page's CSRF token
    // too, since a browser attaches the cookie to whatever its pages send here.
    if let Some(token) = crate::ui::session_cookie(request.headers()) {
        let caller = bearer(app, &token).await?;
        let reads = matches!(*request.method(), Method::GET | Method::HEAD);
        if !reads && !crate::ui::csrf_matches(request.headers(), &token) {
            return Err(ApiError::Forbidden(format!(
                "{} {}: a console action must carry its {} header (sign in again if the page \
                 lost it)",
                request.method(),
                request.uri().path(),
                crate::ui::CSRF_HEADER
            )));
        }
        return Ok(caller);
    }
    let app_mesh = request.uri().path().starts_with(crate::appmesh::PREFIX);
    if app_mesh {
        return signed(app, request).await;
    }
    Err(ApiError::Unauthenticated(
        "this API needs `Authorization: Bearer <token>` (aviary token create; the admin \
         token is in the data directory's admin.token), or a console sign-in at /ui/"
            .into(),
    ))
}

/// The caller a token stands for (a bearer header's, or the console's cookie's).
pub(crate) async fn bearer(app: &App, token: &str) -> Result<Caller, ApiError> {
    let store = app.resources.store().clone();
    let presented = token.to_string();
    let record = crate::resources::blocking(move || tokens::lookup(&store, &presented)).await??;
    let record = record.ok_or_else(|| {
        ApiError::Unauthenticated("the bearer token is unknown or revoked".into())
    })?;
    Ok(Caller {
        role: record.role,
        mesh: record.mesh,
        name: record.name,
    })
}

/// SigV4 needs the body's hash, so the body is read here (bounded) and put back. The check runs
/// off the async threads: another replica's key is a store read, as a bearer token's record is.
async fn signed(app: &Arc<App>, request: &mut Request) -> Result<Caller, ApiError> {
    let body = std::mem::replace(request.body_mut(), Body::empty());
    let bytes =
        crate::body::read_bounded(request.headers(), body, crate::body::MAX_BODY_BYTES).await?;
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();
    let (app, body) = (Arc::clone(app), bytes.clone());
    let outcome = crate::resources::blocking(move || {
        let signed = sigv4::Signed {
            method: method.as_str(),
            path_and_query: &path_and_query,
            headers: &headers,
            body: &body,
        };
        let store = app.resources.store();
        sigv4::verify(
            &signed,
            |id| sigv4_keys::secret(&app.auth.keys, store, id),
            SystemTime::now(),
        )
    })
    .await?;
    *request.body_mut() = Body::from(bytes);
    match outcome {
        Ok(access_key) => Ok(Caller::admin(&format!("sigv4:{access_key}"))),
        Err(err) => Err(ApiError::Signature(err)),
    }
}

/// DNS rebinding gives a page a name of the attacker's that resolves to 127.0.0.1; it cannot
/// give it an IP literal or `localhost`. So those, and the names the operator configured, pass.
fn check_host(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::Forbidden("the request has no Host header".into()));
    };
    let name = host_name(host);
    let ok = name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "Host '{host}' is not a name of this control plane (a DNS-rebinding page?); \
             add it with --allowed-host"
        )))
    }
}

/// `host[:port]` or `[v6]:port` → the host part, without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// A page can POST `text/plain` or a form anywhere without a preflight; it cannot send JSON.
/// So every write must say it is JSON (App Mesh's SDKs and aviary's clients do). DELETE is
/// exempt: a page cannot send one across origins without a preflight, which we never allow.
fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content-type: a {method} must send application/json, not '{content_type}'"
        )))
    }
}

#[cfg(test)]
pub(crate) mod tests;
