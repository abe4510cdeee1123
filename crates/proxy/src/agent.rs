//! The listeners of an agent that come and go with the replicas on its host: one outbound
//! listener per local virtual node (the `HTTP_PROXY` of that node's replicas, so the egress
//! filter knows who calls), and one inbound listener per replica on the host's address (what
//! the replica is registered at, so traffic between hosts always goes proxy to proxy and the
//! replica itself is reached only on loopback).
//!
//! One port per replica rather than one shared inbound port: the port alone says which local
//! process a request is for, with nothing to trust in the request, and each replica keeps its
//! own endpoint (health, outlier detection, balancing) in every caller's table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use model::typed::TlsMode;
use model::wire::IdentityKind;

use crate::error::StartError;
use crate::forward::Entry;
use crate::inbound::Target;
use crate::server::{self, Serves};
use crate::tls::ServerTls;
use crate::{Shared, bind_listener, lock};

/// The dynamic listeners of one proxy, and what they need to serve.
pub struct Dynamic {
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    pub max_connections: usize,
    /// Outbound listeners bind here: loopback, for the host's own workloads.
    pub outbound_ip: IpAddr,
    /// Inbound listeners bind here: the host's address, for the other hosts' proxies.
    pub inbound_ip: IpAddr,
    /// Serialises binding, so two replicas of one node starting at once share one listener.
    outbound: tokio::sync::Mutex<HashMap<String, SocketAddr>>,
    inbound: Mutex<HashMap<String, Inbound>>,
}

struct Inbound {
    local: SocketAddr,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Dynamic {
    pub fn new(
        tracker: TaskTracker,
        shutdown: CancellationToken,
        max_connections: usize,
        outbound_ip: IpAddr,
        inbound_ip: IpAddr,
    ) -> Dynamic {
        Dynamic {
            tracker,
            shutdown,
            max_connections,
            outbound_ip,
            inbound_ip,
            outbound: Default::default(),
            inbound: Default::default(),
        }
    }

    fn check_running(&self) -> Result<(), StartError> {
        if self.shutdown.is_cancelled() {
            return Err(StartError::Config("the proxy is shutting down".into()));
        }
        Ok(())
    }

    /// The outbound listener of local node `node`, bound on first use.
    pub async fn outbound(
        &self,
        shared: &Arc<Shared>,
        node: &str,
    ) -> Result<SocketAddr, StartError> {
        self.check_running()?;
        let mut outbound = self.outbound.lock().await;
        if let Some(addr) = outbound.get(node) {
            return Ok(*addr);
        }
        let addr = SocketAddr::new(self.outbound_ip, 0);
        let listener = bind_listener(addr, "outbound").await?;
        let addr = local_addr(&listener, addr)?;
        tracing::info!(%addr, node, "outbound listener bound");
        let serves = Serves::Proxy(Entry::Egress {
            node: Some(Arc::from(node)),
        });
        self.spawn(listener, shared, serves, self.shutdown.clone());
        outbound.insert(node.to_string(), addr);
        Ok(addr)
    }

    /// The inbound listener of replica `id` of `node`, which passes everything to `local`; the
    /// same one again while it serves the same `local`, else a new one.
    pub async fn inbound(
        &self,
        shared: &Arc<Shared>,
        node: &str,
        id: &str,
        local: SocketAddr,
    ) -> Result<SocketAddr, StartError> {
        self.check_running()?;
        if let Some(open) = lock(&self.inbound).get(id)
            && open.local == local
        {
            return Ok(open.addr);
        }
        self.close_inbound(id);
        let addr = SocketAddr::new(self.inbound_ip, 0);
        let listener = bind_listener(addr, "inbound").await?;
        let addr = local_addr(&listener, addr)?;
        tracing::info!(%addr, %local, node, replica = id, "inbound listener bound");
        let mesh = match &shared.mesh_tls {
            None => None,
            Some(mesh_tls) => {
                let identity = mesh_tls
                    .identity(IdentityKind::VirtualNode, node)
                    .await
                    .map_err(|e| StartError::Config(e.to_string()))?;
                Some(ServerTls::mesh(&identity, TlsMode::Permissive, None))
            }
        };
        let stop = self.shutdown.child_token();
        let target = Target {
            node: node.to_string(),
            local,
            mesh,
        };
        self.spawn(
            listener,
            shared,
            Serves::Inbound(Arc::new(target)),
            stop.clone(),
        );
        let open = Inbound { local, addr, stop };
        if let Some(replaced) = lock(&self.inbound).insert(id.to_string(), open) {
            replaced.stop.cancel();
        }
        Ok(addr)
    }

    /// Stops replica `id`'s inbound listener; its open connections drain.
    pub fn close_inbound(&self, id: &str) {
        if let Some(open) = lock(&self.inbound).remove(id) {
            tracing::info!(addr = %open.addr, replica = id, "inbound listener closed");
            open.stop.cancel();
        }
    }

    fn spawn(
        &self,
        listener: TcpListener,
        shared: &Arc<Shared>,
        serves: Serves,
        stop: CancellationToken,
    ) {
        self.tracker.spawn(server::serve(
            listener,
            shared.clone(),
            serves,
            self.max_connections,
            stop,
            self.tracker.clone(),
        ));
    }
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr,
        what: "listener address",
        source,
    })
}
