#!/usr/bin/env bash
# Start/stop s3rver 3.7.1 (tests/node_modules, installed by scripts/bootstrap) on
# 127.0.0.1 for CloudMount's integration tests.
#
#   tests/servers/s3rver.sh start DIR   # data in DIR/data, log in DIR/s3rver.log
#   . DIR/server.env                    # S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
#                                       # S3_REGION S3_SERVER=s3rver S3_PID
#   tests/servers/s3rver.sh env DIR     # prints DIR/server.env (keys are s3rver's public defaults)
#   tests/servers/s3rver.sh stop DIR    # kills the server by pid and waits for it
#
# Facts (shared/TESTING.md): NODE_OPTIONS=--openssl-legacy-provider is required, or
# every second ListObjectsV2 page answers 500. s3rver checks no signature values.
# Objects kept in DIR/data survive a stop/start on the same DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3
S3RVER_JS="$ROOT/tests/node_modules/s3rver/bin/s3rver.js"
START_TIMEOUT=${S3RVER_START_TIMEOUT:-20}

die() { echo "s3rver.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }

# Field 22 of /proc/PID/stat (start time in ticks): guards against pid reuse.
# shellcheck disable=SC2086  # word splitting of the stat line is wanted
starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
# Alive and not a zombie (an orphan may be reaped late by init).
alive() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop_pid() { # PID STARTTIME
    local pid=$1 st=$2 i
    alive "$pid" && [ "$(starttime "$pid")" = "$st" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.1; done
    echo "s3rver.sh: pid $pid ignored SIGTERM for 10 s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
    die "pid $pid did not exit"
}

cmd_stop() {
    local dir=$1 pid st
    [ -f "$dir/s3rver.pid" ] || { echo "s3rver.sh: not running in $dir (no s3rver.pid)"; return 0; }
    read -r pid st <"$dir/s3rver.pid" || true
    [ -n "${pid:-}" ] && stop_pid "$pid" "${st:-}"
    rm -f "$dir/s3rver.pid" "$dir/server.env"
    echo "s3rver.sh: stopped (dir $dir)"
}

cmd_start() {
    local dir=$1 pid st port attempt i t0 code
    command -v node >/dev/null || die "node not found (run scripts/bootstrap)"
    [ -f "$S3RVER_JS" ] || die "$S3RVER_JS missing (run scripts/bootstrap: npm ci in tests/)"
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/s3rver.pid" ]; then
        read -r pid st <"$dir/s3rver.pid" || true
        if [ -n "${pid:-}" ] && alive "$pid" && [ "$(starttime "$pid")" = "${st:-}" ]; then
            die "already running in $dir (pid $pid); stop it first"
        fi
        rm -f "$dir/s3rver.pid"
    fi
    rm -f "$dir/server.env"
    t0=$EPOCHREALTIME
    # The free port is picked before s3rver binds it, so another process could take it
    # in between: then s3rver exits at once and we try another port.
    for attempt in 1 2 3; do
        port=$(free_port)
        : >"$dir/s3rver.log"
        # setsid: own session, so the terminal's ^C does not reach it; the wrapper shell
        # writes its pid and execs node, so the pid is node's.
        NODE_OPTIONS=--openssl-legacy-provider setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/s3rver.pid.tmp" \
            node "$S3RVER_JS" --directory "$dir/data" --address 127.0.0.1 --port "$port" --service-endpoint localhost --silent \
            </dev/null >>"$dir/s3rver.log" 2>&1 &
        for ((i = 0; i < 50; i++)); do [ -s "$dir/s3rver.pid.tmp" ] && break; sleep 0.02; done
        pid=$(cat "$dir/s3rver.pid.tmp"); rm -f "$dir/s3rver.pid.tmp"
        st=$(starttime "$pid") || st=
        echo "$pid $st" >"$dir/s3rver.pid"
        # Wait until it answers (any HTTP status) or dies.
        code=000
        for ((i = 0; i < START_TIMEOUT * 10; i++)); do
            alive "$pid" || break
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/" || true)
            [ "$code" != 000 ] && break
            sleep 0.1
        done
        [ "$code" != 000 ] && alive "$pid" && break
        if alive "$pid"; then
            stop_pid "$pid" "$st"; rm -f "$dir/s3rver.pid"
            echo "s3rver.sh: no answer on 127.0.0.1:$port within ${START_TIMEOUT} s; log $dir/s3rver.log:" >&2
            tail -n 40 "$dir/s3rver.log" >&2
            exit 1
        fi
        rm -f "$dir/s3rver.pid"
        if grep -q EADDRINUSE "$dir/s3rver.log" && [ "$attempt" -lt 3 ]; then continue; fi
        echo "s3rver.sh: s3rver exited during start-up; log $dir/s3rver.log:" >&2
        tail -n 40 "$dir/s3rver.log" >&2
        exit 1
    done
    cat >"$dir/server.env.tmp" <<EOF
S3_ENDPOINT=http://127.0.0.1:$port
S3_ACCESS_KEY=S3RVER
S3_SECRET_KEY=S3RVER
S3_REGION=us-east-1
S3_SERVER=s3rver
S3_PID=$pid
EOF
    mv "$dir/server.env.tmp" "$dir/server.env"
    echo "s3rver.sh: s3rver up at http://127.0.0.1:$port (pid $pid) in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s; env: $dir/server.env"
}

[ $# -eq 2 ] || usage
case $1 in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    env) [ -f "$2/server.env" ] || die "no $2/server.env (not started?)"; cat "$2/server.env" ;;
    *) usage ;;
esac
