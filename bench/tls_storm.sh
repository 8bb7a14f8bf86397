#!/bin/bash
# tls_storm.sh - mTLS reconnect storm, mqttd and Mosquitto side by side (issue 19)
#
# Usage: bench/tls_storm.sh MQTTD_BINARY CERTDIR [N]
#   CERTDIR from `bash certs/mkcerts.sh`; N clients (default 5000).
#   THREADS=K (environment): mqttd runs with `threads K` (default 1).
#   BROKERS="mqttd" (environment): run only those (default "mqttd mosquitto").
# For each broker: start it on a free 127.0.0.1 port (mTLS,
# require_certificate true), connect N clients + 1 established client with
# bench/tls_storm, restart the broker (SIGTERM, wait, start again, wait for
# the port), and let all N reconnect at once with their saved TLS sessions.
# mqttd gets tls_session_ticket_key_file, so its tickets survive the
# restart; Mosquitto encrypts tickets with a random per-process key, so
# after its restart every client does a full handshake.
# Everything is bounded: tls_storm --timeout, `timeout` around each run.
set -eu
MQTTD=$(readlink -f "$1")
CERTS=$(readlink -f "$2")
N=${3:-5000}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/tls-storm-XXXXXX)
make -s -C "$HERE" O="$TMP" "$TMP/tls_storm"
ulimit -n "$(ulimit -Hn)"
echo "logs and configuration in $TMP" >&2

head -c 80 /dev/urandom >"$TMP/ticket.key"
chmod 600 "$TMP/ticket.key"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# restart script: stop the PID in $TMP/NAME.pid, start again, wait for
# the port, print the new PID (tls_storm reads it)
cat >"$TMP/restart.sh" <<'EOF'
#!/bin/bash
set -eu
name=$1 port=$2; shift 2
dir=$(dirname "$0")
old=$(cat "$dir/$name.pid")
kill -TERM "$old"
for _ in $(seq 1 200); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
kill -KILL "$old" 2>/dev/null || true
"$@" >>"$dir/$name.log" 2>&1 &
echo $! >"$dir/$name.pid"
for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
cat "$dir/$name.pid"
EOF
chmod +x "$TMP/restart.sh"

for name in ${BROKERS:-mqttd mosquitto}; do
    port=$(free_port)
    conf="$TMP/$name.conf"
    {
        echo "listener $port 127.0.0.1"
        echo "allow_anonymous true"
        echo "certfile $CERTS/server.crt"
        echo "keyfile $CERTS/server.key"
        echo "cafile $CERTS/ca.crt"
        echo "require_certificate true"
        echo "use_identity_as_username true"
        if [ "$name" = mqttd ]; then
            echo "tls_session_ticket_key_file $TMP/ticket.key"
            echo "threads ${THREADS:-1}"
        else
            echo "user root"
        fi
    } >"$conf"
    if [ "$name" = mqttd ]; then
        cmd=("$MQTTD" -c "$conf")
    else
        cmd=(/usr/sbin/mosquitto -c "$conf")
    fi
    "${cmd[@]}" >>"$TMP/$name.log" 2>&1 &
    echo $! >"$TMP/$name.pid"
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    echo "== $name (port $port, N=$N)" >&2
    res=$(timeout 300 "$TMP/tls_storm" --port "$port" -n "$N" \
        --cert "$CERTS/client1.crt" --key "$CERTS/client1.key" \
        --cafile "$CERTS/ca.crt" --timeout 120 --settle 1 \
        --restart-cmd "$(printf '%q ' "$TMP/restart.sh" "$name" "$port" "${cmd[@]}")" ||
        true)
    echo "$name $res"
    # CPU (utime+stime, clock ticks) per broker thread since its restart:
    # shows whether the storm's handshakes were spread over the threads
    pid=$(cat "$TMP/$name.pid")
    echo "$name THREADS_CPU $(for t in /proc/"$pid"/task/*; do
        awk '{sub(/.*\) /, ""); printf "%s ", $12 + $13}' "$t/stat" 2>/dev/null
    done)"
    kill -TERM "$(cat "$TMP/$name.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
done
