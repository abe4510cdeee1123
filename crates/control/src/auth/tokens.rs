//! Bearer tokens of `/v1`: their text, their roles, and their records, kept hashed in the store.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{Op, Store, Txn};

use crate::error::ApiError;

/// Every token starts with this, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "aviary_";
/// Where token records live in the store; outside `meshes/`, so no snapshot or watch shows them.
const KEY_PREFIX: &str = "auth/tokens/";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
const MAX_NAME: usize = 64;

/// What a caller may do; `policy::RULES` says which roles each route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including what runs commands (workloads) and token management.
    Admin,
    /// Routes, canaries and their commands, deploys; reads. No workloads.
    Operator,
    /// A proxy or supervisor of one mesh: snapshot, watch, stats push, endpoint registration.
    Proxy,
    /// Reads, nothing else.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Proxy, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Proxy => "proxy",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Workload `env` may hold passwords: only admins and the supervisors that run them see it.
    pub fn sees_secrets(self) -> bool {
        matches!(self, Role::Admin | Role::Proxy)
    }
}

/// A stored token: everything but the secret, of which only the SHA-256 is kept. Tokens are
/// 256-bit random strings, so a fast hash is enough: there is nothing to brute-force.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The one mesh a `proxy` token is valid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    pub created_at: f64,
}

impl TokenRecord {
    /// The record as `/v1/tokens` shows it: without the hash.
    pub fn public(&self) -> TokenRecord {
        TokenRecord {
            sha256: String::new(),
            ..self.clone()
        }
    }
}

/// A new token: its text, shown once, and its record.
pub struct Issued {
    pub token: String,
    pub record: TokenRecord,
}

/// A fresh `aviary_<id>_<secret>` with a 256-bit secret.
pub fn generate() -> String {
    format!(
        "{TOKEN_PREFIX}{}_{}",
        random_hex(ID_HEX),
        random_hex(SECRET_HEX)
    )
}

/// `len` uniformly random hex digits from the OS's random source, through uuid v4: of its 32
/// digits, the version digit (12) is fixed and the variant digit (16) half fixed, so the other
/// 30 are kept, 4 random bits each.
pub fn random_hex(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        let digits = uuid::Uuid::new_v4().simple().to_string();
        out.extend(
            digits
                .char_indices()
                .filter(|(i, _)| *i != 12 && *i != 16)
                .map(|(_, c)| c),
        );
    }
    out.truncate(len);
    out
}

/// The id part of a well-formed token.
pub fn id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some(id)
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares without an early exit, so timing tells nothing about how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks of `POST /v1/tokens`; every problem at once.
pub fn validate_request(name: &str, role: Role, mesh: Option<&str>) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if name.is_empty() || name.len() > MAX_NAME {
        problems.push(format!("name: must be 1 to {MAX_NAME} characters"));
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        problems.push(format!(
            "name: '{name}' may hold only letters, digits, '.', '_' and '-'"
        ));
    }
    match (role, mesh) {
        (Role::Proxy, None) => problems.push("mesh: a proxy token needs the mesh it serves".into()),
        (Role::Proxy, Some("")) => problems.push("mesh: must not be empty".into()),
        (Role::Proxy, Some(_)) | (_, None) => {}
        (other, Some(_)) => problems.push(format!(
            "mesh: only proxy tokens are scoped to a mesh; a {} token is valid for all",
            other.as_str()
        )),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(problems.join("; ")))
    }
}

/// Stores the record of `token` (new or given, as the bootstrap admin token in a file is).
pub fn store_record(
    store: &Arc<dyn Store>,
    token: &str,
    name: &str,
    role: Role,
    mesh: Option<String>,
) -> Result<Issued, ApiError> {
    let id = id_of(token)
        .ok_or_else(|| ApiError::BadRequest("token: not an aviary token".into()))?
        .to_string();
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        role,
        mesh,
        sha256: sha256_hex(token.as_bytes()),
        created_at: crate::resources::now_seconds(),
    };
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    store.txn(Txn::default().then(Op::Put(format!("{KEY_PREFIX}{id}"), value)))?;
    Ok(Issued {
        token: token.to_string(),
        record,
    })
}

/// What issuing a token does when one of the same name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameName {
    /// `POST /v1/tokens`: a caller naming an existing token gets a conflict.
    Refuse,
    /// `aviary up` at each start: the old token of its proxies is revoked.
    Replace,
}

/// A new token after every check of `POST /v1/tokens`: the request's, then the name's.
pub fn issue(
    store: &Arc<dyn Store>,
    name: &str,
    role: Role,
    mesh: Option<&str>,
    same_name: SameName,
) -> Result<Issued, ApiError> {
    validate_request(name, role, mesh)?;
    for old in list(store)?.iter().filter(|t| t.name == name) {
        match same_name {
            SameName::Refuse => {
                return Err(ApiError::Conflict(format!(
                    "name: a token named '{name}' exists; revoke it first"
                )));
            }
            SameName::Replace => {
                revoke(store, &old.id)?;
            }
        }
    }
    store_record(store, &generate(), name, role, mesh.map(str::to_string))
}

/// Registers `token` (the bootstrap admin token of `admin.token`) unless its record is there
/// already, so an ordinary restart writes nothing. Other tokens of that name are revoked: a new
/// file (the old one deleted) retires the token it held.
pub fn register(
    store: &Arc<dyn Store>,
    token: &str,
    name: &str,
    role: Role,
) -> Result<(), ApiError> {
    if lookup(store, token)?.is_some_and(|r| r.role == role && r.name == name) {
        return Ok(());
    }
    for old in list(store)?.iter().filter(|t| t.name == name) {
        revoke(store, &old.id)?;
    }
    store_record(store, token, name, role, None).map(drop)
}

/// The record of a valid, unrevoked token; `None` for anything else.
pub fn lookup(store: &Arc<dyn Store>, token: &str) -> Result<Option<TokenRecord>, ApiError> {
    let Some(id) = id_of(token) else {
        return Ok(None);
    };
    let Some(kv) = store.get(&format!("{KEY_PREFIX}{id}"))? else {
        return Ok(None);
    };
    let record: TokenRecord =
        serde_json::from_slice(&kv.value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let presented = sha256_hex(token.as_bytes());
    Ok(constant_time_eq(presented.as_bytes(), record.sha256.as_bytes()).then_some(record))
}

pub fn list(store: &Arc<dyn Store>) -> Result<Vec<TokenRecord>, ApiError> {
    let (kvs, _) = store.range(KEY_PREFIX)?;
    kvs.iter()
        .map(|kv| {
            serde_json::from_slice::<TokenRecord>(&kv.value)
                .map(|r| r.public())
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .collect()
}

/// Deletes a token's record; `false` when there was none.
pub fn revoke(store: &Arc<dyn Store>, id: &str) -> Result<bool, ApiError> {
    let key = format!("{KEY_PREFIX}{id}");
    if store.get(&key)?.is_none() {
        return Ok(false);
    }
    store.txn(Txn::default().then(Op::Delete(key)))?;
    Ok(true)
}
