#!/usr/bin/env bash
# examples/cluster/run.sh - a whole mqttd cluster on one machine, for trying
# it out (docs/cluster.md "Example"): a NATS cluster of 3 nats-server (routes
# between them, JetStream clustered), 3 mqttd nodes each connected to its
# own nats-server (the others as fallbacks), and HAProxy in front of the 3
# mqttd (TCP, round-robin, send-proxy-v2 to listeners with
# enable_proxy_protocol 2). Everything on 127.0.0.1; configurations and
# data in a temporary directory; Ctrl-C stops everything.
#
#   examples/cluster/run.sh            # start, print how to connect, wait
#   examples/cluster/run.sh --check    # start, publish through HAProxy to a
#                                      # subscriber on another node, exit 0/1
#
# Environment: MQTTD (build/mqttd, else mqttd in PATH), NATS (nats-server),
# HAPROXY (haproxy), PORT (the MQTT port HAProxy listens on; default a free
# one), KEEP=1 (keep the temporary directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MQTTD=${MQTTD:-$HERE/../../build/mqttd}
[ -x "$MQTTD" ] || MQTTD=$(command -v mqttd || true)
NATS=${NATS:-$(command -v nats-server || true)}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
CHECK=0
[ "${1:-}" = --check ] && CHECK=1

die() { echo "run.sh: $*" >&2; exit 2; }
[ -x "$MQTTD" ] || die "mqttd not found (set MQTTD)"
[ -x "$NATS" ] || die "nats-server not found (set NATS)"
[ -x "$HAPROXY" ] || die "haproxy not found (set HAPROXY)"
command -v mosquitto_sub >/dev/null || die "mosquitto_sub not found"

DIR=$(mktemp -d /tmp/mqttd-cluster-XXXXXX)
PIDS=()
stop() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

# free TCP ports on 127.0.0.1 (the kernel's choice, released at once)
free_ports() {
    python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r -a P <<<"$(free_ports 10)"
FRONT=${PORT:-${P[0]}}
NC=("${P[1]}" "${P[2]}" "${P[3]}")  # NATS client ports
NR=("${P[4]}" "${P[5]}" "${P[6]}")  # NATS route ports
MQ=("${P[7]}" "${P[8]}" "${P[9]}")  # mqttd PROXY-protocol listeners

routes="nats://127.0.0.1:${NR[0]},nats://127.0.0.1:${NR[1]},nats://127.0.0.1:${NR[2]}"
for i in 0 1 2; do
    mkdir -p "$DIR/nats$i"
    "$NATS" -a 127.0.0.1 -p "${NC[$i]}" -n "nats$i" -js -sd "$DIR/nats$i" \
        --cluster_name mqttd-example -cluster "nats://127.0.0.1:${NR[$i]}" \
        -routes "$routes" >"$DIR/nats$i.log" 2>&1 &
    PIDS+=($!)
done

for i in 0 1 2; do
    # own nats-server first, the others as fallbacks
    urls="nats://127.0.0.1:${NC[$i]}"
    for j in 0 1 2; do
        [ "$j" = "$i" ] || urls="$urls,nats://127.0.0.1:${NC[$j]}"
    done
    {
        echo "listener ${MQ[$i]} 127.0.0.1"
        echo "enable_proxy_protocol 2"
        echo "allow_anonymous true"
        echo "threads 1"
        echo "cluster_nats $urls"
        echo "cluster_node_name node$((i + 1))"
        echo "log_type all"
        [ "$(id -u)" = 0 ] && echo "user root"
    } >"$DIR/mqttd$i.conf"
    "$MQTTD" -c "$DIR/mqttd$i.conf" >"$DIR/mqttd$i.log" 2>&1 &
    PIDS+=($!)
done

{
    echo "global"
    echo "    maxconn 4096"
    echo "defaults"
    echo "    mode tcp"
    echo "    timeout connect 5s"
    echo "    timeout client 1h"
    echo "    timeout server 1h"
    echo "frontend mqtt"
    echo "    bind 127.0.0.1:$FRONT"
    echo "    default_backend mqttd"
    echo "backend mqttd"
    echo "    balance roundrobin"
    for i in 0 1 2; do
        echo "    server node$((i + 1)) 127.0.0.1:${MQ[$i]} send-proxy-v2 check"
    done
} >"$DIR/haproxy.cfg"
"$HAPROXY" -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$FRONT") 2>/dev/null && break
    kill -0 "${PIDS[6]}" 2>/dev/null ||
        { cat "$DIR/haproxy.log" >&2; die "haproxy exited"; }
    sleep 0.1
done

# wait until every node reports its NATS connection (30 s at most)
for i in 0 1 2; do
    for _ in $(seq 1 300); do
        grep -q "connected to NATS" "$DIR/mqttd$i.log" 2>/dev/null && break
        kill -0 "${PIDS[$((3 + i))]}" 2>/dev/null ||
            { cat "$DIR/mqttd$i.log" >&2; die "mqttd node$((i + 1)) exited"; }
        sleep 0.1
    done
    grep -q "connected to NATS" "$DIR/mqttd$i.log" ||
        { cat "$DIR/mqttd$i.log" >&2; die "node$((i + 1)) did not reach NATS"; }
done

node_of() { # client id -> the node whose log shows it
    local i
    for i in 0 1 2; do
        grep -q "as $1 " "$DIR/mqttd$i.log" && { echo "node$((i + 1))"; return; }
    done
    echo "?"
}

if [ "$CHECK" = 1 ]; then
    # HAProxy's round robin puts the subscriber and the publisher on
    # different nodes; publish until the subscriber has one (the NATS
    # interest takes a moment to spread through the routes)
    out=$DIR/sub.out
    mosquitto_sub -h 127.0.0.1 -p "$FRONT" -i check-sub -q 1 -t example/check \
        -C 1 -W 30 >"$out" 2>"$DIR/sub.err" &
    SUB=$!
    ok=0
    for n in $(seq 1 100); do
        mosquitto_pub -h 127.0.0.1 -p "$FRONT" -i "check-pub-$n" -q 1 \
            -t example/check -m "hello $n" 2>>"$DIR/pub.err" || true
        if [ -s "$out" ]; then ok=1; break; fi
        sleep 0.2
        if [ -s "$out" ]; then ok=1; break; fi
    done
    wait "$SUB" || true
    s=$(node_of check-sub)
    n=$(sed -n 's/^hello //p' "$out")
    p=$(node_of "check-pub-${n:-0}")
    echo "subscriber on $s, publisher on $p, received: $(cat "$out")"
    if [ "$ok" = 1 ] && [ "$s" != "$p" ] && [ "$s" != "?" ] && [ "$p" != "?" ]; then
        echo "check: OK"
        exit 0
    fi
    echo "check: FAILED (logs in $DIR)" >&2
    KEEP=1
    exit 1
fi

cat <<EOT
mqttd cluster running (files in $DIR):
  MQTT through HAProxy:  127.0.0.1:$FRONT  (round robin over node1..node3)
  nats-server clients:   ${NC[*]}   (routes ${NR[*]})
  mqttd PROXY listeners: ${MQ[*]}   (only HAProxy may connect: they expect a PROXY v2 header)
Try, in two terminals:
  mosquitto_sub -h 127.0.0.1 -p $FRONT -t 'demo/#' -v
  mosquitto_pub -h 127.0.0.1 -p $FRONT -t demo/hello -m hi
Logs: $DIR/mqttd{0,1,2}.log, nats{0,1,2}.log, haproxy.log. Ctrl-C stops everything.
EOT
wait
