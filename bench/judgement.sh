#!/usr/bin/env bash
# Canary judgement benchmark: thousands of simulated canaries through the real rollout state
# machine (ticks every 250 ms of simulated time), judged by the App Mesh pipeline's 5xx
# threshold and by `analysis.compare`, side by side on the same seeded traffic. Prints a
# markdown table (rolled back, time to decide) and the goals to read it against. Deterministic:
# the same command prints the same table. No network, no processes besides itself.
#
#   bench/judgement.sh [CANARIES_PER_ROW]     (default 2000; about 2 minutes on one core)
#
# The program is crates/rollout/examples/judgement.rs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo run --release --quiet -p rollout --example judgement -- "${1:-2000}"
