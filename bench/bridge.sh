#!/usr/bin/env bash
# bench/bridge.sh - bridged throughput: a publisher on broker A, a
# subscriber on broker B, A bridging the topic to B ("connection" section,
# topic mqtt-load/# out QOS). Two broker kinds in one run, each as both A
# and B (mqttd <-> mqttd, mosquitto <-> mosquitto), alternating per
# repetition; median [min-max] of the subscriber's receive rate.
#
#   bench/bridge.sh                       # build/mqttd vs /usr/sbin/mosquitto
#   REPS=5 COUNT=500000 bench/bridge.sh
#
# Environment: MQTTD (build/mqttd), MOSQUITTO (/usr/sbin/mosquitto),
# REPS (3), COUNT (QoS 0 messages, 300000; QoS 1 gets COUNT/3),
# WINDOW (1000: messages in flight end to end, QoS 0), INFLIGHT (100: the
# QoS 1 publisher's window), PORT (18960: A, and B on PORT+2), BIN (the
# directory of mqtt-load, default bench/), OUT (a new temporary directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MQTTD=${MQTTD:-$HERE/../build/mqttd}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
REPS=${REPS:-3}
COUNT=${COUNT:-300000}
WINDOW=${WINDOW:-1000}
INFLIGHT=${INFLIGHT:-100}
PORT=${PORT:-18960}
LOAD=${BIN:-$HERE}/mqtt-load
OUT=${OUT:-$(mktemp -d /tmp/bench-bridge-XXXXXX)}
mkdir -p "$OUT"
PIDS=()

die() { echo "bridge.sh: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
[ -x "$LOAD" ] || die "$LOAD not built (make -C bench)"
[ -x "$MQTTD" ] || die "$MQTTD not found"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO not found"
command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found"

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap cleanup EXIT

conf() { # file port [bridge-to-port qos]
    {
        echo "allow_anonymous true"
        # the same for both brokers: no Nagle delay (mqttd's default), and
        # queues that do not drop what the bridge has not yet forwarded
        echo "set_tcp_nodelay true"
        echo "max_queued_messages 1000000"
        echo "listener $2 127.0.0.1"
        [ "$(id -u)" = 0 ] && echo "user root"
        if [ -n "${3:-}" ]; then
            echo "connection bench"
            echo "address 127.0.0.1:$3"
            echo "topic mqtt-load/# out $4"
            echo "cleansession true"
            echo "notifications false"
        fi
    } >"$1"
}

start() { # cmd conf log
    "$1" -c "$2" >"$3" 2>&1 &
    PIDS+=($!)
}

bridged() { # port-a port-b: a probe published on A arrives on B
    local i got
    for i in $(seq 1 50); do
        got=$(mosquitto_sub -p "$2" -t mqtt-load/probe -C 1 -W 1 2>/dev/null &
            sleep 0.2
            mosquitto_pub -p "$1" -t mqtt-load/probe -m x 2>/dev/null
            wait) || true
        [ "$got" = x ] && return 0
    done
    return 1
}

results=$OUT/results.tsv
: >"$results"
one() { # kind qos rep
    local kind=$1 qos=$2 rep=$3 cmd a=$PORT b=$((PORT + 2)) res rate
    if [ "$kind" = mqttd ]; then cmd=$MQTTD; else cmd=$MOSQUITTO; fi
    conf "$OUT/$kind-b.conf" "$b"
    conf "$OUT/$kind-a.conf" "$a" "$b" "$qos"
    start "$cmd" "$OUT/$kind-b.conf" "$OUT/$kind-$qos-$rep-b.log"
    sleep 0.3
    start "$cmd" "$OUT/$kind-a.conf" "$OUT/$kind-$qos-$rep-a.log"
    if ! bridged "$a" "$b"; then
        log "$kind: the bridge did not come up (logs in $OUT)"
        cleanup
        return
    fi
    if [ "$qos" = 0 ]; then
        res=$("$LOAD" --quiet --port "$a" --sub-port "$b" --count "$COUNT" \
            --window "$WINDOW" --pid "${PIDS[1]}" | grep '^RESULT' || true)
    else
        res=$("$LOAD" --quiet --port "$a" --sub-port "$b" --qos 1 \
            --inflight "$INFLIGHT" --count "$((COUNT / 3))" \
            --pid "${PIDS[1]}" | grep '^RESULT' || true)
    fi
    cleanup
    rate=$(echo "$res" | tr ' ' '\n' | sed -n 's/^recv_rate=//p')
    log "$kind qos$qos #$rep: recv_rate=${rate:-?} ${res#RESULT }"
    printf '%s\t%s\t%s\t%s\n' "$kind" "$qos" "$rep" "${rate:-0}" >>"$results"
}

log "machine: $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg); out: $OUT"
for qos in 0 1; do
    for rep in $(seq 1 "$REPS"); do
        one mqttd "$qos" "$rep"
        one mosquitto "$qos" "$rep"
    done
done

echo
echo "| bridged, publisher on A -> subscriber on B | mqttd<->mqttd msg/s | mosquitto<->mosquitto msg/s | ratio |"
echo "|---|---|---|---|"
for qos in 0 1; do
    awk -F'\t' -v q="$qos" '
        function med(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $2 == q && $1 == "mqttd" { m[++nm] = $4 }
        $2 == q && $1 == "mosquitto" { o[++no] = $4 }
        END {
            mm = med(m, nm); mo = med(o, no)
            printf "| QoS %d | %.0f [%.0f-%.0f] | %.0f [%.0f-%.0f] | %.2fx |\n",
                q, mm, m[1], m[nm], mo, o[1], o[no], (mo > 0 ? mm / mo : 0)
        }' "$results"
done
log "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
