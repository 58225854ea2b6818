#!/usr/bin/env bash
# A local s3dedup cluster on loopback: one gateway and three storage nodes, R=2.
#
#   deploy/local-cluster.sh [start] [ROOT]   start it (ROOT default ./s3dedup-cluster)
#   deploy/local-cluster.sh stop [ROOT]      stop it gracefully (SIGTERM, then wait)
#
# ROOT holds everything: cluster-secret (generated once, mode 0600), gateway/ (index and
# the generated S3 key pair, credentials.json), node1..node3/, logs/*.log and run/*.pid.
# Environment:
#   S3DEDUP       the command to run (default: `s3dedup` if on PATH, else `python3 -m
#                 gateway.cli`); split on whitespace
#   PORT_BASE     the gateway listens on 127.0.0.1:PORT_BASE, node N on PORT_BASE+N
#                 (default 9000)
#   HEARTBEAT     seconds between node heartbeats (default 2)
#   STOP_TIMEOUT  seconds `stop` waits for each process before SIGKILL (default 60)
# S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY, when set, are the gateway's key pair; otherwise
# it generates one into ROOT/gateway/credentials.json.
set -euo pipefail

usage() {
    echo "usage: $0 [start|stop] [ROOT]" >&2
    exit 2
}

action=start
case "${1:-}" in
    start | stop) action=$1; shift ;;
    -h | --help) usage ;;
esac
[[ $# -le 1 ]] || usage
root=${1:-./s3dedup-cluster}
port_base=${PORT_BASE:-9000}
heartbeat=${HEARTBEAT:-2}
stop_timeout=${STOP_TIMEOUT:-60}
names=(gateway node1 node2 node3)

if [[ -n "${S3DEDUP:-}" ]]; then
    read -ra cmd <<<"$S3DEDUP"
elif command -v s3dedup >/dev/null; then
    cmd=(s3dedup)
else
    cmd=(python3 -m gateway.cli)
fi

# Whether PID is a live process (a zombie not yet reaped by its new parent has exited).
running() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# The pid in run/NAME.pid, if that process is alive and still runs on ROOT/NAME (a pid
# reused by an unrelated process is not ours to signal).
live_pid() {
    local file="$root/run/$1.pid" pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && running "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--data $root/$1 " || return 1
    echo "$pid"
}

# Wait until LOG shows READY, or fail if the process PID exits or 30 s pass.
wait_ready() {
    local name=$1 pid=$2 ready=$3 i
    for ((i = 0; i < 300; i++)); do
        grep -qF -- "$ready" "$root/logs/$name.log" 2>/dev/null && return 0
        if ! running "$pid"; then
            echo "$name exited; last lines of $root/logs/$name.log:" >&2
            tail -n 20 "$root/logs/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$name did not become ready in 30 s (see $root/logs/$name.log)" >&2
    return 1
}

launch() { # NAME ARGS...: start one process in the background, stdin/stdout detached
    local name=$1
    shift
    "${cmd[@]}" "$@" </dev/null >>"$root/logs/$name.log" 2>&1 &
    echo $! >"$root/run/$name.pid"
    echo $!
}

start() {
    local name pid n
    mkdir -p "$root/logs" "$root/run"
    root=$(cd "$root" && pwd) # absolute from here on: live_pid matches on it
    for name in "${names[@]}"; do
        if pid=$(live_pid "$name"); then
            echo "$name already running (pid $pid); run: $0 stop $root" >&2
            exit 1
        fi
        # a fresh log per run (wait_ready looks for this run's banner)
        [[ ! -f $root/logs/$name.log ]] || mv -f "$root/logs/$name.log" "$root/logs/$name.log.prev"
    done
    if [[ ! -s $root/cluster-secret ]]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$root/cluster-secret")
    fi
    chmod 600 "$root/cluster-secret"
    # the secret reaches the processes through the environment, not their command lines
    S3DEDUP_CLUSTER_SECRET=$(<"$root/cluster-secret")
    export S3DEDUP_CLUSTER_SECRET

    local gateway_url="http://127.0.0.1:$port_base"
    pid=$(launch gateway gateway --data "$root/gateway" --listen "127.0.0.1:$port_base" \
        --replicas 2)
    if ! wait_ready gateway "$pid" "s3dedup serving S3 on"; then
        stop_all
        exit 1
    fi
    for n in 1 2 3; do
        pid=$(launch "node$n" node --data "$root/node$n" \
            --listen "127.0.0.1:$((port_base + n))" --gateway "$gateway_url" \
            --heartbeat "$heartbeat")
        if ! wait_ready "node$n" "$pid" "serving on"; then
            stop_all
            exit 1
        fi
    done

    echo "s3dedup cluster running: gateway + 3 nodes, 2 replicas (root: $root)"
    echo "endpoint: $gateway_url"
    if [[ -n "${S3DEDUP_ACCESS_KEY:-}" ]]; then
        echo "credentials: from S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY"
    else
        grep -E '^  (access|secret) key: ' "$root/logs/gateway.log" | tail -n 2
        echo "  (kept in $root/gateway/credentials.json)"
    fi
    echo "nodes:    ${cmd[*]} admin nodes --endpoint $gateway_url --data $root/gateway"
    echo "stop:     $0 stop $root"
}

# SIGTERM every live process (gateway first: no new writes), then wait; SIGKILL leftovers.
stop_all() {
    local name pid i left=0
    local -A pids=()
    for name in "${names[@]}"; do
        if pid=$(live_pid "$name"); then
            pids[$name]=$pid
            kill -TERM "$pid"
        fi
    done
    for name in "${names[@]}"; do
        pid=${pids[$name]:-}
        [[ -n $pid ]] || continue
        for ((i = 0; i < stop_timeout * 10; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            echo "$name (pid $pid) did not stop in ${stop_timeout} s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            left=1
        fi
        rm -f "$root/run/$name.pid"
        echo "stopped $name (pid $pid)"
    done
    return $left
}

case $action in
    start) start ;;
    stop)
        [[ -d $root ]] || { echo "$root: no such directory" >&2; exit 1; }
        root=$(cd "$root" && pwd)
        stop_all
        ;;
esac
