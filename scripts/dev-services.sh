#!/usr/bin/env bash
# Installs and starts what lifeboat's tests need, for a developer or for
# scripts/test.sh: the `age`, `zstd` and GNU `time` tools, and a real
# S3-compatible server (moto, pinned: 5.2.1 breaks multipart uploads).
#
#   scripts/dev-services.sh start   # install, start S3; prints the export line
#   scripts/dev-services.sh stop    # stop what `start` started
#   scripts/dev-services.sh install # install only
#
# No Docker: everything comes from Debian packages and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=target/dev-services
MOTO_VERSION=5.2.5

log() { echo "dev-services: $*" >&2; }

install() {
    local missing=()
    command -v age >/dev/null || missing+=(age)
    command -v zstd >/dev/null || missing+=(zstd)
    [ -x /usr/bin/time ] || missing+=(time)
    command -v git >/dev/null || missing+=(git)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (apt)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! python3 -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
        || ! command -v moto_server >/dev/null; then
        log "installing moto[server]==$MOTO_VERSION (pip)"
        python3 -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >/dev/null 2>&1
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    install
    mkdir -p "$STATE"
    stop_quiet
    local port
    port=$(free_port)
    moto_server -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/moto.pid"
    for _ in $(seq 1 150); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            echo "http://127.0.0.1:$port" >"$STATE/s3-endpoint"
            log "S3 server (moto $MOTO_VERSION) on http://127.0.0.1:$port, pid $(cat "$STATE/moto.pid")"
            echo "export LIFEBOAT_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.2
    done
    log "moto_server did not start; see $STATE/moto.log"
    return 1
}

stop_quiet() {
    if [ -f "$STATE/moto.pid" ]; then
        kill "$(cat "$STATE/moto.pid")" 2>/dev/null || true
        rm -f "$STATE/moto.pid" "$STATE/s3-endpoint"
    fi
}

case "${1:-start}" in
    install) install ;;
    start) start ;;
    stop) stop_quiet; log "stopped" ;;
    *) echo "usage: $0 [install|start|stop]" >&2; exit 2 ;;
esac
