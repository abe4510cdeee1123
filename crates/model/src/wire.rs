//! aviary's own `/v1` wire types shared by the control plane and the proxy: registered endpoints,
//! the per-node request statistics proxies push, and the mesh CA's certificate requests.

use serde::{Deserialize, Serialize};

mod console;
pub use console::*;

/// One running instance of a virtual node, registered in the control plane
/// (`PUT /v1/meshes/{mesh}/endpoints/{virtualNode}/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    pub virtual_node: String,
    /// Unique within the node: a replica name, or `address:port`.
    pub id: String,
    /// An IP address (names are not resolved here; DNS discovery is the node's own business).
    pub address: String,
    pub port: u16,
    /// Passing its health check; proxies send traffic only to healthy endpoints.
    #[serde(default = "yes")]
    pub healthy: bool,
    /// An agent's inbound listener that takes mutual TLS with mesh certificates (as well as
    /// what the node's listener `tls` says): proxies with a mesh identity call it over TLS and
    /// expect `spiffe://<mesh>/virtualNode/<virtualNode>`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mesh_tls: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn yes() -> bool {
    true
}

/// How to run one version of a virtual node (`PUT /v1/meshes/{mesh}/workloads/{name}`, or
/// `kind: Workload` in a manifest, whose `spec` is this without `name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    /// The virtual node whose endpoints the replicas become.
    pub virtual_node: String,
    /// argv: the program and its arguments. Each replica also gets `PORT` (a free loopback
    /// port it must listen on) and `HTTP_PROXY` (the mesh proxy) in its environment.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// The hosts (`aviary agent --host NAME`) that run `replicas` replicas each; empty: every
    /// agent of the mesh runs them (on one machine, `aviary up`'s agent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

impl Workload {
    /// Whether the agent of `host` runs this workload (`None`: a one-machine agent, which runs
    /// every workload).
    pub fn runs_on(&self, host: Option<&str>) -> bool {
        match host {
            None => true,
            Some(host) => self.hosts.is_empty() || self.hosts.iter().any(|h| h == host),
        }
    }
}

/// Most hosts one workload may name.
pub const MAX_HOSTS: usize = 64;

/// Most replicas one workload may ask for on one machine.
pub const MAX_REPLICAS: u32 = 64;

fn one() -> u32 {
    1
}

/// Upper bounds, in milliseconds, of the latency buckets proxies count into; the last bucket
/// (not listed) holds everything slower. Roughly 1.5× apart: percentiles read from them are
/// within about 25% of the truth, enough to tell a 5 ms service from a 50 ms one.
pub const LATENCY_BUCKETS_MS: [f64; 28] = [
    0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0, 15.0, 25.0, 40.0, 60.0, 100.0, 150.0,
    250.0, 400.0, 600.0, 1000.0, 1500.0, 2500.0, 4000.0, 6000.0, 10000.0, 15000.0, 30000.0,
];

/// Index of the latency bucket that counts a request of `millis`.
pub fn latency_bucket(millis: f64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|bound| millis <= *bound)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Most node entries one stats report may carry. A proxy sends one entry per node it sent
/// requests to, so this is also the most nodes one proxy can report on at once.
pub const MAX_REPORT_NODES: usize = 500;

/// Largest stats report body: 500 entries of a long node name and every latency bucket fit.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;

/// Most requests one entry may count. A proxy reports every 250 ms, so this is far beyond any
/// real traffic; it keeps sums over the ten-minute window from ever nearing `u64::MAX`.
pub const MAX_REPORT_REQUESTS: u64 = 1 << 32;

/// What one proxy saw since its previous report (`POST /v1/meshes/{mesh}/stats`): counts are
/// deltas, so reports from many proxies simply add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsReport {
    /// Who reports, for logs: e.g. `gateway demo-gw` or `node order-vn`.
    pub proxy: String,
    pub nodes: Vec<NodeStats>,
}

/// Requests that one proxy sent to one target node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStats {
    pub virtual_node: String,
    pub requests: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Requests that got no HTTP answer from the node (refused, reset, timed out).
    #[serde(default)]
    pub failures: u64,
    /// Counts per `LATENCY_BUCKETS_MS` bucket, plus one for slower; may be shorter (trailing
    /// zeros left out).
    #[serde(default)]
    pub latency_buckets: Vec<u64>,
}

/// The `p`-quantile (0..=1) in milliseconds of a bucket histogram, interpolated within the
/// bucket; `None` when it counted nothing.
pub fn quantile_ms(buckets: &[u64], p: f64) -> Option<f64> {
    // Saturating: buckets come from reports, and a bad sum must not panic or wrap.
    let total = buckets.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
    if total == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        if seen.saturating_add(*count) as f64 >= rank {
            let low = if i == 0 {
                0.0
            } else {
                LATENCY_BUCKETS_MS[i - 1]
            };
            let high = LATENCY_BUCKETS_MS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1] * 2.0);
            let within = (rank - seen as f64) / *count as f64;
            return Some(low + (high - low) * within);
        }
        seen = seen.saturating_add(*count);
    }
    LATENCY_BUCKETS_MS.last().copied()
}

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

/// The answer to a [`CertificateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

#[cfg(test)]
mod tests;
