//! `aviary proxy`: runs the data plane for one virtual gateway or virtual node.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::args::ProxyOpts;

pub async fn run(
    control: &str,
    ca: Option<PathBuf>,
    token: Option<String>,
    opts: ProxyOpts,
) -> anyhow::Result<()> {
    let role = match (opts.gateway, opts.node) {
        (Some(gateway), None) => proxy::Role::Gateway(gateway),
        (None, Some(node)) => proxy::Role::Node(node),
        _ => anyhow::bail!("give exactly one of --gateway and --node"),
    };
    let config = proxy::Config {
        control: control.to_string(),
        mesh: opts.mesh,
        role,
        bind: opts.bind,
        egress_listen: opts.egress_listen,
        admin_listen: opts.admin_listen,
        state_dir: opts.state_dir,
        token,
        ca,
        max_connections: opts.max_connections,
        trace: opts.trace.config(),
        mesh_tls: opts.mesh_tls.config(),
    };
    let shutdown = CancellationToken::new();
    let server = proxy::Proxy::bind(config, shutdown.clone()).await?;
    // Tests and scripts read these lines to learn the ports.
    for (kind, addr) in server.listeners() {
        println!("aviary proxy listening on http://{addr} ({kind})");
    }
    tokio::spawn(crate::stop_on_signal(shutdown));
    server.run().await?;
    Ok(())
}
