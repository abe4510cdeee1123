//! The per-mesh certificate authority: one CA per mesh, made on first use and kept in the store
//! under `ca/{mesh}`, that signs short-lived certificates naming a virtual node or gateway by
//! its SPIFFE ID (`spiffe://<mesh>/virtualNode/<name>`) for the key a proxy or agent holds.
//!
//! The CA's private key sits in the store in the clear (PKCS#8 PEM), beside the SigV4 keys
//! under `auth/keys/`: it is exactly as safe as the store is (the redb file's mode, etcd's
//! access control). Callers send only a public key, never receive one: a leaf's private key
//! never leaves the caller, and a CA's never leaves the store and the control plane.
//!
//! Why public keys, not CSRs: parsing a CSR needs rcgen's `x509-parser` feature, nine more
//! crates (an ASN.1 parser among them) meeting untrusted input in the control plane, to check
//! proof of possession, which buys nothing here: the caller's token already decides which
//! names it may get, and a certificate for a key one does not hold is useless to them.

mod x509;

use std::time::{Duration, SystemTime};

use model::wire::{CertificateRequest, IdentityKind, IssuedCertificate, spiffe_id};
use model::{Kind, ResourcePath};
use serde::{Deserialize, Serialize};
use store::{Compare, Op, Txn, TxnOutcome};

use crate::App;
use crate::error::ApiError;
use crate::records;
use crate::resources::{Resources, blocking, now_seconds};
use crate::telemetry::{CertificateIssued, MeshCaCreated};

pub use x509::{CA_VALIDITY, CLOCK_SKEW};

/// `--cert-ttl` unless told otherwise: short enough that a leaked key soon stops working
/// (there is no revocation), long enough that renewals are rare.
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(3600);
/// Below this, renewal traffic and clock skew (a minute) dominate.
pub const MIN_CERT_TTL: Duration = Duration::from_secs(60);
/// Above this a certificate is no longer short-lived, and nothing can revoke it.
pub const MAX_CERT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often creating a CA reads again after losing a race before giving up with a 409; only a
/// mesh updated faster than a key can be generated gets there.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
#[error(
    "the certificate TTL must be from 1m to 30d ({}s to {}s), got {}s",
    MIN_CERT_TTL.as_secs(), MAX_CERT_TTL.as_secs(), .0.as_secs_f64()
)]
pub struct InvalidTtl(pub Duration);

/// Refuses a TTL outside [`MIN_CERT_TTL`]..=[`MAX_CERT_TTL`], at start rather than at the
/// first request.
pub fn check_ttl(ttl: Duration) -> Result<Duration, InvalidTtl> {
    if (MIN_CERT_TTL..=MAX_CERT_TTL).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(InvalidTtl(ttl))
    }
}

/// Outside `meshes/`, so no watcher (no proxy) ever sees a CA key.
pub(crate) fn ca_key(mesh: &str) -> String {
    format!("ca/{mesh}")
}

/// A mesh's CA as stored under [`ca_key`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaRecord {
    /// The CA's subject CN, unique per CA, from which its issuer is rebuilt (`x509::issuer`).
    common_name: String,
    /// PEM.
    certificate: String,
    /// PKCS#8 PEM, unencrypted: as safe as the store (see the module's comment).
    key: String,
    created_at: f64,
}

impl App {
    /// `GET /v1/meshes/{mesh}/ca`: the PEM certificates that verify this mesh's identities.
    pub(crate) async fn trust_bundle(&self, mesh: &str) -> Result<String, ApiError> {
        Ok(mesh_ca(&self.resources, mesh).await?.certificate)
    }

    /// `POST /v1/meshes/{mesh}/certificates`. Everything the caller sent is checked before
    /// anything is read or made: a bad request creates no CA.
    pub(crate) async fn issue_certificate(
        &self,
        mesh: &str,
        body: serde_json::Value,
    ) -> Result<IssuedCertificate, ApiError> {
        let (request, key) = parse_request(body)?;
        let kind = match request.kind {
            IdentityKind::VirtualNode => Kind::VirtualNode,
            IdentityKind::VirtualGateway => Kind::VirtualGateway,
        };
        // Names both the resource and the mesh when either is missing.
        self.resources
            .require(&ResourcePath::new(kind, mesh, None, &request.name))
            .await?;
        let ca = mesh_ca(&self.resources, mesh).await?;
        let identity = spiffe_id(mesh, request.kind, &request.name);
        let ttl = self.cert_ttl;
        let (signed, ca) = {
            let identity = identity.clone();
            blocking(move || {
                let issuer = x509::issuer(&ca.common_name, &ca.key)?;
                let leaf =
                    x509::sign_leaf(&issuer, &key, &identity, serial(), SystemTime::now(), ttl)?;
                Ok::<_, x509::CaError>((leaf, ca))
            })
            .await?
            .map_err(|e| ApiError::Internal(e.to_string()))?
        };
        CertificateIssued {
            mesh,
            kind: request.kind,
            name: &request.name,
            not_after: signed.not_after,
        }
        .emit(&self.telemetry);
        Ok(IssuedCertificate {
            certificate: format!("{}{}", signed.pem, ca.certificate),
            trust_bundle: ca.certificate,
            identity,
            not_before: signed.not_before,
            not_after: signed.not_after,
        })
    }
}

/// The request's fields and its key, every problem named at once (serde alone would name one,
/// without its field).
fn parse_request(body: serde_json::Value) -> Result<(CertificateRequest, x509::LeafKey), ApiError> {
    use model::Problem;
    let mut problems = Vec::new();
    let Some(fields) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "body: must be a JSON object {\"kind\", \"name\", \"publicKey\"}".into(),
        ));
    };
    for field in fields.keys() {
        match field.as_str() {
            "kind" | "name" | "publicKey" => {}
            "csr" => problems.push(Problem::new(
                "csr",
                "certificate signing requests are not accepted; send publicKey, the PEM PUBLIC \
                 KEY (SubjectPublicKeyInfo) of your key, which stays with you",
            )),
            other => problems.push(Problem::new(
                other,
                "is not a field of a certificate request",
            )),
        }
    }
    let text = |field: &str, problems: &mut Vec<Problem>| match &body[field] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => {
            problems.push(Problem::new(field, "is required"));
            String::new()
        }
        _ => {
            problems.push(Problem::new(field, "must be a string"));
            String::new()
        }
    };
    let kind = text("kind", &mut problems);
    let name = text("name", &mut problems);
    let public_key = text("publicKey", &mut problems);
    let kind = match kind.as_str() {
        "virtualNode" => Some(IdentityKind::VirtualNode),
        "virtualGateway" => Some(IdentityKind::VirtualGateway),
        // Not a string: said above.
        _ if !body["kind"].is_string() => None,
        other => {
            problems.push(Problem::new(
                "kind",
                format!("must be virtualNode or virtualGateway, got '{other}'"),
            ));
            None
        }
    };
    if body.get("name").is_some_and(serde_json::Value::is_string) {
        problems.extend(model::validate_name("name", &name));
    }
    let key = match x509::parse_public_key(&public_key) {
        Ok(key) => Some(key),
        Err(_) if !body["publicKey"].is_string() => None,
        Err(problem) => {
            problems.push(Problem::new("publicKey", problem.to_string()));
            None
        }
    };
    model::Problems::check(problems)?;
    match (kind, key) {
        (Some(kind), Some(key)) => Ok((
            CertificateRequest {
                kind,
                name,
                public_key,
            },
            key,
        )),
        // Each None pushed a problem above, so check() returned.
        _ => Err(ApiError::Internal(
            "certificate request neither valid nor refused".into(),
        )),
    }
}

/// The mesh's CA, made if it has none. Race-safe across replicas: the CA is put only if
/// `ca/{mesh}` is still absent and the mesh's record is the one read (so a mesh deleted
/// meanwhile, whose delete retires `ca/{mesh}`, never gets an orphan CA); a loser reads the
/// winner's CA and uses it.
async fn mesh_ca(resources: &Resources, mesh: &str) -> Result<CaRecord, ApiError> {
    let key = ca_key(mesh);
    let mesh_key = records::key(&ResourcePath::mesh(mesh));
    for _ in 0..MAX_ATTEMPTS {
        if let Some(kv) = resources.get_raw(&key).await? {
            return serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::Internal(format!("corrupt CA record {key}: {e}")));
        }
        let Some(mesh_kv) = resources.get_raw(&mesh_key).await? else {
            return Err(ApiError::NotFound(format!(
                "{} not found",
                ResourcePath::mesh(mesh)
            )));
        };
        let common_name = format!("aviary mesh {mesh} CA {}", uuid::Uuid::new_v4().simple());
        let record = {
            let common_name = common_name.clone();
            blocking(move || x509::generate_ca(&common_name, serial(), SystemTime::now()))
                .await?
                .map_err(|e| ApiError::Internal(e.to_string()))?
        };
        let record = CaRecord {
            common_name,
            certificate: record.0,
            key: record.1,
            created_at: now_seconds(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let txn = Txn {
            compares: vec![
                Compare::ModRevision(key.clone(), 0),
                Compare::ModRevision(mesh_key.clone(), mesh_kv.mod_revision),
            ],
            ops: vec![Op::Put(key.clone(), value)],
        };
        let store = resources.store().clone();
        match blocking(move || store.txn(txn)).await?? {
            TxnOutcome::Committed { .. } => {
                MeshCaCreated {
                    mesh,
                    common_name: &record.common_name,
                }
                .emit();
                return Ok(record);
            }
            // Another replica made the CA first, or the mesh changed or went: read again.
            TxnOutcome::Failed { .. } => continue,
        }
    }
    Err(ApiError::Conflict(format!(
        "mesh '{mesh}' kept changing while its CA was created; retry"
    )))
}

/// 16 random bytes for a serial number (v4 UUIDs are 122 random bits from the OS).
fn serial() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

#[cfg(test)]
mod tests;
