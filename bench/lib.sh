# bench/lib.sh - sourced by the two-broker benchmarks (bridge.sh,
# cluster.sh): messages, the cleanup of started processes, the probe that
# waits until A's messages reach B, one mqtt-load run, and a median
# function for their awk tables.
#
# The sourcing script sets NAME (for messages), LOAD (mqtt-load), COUNT,
# WINDOW and INFLIGHT, and appends every process it starts to PIDS.
PIDS=()

die() { echo "$NAME: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# cleanup: stop every started process and wait for it
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap cleanup EXIT

# delivered port-a port-b: a probe published on A arrives at a subscriber
# on B (bridge or cluster up), within 50 tries
delivered() {
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

# load qos port-a port-b [mqtt-load options]: publisher on A, subscriber
# on B, COUNT messages at QoS 0 (WINDOW in flight) or COUNT/3 at QoS 1
# (INFLIGHT); prints mqtt-load's RESULT line (empty if it failed)
load() {
    local qos=$1 a=$2 b=$3
    shift 3
    if [ "$qos" = 0 ]; then
        "$LOAD" --quiet --port "$a" --sub-port "$b" --count "$COUNT" \
            --window "$WINDOW" "$@" | grep '^RESULT' || true
    else
        "$LOAD" --quiet --port "$a" --sub-port "$b" --qos 1 \
            --inflight "$INFLIGHT" --count "$((COUNT / 3))" "$@" |
            grep '^RESULT' || true
    fi
}

# field line key: the value of key=value in a RESULT line
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# an awk function: med(a, n) is the median of a[1..n] (sorts a)
MEDIAN_AWK='
function med(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'
