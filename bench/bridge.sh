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
NAME=bridge.sh
. "$HERE/lib.sh"
[ -x "$LOAD" ] || die "$LOAD not built (make -C bench)"
[ -x "$MQTTD" ] || die "$MQTTD not found"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO not found"
command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found"

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
    if ! delivered "$a" "$b"; then
        log "$kind: the bridge did not come up (logs in $OUT)"
        cleanup
        return
    fi
    res=$(load "$qos" "$a" "$b" --pid "${PIDS[1]}")
    cleanup
    rate=$(field "$res" recv_rate)
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
    awk -F'\t' -v q="$qos" "$MEDIAN_AWK"'
        $2 == q && $1 == "mqttd" { m[++nm] = $4 }
        $2 == q && $1 == "mosquitto" { o[++no] = $4 }
        END {
            mm = med(m, nm); mo = med(o, no)
            printf "| QoS %d | %.0f [%.0f-%.0f] | %.0f [%.0f-%.0f] | %.2fx |\n",
                q, mm, m[1], m[nm], mo, o[1], o[no], (mo > 0 ? mm / mo : 0)
        }' "$results"
done
log "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
