//! `aviary agent`: one host's part of the mesh — the workload supervisor for the workloads
//! placed on this host, and the host's proxy: a shared outbound listener, one outbound listener
//! per local virtual node (its replicas' `HTTP_PROXY`), and one inbound listener per replica on
//! the host's address, which the replica is registered at. `aviary up` runs the same agent
//! next to the control plane.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::args::AgentOpts;

/// What an agent needs beyond the control plane's address.
pub struct AgentConfig {
    pub control: String,
    pub mesh: String,
    pub host: Option<String>,
    /// The host's address: inbound listeners bind here.
    pub address: IpAddr,
    /// The shared outbound listener; per-node ones bind on its IP.
    pub outbound_listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
    pub health_interval: Option<Duration>,
    pub extra_path: Vec<PathBuf>,
    pub max_connections: usize,
    /// Spans of the agent's proxy go here (OTLP/HTTP).
    pub trace: Option<proxy::TraceConfig>,
    /// Mutual TLS with mesh certificates for the local nodes.
    pub mesh_tls: Option<proxy::MeshTlsConfig>,
}

/// A started agent: its proxy serves, its supervisor runs the local replicas.
pub struct Agent {
    pub outbound: SocketAddr,
    pub admin: Option<SocketAddr>,
    proxy: tokio::task::JoinHandle<anyhow::Result<()>>,
    supervisor: workloads::Supervisor,
    stop_proxy: CancellationToken,
}

impl Agent {
    pub async fn start(config: AgentConfig) -> anyhow::Result<Agent> {
        let role = proxy::Role::Agent {
            host: config.host.clone(),
        };
        let mut proxy_config = proxy::Config::new(&config.control, &config.mesh, role);
        proxy_config.bind = config.address;
        proxy_config.egress_listen = config.outbound_listen;
        proxy_config.admin_listen = config.admin_listen;
        proxy_config.state_dir = Some(config.data_dir.join("proxy").join(&config.mesh));
        proxy_config.token = config.token.clone();
        proxy_config.ca = config.ca.clone();
        proxy_config.max_connections = config.max_connections;
        proxy_config.trace = config.trace.clone();
        proxy_config.mesh_tls = config.mesh_tls.clone();
        let stop_proxy = CancellationToken::new();
        let proxy = proxy::Proxy::bind(proxy_config, stop_proxy.clone())
            .await
            .with_context(|| {
                format!("cannot start the agent's proxy for mesh '{}'", config.mesh)
            })?;
        let listeners = proxy.listeners();
        let find = |kind| {
            listeners
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, addr)| *addr)
        };
        let outbound =
            find(proxy::ListenerKind::Egress).context("the agent bound no outbound listener")?;
        let admin = find(proxy::ListenerKind::Admin);
        let handle = proxy.handle();
        let proxy = tokio::spawn(async move { proxy.run().await.map_err(anyhow::Error::from) });

        let mut supervisor = workloads::SupervisorConfig::new(
            &config.control,
            &config.mesh,
            config.data_dir.clone(),
        );
        supervisor.token = config.token;
        supervisor.ca = config.ca;
        supervisor.host = config.host;
        supervisor.health_interval = config.health_interval;
        supervisor.extra_path = config.extra_path;
        supervisor.network = Some(std::sync::Arc::new(Network { handle }));
        supervisor.mesh_tls = config.mesh_tls.is_some();
        let supervisor = workloads::Supervisor::start(supervisor)?;
        Ok(Agent {
            outbound,
            admin,
            proxy,
            supervisor,
            stop_proxy,
        })
    }

    /// Stops the replicas (deregistered first), then the proxy.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let stopped = self.supervisor.shutdown().await;
        self.stop_proxy.cancel();
        let proxy = tokio::time::timeout(Duration::from_secs(10), self.proxy).await;
        stopped?;
        match proxy {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow::anyhow!("the agent's proxy task failed: {join}")),
            Err(_) => Err(anyhow::anyhow!(
                "the agent's proxy did not stop within 10 s"
            )),
        }
    }

    /// Ends when the proxy stops on its own (a listener failed).
    pub async fn proxy_stopped(&mut self) -> anyhow::Result<()> {
        match (&mut self.proxy).await {
            Ok(result) => result,
            Err(join) => Err(anyhow::anyhow!("the agent's proxy task failed: {join}")),
        }
    }
}

/// The supervisor's view of the agent's proxy.
struct Network {
    handle: proxy::Handle,
}

impl workloads::Network for Network {
    fn outbound<'a>(&'a self, node: &'a str) -> workloads::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let addr = self
                .handle
                .outbound(node)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(format!("http://{addr}"))
        })
    }

    fn inbound<'a>(
        &'a self,
        node: &'a str,
        id: &'a str,
        port: u16,
    ) -> workloads::BoxFuture<'a, Result<SocketAddr, String>> {
        Box::pin(async move {
            let local = SocketAddr::from(([127, 0, 0, 1], port));
            self.handle
                .inbound(node, id, local)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }

    fn close_inbound(&self, id: &str) {
        self.handle.close_inbound(id);
    }
}

/// `aviary agent`: runs until SIGINT/SIGTERM.
pub async fn run(
    control: &str,
    ca: Option<PathBuf>,
    token: Option<String>,
    opts: AgentOpts,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
    // Workloads may name `aviary-demo`, as in `aviary up`.
    let extra_path = crate::up::demo_binary_dir(&opts.data_dir)?;
    let mut agent = Agent::start(AgentConfig {
        control: control.to_string(),
        mesh: opts.mesh,
        host: Some(opts.host.clone()),
        address: opts.address,
        outbound_listen: opts.outbound_listen,
        admin_listen: opts.admin_listen,
        data_dir: opts.data_dir,
        token,
        ca,
        health_interval: opts.health_interval,
        extra_path,
        max_connections: opts.max_connections,
        trace: opts.trace.config(),
        mesh_tls: opts.mesh_tls.config(),
    })
    .await?;
    // Tests and scripts read these lines to learn the ports; the admin line comes last.
    println!(
        "aviary agent {} listening on http://{} (outbound)",
        opts.host, agent.outbound
    );
    if let Some(admin) = agent.admin {
        println!(
            "aviary agent {} listening on http://{admin} (admin)",
            opts.host
        );
    }
    let stop = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(stop.clone()));
    let result = tokio::select! {
        _ = stop.cancelled() => Ok(()),
        result = agent.proxy_stopped() => result,
    };
    agent.shutdown().await?;
    result
}
