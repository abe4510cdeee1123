"""Yelb's UI: one HTML page, and /api/* forwarded to the app server through the mesh.

Run by the workload supervisor as `python3 ui.py`, with PORT (it listens on 127.0.0.1:PORT) and
HTTP_PROXY (the mesh proxy). `/api/...` is sent to the proxy as an absolute-form request,
`GET http://yelb-appserver.yelb.local:8080/api/... HTTP/1.1`, and the answer's status, body,
content type and x-yelb-* headers come back unchanged. YELB_APPSERVER changes where the app
server is (without HTTP_PROXY it is called directly, e.g. http://127.0.0.1:4567).

    GET /          the page
    GET /health    200 "ok"
    *   /api/...   the app server's answer
"""

import http.client
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

APPSERVER = os.environ.get("YELB_APPSERVER") or "http://yelb-appserver.yelb.local:8080"
PROXY = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or ""
TIMEOUT = 15.0  # above the route's retries: 3 tries of at most 2 s
PASSED_HEADERS = ("content-type", "x-yelb-version", "x-yelb-served-by")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Yelb</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f1ea; color: #222; }
  header { background: #c41200; color: #fff; padding: 1rem 2rem; }
  header h1 { margin: 0; font-size: 1.6rem; }
  header p { margin: .25rem 0 0; opacity: .85; }
  main { max-width: 56rem; margin: 1.5rem auto; padding: 0 1rem; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: 1rem; }
  .card { background: #fff; border-radius: .5rem; padding: 1rem; text-align: center;
          box-shadow: 0 1px 3px rgba(0,0,0,.15); }
  .card h2 { margin: 0 0 .5rem; font-size: 1.1rem; }
  .count { font-size: 2.2rem; font-weight: bold; margin: .25rem 0 .75rem; }
  button { background: #c41200; color: #fff; border: 0; border-radius: .3rem;
           padding: .5rem 1.2rem; font-size: 1rem; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  table { margin-top: 1.5rem; border-collapse: collapse; }
  td { padding: .2rem 1rem .2rem 0; }
  td:first-child { color: #666; }
  #status { margin-top: 1rem; min-height: 1.2rem; color: #a00; }
</style>
</head>
<body>
<header>
  <h1>Yelb</h1>
  <p>Where should we eat? Vote for your favourite.</p>
</header>
<main>
  <div class="cards" id="cards"></div>
  <table>
    <tr><td>Page views</td><td id="pageviews">&ndash;</td></tr>
    <tr><td>App server version</td><td id="version">&ndash;</td></tr>
    <tr><td>App server host</td><td id="hostname">&ndash;</td></tr>
    <tr><td>Served by</td><td id="servedby">&ndash;</td></tr>
    <tr><td>Last answer from version</td><td id="lastversion">&ndash;</td></tr>
  </table>
  <div id="status"></div>
</main>
<script>
const RESTAURANTS = {
  outback: "Outback", bucadibeppo: "Buca di Beppo", ihop: "IHOP", chipotle: "Chipotle",
};
const $ = (id) => document.getElementById(id);

function status(text) { $("status").textContent = text || ""; }

async function api(path, options) {
  const response = await fetch("/api/" + path, Object.assign({cache: "no-store"}, options));
  const version = response.headers.get("x-yelb-version");
  if (version) $("lastversion").textContent = version;
  const text = await response.text();
  if (!response.ok) throw new Error(path + ": HTTP " + response.status + " " + text.trim());
  return JSON.parse(text);
}

function cards() {
  for (const [name, title] of Object.entries(RESTAURANTS)) {
    const card = document.createElement("div");
    card.className = "card";
    const h2 = document.createElement("h2");
    h2.textContent = title;
    const count = document.createElement("div");
    count.className = "count";
    count.id = "count-" + name;
    count.textContent = "\\u2013";
    const button = document.createElement("button");
    button.textContent = "Vote";
    button.addEventListener("click", () => vote(name, button));
    card.append(h2, count, button);
    $("cards").append(card);
  }
}

async function refreshVotes() {
  const votes = await api("getvotes");
  for (const {name, value} of votes) {
    const cell = $("count-" + name);
    if (cell) cell.textContent = value;
  }
}

async function vote(name, button) {
  button.disabled = true;
  try {
    const result = await api("vote/" + name, {method: "POST"});
    $("count-" + name).textContent = result.value;
    await refreshVotes();
    status("");
  } catch (e) {
    status(e.message);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  cards();
  try {
    $("pageviews").textContent = await api("pageviews");
    const host = await api("hostname");
    $("version").textContent = host.version;
    $("hostname").textContent = host.hostname;
    $("servedby").textContent = host.servedBy;
    await refreshVotes();
  } catch (e) {
    status(e.message);
  }
}

start();
</script>
</body>
</html>
"""


def upstream(path):
    """A connection and the request target for `path` on the app server: through the proxy
    (absolute form) when HTTP_PROXY is set, else straight to the app server."""
    target = urlsplit(APPSERVER)
    if PROXY:
        proxy = urlsplit(PROXY if "://" in PROXY else "http://" + PROXY)
        conn = http.client.HTTPConnection(proxy.hostname, proxy.port or 80, timeout=TIMEOUT)
        return conn, APPSERVER.rstrip("/") + path, target.netloc, "the mesh proxy at " + PROXY
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=TIMEOUT)
    return conn, path, target.netloc, APPSERVER


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "yelb-ui"

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/"):
                return self.forward(method, body)
            if method != "GET":
                return self.answer(405, b"use GET\n", "text/plain; charset=utf-8")
            if path == "/":
                return self.answer(200, PAGE.encode(), "text/html; charset=utf-8")
            if path == "/health":
                return self.answer(200, b"ok\n", "text/plain; charset=utf-8")
            self.answer(404, b"not found\n", "text/plain; charset=utf-8")
        except Exception as e:  # never let one request take the server down
            log("{} {}: {!r}".format(method, self.path, e))
            self.close_connection = True
            self.answer(500, "internal error: {}\n".format(e).encode(), "text/plain; charset=utf-8")

    def forward(self, method, body):
        conn, target, host, via = upstream(self.path)
        headers = {"Host": host, "Accept": self.headers.get("Accept", "*/*")}
        if self.headers.get("Content-Type"):
            headers["Content-Type"] = self.headers["Content-Type"]
        try:
            conn.request(method, target, body=body if body or method in ("POST", "PUT") else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            log("{} {} via {}: {}".format(method, target, via, e))
            return self.answer(502, "cannot reach the app server through {}: {}\n".format(via, e).encode(),
                               "text/plain; charset=utf-8")
        finally:
            conn.close()
        passed = {k: v for k, v in response.getheaders() if k.lower() in PASSED_HEADERS}
        content_type = next((v for k, v in passed.items() if k.lower() == "content-type"), "application/octet-stream")
        extra = {k: v for k, v in passed.items() if k.lower() != "content-type"}
        self.answer(response.status, data, content_type, extra, response.reason)

    def answer(self, status, data, content_type, extra=None, reason=None):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        sys.stderr.write("ui.py: %s %s\n" % (self.address_string(), format % args))


def log(text):
    print("ui.py: " + text, file=sys.stderr, flush=True)


def main():
    port = int(os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    log("listening on 127.0.0.1:{}; the app server is {} via {}".format(port, APPSERVER, PROXY or "no proxy"))
    server.serve_forever()


if __name__ == "__main__":
    main()
