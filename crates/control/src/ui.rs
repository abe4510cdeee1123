//! The web console at `/ui/`: its page, script and style (plain HTML/CSS/JS, embedded in the
//! binary at build time, no framework), and sign-in. The page is one more client of `/v1` and
//! the App Mesh API: it reads and acts through the same routes, with the same role table, as
//! the CLI does.
//!
//! Sign-in trades a token for an `HttpOnly`, `SameSite=Strict` cookie that holds it, so page
//! script never sees the token and other sites' pages never send it. Every request that changes
//! something with that cookie must also carry `X-CSRF-Token`, a value derived from the token
//! that only the signed-in page is told (`auth::guard` checks it). A revoked token stops
//! working at once: the cookie is looked up on every request like a bearer token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use model::wire::ConsoleSession;
use sha2::{Digest, Sha256};

use crate::App;
use crate::auth::Role;
use crate::auth::tokens;
use crate::body::read_json;
use crate::error::ApiError;

/// The cookie that carries a signed-in console's token.
pub const SESSION_COOKIE: &str = "aviary_session";
/// The header a console action carries; see [`csrf_token`].
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console stays signed in without signing in again.
const SESSION_SECONDS: u64 = 12 * 3600;
/// Largest sign-in body: a token is about 90 bytes.
const MAX_SIGN_IN_BYTES: usize = 4096;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The console's CSRF token for a session token: a hash, so the page that shows it can prove it
/// was told it without ever holding the session token, and a page of another site (which can
/// make the browser send the cookie, never read it) cannot compute it. The same on every
/// replica, so a console keeps working when a load balancer switches replicas.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"aviary console csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The session token in a request's `Cookie` header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// Whether a cookie-authenticated request that changes something carries the session's CSRF
/// token. Compared in constant time: it is a secret of the page's.
pub fn csrf_matches(headers: &HeaderMap, session_token: &str) -> bool {
    let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    tokens::constant_time_eq(sent.as_bytes(), csrf_token(session_token).as_bytes())
}

pub async fn root() -> Redirect {
    Redirect::permanent("/ui/")
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The console's files with headers that keep other sites' pages out: no framing, no script
/// but our own, nothing fetched from elsewhere.
fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /ui/session {"token": "..."}`: checks the token and sets the session cookie. Proxy
/// tokens are refused: they are for one mesh's data plane, not for people.
pub async fn sign_in(State(app): State<Arc<App>>, request: Request) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_SIGN_IN_BYTES).await?;
    let SignIn { token } = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("sign-in: {e} (send {{\"token\": \"...\"}})")))?;
    let token = token.trim().to_string();
    let session = session_of(&app, &token).await?;
    let secure = if app.serves_tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{secure}"
    );
    let mut response = session_response(StatusCode::OK, &session);
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie)
            .map_err(|_| ApiError::BadRequest("token: not a valid cookie value".into()))?,
    );
    Ok(response)
}

/// `GET /ui/session`: who the cookie signs in as, with the CSRF token, so a reloaded page
/// carries on; 401 without a valid cookie.
pub async fn current(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = session_cookie(&headers)
        .ok_or_else(|| ApiError::Unauthenticated("not signed in".into()))?;
    let session = session_of(&app, &token).await?;
    Ok(session_response(StatusCode::OK, &session))
}

/// `DELETE /ui/session`: forgets the cookie (the token itself stays valid; revoke it with
/// `aviary token revoke`).
pub async fn sign_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("aviary_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn session_of(app: &App, token: &str) -> Result<ConsoleSession, ApiError> {
    let caller = crate::auth::bearer(app, token).await?;
    if caller.role == Role::Proxy {
        return Err(ApiError::Forbidden(format!(
            "this token ({}) is a proxy token for one mesh's data plane; sign in with a \
             viewer, operator or admin token (aviary token create --role viewer)",
            caller.name
        )));
    }
    Ok(ConsoleSession {
        can_act: matches!(caller.role, Role::Admin | Role::Operator),
        role: caller.role.as_str().to_string(),
        name: caller.name,
        csrf_token: csrf_token(token),
    })
}

fn session_response(status: StatusCode, session: &ConsoleSession) -> Response {
    let mut response = crate::appmesh::json_response(status, session);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
