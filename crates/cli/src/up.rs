//! `aviary up` and `aviary demo`: the control plane, a gateway proxy per virtual gateway, and
//! an agent per mesh (the workload supervisor and the host's proxy, `aviary agent`'s), in one
//! process, on 127.0.0.1.

mod kept;
mod yelb;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use client::Client;
use model::Kind;
use model::manifest::{Manifest, ManifestKind};
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::args::{DemoName, DemoOpts, RunOpts, UpOpts};
use model::wire::CreatePipeline;

/// The name the demo services' binary goes by in workload commands.
pub const DEMO_BINARY: &str = "aviary-demo";

/// The walkthrough's mesh (DESIGN.md step 1) and its v1 workloads, built in.
const DEMO_MANIFESTS: [(&str, &str); 2] = [
    (
        "demomesh/mesh.yaml",
        include_str!("../../../examples/demomesh/mesh.yaml"),
    ),
    (
        "demomesh/workloads-v1.yaml",
        include_str!("../../../examples/demomesh/workloads-v1.yaml"),
    ),
];

/// How long shutdown waits for proxies and the control plane after the workloads stopped.
const DRAIN: Duration = Duration::from_secs(10);

pub async fn up(opts: UpOpts) -> anyhow::Result<()> {
    let manifests = apply::load(&opts.files)?;
    run(manifests, opts.run, None, None).await
}

pub async fn demo(opts: DemoOpts) -> anyhow::Result<()> {
    let (texts, pipeline, next_steps) = match opts.which {
        DemoName::Demomesh => (
            DEMO_MANIFESTS
                .iter()
                .map(|(source, text)| (source.to_string(), text.to_string()))
                .collect(),
            None,
            DEMO_NEXT_STEPS.to_string(),
        ),
        DemoName::Yelb => {
            let yelb = yelb::prepare(&opts.run.data_dir)?;
            (yelb.manifests, Some(yelb.pipeline), yelb.next_steps)
        }
    };
    let mut manifests = apply::parse_all(&texts)?;
    if let Some(port) = opts.gateway_port {
        for manifest in &mut manifests {
            if manifest.kind == ManifestKind::AppMesh(Kind::VirtualGateway) {
                manifest.spec["listeners"][0]["portMapping"]["port"] = port.into();
            }
        }
    }
    run(manifests, opts.run, Some(&next_steps), pipeline).await
}

/// `opts.ca`: what every part that calls the control plane trusts.
async fn run(
    manifests: Vec<Manifest>,
    opts: RunOpts,
    next_steps: Option<&str>,
    pipeline: Option<CreatePipeline>,
) -> anyhow::Result<()> {
    let ca = opts.ca.clone();
    let meshes = meshes_of(&manifests);
    anyhow::ensure!(!meshes.is_empty(), "the manifests declare no Mesh");
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;

    // Workloads stop first (they deregister through the control plane), then the rest.
    let stop = CancellationToken::new();
    let services = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(stop.clone()));

    let control = control::Control::bind(
        control::Config {
            listen: opts.listen,
            data_dir: Some(opts.data_dir.join("store")),
            builds_dir: Some(opts.data_dir.join("builds")),
            auth: control::auth::AuthConfig {
                secrets_dir: Some(opts.data_dir.clone()),
                ..control::auth::AuthConfig::default()
            },
            webhook_allow: opts.webhook_allow.clone(),
            tls: opts.tls.files(),
            logs: Some(control::Logs(std::sync::Arc::new(LocalLogs {
                data_dir: opts.data_dir.clone(),
            }))),
            ..control::Config::default()
        },
        services.clone(),
    )
    .await
    .context("cannot start the control plane (is another aviary running?)")?;
    let url = control.url();
    // Each mesh's proxies and supervisor get a proxy token of that mesh, replaced at each start.
    let mut proxy_tokens = std::collections::HashMap::new();
    for mesh in &meshes {
        let token = control.issue_token(
            &format!("aviary-up.{mesh}"),
            control::auth::Role::Proxy,
            Some(mesh),
        )?;
        proxy_tokens.insert(mesh.clone(), token);
    }
    let client = Client::with_options(&url, &client::ClientOptions { ca: ca.clone() })?
        .with_token(Some(control.admin_token().to_string()));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { control.run().await.map_err(anyhow::Error::from) });

    // What an earlier run left, seen before the manifests are applied over it.
    // Best effort: a banner that cannot be made must not keep aviary from starting.
    let kept = kept::survey(&client, &manifests)
        .await
        .unwrap_or_else(|e| vec![format!("(cannot tell what the data dir kept: {e:#})")]);
    apply::apply_all(&client, manifests).await?;
    if let Some(pipeline) = pipeline {
        // Made once: a restart keeps the pipeline, its runs and its counter.
        let mesh = meshes.first().context("the demo declares a mesh")?;
        if client.pipeline(mesh, &pipeline.name).await.is_err() {
            client
                .create_pipeline(mesh, &pipeline)
                .await
                .with_context(|| format!("cannot create pipeline {}", pipeline.name))?;
        }
    }

    println!();
    println!("aviary is up; data in {}", opts.data_dir.display());
    if !kept.is_empty() {
        print!("{}", kept::explain(&opts.data_dir, &kept));
    }
    crate::print_secrets(&opts.data_dir);
    println!("  control plane      {url}");
    println!(
        "  console            {url}/ui/   (sign in with the admin token, or aviary token create --role viewer)"
    );
    let extra_path = demo_binary_dir(&opts.data_dir)?;
    let mut agents = Vec::new();
    let mut gateways = 0;
    for (i, mesh) in meshes.iter().enumerate() {
        let snapshot = client.snapshot(mesh).await?;
        for gateway in snapshot.resources(Kind::VirtualGateway) {
            let name = gateway[Kind::VirtualGateway.name_field()]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut config = proxy::Config::new(&url, mesh, proxy::Role::Gateway(name.clone()));
            config.state_dir = Some(opts.data_dir.join("proxy").join(format!("{mesh}-{name}")));
            config.token = proxy_tokens.get(mesh).cloned();
            config.ca = ca.clone();
            config.trace = opts.trace.config();
            config.mesh_tls = opts.mesh_tls.config();
            config.admin_listen = opts.admin_listen.map(|first| egress_addr(first, gateways));
            gateways += 1;
            let proxy = proxy::Proxy::bind(config, services.clone())
                .await
                .with_context(|| format!("cannot start the proxy of virtual gateway '{name}'"))?;
            for (kind, addr) in proxy.listeners() {
                match kind {
                    proxy::ListenerKind::Admin => {
                        println!("  gateway {name:<10} admin http://{addr}/metrics")
                    }
                    _ => println!("  gateway {name:<10} http://{addr}"),
                }
            }
            tasks.spawn(async move { proxy.run().await.map_err(anyhow::Error::from) });
        }
        // One agent per mesh, on this machine only: no host name, every workload runs here.
        let agent = crate::agent::Agent::start(crate::agent::AgentConfig {
            control: url.clone(),
            mesh: mesh.clone(),
            host: None,
            address: opts.egress_listen.ip(),
            outbound_listen: egress_addr(opts.egress_listen, i),
            admin_listen: None,
            data_dir: opts.data_dir.clone(),
            token: proxy_tokens.get(mesh).cloned(),
            ca: ca.clone(),
            health_interval: Some(opts.health_interval),
            extra_path: extra_path.clone(),
            max_connections: proxy::Config::DEFAULT_MAX_CONNECTIONS,
            trace: opts.trace.config(),
            mesh_tls: opts.mesh_tls.config(),
        })
        .await?;
        println!(
            "  egress  {mesh:<10} http://{}   (the mesh from this machine; each workload gets its node's own)",
            agent.outbound
        );
        agents.push(agent);
    }
    let mesh_flag = if meshes.len() > 1 { " --mesh MESH" } else { "" };
    println!(
        "  logs               aviary logs WORKLOAD{mesh_flag} --data-dir {}",
        opts.data_dir.display()
    );
    println!();
    if let Some(next) = next_steps {
        print!("{next}");
    }
    println!("Ctrl-C stops everything.");

    tokio::select! {
        _ = stop.cancelled() => {}
        Some(result) = tasks.join_next() => {
            // A server stopped on its own: bring the rest down and say why.
            stop.cancel();
            if let Ok(Err(error)) = result {
                eprintln!("error: {error:#}");
            }
        }
    }
    eprintln!("stopping workloads...");
    for agent in agents {
        if let Err(error) = agent.shutdown().await {
            eprintln!("error: stopping workloads: {error:#}");
        }
    }
    services.cancel();
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    eprintln!("stopped");
    Ok(())
}

/// The meshes the manifests declare, in order.
fn meshes_of(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .filter(|m| m.kind == ManifestKind::AppMesh(Kind::Mesh))
        .map(|m| m.metadata.name.clone())
        .collect()
}

/// The first mesh's egress listens where asked; further meshes on the following ports.
fn egress_addr(first: SocketAddr, index: usize) -> SocketAddr {
    let mut addr = first;
    if first.port() != 0 {
        addr.set_port(first.port() + index as u16);
    }
    addr
}

/// Where workloads find `aviary-demo`: next to this executable, on PATH, or else a link to
/// this very executable (which acts as `aviary-demo` under that name) in `DATA_DIR/bin`.
pub(crate) fn demo_binary_dir(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    if let Some(dir) = exe.parent().filter(|dir| dir.join(DEMO_BINARY).is_file()) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(DEMO_BINARY).is_file()))
        .unwrap_or(false);
    if on_path {
        return Ok(Vec::new());
    }
    let bin = data_dir.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let link = bin.join(DEMO_BINARY);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), exe.display()))?;
    Ok(vec![std::fs::canonicalize(&bin).unwrap_or(bin)])
}

const DEMO_NEXT_STEPS: &str = "\
Try next (in another terminal):
  curl 127.0.0.1:9080/                                  order 1.0, product 1.0, customer 1.0
  aviary get routes --watch                             live weighted targets
  aviary top                                            live requests/s, success rate, p99
  aviary apply -f examples/demomesh/product-v15.yaml    product 1.5: node + workload
  aviary route set product-r --router product-vr product-vn=75 product-v15-vn=25
  aviary route set product-r --router product-vr product-vn=100   roll back

";

/// The console reads the logs of the workloads this process supervises from their files.
struct LocalLogs {
    data_dir: PathBuf,
}

impl control::LogSource for LocalLogs {
    fn tail(
        &self,
        mesh: &str,
        workload: &str,
        lines: usize,
    ) -> Result<Vec<model::wire::ReplicaLogTail>, String> {
        workloads::logs::tail(&self.data_dir, mesh, workload, lines).map_err(|e| e.to_string())
    }
}
