//! `aviary top`: live requests/s, success rate and latency per virtual node, from the stats the
//! proxies push.

use std::io::{IsTerminal, Write};

use client::Client;
use serde_json::Value;

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
pub fn render(mesh: &str, stats: &Value) -> String {
    let window = stats["windowSeconds"].as_f64().unwrap_or(0.0);
    let mut out = format!("mesh {mesh}, last {window}s\n");
    out.push_str(&format!(
        "{:<24} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9}\n",
        "NODE", "REQ/S", "SUCCESS", "2XX", "4XX", "5XX", "P50", "P99"
    ));
    for node in stats["nodes"].as_array().into_iter().flatten() {
        let requests = node["requests"].as_f64().unwrap_or(0.0);
        let success = 1.0 - node["errorRate"].as_f64().unwrap_or(0.0);
        let ms = |v: &Value| v.as_f64().map_or("-".to_string(), |m| format!("{m:.1}ms"));
        out.push_str(&format!(
            "{:<24} {:>9.1} {:>8.1}% {:>7} {:>7} {:>7} {:>9} {:>9}\n",
            node["virtualNode"].as_str().unwrap_or("?"),
            node["requestsPerSecond"]
                .as_f64()
                .unwrap_or(requests / window.max(1.0)),
            success * 100.0,
            node["status2xx"].as_u64().unwrap_or(0),
            node["status4xx"].as_u64().unwrap_or(0),
            node["status5xx"].as_u64().unwrap_or(0),
            ms(&node["p50Ms"]),
            ms(&node["p99Ms"]),
        ));
    }
    out
}
