#!/bin/sh
# Yelb's database: PostgreSQL on 127.0.0.1:$PORT, its data in $YELB_STATE/postgres.
#
# A workload command: `sh postgres.sh`, with YELB_STATE (an absolute state directory) and PORT
# in the environment. It makes the data directory with initdb when there is none (trust auth,
# superuser postgres, listening on 127.0.0.1 only), runs postgres in the foreground with its
# unix socket in the state directory, and once postgres accepts connections and the database
# yelb exists, writes "127.0.0.1:$PORT" to $YELB_STATE/db.addr (a temporary file, then mv), where
# the app server reads it on each (re)connect.
#
# Postgres refuses to run as root: as root, initdb and postgres run as the user postgres
# (YELB_PG_USER to choose another), which owns the data directory and must be able to enter
# every directory above it. Postgres's programs are found in PG_BIN, else on PATH, else in
# Debian's newest /usr/lib/postgresql/*/bin.
#
# Stopping: SIGTERM to the process group (what the supervisor sends) reaches postgres, whose
# SIGTERM is a "smart" shutdown that waits for every client to disconnect, and the app server
# keeps its connection. So this script stays postgres's parent rather than exec'ing it, and
# turns a SIGTERM into postgres's SIGINT, the "fast" shutdown: clients are disconnected, a
# checkpoint is written, postgres exits 0 well within the supervisor's 5 s.
set -eu

fail() {
    echo "postgres.sh: $*" >&2
    exit 1
}

[ -n "${YELB_STATE:-}" ] || fail "set YELB_STATE to an absolute state directory"
[ -n "${PORT:-}" ] || fail "set PORT to the port postgres listens on"
case $YELB_STATE in
/*) ;;
*) fail "YELB_STATE must be an absolute path, not '$YELB_STATE'" ;;
esac
case $PORT in
'' | *[!0-9]*) fail "PORT must be a port number, not '$PORT'" ;;
esac

if [ -z "${PG_BIN:-}" ]; then
    if command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        PG_BIN=$(dirname "$(readlink -f "$(command -v postgres)")") # not a symlink's directory
    else
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
fi
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] ||
    fail "cannot find postgres and initdb (looked on PATH and in /usr/lib/postgresql/*/bin); set PG_BIN to their directory"
client() { # a client program: next to postgres, else on PATH
    if [ -x "$PG_BIN/$1" ]; then echo "$PG_BIN/$1"; else command -v "$1" || fail "cannot find $1"; fi
}
PSQL=$(client psql)
PG_ISREADY=$(client pg_isready)

# AS_PG prefixes initdb and postgres: empty, or a setpriv (which execs, so that $! below is
# postgres's own pid) or runuser that switches to the postgres user.
AS_PG=
if [ "$(id -u)" = 0 ]; then
    PG_USER=${YELB_PG_USER:-postgres}
    id -u "$PG_USER" >/dev/null 2>&1 ||
        fail "running as root, and postgres refuses to run as root; there is no user '$PG_USER' to run it as (create it, or set YELB_PG_USER)"
    if command -v setpriv >/dev/null 2>&1; then
        AS_PG="setpriv --reuid=$(id -u "$PG_USER") --regid=$(id -g "$PG_USER") --init-groups --"
    elif command -v runuser >/dev/null 2>&1; then
        AS_PG="runuser -u $PG_USER --"
    else
        fail "running as root, and neither setpriv nor runuser is there to run postgres as '$PG_USER'"
    fi
    echo "postgres.sh: running as root: initdb and postgres run as user '$PG_USER'"
fi

mkdir -p "$YELB_STATE"
cd "$YELB_STATE" # somewhere postgres's user may be, whatever the caller's directory was
PGDATA=$YELB_STATE/postgres
SOCKDIR=$YELB_STATE/pgsock
ADDR_FILE=$YELB_STATE/db.addr
rm -f "$ADDR_FILE" # the address of a previous run is stale until this postgres is ready

if [ -n "$AS_PG" ]; then
    # Every directory from YELB_STATE up must be searchable by PG_USER (a state directory under
    # /root, or one made by mktemp -d, is not); name the topmost one that is not.
    blocked=
    dir=$YELB_STATE
    while :; do
        $AS_PG test -x "$dir" || blocked=$dir
        [ "$dir" = / ] && break
        dir=$(dirname "$dir")
    done
    [ -z "$blocked" ] || fail "user '$PG_USER' (which runs postgres, as it refuses to run as root) cannot enter $blocked ($(stat -c '%A %U:%G' "$blocked")): every directory above $PGDATA must be searchable by it; chmod o+x $blocked, or choose a YELB_STATE elsewhere (under /tmp or /work, not /root)"
fi

own() { # make $1 (a directory) postgres's user's and private to it
    mkdir -p "$1"
    if [ -n "$AS_PG" ] && [ "$(stat -c %u "$1")" != "$(id -u "$PG_USER")" ]; then
        chown -R "$PG_USER:$(id -gn "$PG_USER")" "$1"
    fi
    chmod 700 "$1"
}

if [ ! -f "$PGDATA/PG_VERSION" ]; then
    # initdb into a fresh directory beside it, then rename: an interrupted initdb leaves no
    # half-made data directory behind.
    echo "postgres.sh: creating $PGDATA with initdb"
    rm -rf "$PGDATA.init"
    own "$PGDATA.init"
    $AS_PG "$PG_BIN/initdb" -D "$PGDATA.init" -U postgres --auth=trust -E UTF8 --locale=C >&2 ||
        fail "initdb of $PGDATA failed (see above)"
    printf "\n# yelb\nlisten_addresses = '127.0.0.1'\n" >>"$PGDATA.init/postgresql.conf"
    rm -rf "$PGDATA"
    mv "$PGDATA.init" "$PGDATA"
fi
own "$PGDATA"
own "$SOCKDIR"

# A unix socket path is at most 107 bytes; past that, postgres listens on TCP only.
socket_dir=$SOCKDIR
if [ "$((${#SOCKDIR} + 17))" -gt 107 ]; then
    echo "postgres.sh: $SOCKDIR is too long for a unix socket path; listening on TCP only" >&2
    socket_dir=
fi

# Publish the address once postgres answers and the database yelb exists (bounded: 60 s).
publish() {
    i=0
    while [ "$i" -lt 120 ]; do
        if "$PG_ISREADY" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres; then
            psql() { "$PSQL" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
            if [ "$(psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'yelb'")" != 1 ]; then
                echo "postgres.sh: creating database yelb"
                psql -c 'CREATE DATABASE yelb' ||
                    [ "$(psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'yelb'")" = 1 ] ||
                    fail "cannot create database yelb"
            fi
            printf '127.0.0.1:%s\n' "$PORT" >"$ADDR_FILE.tmp.$$"
            mv -f "$ADDR_FILE.tmp.$$" "$ADDR_FILE"
            echo "postgres.sh: ready on 127.0.0.1:$PORT, published in $ADDR_FILE"
            return 0
        fi
        sleep 0.5
        i=$((i + 1))
    done
    fail "postgres did not accept connections on 127.0.0.1:$PORT within 60 s; $ADDR_FILE not written"
}

trap 'kill -INT "$pg" 2>/dev/null || true' TERM INT HUP
$AS_PG "$PG_BIN/postgres" -D "$PGDATA" -h 127.0.0.1 -p "$PORT" -k "$socket_dir" &
pg=$!
publish &
publisher=$!

# Wait for postgres; a trapped signal interrupts wait, so wait again until it has exited.
status=0
while :; do
    wait "$pg" && status=0 || status=$?
    kill -0 "$pg" 2>/dev/null || break
done
kill "$publisher" 2>/dev/null || true
echo "postgres.sh: postgres exited with status $status"
exit "$status"
