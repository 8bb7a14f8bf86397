#!/usr/bin/env bash
# bench/cluster.sh - cluster mode throughput (docs/cluster.md): a publisher
# on node A, a subscriber on node B, the two mqttd joined by one
# nats-server on 127.0.0.1 (-js), against a single mqttd with publisher
# and subscriber on it. QoS 0 and QoS 1; median [min-max] of the
# subscriber's receive rate, and the CPU per delivered message of the
# brokers (both nodes' utime+stime from /proc; nats-server shown apart).
#
#   bench/cluster.sh
#   REPS=5 COUNT=300000 bench/cluster.sh
#
# Environment: MQTTD (build/mqttd), NATS (nats-server), REPS (3), COUNT
# (QoS 0 messages, 200000; QoS 1 gets COUNT/3), WINDOW (1000), INFLIGHT
# (100), PORT (18970: A, B on PORT+2, NATS on PORT+4), BIN (mqtt-load's
# directory, bench/), OUT (a new temporary directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MQTTD=${MQTTD:-$HERE/../build/mqttd}
NATS=${NATS:-$(command -v nats-server || echo /usr/bin/nats-server)}
REPS=${REPS:-3}
COUNT=${COUNT:-200000}
WINDOW=${WINDOW:-1000}
INFLIGHT=${INFLIGHT:-100}
PORT=${PORT:-18970}
LOAD=${BIN:-$HERE}/mqtt-load
OUT=${OUT:-$(mktemp -d /tmp/bench-cluster-XXXXXX)}
mkdir -p "$OUT"
NAME=cluster.sh
. "$HERE/lib.sh"
[ -x "$LOAD" ] || die "$LOAD not built (make -C bench)"
[ -x "$MQTTD" ] || die "$MQTTD not found"
[ -x "$NATS" ] || die "$NATS not found"
command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found"

conf() { # file port node-name|"" nats-port
    {
        echo "allow_anonymous true"
        echo "max_queued_messages 1000000"
        echo "listener $2 127.0.0.1"
        echo "threads 1"
        [ "$(id -u)" = 0 ] && echo "user root"
        if [ -n "$3" ]; then
            echo "cluster_nats nats://127.0.0.1:$4"
            echo "cluster_node_name $3"
        fi
    } >"$1"
}

cpu() { # pid: utime+stime in clock ticks
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

results=$OUT/results.tsv
: >"$results"
TCK=$(getconf CLK_TCK)
one() { # kind(single|cluster) qos rep
    local kind=$1 qos=$2 rep=$3 a=$PORT b=$((PORT + 2)) np=$((PORT + 4))
    local res rate recv c0 c1 n0=0 n1=0 brokers
    if [ "$kind" = cluster ]; then
        "$NATS" -a 127.0.0.1 -p "$np" -js -sd "$OUT/js" >"$OUT/nats.log" 2>&1 &
        PIDS+=($!)
        sleep 0.3
        conf "$OUT/a.conf" "$a" a "$np"
        conf "$OUT/b.conf" "$b" b "$np"
        "$MQTTD" -c "$OUT/a.conf" >"$OUT/$kind-$qos-$rep-a.log" 2>&1 &
        PIDS+=($!)
        "$MQTTD" -c "$OUT/b.conf" >"$OUT/$kind-$qos-$rep-b.log" 2>&1 &
        PIDS+=($!)
        brokers="${PIDS[1]} ${PIDS[2]}"
        if ! delivered "$a" "$b"; then
            log "cluster: no cross-node delivery (logs in $OUT)"
            cleanup
            return
        fi
    else
        conf "$OUT/s.conf" "$a" "" ""
        "$MQTTD" -c "$OUT/s.conf" >"$OUT/$kind-$qos-$rep.log" 2>&1 &
        PIDS+=($!)
        brokers="${PIDS[0]}"
        b=$a
        delivered "$a" "$a" || { log "single: not up"; cleanup; return; }
    fi
    c0=0
    for p in $brokers; do c0=$((c0 + $(cpu "$p"))); done
    [ "$kind" = cluster ] && n0=$(cpu "${PIDS[0]}")
    res=$(load "$qos" "$a" "$b")
    c1=0
    for p in $brokers; do c1=$((c1 + $(cpu "$p"))); done
    [ "$kind" = cluster ] && n1=$(cpu "${PIDS[0]}")
    cleanup
    rm -rf "$OUT/js"
    rate=$(field "$res" recv_rate)
    recv=$(field "$res" recv)
    log "$kind qos$qos #$rep: ${res#RESULT }"
    # us of broker CPU (both nodes) and of nats-server per delivered message
    awk -v k="$kind" -v q="$qos" -v r="$rep" -v rate="${rate:-0}" \
        -v n="${recv:-0}" -v c="$((c1 - c0))" -v nc="$((n1 - n0))" \
        -v t="$TCK" 'BEGIN {
            printf "%s\t%s\t%s\t%s\t%.2f\t%.2f\n", k, q, r, rate,
                (n > 0 ? c / t * 1e6 / n : 0), (n > 0 ? nc / t * 1e6 / n : 0)
        }' >>"$results"
}

log "machine: $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg); out: $OUT"
for qos in 0 1; do
    for rep in $(seq 1 "$REPS"); do
        one single "$qos" "$rep"
        one cluster "$qos" "$rep"
    done
done

echo
echo "| publisher -> subscriber | msg/s single node | msg/s across 2 nodes | ratio | broker CPU us/msg single | broker CPU us/msg cluster (both nodes) | nats-server CPU us/msg |"
echo "|---|---|---|---|---|---|---|"
for qos in 0 1; do
    awk -F'\t' -v q="$qos" "$MEDIAN_AWK"'
        $2 == q && $1 == "single" { s[++ns] = $4; sc[ns] = $5 }
        $2 == q && $1 == "cluster" { c[++nc] = $4; cc[nc] = $5; nn[nc] = $6 }
        END {
            ms = med(s, ns); mc = med(c, nc)
            printf "| QoS %d | %.0f [%.0f-%.0f] | %.0f [%.0f-%.0f] | %.2fx | %.1f | %.1f | %.1f |\n",
                q, ms, s[1], s[ns], mc, c[1], c[nc], (ms > 0 ? mc / ms : 0),
                med(sc, ns), med(cc, nc), med(nn, nc)
        }' "$results"
done
log "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
