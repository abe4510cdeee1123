#!/bin/sh
# Yelb's cache: redis-server on 127.0.0.1:$PORT, without persistence, its working directory in
# $YELB_STATE/redis.
#
# A workload command: `sh redis.sh`, with YELB_STATE (an absolute state directory) and PORT in
# the environment. Once redis answers PING it writes "127.0.0.1:$PORT" to $YELB_STATE/cache.addr
# (a temporary file, then mv), where the app server reads it on each (re)connect. redis-server
# replaces this shell (exec), so SIGTERM to the process group stops it cleanly.
set -eu

fail() {
    echo "redis.sh: $*" >&2
    exit 1
}

[ -n "${YELB_STATE:-}" ] || fail "set YELB_STATE to an absolute state directory"
[ -n "${PORT:-}" ] || fail "set PORT to the port redis listens on"
case $YELB_STATE in
/*) ;;
*) fail "YELB_STATE must be an absolute path, not '$YELB_STATE'" ;;
esac
case $PORT in
'' | *[!0-9]*) fail "PORT must be a port number, not '$PORT'" ;;
esac
REDIS_SERVER=$(command -v redis-server) || fail "cannot find redis-server on PATH"
REDIS_CLI=$(command -v redis-cli) || fail "cannot find redis-cli on PATH"

DIR=$YELB_STATE/redis
ADDR_FILE=$YELB_STATE/cache.addr
mkdir -p "$DIR"
rm -f "$ADDR_FILE" # the address of a previous run is stale until this redis is ready

# Publish the address once redis answers (bounded: 30 s). $$ stays this script's pid, which
# after the exec below is redis-server's: the loop ends if redis does.
(
    i=0
    while [ "$i" -lt 60 ]; do
        if [ "$("$REDIS_CLI" -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]; then
            printf '127.0.0.1:%s\n' "$PORT" >"$ADDR_FILE.tmp.$$"
            mv -f "$ADDR_FILE.tmp.$$" "$ADDR_FILE"
            echo "redis.sh: ready on 127.0.0.1:$PORT, published in $ADDR_FILE"
            exit 0
        fi
        kill -0 $$ 2>/dev/null || exit 1
        sleep 0.5
        i=$((i + 1))
    done
    fail "redis did not answer on 127.0.0.1:$PORT within 30 s; $ADDR_FILE not written"
) &

exec "$REDIS_SERVER" --bind 127.0.0.1 --port "$PORT" --protected-mode yes \
    --save '' --appendonly no --dir "$DIR" --daemonize no --logfile ''
