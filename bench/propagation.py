#!/usr/bin/env python3
"""Config propagation: from the 2xx of a route update to the moment each of N aviary proxies on
loopback uses the new weights (reads each proxy's `/config` `appliedAtUnixMicros`, stamped when
the new route table is swapped in). Prints p50, p99 and max over every (update, proxy) pair.

    bench/propagation.py [PROXIES] [UPDATES]

Everything binds 127.0.0.1; every process started is stopped by PID at exit.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXIES = int(sys.argv[1]) if len(sys.argv) > 1 else 50
UPDATES = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def started(cmd, until, env=None, timeout=20):
    """Starts cmd and returns (process, lines) once a line of stdout containing `until` arrived."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines, deadline = [], time.time() + timeout
    while not lines or until not in lines[-1]:
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit(f"{cmd[1]} did not start: {lines}")
        lines.append(proc.stdout.readline().strip())
    return proc, lines


# The control plane's admin token (it wrote `admin.token` at its first start), once it is up.
TOKEN = None


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    if TOKEN:
        headers["authorization"] = f"Bearer {TOKEN}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "aviary"], cwd=ROOT, check=True)
    aviary = os.path.join(ROOT, "target", "release", "aviary")
    procs = []
    with tempfile.TemporaryDirectory() as work:
        try:
            control, lines = started([aviary, "control", "--listen", "127.0.0.1:0", "--data-dir", work], "listening on")
            procs.append(control)
            url = lines[-1].rsplit(" ", 1)[1]
            global TOKEN
            TOKEN = open(os.path.join(work, "admin.token")).read().strip()
            mesh = open(os.path.join(ROOT, "bench", "mesh.yaml")).read()
            mesh = mesh.replace("@A@", "18081").replace("@B@", "18082").replace("@GW@", "18080")
            manifest = os.path.join(work, "mesh.yaml")
            open(manifest, "w").write(mesh)
            subprocess.run([aviary, "apply", "-f", manifest],
                           env={**os.environ, "AVIARY_CONTROL": url, "AVIARY_TOKEN": TOKEN},
                           check=True, stdout=subprocess.DEVNULL)
            proxy_token = http("POST", f"{url}/v1/tokens",
                               {"name": "bench-proxies", "role": "proxy", "mesh": "bench"})["token"]
            env = {**os.environ, "AVIARY_WORKER_THREADS": "1"}
            admins = []
            for _ in range(PROXIES):
                proxy, lines = started([aviary, "proxy", "--control", url, "--token", proxy_token,
                                        "--mesh", "bench", "--node", "a-vn",
                                        "--egress-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"], "(admin)", env)
                procs.append(proxy)
                admins.append(next(l.split(" ")[4] for l in lines if l.endswith("(admin)")))
            route = f"{url}/v20190125/meshes/bench/virtualRouter/bench-vr/routes/bench-r"
            delays = []
            for update in range(UPDATES):
                revision = http("GET", f"{url}/v1/meshes/bench/snapshot")["revision"]
                a, b = (100, 0) if update % 2 else (0, 100)
                spec = {"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                    {"virtualNode": "a-vn", "weight": a}, {"virtualNode": "b-vn", "weight": b}]}}}
                http("PUT", route, {"spec": spec})
                acknowledged = time.time() * 1e6
                for admin in admins:
                    deadline = time.time() + 10
                    while True:
                        config = http("GET", f"{admin}/config")
                        if config["revision"] > revision:
                            delays.append((config["appliedAtUnixMicros"] - acknowledged) / 1000.0)
                            break
                        if time.time() > deadline:
                            raise SystemExit(f"{admin} never applied revision {revision + 1}")
                        time.sleep(0.005)
                time.sleep(0.2)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
    delays.sort()
    q = statistics.quantiles(delays, n=100, method="inclusive")
    print(f"\n{PROXIES} proxies, {UPDATES} route updates, {len(delays)} samples, {os.cpu_count()} cores")
    print("from the update's 2xx to the new route table in use (negative: applied before the")
    print("client had read the 2xx; the watch event leaves before the HTTP answer)")
    print(f"{'p50 ms':>10} {'p99 ms':>10} {'max ms':>10}")
    print(f"{q[49]:>10.2f} {q[98]:>10.2f} {delays[-1]:>10.2f}")


if __name__ == "__main__":
    main()
