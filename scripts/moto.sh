#!/usr/bin/env bash
# Runs a moto server (a local AWS emulator from PyPI) for converge's AWS
# tests and benchmark. Only ever listens on 127.0.0.1.
#
#   source scripts/moto.sh start   # installs moto into .venv if needed,
#                                  # starts it on a free port, exports
#                                  # CONVERGE_TEST_AWS_ENDPOINT and defines
#                                  # moto_stop
#   moto_stop                      # stops the server started above
#
#   bash scripts/moto.sh start     # the same from another shell: prints the
#                                  # export line; the PID goes to
#                                  # .venv/moto.pid
#   bash scripts/moto.sh stop      # stops the server in .venv/moto.pid
#
# Typical use in a test script:
#   source scripts/moto.sh start
#   trap moto_stop EXIT
#
# Sourcing leaves the caller's shell options (set -e, …) as they were.

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

_moto_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    (cd "$here/.." && pwd)
}

_moto_install() {
    local root venv
    root="$(_moto_root)"
    venv="$root/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        echo "moto.sh: creating $venv" >&2
        python3 -m venv "$venv" || return 1
    fi
    if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
        || [ ! -x "$venv/bin/moto_server" ]; then
        echo "moto.sh: installing moto[server]==$MOTO_VERSION into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "moto[server]==$MOTO_VERSION" >&2 || return 1
    fi
}

# Starts moto on a free loopback port and waits until it answers.
moto_start() {
    local root venv port log pid i
    root="$(_moto_root)"
    venv="$root/.venv"
    _moto_install || { echo "moto.sh: could not install moto" >&2; return 1; }
    port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')" || return 1
    log="$venv/moto-$port.log"
    # Logs of earlier runs (kept for post-mortems) go now.
    rm -f "$venv"/moto-*.log
    # moto keeps everything in memory, per account; tests isolate
    # themselves by account (x-moto-account-id).
    # scripts/moto_server.py: moto_server with the patches converge needs.
    # ACM certificates are ISSUED a second after their request (moto does
    # not read DNS; the local cloud does).
    MOTO_ACM_VALIDATION_WAIT="${MOTO_ACM_VALIDATION_WAIT:-1}" \
        "$venv/bin/python" "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    pid=$!
    for i in $(seq 1 150); do
        if "$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
            MOTO_PID="$pid"
            export MOTO_PID
            export CONVERGE_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
            echo "$pid" >"$venv/moto.pid"
            echo "moto.sh: moto $MOTO_VERSION listening at $CONVERGE_TEST_AWS_ENDPOINT (pid $pid, log $log)" >&2
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "moto.sh: moto_server exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "moto.sh: moto_server did not answer within 30 s" >&2
    kill "$pid" 2>/dev/null
    return 1
}

# Stops the server this shell started (or the one in .venv/moto.pid).
moto_stop() {
    local root pidfile pid
    root="$(_moto_root)"
    pidfile="$root/.venv/moto.pid"
    pid="${MOTO_PID:-}"
    if [ -z "$pid" ] && [ -f "$pidfile" ]; then
        pid="$(cat "$pidfile")"
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    unset MOTO_PID
    return 0
}

case "${1:-}" in
    start)
        if moto_start; then
            if [ "${BASH_SOURCE[0]}" = "$0" ]; then
                echo "export CONVERGE_TEST_AWS_ENDPOINT=$CONVERGE_TEST_AWS_ENDPOINT"
            fi
        else
            if [ "${BASH_SOURCE[0]}" = "$0" ]; then exit 1; else return 1; fi
        fi
        ;;
    stop)
        moto_stop
        ;;
    install)
        _moto_install
        ;;
    "")
        # Sourced without an argument: only define the functions.
        ;;
    *)
        echo "usage: scripts/moto.sh start|stop|install" >&2
        if [ "${BASH_SOURCE[0]}" = "$0" ]; then exit 2; else return 2; fi
        ;;
esac
