//! The mesh CA's part of the wire: identities, certificate requests and issued certificates.

use serde::{Deserialize, Serialize};

/// What a mesh certificate names: the SPIFFE path segment after the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentityKind {
    VirtualNode,
    VirtualGateway,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::VirtualNode => "virtualNode",
            IdentityKind::VirtualGateway => "virtualGateway",
        }
    }
}

/// The SPIFFE ID of a virtual node or gateway, the only name in its certificate:
/// `spiffe://<mesh>/virtualNode/<name>`. The mesh is the trust domain, so a peer checks both
/// the CA (the mesh's trust bundle) and this URI.
pub fn spiffe_id(mesh: &str, kind: IdentityKind, name: &str) -> String {
    format!("spiffe://{mesh}/{}/{name}", kind.as_str())
}

/// `POST /v1/meshes/{mesh}/certificates`: a certificate for `name`'s key. The private key never
/// leaves the caller: only its public half (`publicKey`, a PEM `PUBLIC KEY`, i.e.
/// SubjectPublicKeyInfo, as `rcgen::KeyPair::public_key_pem` writes it) is sent. ECDSA P-256,
/// P-384 and Ed25519 keys are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateRequest {
    pub kind: IdentityKind,
    pub name: String,
    pub public_key: String,
}

/// The answer to a [`CertificateRequest`]. Fields a newer server adds are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// PEM: the leaf, then the mesh CA's certificate, ready for a TLS server or client config.
    pub certificate: String,
    /// PEM: the CA certificates peers of this mesh are verified against (today one).
    pub trust_bundle: String,
    /// The certificate's only subject alternative name, from [`spiffe_id`].
    pub identity: String,
    /// Unix seconds; a minute before issue, for clocks that run behind.
    pub not_before: u64,
    /// Unix seconds; `notBefore` + the minute + the control plane's `--cert-ttl`.
    pub not_after: u64,
}

impl IssuedCertificate {
    /// When to ask for the next certificate: two thirds into the validity, so a renewal that
    /// fails has a third of the lifetime left to succeed.
    pub fn renew_at(&self) -> std::time::SystemTime {
        let lifetime = self.not_after.saturating_sub(self.not_before);
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.not_before + lifetime * 2 / 3)
    }
}
