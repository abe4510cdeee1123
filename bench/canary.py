#!/usr/bin/env python3
"""Canary episodes on the demo under a steady bounded load (~200 requests/s through the gateway),
the way `aviary deploy deploy.json` runs them: 10% steps, 1 s interval, failure_threshold_value 0.

  1. a product version that answers 500 to everything, route without a retry policy
  2. the same with a retry policy on product-r (maxRetries 2, server-error)
  3. a healthy version with the same settings: promotes itself
  4. a version listening on the wrong port: never healthy, removed, no hang

For 1 and 2 it reports the time from the first 5xx any caller saw to the rollback write (the
route back at 100% stable, its lastUpdatedAt) and to the last 5xx any caller saw (after which the
gateway sent nothing more to the canary), and how many requests callers saw fail.

    bench/canary.py

Starts `aviary demo` on 127.0.0.1 (gateway 9080; control plane and egress on free ports) and
stops every process it started at exit.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATEWAY = "http://127.0.0.1:9080/"
RATE = 200


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


class Load:
    """~RATE GETs per second on two threads; keeps (sent, received, ok) per request."""

    def __init__(self):
        self.records, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def run(self):
        pause = 2.0 / RATE
        deadline = time.time() + 600  # bounded whatever happens
        while not self.stop.is_set() and time.time() < deadline:
            sent = time.time()
            try:
                with urllib.request.urlopen(GATEWAY, timeout=5) as r:
                    ok = r.status == 200
                    r.read()
            except Exception:
                ok = False
            with self.lock:
                self.records.append((sent, time.time(), ok))
            time.sleep(max(0.0, pause - (time.time() - sent)))

    def between(self, start, end):
        with self.lock:
            return [r for r in self.records if start <= r[0] <= end]

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def deploy(aviary, env, work, command, extra=()):
    spec = {"microservice_name": "product", "percentage_step": 10, "wait_time": 1,
            "failure_threshold_value": 0, "failure_threshold_time": 60, "command": command}
    path = os.path.join(work, "deploy.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    started = time.time()
    out = subprocess.run([aviary, "deploy", path, *extra], env=env, capture_output=True, text=True, timeout=300)
    return started, time.time(), out


def set_retries(url, router, route, retries):
    path = f"{url}/v20190125/meshes/demomesh/virtualRouter/{router}/routes/{route}"
    spec = http("GET", path)["spec"]
    spec["httpRoute"]["retryPolicy"] = {"maxRetries": retries, "perRetryTimeout": {"unit": "s", "value": 1},
                                        "httpRetryEvents": ["server-error", "gateway-error"]}
    http("PUT", path, {"spec": spec})


def rollback_episode(name, load, url, aviary, env, work):
    started, ended, out = deploy(aviary, env, work, ["aviary-demo", "product", "--version", "9.9", "--error-rate", "1"])
    if out.returncode == 0:
        raise SystemExit(f"{name}: the broken version was not rolled back:\n{out.stdout}")
    time.sleep(1.0)
    records = load.between(started, time.time())
    failed = [r for r in records if not r[2]]
    route = http("GET", f"{url}/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r")
    rollback_at = route["route"]["metadata"]["lastUpdatedAt"] if "route" in route else route["metadata"]["lastUpdatedAt"]
    row = {"episode": name, "requests": len(records), "failed": len(failed)}
    if failed:
        first = min(r[1] for r in failed)
        row["first 5xx -> route 100% stable"] = f"{(rollback_at - first) * 1000:.0f} ms"
        row["first 5xx -> last 5xx"] = f"{(max(r[1] for r in failed) - first) * 1000:.0f} ms"
    else:
        canaries = http("GET", f"{url}/v1/meshes/demomesh/canaries")["canaries"]
        history = canaries[-1]["state"]["history"]
        row["canary start -> rollback"] = f"{history[-1]['at'] - history[0]['at']} ms"
    row["reason"] = out.stderr.strip().splitlines()[-1][:90]
    return row


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "aviary"], cwd=ROOT, check=True)
    aviary = os.path.join(ROOT, "target", "release", "aviary")
    with tempfile.TemporaryDirectory() as work:
        demo = subprocess.Popen([aviary, "demo", "--data-dir", os.path.join(work, "data"), "--listen", "127.0.0.1:0",
                                 "--egress-listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = None
            while url is None:
                line = demo.stdout.readline()
                if not line:
                    raise SystemExit("aviary demo ended before it was up")
                if line.strip().startswith("control plane"):
                    url = line.split()[-1]
            threading.Thread(target=lambda: [None for _ in demo.stdout], daemon=True).start()
            global TOKEN
            TOKEN = open(os.path.join(work, "data", "admin.token")).read().strip()
            env = {**os.environ, "AVIARY_CONTROL": url, "AVIARY_TOKEN": TOKEN}
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(GATEWAY, timeout=2) as r:
                        if r.status == 200:
                            break
                except Exception:
                    pass
                if time.time() > deadline:
                    raise SystemExit("the demo never answered")
                time.sleep(0.2)
            # Without a retry policy App Mesh (and aviary) still retry gateway errors twice, which
            # hides a failing product behind order's 502s at the gateway: switch retries off on
            # both routes for the first episode.
            set_retries(url, "order-vr", "order-r", 0)
            set_retries(url, "product-vr", "product-r", 0)
            load = Load()
            time.sleep(2)
            rows = [rollback_episode("500 to everything, no retries anywhere", load, url, aviary, env, work)]
            set_retries(url, "product-vr", "product-r", 2)
            rows.append(rollback_episode("500 to everything, product-r retries server-error x2", load, url, aviary, env, work))

            started, ended, out = deploy(aviary, env, work, ["aviary-demo", "product", "--version", "2.0"])
            records = load.between(started, ended)
            rows.append({"episode": "healthy version", "requests": len(records),
                         "failed": sum(1 for r in records if not r[2]),
                         "deploy total": f"{ended - started:.1f} s", "result": "promoted" if out.returncode == 0 else out.stderr.strip()[-90:]})

            started, ended, out = deploy(aviary, env, work, ["aviary-demo", "product", "--version", "3.0", "--listen", "127.0.0.1:0"],
                                         ["--health-timeout", "10s"])
            rows.append({"episode": "wrong port", "failed": sum(1 for r in load.between(started, ended) if not r[2]),
                         "deploy total": f"{ended - started:.1f} s",
                         "result": ("refused: " if out.returncode else "UNEXPECTED success: ") + out.stderr.strip()[-80:]})
            load.close()
        finally:
            demo.terminate()
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                demo.kill()
    print(f"\ncanary episodes under ~{RATE} req/s through the gateway, {os.cpu_count()} cores")
    for row in rows:
        print("- " + "; ".join(f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
