#!/usr/bin/env bash
# Proxy benchmark: aviary's gateway proxy, nginx and HAProxy, each in front of the same two
# upstreams with a 90/10 split and keep-alive, driven by the same wrk settings in one run, next
# to a direct connection to one upstream. Prints req/s, p50, p99, the ratio to direct, and the
# proxy's resident memory. Then two aviary proxies in a row (a gateway, then an agent's inbound
# listener in front of a demo service), in plain text and with mutual TLS (mesh certificates),
# in the same run: the cost of mTLS between hosts per request.
#
#   bench/proxy.sh [SECONDS_PER_RUN] [CONNECTIONS]
#
# Needs nginx, haproxy and wrk (Debian: apt-get install nginx haproxy wrk). Everything binds
# 127.0.0.1; every process it starts is stopped by PID at exit.
set -euo pipefail

duration=${1:-10}
connections=${2:-32}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for tool in nginx haproxy wrk python3 curl bc; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx haproxy wrk)" >&2; exit 1; }
done

(cd "$root" && cargo build --release --quiet --bin aviary)
aviary="$root/target/release/aviary"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  exit 1
}
# Resident memory in MiB of a process and its children (nginx runs a master and a worker).
rss_mib() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(ps -o rss= -p "$pid" 2>/dev/null || echo 0)))
  done
  echo "scale=1; $total / 1024" | bc
}

up_a=$(free_port); up_b=$(free_port); nginx_port=$(free_port); haproxy_port=$(free_port)
control_port=$(free_port); gateway_port=$(free_port); hops_port=$(free_port)

# Two upstreams, one nginx worker, answering a small body from memory.
cat >"$work/upstreams.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/upstreams.pid;
error_log $work/upstreams.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$up_a; location / { return 200 "a\n"; } }
  server { listen 127.0.0.1:$up_b; location / { return 200 "b\n"; } }
}
CONF
nginx -c "$work/upstreams.conf" -p "$work" &
pids+=($!)

cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream split { server 127.0.0.1:$up_a weight=9; server 127.0.0.1:$up_b weight=1; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://split; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
nginx_pid=$!

cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend bench
  bind 127.0.0.1:$haproxy_port
  default_backend split
backend split
  balance roundrobin
  server a 127.0.0.1:$up_a weight 90
  server b 127.0.0.1:$up_b weight 10
CONF
haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)
haproxy_pid=$!

"$aviary" control --listen "127.0.0.1:$control_port" --data-dir "$work/aviary" >"$work/control.log" 2>&1 &
pids+=($!)
wait_port "$control_port"
for _ in $(seq 50); do [[ -s "$work/aviary/admin.token" ]] && break; sleep 0.1; done
export AVIARY_TOKEN; AVIARY_TOKEN=$(cat "$work/aviary/admin.token")
export AVIARY_CONTROL="http://127.0.0.1:$control_port"
sed -e "s/@A@/$up_a/g" -e "s/@B@/$up_b/g" -e "s/@GW@/$gateway_port/g" \
  "$root/bench/mesh.yaml" >"$work/mesh.yaml"
AVIARY_CONTROL="http://127.0.0.1:$control_port" "$aviary" apply -f "$work/mesh.yaml" >/dev/null
# One worker thread, as nginx and HAProxy get one worker each.
AVIARY_WORKER_THREADS=1 "$aviary" proxy --control "http://127.0.0.1:$control_port" --mesh bench \
  --gateway bench-gw >"$work/proxy.log" 2>&1 &
pids+=($!)
aviary_pid=$!

for port in "$up_a" "$up_b" "$nginx_port" "$haproxy_port" "$gateway_port"; do wait_port "$port"; done

# run NAME PORT PID: one wrk run; prints "NAME req/s p50 p99 rss".
run() {
  local name=$1 port=$2 pid=$3 out
  wrk -t1 -c1 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm the keep-alive pools
  out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$port/")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "$name: wrk saw failed requests:" >&2
    echo "$out" >&2
  fi
  local rps p50 p99 rss="-"
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  [[ $pid != - ]] && rss=$(rss_mib "$pid")
  echo "$name $rps $p50 $p99 $rss"
}

results=()
results+=("$(run direct "$up_a" -)")
results+=("$(run aviary "$gateway_port" "$aviary_pid")")
results+=("$(run nginx "$nginx_port" "$nginx_pid")")
results+=("$(run haproxy "$haproxy_port" "$haproxy_pid")")

# Two proxies in a row, plain text then mutual TLS: the gateway and an agent (one worker thread
# each), the agent running one demo service and serving it on an inbound listener.
sed -e "s/@GW@/$hops_port/g" "$root/bench/hops.yaml" >"$work/hops.yaml"
"$aviary" apply -f "$work/hops.yaml" >/dev/null
hops() { # hops NAME [--mesh-tls]: start both proxies, one run, stop them
  local name=$1; shift
  AVIARY_WORKER_THREADS=1 "$aviary" agent --mesh hops --host h --address 127.0.0.1 \
    --outbound-listen 127.0.0.1:0 --health-interval 200ms --data-dir "$work/agent" "$@" \
    >"$work/agent-$name.log" 2>&1 &
  local agent=$!; pids+=("$agent")
  AVIARY_WORKER_THREADS=1 "$aviary" proxy --mesh hops --gateway hops-gw "$@" \
    >"$work/hops-$name.log" 2>&1 &
  local gateway=$!; pids+=("$gateway")
  for _ in $(seq 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hops_port/" || true) == 200 ]] && break
    sleep 0.1
  done
  run "$name" "$hops_port" "$gateway"
  kill "$gateway" "$agent"; wait "$gateway" "$agent" 2>/dev/null || true
}
results+=("$(hops 2hops)")
# Certificates renewed every second during the run: what rotation costs, and that it fails nothing.
results+=("$(hops 2hopsTLS --mesh-tls --cert-renew-every 1s)")

direct_rps=$(awk '{print $2}' <<<"${results[0]}")
echo
echo "wrk -t1 -c$connections -d${duration}s, 90/10 split over two upstreams, keep-alive, one worker each, $(nproc) cores"
printf '%-8s %12s %10s %10s %10s %10s\n' proxy "req/s" p50 p99 "vs direct" "RSS MiB"
for line in "${results[@]}"; do
  read -r name rps p50 p99 rss <<<"$line"
  ratio=$(echo "scale=2; $rps / $direct_rps" | bc)
  printf '%-8s %12s %10s %10s %10s %10s\n' "$name" "$rps" "$p50" "$p99" "$ratio" "$rss"
done
plain=$(awk '{print $2}' <<<"${results[4]}"); tls=$(awk '{print $2}' <<<"${results[5]}")
echo
echo "2hops: gateway -> agent inbound -> demo service, plain text; 2hopsTLS: the same with mutual TLS,"
echo "certificates renewed every second (a failed request would be reported above)"
echo "mTLS between the proxies costs $(echo "scale=2; 1000000 / $tls - 1000000 / $plain" | bc) us per request (1/req/s, the proxies saturated) and $(echo "scale=1; 100 * (1 - $tls / $plain)" | bc)% of req/s"

