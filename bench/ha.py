#!/usr/bin/env python3
"""High availability on etcd, three figures in one run:

  1. `update-route` latency (p50/p99) and throughput, one writer and four, on the embedded redb
     store vs etcd with 1 and with 3 members (all on this machine);
  2. config propagation to PROXIES proxies split over two replicas on a 3-member etcd: from the
     update's 2xx (through replica A) to the new route table in use in each proxy;
  3. failover: `kill -9` of the leading replica in the middle of a canary under load (~100
     requests/s through the gateway): time until the other replica leads, and until it makes
     the canary's next decision; ROUNDS rounds.

    bench/ha.py [UPDATES] [PROXIES] [ROUNDS]

Needs Debian's `etcd-server` and a release build with `--features etcd` (built here). Every
server binds 127.0.0.1; every process started is stopped by PID at exit.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPDATES = int(sys.argv[1]) if len(sys.argv) > 1 else 300
PROXIES = int(sys.argv[2]) if len(sys.argv) > 2 else 50
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, **kw):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kw)
    PROCS.append(proc)
    return proc


def stop_from(first):
    """Kills (by PID) every process started since PROCS had `first` entries."""
    for proc in PROCS[first:]:
        if proc.poll() is None:
            proc.kill()
    for proc in PROCS[first:]:
        proc.wait()
    del PROCS[first:]


def line_with(proc, text, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"process {proc.args[:2]} ended before printing {text!r}")
        if text in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return line.strip()
    raise SystemExit(f"no {text!r} within {timeout}s")


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=15) as response:
        text = response.read()
        return json.loads(text) if text.strip().startswith(b"{") else text.decode()


def etcd(members, work):
    """A real etcd cluster of `members` on loopback; returns its client URLs."""
    names = [f"m{i}" for i in range(members)]
    client = [free_port() for _ in names]
    peer = [free_port() for _ in names]
    initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer))
    for i, name in enumerate(names):
        spawn(["etcd", "--name", name, "--data-dir", os.path.join(work, f"etcd-{name}"),
               "--listen-client-urls", f"http://127.0.0.1:{client[i]}",
               "--advertise-client-urls", f"http://127.0.0.1:{client[i]}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer[i]}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[i]}",
               "--initial-cluster", initial, "--initial-cluster-state", "new",
               "--log-level", "error"])
    urls = [f"http://127.0.0.1:{p}" for p in client]
    deadline = time.time() + 30
    while True:
        try:
            if all(http("GET", f"{u}/health").get("health") == "true" for u in urls):
                return urls
        except (OSError, urllib.error.URLError):
            pass
        if time.time() > deadline:
            raise SystemExit("etcd did not become healthy")
        time.sleep(0.1)


class Control:
    def __init__(self, aviary, work, name, etcd_urls=None, listen="127.0.0.1:0"):
        self.dir = os.path.join(work, name)
        cmd = [aviary, "control", "--listen", listen, "--data-dir", self.dir]
        if etcd_urls:
            cmd += ["--etcd", ",".join(etcd_urls)]
        self.proc = spawn(cmd)
        self.url = line_with(self.proc, "listening on").rsplit(" ", 1)[1]
        self.token = open(os.path.join(self.dir, "admin.token")).read().strip()

    def call(self, method, path, body=None):
        return http(method, self.url + path, body, self.token)

    def leads(self):
        try:
            return "aviary_control_leader 1" in http("GET", self.url + "/metrics").splitlines()
        except (OSError, urllib.error.URLError):
            return False


def apply(aviary, control, manifest_text, work):
    path = os.path.join(work, f"mesh-{time.time_ns()}.yaml")
    open(path, "w").write(manifest_text)
    subprocess.run([aviary, "apply", "-f", path], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "AVIARY_CONTROL": control.url, "AVIARY_TOKEN": control.token})


def mesh(a, b, gw):
    text = open(os.path.join(ROOT, "bench", "mesh.yaml")).read()
    return text.replace("@A@", str(a)).replace("@B@", str(b)).replace("@GW@", str(gw))


def route_spec(a, b):
    return {"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
        {"virtualNode": "a-vn", "weight": a}, {"virtualNode": "b-vn", "weight": b}]}}}


ROUTE = "/v20190125/meshes/bench/virtualRouter/bench-vr/routes/bench-r"


def quantiles(samples):
    q = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return q[49], q[98]


def writes(control):
    """UPDATES sequential update-routes, then 4 writers for 3 s (bounded): latencies, rates."""
    latencies = []
    started = time.time()
    for i in range(UPDATES):
        t = time.perf_counter()
        control.call("PUT", ROUTE, {"spec": route_spec(90 - i % 2, 10 + i % 2)})
        latencies.append((time.perf_counter() - t) * 1000)
    sequential = UPDATES / (time.time() - started)
    done, conflicts, stop = [0], [0], time.time() + 3
    lock = threading.Lock()

    def writer(k):
        i = 0
        while time.time() < stop:
            i += 1
            try:
                control.call("PUT", ROUTE, {"spec": route_spec(80 + k, 20 - k)})
                with lock:
                    done[0] += 1
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                with lock:
                    conflicts[0] += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p50, p99 = quantiles(latencies)
    return p50, p99, sequential, done[0] / 3, conflicts[0]


def propagation(aviary, work, urls):
    a, b = Control(aviary, work, "prop-a", urls), Control(aviary, work, "prop-b", urls)
    apply(aviary, a, mesh(18081, 18082, free_port()), work)
    token = a.call("POST", "/v1/tokens", {"name": "bench-proxies", "role": "proxy", "mesh": "bench"})["token"]
    admins = []
    env = {**os.environ, "AVIARY_WORKER_THREADS": "1"}
    for i in range(PROXIES):
        controls = f"{a.url},{b.url}" if i % 2 else f"{b.url},{a.url}"
        proxy = spawn([aviary, "proxy", "--control", controls, "--token", token, "--mesh", "bench",
                       "--node", "a-vn", "--egress-listen", "127.0.0.1:0", "--admin-listen",
                       "127.0.0.1:0"], env=env)
        admins.append(line_with(proxy, "(admin)").split(" ")[4])
    delays = []
    for update in range(20):
        revision = a.call("GET", "/v1/meshes/bench/snapshot")["revision"]
        a.call("PUT", ROUTE, {"spec": route_spec(*((100, 0) if update % 2 else (0, 100)))})
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
    return quantiles(delays) + (max(delays), len(delays))


class Load:
    """~100 GETs per second through the gateway until stopped (bounded to 10 minutes)."""

    def __init__(self, port):
        self.sent, self.failed, self.stopped = 0, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, args=(port,), daemon=True)
        self.thread.start()

    def run(self, port):
        deadline = time.time() + 600
        while not self.stopped.is_set() and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    r.read()
                    ok = r.status == 200
            except Exception:
                ok = False
            self.sent += 1
            self.failed += 0 if ok else 1
            time.sleep(0.01)

    def stop(self):
        self.stopped.set()
        self.thread.join()


def failover(aviary, work, urls):
    ports = [free_port(), free_port()]
    for version, port in zip(["1.0", "2.0"], ports):
        demo = spawn(["aviary-demo", "product", "--version", version, "--listen", f"127.0.0.1:{port}"],
                     executable=aviary)
        line_with(demo, "listening on")
    replicas = [Control(aviary, work, "fo-a", urls)]
    deadline = time.time() + 20
    while not replicas[0].leads():
        if time.time() > deadline:
            raise SystemExit("the first replica never led")
        time.sleep(0.05)
    replicas.append(Control(aviary, work, "fo-b", urls))
    gateway = free_port()
    apply(aviary, replicas[0], mesh(ports[0], ports[1], gateway), work)
    replicas[0].call("PUT", ROUTE, {"spec": route_spec(100, 0)})
    token = replicas[0].call("POST", "/v1/tokens", {"name": "bench-gw", "role": "proxy", "mesh": "bench"})["token"]
    proxy = spawn([aviary, "proxy", "--control", f"{replicas[0].url},{replicas[1].url}", "--token", token,
                   "--mesh", "bench", "--gateway", "bench-gw", "--admin-listen", "127.0.0.1:0"])
    line_with(proxy, "(gateway)")
    load = Load(gateway)
    results = []
    for round_ in range(ROUNDS):
        name = f"c{round_}"
        stable, canary = ("a-vn", "b-vn") if round_ % 2 == 0 else ("b-vn", "a-vn")
        replicas[0].call("POST", "/v1/meshes/bench/canaries", {"name": name, "spec": {
            "router": "bench-vr", "route": "bench-r", "stableNode": stable, "canaryNode": canary,
            "strategy": {"type": "steps", "stepWeight": 20, "interval": "2s"},
            "analysis": {"maxErrorRate": 0.05},
            "onSuccess": {"removeStable": False}, "onFailure": {"removeCanary": False}}})
        deadline = time.time() + 30
        while replicas[0].call("GET", f"/v1/meshes/bench/canaries/{name}")["state"]["canaryWeight"] < 40:
            if time.time() > deadline:
                raise SystemExit("the canary never reached 40%")
            time.sleep(0.05)
        time.sleep(0.7)
        leader = next(i for i, r in enumerate(replicas) if r.leads())
        other = replicas[1 - leader]
        entries = len(other.call("GET", f"/v1/meshes/bench/canaries/{name}")["state"]["history"])
        killed = time.time()
        replicas[leader].proc.send_signal(signal.SIGKILL)
        replicas[leader].proc.wait()
        while not other.leads():
            if time.time() - killed > 20:
                raise SystemExit("no takeover within 20 s")
            time.sleep(0.01)
        takeover = time.time() - killed
        while True:
            state = other.call("GET", f"/v1/meshes/bench/canaries/{name}")["state"]
            if len(state["history"]) > entries:
                decision = state["history"][entries]["at"] / 1000.0 - killed
                break
            if time.time() - killed > 30:
                raise SystemExit(f"no decision within 30 s: {json.dumps(state)[:1500]}\n"
                                 f"{http('GET', other.url + '/v1/meshes/bench/stats?window=5s', token=other.token)}")
            time.sleep(0.02)
        while other.call("GET", f"/v1/meshes/bench/canaries/{name}")["state"]["phase"] != "succeeded":
            if time.time() - killed > 60:
                raise SystemExit("the canary never finished")
            time.sleep(0.1)
        results.append((takeover * 1000, decision * 1000))
        # Back on its port: the proxy knows the replicas by their URLs.
        address = replicas[leader].url.removeprefix("http://")
        replicas[leader] = Control(aviary, work, f"fo-{round_}-again", urls, listen=address)
    load.stop()
    return results, load.sent, load.failed


def main():
    if not shutil.which("etcd"):
        raise SystemExit("needs etcd (Debian: apt-get install etcd-server)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cli", "--features", "etcd"],
                   cwd=ROOT, check=True)
    aviary = os.path.join(ROOT, "target", "release", "aviary")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as work:
            # Each measurement on its own etcd, with nothing of the others still running.
            for label, members in [("redb (embedded)", 0), ("etcd, 1 member", 1), ("etcd, 3 members", 3)]:
                urls = etcd(members, os.path.join(work, f"w{members}")) if members else None
                control = Control(aviary, work, f"writes-{members}", urls)
                apply(aviary, control, mesh(18081, 18082, free_port()), work)
                rows.append((label,) + writes(control))
                stop_from(0)
            prop = propagation(aviary, work, etcd(3, os.path.join(work, "propagation")))
            stop_from(0)
            fo, sent, failed = failover(aviary, work, etcd(3, os.path.join(work, "failover")))
    finally:
        stop_from(0)
    print(f"\nupdate-route, {UPDATES} sequential then 4 writers for 3 s ({os.cpu_count()} cores)")
    print(f"{'store':<18} {'p50 ms':>8} {'p99 ms':>8} {'1 writer/s':>11} {'4 writers/s':>12} {'409s':>6}")
    for label, p50, p99, seq, par, conflicts in rows:
        print(f"{label:<18} {p50:>8.2f} {p99:>8.2f} {seq:>11.0f} {par:>12.0f} {conflicts:>6}")
    p50, p99, worst, n = prop
    print(f"\npropagation to {PROXIES} proxies over two replicas on 3-member etcd, {n} samples")
    print(f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{p50:>8.2f} {p99:>8.2f} {worst:>8.2f}")
    print(f"\nfailover: kill -9 of the leading replica mid-canary (2 s steps), {len(fo)} rounds, "
          f"{sent} gateway requests, {failed} failed")
    print(f"{'round':>6} {'takeover ms':>12} {'next decision ms':>17}")
    for i, (takeover, decision) in enumerate(fo):
        print(f"{i + 1:>6} {takeover:>12.0f} {decision:>17.0f}")


if __name__ == "__main__":
    main()
