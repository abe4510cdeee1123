//! aviary's own objects as the `/v1` API stores and serves them: registered endpoints and workloads.

use serde::{Deserialize, Serialize};

/// One running instance of a virtual node, registered in the control plane
/// (`PUT /v1/meshes/{mesh}/endpoints/{virtualNode}/{id}`). Unknown fields are refused in a
/// request ([`strict`](super::strict)) but tolerated in what a newer server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// The workload whose replica this is (set by the supervisor). When a node's endpoints
    /// come from two or more workloads, proxies count requests per workload too, which a
    /// replicas canary judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn yes() -> bool {
    true
}

/// How to run one version of a virtual node (`PUT /v1/meshes/{mesh}/workloads/{name}`, or
/// `kind: Workload` in a manifest, whose `spec` is this without `name`). Unknown fields are
/// refused in a request ([`strict`](super::strict)) but tolerated in what a newer server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub name: String,
    /// The virtual node whose endpoints the replicas become.
    pub virtual_node: String,
    /// argv: the program and its arguments. Each replica also gets `PORT` (a free loopback
    /// port it must listen on) and `HTTP_PROXY` (the mesh proxy) in its environment.
    pub command: Vec<String>,
    /// Shown as `(hidden)` to roles that do not run workloads: it may hold passwords.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// The hosts (`aviary agent --host NAME`) that run `replicas` replicas each; empty: every
    /// agent of the mesh runs them (on one machine, `aviary up`'s agent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// What a caller that may not see a workload's secrets gets for each `env` value.
pub const HIDDEN: &str = "(hidden)";

impl Workload {
    /// Whether the agent of `host` runs this workload (`None`: a one-machine agent, which runs
    /// every workload).
    pub fn runs_on(&self, host: Option<&str>) -> bool {
        match host {
            None => true,
            Some(host) => self.hosts.is_empty() || self.hosts.iter().any(|h| h == host),
        }
    }

    /// The workload with every `env` value replaced by [`HIDDEN`]; the keys stay.
    pub fn without_secrets(mut self) -> Workload {
        for value in self.env.values_mut() {
            *value = HIDDEN.to_string();
        }
        self
    }
}

/// Most hosts one workload may name.
pub const MAX_HOSTS: usize = 64;

/// Most replicas one workload may ask for on one machine.
pub const MAX_REPLICAS: u32 = 64;

fn one() -> u32 {
    1
}

/// `GET /v1/meshes/{mesh}/endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointList {
    pub endpoints: Vec<Endpoint>,
}

/// `GET /v1/meshes/{mesh}/workloads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadList {
    pub workloads: Vec<Workload>,
}
