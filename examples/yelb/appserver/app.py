"""Yelb's app server: votes in PostgreSQL, page views in Redis, a small JSON API over HTTP.

Run by the workload supervisor as `python3 app.py`, with PORT (it listens on 127.0.0.1:PORT)
and YELB_STATE (where db/postgres.sh and cache/redis.sh publish their addresses, db.addr and
cache.addr, read again on each (re)connect). APP_VERSION names the version in every answer.

    GET  /health              200 "ok" once the schema exists and the db and cache answer
    GET  /api/getvotes        [{"name": "outback", "value": 3}, ...]
    GET  /api/pageviews       the page views so far (INCR pageviews)
    POST /api/vote/<name>     one vote; {"name": "ihop", "value": 4}   (Yelb's GET /api/<name> too)
    GET  /api/hostname        {"hostname": ..., "version": ..., "servedBy": ...}

Every answer carries x-yelb-version and x-yelb-served-by. The standard library only: it speaks
PostgreSQL's wire protocol (v3, trust auth, simple queries) and Redis's RESP itself.
"""

import json
import os
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESTAURANTS = ["outback", "bucadibeppo", "ihop", "chipotle"]
# A deploy sets CANARY_VERSION on the versions it makes; the shipped one has APP_VERSION.
VERSION = os.environ.get("CANARY_VERSION") or os.environ.get("APP_VERSION") or "unknown"
STATE = os.environ.get("YELB_STATE", "")
# How long to wait at start for the database before giving up (the supervisor restarts us).
DB_WAIT_SECONDS = float(os.environ.get("YELB_DB_WAIT_SECONDS", "120"))
IO_TIMEOUT = 5.0

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS restaurants (name text PRIMARY KEY, count integer NOT NULL DEFAULT 0)",
    "INSERT INTO restaurants (name) VALUES {} ON CONFLICT DO NOTHING".format(
        ", ".join("('{}')".format(name) for name in RESTAURANTS)
    ),
]


def vote_sql(name):
    # Only the four known names get here (see handle_vote), so quoting them is safe.
    assert name in RESTAURANTS
    return "UPDATE restaurants SET count = count + 2 WHERE name = '{}' RETURNING count".format(name)


class Unavailable(Exception):
    """A backend cannot be reached or did not answer: the request gets a 503."""


class PgError(Exception):
    """An ErrorResponse from PostgreSQL; `code` is its SQLSTATE."""

    def __init__(self, fields):
        self.fields = fields
        self.code = fields.get("C", "")
        super().__init__(
            "postgres: {} {}: {}".format(fields.get("S", "ERROR"), self.code, fields.get("M", "?"))
        )


class RedisError(Exception):
    """An error reply from Redis."""


def read_addr(name):
    """host, port from $YELB_STATE/<name> ("127.0.0.1:5432"), or Unavailable."""
    path = os.path.join(STATE, name)
    try:
        with open(path) as f:
            text = f.read().strip()
        host, _, port = text.rpartition(":")
        return host, int(port)
    except (OSError, ValueError) as e:
        raise Unavailable("no address in {} yet ({})".format(path, e))


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        data += chunk
    return data


def idle_connection_is_dead(sock):
    """An idle connection that is readable has been closed (or was sent a goodbye) by the server,
    as postgres and redis do when they stop: a new one is needed before sending anything."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Postgres:
    """One connection, PostgreSQL wire protocol v3: startup (trust auth) and simple queries."""

    def __init__(self, host, port, user="postgres", database="yelb"):
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        params = b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
        body = struct.pack("!i", 196608) + params  # protocol 3.0
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        while True:
            kind, payload = self._message()
            if kind == b"R":
                (code,) = struct.unpack("!i", payload[:4])
                if code != 0:
                    self.close()
                    raise Unavailable(
                        "postgres asks for authentication (method {}); yelb expects trust".format(code)
                    )
            elif kind == b"E":
                self.close()
                raise PgError(parse_fields(payload))
            elif kind == b"Z":
                return
            # S (ParameterStatus), K (BackendKeyData), N (NoticeResponse): nothing to do.

    def _message(self):
        header = recv_exact(self.sock, 5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        return kind, recv_exact(self.sock, length - 4)

    def query(self, sql):
        """Runs `sql` (one or more statements); returns the rows of the last result, each a list
        of str (or None for NULL). An ErrorResponse raises PgError once the server is ready."""
        body = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(body) + 4) + body)
        rows, error = [], None
        while True:
            kind, payload = self._message()
            if kind == b"T":  # RowDescription: a new result set begins
                rows = []
            elif kind == b"D":  # DataRow
                (count,) = struct.unpack("!h", payload[:2])
                at, row = 2, []
                for _ in range(count):
                    (size,) = struct.unpack("!i", payload[at : at + 4])
                    at += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(payload[at : at + size].decode())
                        at += size
                rows.append(row)
            elif kind == b"E":
                error = PgError(parse_fields(payload))
            elif kind == b"Z":  # ReadyForQuery
                if error is not None:
                    raise error
                return rows
            # C (CommandComplete), I (EmptyQueryResponse), N, S, A: nothing to keep.

    def alive(self):
        return not idle_connection_is_dead(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_fields(payload):
    """The fields of an ErrorResponse: {"S": "ERROR", "C": "42P01", "M": "..."}."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode(errors="replace")
    return fields


class Redis:
    """One connection speaking RESP."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.file = self.sock.makefile("rb")

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError("redis: " + rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("connection closed by redis")
            return data[:-2].decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ConnectionError("unexpected reply from redis: {!r}".format(line[:40]))

    def alive(self):
        return not idle_connection_is_dead(self.sock)

    def close(self):
        for closing in (self.file, self.sock):
            try:
                closing.close()
            except OSError:
                pass


class Backend:
    """One connection to the db or the cache behind a lock; made again (from the address file)
    when missing or found closed. `idempotent` calls are retried once on a new connection."""

    def __init__(self, what, addr_file, connect):
        self.what, self.addr_file, self.connect = what, addr_file, connect
        self.lock = threading.Lock()
        self.conn = None

    def call(self, fn, idempotent=True):
        with self.lock:
            for attempt in (1, 2):
                if self.conn is not None and not self.conn.alive():
                    self._drop()
                fresh = self.conn is None
                if fresh:
                    host, port = read_addr(self.addr_file)
                    try:
                        self.conn = self.connect(host, port)
                    except (OSError, ConnectionError) as e:
                        raise Unavailable("{} at {}:{}: {}".format(self.what, host, port, e))
                try:
                    return fn(self.conn)
                except (OSError, ConnectionError, struct.error, ValueError) as e:
                    self._drop()
                    if fresh or not idempotent or attempt == 2:
                        raise Unavailable("{}: {}".format(self.what, e))

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


db = Backend("the database", "db.addr", Postgres)
cache = Backend("the cache", "cache.addr", Redis)
schema_ready = threading.Event()


def sql(statement, idempotent=True):
    def run(conn):
        try:
            return conn.query(statement)
        except PgError as e:
            if e.code == "42P01":  # undefined_table: a new, empty database behind the address
                schema_ready.clear()
                create_schema(conn)
                return conn.query(statement)
            raise

    return db.call(run, idempotent)


def create_schema(conn):
    for statement in SCHEMA:
        conn.query(statement)
    schema_ready.set()


def wait_for_schema():
    """At start: creates the table and its four rows, retrying until the db answers."""
    deadline = time.monotonic() + DB_WAIT_SECONDS
    last = None
    while True:
        try:
            db.call(create_schema)
            log("schema ready")
            return
        except (Unavailable, PgError) as e:
            if str(e) != last:
                log("waiting for the database: {}".format(e))
                last = str(e)
        if time.monotonic() > deadline:
            log("gave up after {:.0f} s waiting for the database: {}".format(DB_WAIT_SECONDS, last))
            os._exit(1)
        time.sleep(0.5)


def log(text):
    print("app.py: " + text, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "yelb-appserver"

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # a body is not used, but must be read off the connection
            self.route(method, path)
        except (Unavailable, PgError, RedisError) as e:
            log("{} {}: {}".format(method, path, e))
            self.answer(503, "unavailable: {}\n".format(e), "text/plain; charset=utf-8")
        except Exception as e:  # never let one request take the server down
            log("{} {}: {!r}".format(method, path, e))
            self.close_connection = True
            self.answer(500, "internal error: {}\n".format(e), "text/plain; charset=utf-8")

    def route(self, method, path):
        parts = path.strip("/").split("/")
        if path == "/health":
            return self.health()
        if parts[0] != "api" or len(parts) < 2:
            return self.answer(404, "not found\n", "text/plain; charset=utf-8")
        api = parts[1:]
        if len(api) == 2 and api[0] == "vote":
            if method != "POST":
                return self.answer(405, "use POST\n", "text/plain; charset=utf-8", {"Allow": "POST"})
            return self.handle_vote(api[1])
        if method != "GET":
            return self.answer(405, "use GET\n", "text/plain; charset=utf-8", {"Allow": "GET"})
        if api == ["getvotes"]:
            return self.getvotes()
        if api == ["pageviews"]:
            return self.json(cache.call(lambda r: r.command("INCR", "pageviews"), idempotent=False))
        if api == ["hostname"]:
            return self.json({"hostname": os.uname().nodename, "version": VERSION, "servedBy": SERVED_BY})
        if len(api) == 1:  # Yelb's GET /api/outback
            return self.handle_vote(api[0])
        return self.answer(404, "not found\n", "text/plain; charset=utf-8")

    def health(self):
        if not schema_ready.is_set():
            try:
                db.call(create_schema)
            except (Unavailable, PgError) as e:
                return self.answer(503, "starting: no schema yet ({})\n".format(e), "text/plain; charset=utf-8")
        sql("SELECT 1")
        if cache.call(lambda r: r.command("PING")) != "PONG":
            raise Unavailable("the cache did not answer PONG")
        self.answer(200, "ok\n", "text/plain; charset=utf-8")

    def getvotes(self):
        rows = sql("SELECT name, count FROM restaurants")
        counts = {name: int(count) for name, count in rows}
        self.json([{"name": name, "value": counts.get(name, 0)} for name in RESTAURANTS])

    def handle_vote(self, name):
        if name not in RESTAURANTS:
            return self.json({"error": "unknown restaurant '{}'".format(name[:64]), "known": RESTAURANTS}, 404)
        rows = sql(vote_sql(name), idempotent=False)
        if not rows:
            raise Unavailable("the row of '{}' is missing".format(name))
        self.json({"name": name, "value": int(rows[0][0])})

    def json(self, value, status=200):
        self.answer(status, json.dumps(value) + "\n", "application/json")

    def answer(self, status, body, content_type, extra=None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("x-yelb-version", VERSION)
        self.send_header("x-yelb-served-by", SERVED_BY)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        # http.server's own answers (bad request line, unsupported method) carry our headers too.
        self.close_connection = True
        reason = message or self.responses.get(code, ("error",))[0]
        self.answer(code, "{} {}\n".format(code, reason), "text/plain; charset=utf-8")

    def log_message(self, format, *args):
        sys.stderr.write("app.py: %s %s\n" % (self.address_string(), format % args))


def main():
    global SERVED_BY
    if not STATE:
        sys.exit("app.py: set YELB_STATE (where db.addr and cache.addr are published)")
    port = int(os.environ["PORT"])
    SERVED_BY = os.environ.get("AVIARY_WORKLOAD") or "yelb-appserver pid {} port {}".format(os.getpid(), port)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=wait_for_schema, daemon=True).start()
    log("version {} listening on 127.0.0.1:{}".format(VERSION, port))
    server.serve_forever()


SERVED_BY = "yelb-appserver"

if __name__ == "__main__":
    main()
