//! `aviary top`: live requests/s, success rate and latency per virtual node, from the stats the
//! proxies push.

use std::io::{IsTerminal, Write};

use client::Client;
use model::wire::StatsView;

use crate::args::TopOpts;
use crate::get::resolve_mesh;

pub async fn run(client: &Client, opts: TopOpts) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, opts.mesh.as_deref()).await?;
    let clear = std::io::stdout().is_terminal() && opts.iterations != Some(1);
    let mut tick = tokio::time::interval(opts.interval);
    let mut shown = 0u64;
    loop {
        tick.tick().await;
        let stats = client.stats(&mesh, &opts.window).await?;
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", render(&mesh, &stats));
        std::io::stdout().flush()?;
        shown += 1;
        if opts.iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        println!();
    }
}

/// One screen: a header line and a row per node that had requests in the window.
pub fn render(mesh: &str, stats: &StatsView) -> String {
    let mut out = format!("mesh {mesh}, last {}s\n", stats.window_seconds);
    out.push_str(&format!(
        "{:<24} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9}\n",
        "NODE", "REQ/S", "SUCCESS", "2XX", "4XX", "5XX", "P50", "P99"
    ));
    for node in &stats.nodes {
        out.push_str(&format!(
            "{:<24} {:>9.1} {:>8.1}% {:>7} {:>7} {:>7} {:>9} {:>9}\n",
            node.virtual_node,
            node.requests_per_second,
            (1.0 - node.error_rate) * 100.0,
            node.status_2xx,
            node.status_4xx,
            node.status_5xx,
            millis(node.p50_ms),
            millis(node.p99_ms),
        ));
    }
    out
}

/// `12.3ms`, or `-` when nothing was measured.
pub fn millis(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |m| format!("{m:.1}ms"))
}
