//! Mutual TLS with the mesh's own CA (`Config::mesh_tls`): the identities this proxy holds —
//! its gateway's, or each local node's on an agent — each fetched from the control plane on
//! first use and renewed in the background (`tls::MeshIdentity`), and the client TLS to reach
//! a node's mesh endpoints as one of them, built once per (identity, target node).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use model::wire::IdentityKind;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lock;
use crate::tls::{ClientTls, IdentityName, MeshIdentity, Renewal, TlsError, TlsMetrics};

/// Whether and how the proxy takes part in the mesh's mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct MeshTlsConfig {
    /// Renew certificates this often instead of at two thirds of their validity (tests, and
    /// meshes that want rotation proven often).
    pub renew_every: Option<Duration>,
}

/// Who a proxy is when it calls: a virtual node (an agent's outbound listener of that node)
/// or a virtual gateway.
pub type Caller = (IdentityKind, String);

pub struct MeshTls {
    client: client::Client,
    mesh: String,
    renewal: Renewal,
    metrics: TlsMetrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Serialises the first issue of each identity, so concurrent first requests share one.
    identities: tokio::sync::Mutex<HashMap<Caller, MeshIdentity>>,
    clients: Mutex<HashMap<(Caller, String), ClientTls>>,
}

impl MeshTls {
    pub fn new(
        client: client::Client,
        mesh: &str,
        config: &MeshTlsConfig,
        metrics: TlsMetrics,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> MeshTls {
        MeshTls {
            client,
            mesh: mesh.to_string(),
            renewal: Renewal {
                every: config.renew_every,
                ..Renewal::default()
            },
            metrics,
            tracker,
            shutdown,
            identities: Default::default(),
            clients: Default::default(),
        }
    }

    /// The identity `kind`/`name` of this mesh, issued on first use.
    pub async fn identity(&self, kind: IdentityKind, name: &str) -> Result<MeshIdentity, TlsError> {
        let key = (kind, name.to_string());
        let mut identities = self.identities.lock().await;
        if let Some(identity) = identities.get(&key) {
            return Ok(identity.clone());
        }
        let identity = MeshIdentity::start(
            self.client.clone(),
            IdentityName {
                mesh: self.mesh.clone(),
                kind,
                name: name.to_string(),
            },
            self.renewal.clone(),
            self.metrics.clone(),
            &self.tracker,
            self.shutdown.child_token(),
        )
        .await?;
        identities.insert(key, identity.clone());
        Ok(identity)
    }

    /// TLS to reach node `target`'s mesh endpoints as `caller`.
    pub async fn client(&self, caller: &Caller, target: &str) -> Result<ClientTls, TlsError> {
        let key = (caller.clone(), target.to_string());
        if let Some(tls) = lock(&self.clients).get(&key) {
            return Ok(tls.clone());
        }
        let identity = self.identity(caller.0, &caller.1).await?;
        let tls = ClientTls::mesh(&identity, target);
        lock(&self.clients).insert(key, tls.clone());
        Ok(tls)
    }
}
