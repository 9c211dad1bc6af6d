#!/usr/bin/env bash
# Stand-in for the sidecar when no Python interpreter exists: an extension that exits before registering
# fails the function's init (Extension.Crash), and one that never registers stalls init until its time
# limit. So this registers for SHUTDOWN only (it never takes part in invokes: zero overhead) and waits on
# /next with bash's /dev/tcp until SHUTDOWN arrives. It never exits before SHUTDOWN.
set -u
name=${1:-otel-sidecar}
api=${AWS_LAMBDA_RUNTIME_API:-}
if [ -z "$api" ]; then
    echo "[otel-sidecar] ERROR AWS_LAMBDA_RUNTIME_API is not set: not inside Lambda, nothing to do" >&2
    exit 1
fi
host=${api%:*}
port=${api##*:}
[ "$host" = "$api" ] && port=80

# request METHOD PATH BODY [HEADER...] -> sets status, ext_id and body (reads until Content-Length).
request() {
    local method=$1 path=$2 payload=$3 line len=0
    shift 3
    exec 3<>"/dev/tcp/$host/$port" || return 1
    {
        printf '%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n' \
            "$method" "$path" "$api" "${#payload}"
        local h
        for h in "$@"; do printf '%s\r\n' "$h"; done
        printf '\r\n%s' "$payload"
    } >&3
    status=0
    body=
    IFS= read -r line <&3 || { exec 3<&-; return 1; }
    line=${line%$'\r'}
    status=${line#* }
    status=${status%% *}
    while IFS= read -r line <&3; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        case "${line,,}" in
            lambda-extension-identifier:*) ext_id=${line#*:}; ext_id=${ext_id// /} ;;
            content-length:*) len=${line#*:}; len=${len// /} ;;
        esac
    done
    if [ "${len:-0}" -gt 0 ]; then
        IFS= read -r -d '' -N "$len" body <&3
    fi
    exec 3<&-
    return 0
}

ext_id=
tries=0
until request POST /2020-01-01/extension/register '{"events":["SHUTDOWN"]}' \
        "Lambda-Extension-Name: $name" "Content-Type: application/json" && [ "$status" = 200 ] && [ -n "$ext_id" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 50 ]; then
        echo "[otel-sidecar] ERROR could not register with the Extensions API (last status ${status:-none}); giving up" >&2
        exit 1
    fi
    sleep 0.1
done
echo "[otel-sidecar] no-Python mode: registered as $name for SHUTDOWN only; no telemetry will be produced" >&2

while :; do
    if request GET /2020-01-01/extension/event/next '' "Lambda-Extension-Identifier: $ext_id"; then
        case "$body" in
            *SHUTDOWN*) exit 0 ;;
        esac
        [ "$status" = 200 ] || sleep 0.05
    else
        sleep 0.05   # the connection broke (e.g. around a freeze): ask again, never exit before SHUTDOWN
    fi
done
