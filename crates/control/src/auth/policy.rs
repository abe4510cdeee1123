//! The one table of who may call what: every route of the control plane, the methods it takes,
//! and the roles it admits. A request that matches no row is refused, so a route added to the
//! router without a row here is unreachable, never open by accident. A test walks every row
//! with every role.

use super::tokens::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication: liveness and Prometheus scraping, which show no resource data.
    Open,
    /// Callers with one of these roles. A mesh-scoped caller (a `proxy` token) only where the
    /// path's `{mesh}` is its mesh.
    Roles(&'static [Role]),
}

/// One row: a method, a path pattern (`{x}` is one segment, `{*x}` one or more), and who may
/// call it. Segments may be empty: the handler names the empty field in its 400, and an empty
/// `{mesh}` is never a proxy token's mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

use Role::{Admin as A, Operator as O, Proxy as P, Viewer as V};

const READERS: Access = Access::Roles(&[A, O, V]);
const READERS_AND_PROXIES: Access = Access::Roles(&[A, O, V, P]);
const OPERATORS: Access = Access::Roles(&[A, O]);
const ADMINS: Access = Access::Roles(&[A]);
const ADMINS_AND_PROXIES: Access = Access::Roles(&[A, P]);
const PROXIES: Access = Access::Roles(&[P]);

const fn rule(method: &'static str, path: &'static str, access: Access) -> Rule {
    Rule {
        method,
        path,
        access,
    }
}

/// First match wins. App Mesh API callers signed with SigV4 are admins (an AWS key is the
/// account's); App Mesh routes may also be changed by operators, as canaries and deploys do.
pub const RULES: &[Rule] = &[
    rule("GET", "/healthz", Access::Open),
    rule("GET", "/metrics", Access::Open),
    // The console's page and files hold no data; signing in checks the token it is given.
    rule("GET", "/ui", Access::Open),
    rule("GET", "/ui/", Access::Open),
    rule("GET", "/ui/app.js", Access::Open),
    rule("GET", "/ui/app.css", Access::Open),
    rule("GET", "/ui/session", Access::Open),
    rule("POST", "/ui/session", Access::Open),
    rule("DELETE", "/ui/session", Access::Open),
    // aviary's own API.
    rule("GET", "/v1/meshes/{mesh}/snapshot", READERS_AND_PROXIES),
    rule("GET", "/v1/meshes/{mesh}/watch", READERS_AND_PROXIES),
    rule("GET", "/v1/meshes/{mesh}/endpoints", READERS_AND_PROXIES),
    rule(
        "PUT",
        "/v1/meshes/{mesh}/endpoints/{node}/{id}",
        ADMINS_AND_PROXIES,
    ),
    rule(
        "DELETE",
        "/v1/meshes/{mesh}/endpoints/{node}/{id}",
        ADMINS_AND_PROXIES,
    ),
    rule("GET", "/v1/meshes/{mesh}/canaries", READERS),
    rule("POST", "/v1/meshes/{mesh}/canaries", OPERATORS),
    rule("GET", "/v1/meshes/{mesh}/canaries/{name}", READERS),
    rule(
        "POST",
        "/v1/meshes/{mesh}/canaries/{name}/{command}",
        OPERATORS,
    ),
    // A deploy runs a new command, as a workload does: only admins start one.
    rule("GET", "/v1/meshes/{mesh}/deploys", READERS),
    rule("POST", "/v1/meshes/{mesh}/deploys", ADMINS),
    rule("GET", "/v1/meshes/{mesh}/deploys/{name}", READERS),
    // A pipeline runs its build command on the leader's host: only admins make one. Starting
    // a run of what admins set up, and approving one, is an operator's call, like a canary's.
    rule("GET", "/v1/meshes/{mesh}/pipelines", READERS),
    rule("POST", "/v1/meshes/{mesh}/pipelines", ADMINS),
    rule("GET", "/v1/meshes/{mesh}/pipelines/{name}", READERS),
    rule("DELETE", "/v1/meshes/{mesh}/pipelines/{name}", ADMINS),
    rule(
        "POST",
        "/v1/meshes/{mesh}/pipelines/{name}/trigger",
        OPERATORS,
    ),
    rule("GET", "/v1/meshes/{mesh}/pipelines/{name}/runs", READERS),
    rule(
        "GET",
        "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}",
        READERS,
    ),
    rule(
        "POST",
        "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/approve",
        OPERATORS,
    ),
    rule(
        "GET",
        "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/logs",
        READERS,
    ),
    // Supervisors report replicas that could not start; a deploy fails on them at once.
    rule(
        "GET",
        "/v1/meshes/{mesh}/workloads/{name}/failures",
        READERS_AND_PROXIES,
    ),
    rule(
        "PUT",
        "/v1/meshes/{mesh}/workloads/{name}/failures/{replica}",
        ADMINS_AND_PROXIES,
    ),
    rule("GET", "/v1/meshes/{mesh}/workloads", READERS_AND_PROXIES),
    rule(
        "GET",
        "/v1/meshes/{mesh}/workloads/{name}",
        READERS_AND_PROXIES,
    ),
    // A workload's command runs as the supervisor's user: only admins say what runs.
    rule("PUT", "/v1/meshes/{mesh}/workloads/{name}", ADMINS),
    rule("DELETE", "/v1/meshes/{mesh}/workloads/{name}", ADMINS),
    // The mesh CA: anyone of the mesh may read its trust bundle; only its proxies (and admins)
    // get identities, since a certificate lets its holder serve as the node.
    rule("GET", "/v1/meshes/{mesh}/ca", READERS_AND_PROXIES),
    rule("POST", "/v1/meshes/{mesh}/certificates", ADMINS_AND_PROXIES),
    rule("GET", "/v1/meshes/{mesh}/stats", READERS),
    // Canaries are judged on these counts: only the mesh's own proxies may report them.
    rule("POST", "/v1/meshes/{mesh}/stats", PROXIES),
    rule("GET", "/v1/meshes/{mesh}/stats/stream", READERS),
    rule("GET", "/v1/meshes/{mesh}/stats/series", READERS),
    // Logs may hold what a workload's env held: readers of people, not proxies.
    rule("GET", "/v1/meshes/{mesh}/workloads/{name}/logs", READERS),
    rule("GET", "/v1/tokens", ADMINS),
    rule("POST", "/v1/tokens", ADMINS),
    rule("DELETE", "/v1/tokens/{id}", ADMINS),
    // The App Mesh API (reads, then route writes, then every other write).
    rule("GET", "/v20190125/{*rest}", READERS),
    rule(
        "PUT",
        "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes",
        OPERATORS,
    ),
    rule(
        "PUT",
        "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes/{route}",
        OPERATORS,
    ),
    rule(
        "DELETE",
        "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes/{route}",
        OPERATORS,
    ),
    rule("PUT", "/v20190125/{*rest}", ADMINS),
    rule("POST", "/v20190125/{*rest}", ADMINS),
    rule("DELETE", "/v20190125/{*rest}", ADMINS),
    rule("PATCH", "/v20190125/{*rest}", ADMINS),
];

/// What matching a request against [`RULES`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched<'a> {
    Rule {
        rule: &'static Rule,
        /// The path's `{mesh}` segment, if the pattern has one.
        mesh: Option<&'a str>,
    },
    /// The path is known, but not with this method.
    WrongMethod,
    None,
}

pub fn find<'a>(method: &str, path: &'a str) -> Matched<'a> {
    let mut path_known = false;
    for rule in RULES {
        if let Some(mesh) = matches(rule.path, path) {
            if rule.method == method {
                return Matched::Rule { rule, mesh };
            }
            path_known = true;
        }
    }
    if path_known {
        Matched::WrongMethod
    } else {
        Matched::None
    }
}

/// `Some(mesh segment)` when `path` fits `pattern`.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    let mut mesh = None;
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(mesh),
            (Some(w), Some(_)) if w.starts_with("{*") => return Some(mesh),
            (Some(w), Some(h)) if w.starts_with('{') => {
                if w == "{mesh}" {
                    mesh = Some(h);
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}
