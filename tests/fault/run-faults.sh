#!/bin/bash
# run-faults.sh - fault injection against the real mqttd daemon.
#
# Usage: tests/fault/run-faults.sh [SCENARIO...]
#   Scenarios (default: all): kill9-load kill9-session kill9-save disk-full
#   sighup-storm
#
# Environment:
#   MQTTD_BIN          broker binary (default: build/mqttd of this tree)
#   MQTTD_SANITIZED=1  the binary is an ASan build: RSS checks are skipped
#   FAULT_SAVE_ROUNDS  kill -9 during save rounds (default 20)
#   FAULT_HUPS         SIGHUP reloads (default 500)
#   FAULT_TIMEOUT      per-scenario time limit in seconds (default 120)
#
# Loopback only; every scenario is bounded in count and time. Persistence
# runs in snapshot mode with autosave_interval 1. The disk-full scenario
# mounts a 256 KiB tmpfs and is skipped (exit 77) when it cannot.
# Prints one line per scenario, the RESULT figures each measured, and
# "N passed, N failed, N skipped"; exits non-zero when any scenario failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
export MQTTD_BIN=${MQTTD_BIN:-$src/build/mqttd}
export MQTTD_SOURCE_DIR=$src
# the scenarios need only the Python standard library
py=${PYTHON:-python3}
limit=${FAULT_TIMEOUT:-120}

if [ ! -x "$MQTTD_BIN" ]; then
    echo "run-faults.sh: no broker binary at $MQTTD_BIN (build first)" >&2
    exit 2
fi

if [ $# -gt 0 ]; then
    scenarios=("$@")
else
    scenarios=(kill9-load kill9-session kill9-save disk-full sighup-storm)
fi

passed=0 failed=0 skipped=0
start_all=$(date +%s)
for sc in "${scenarios[@]}"; do
    t0=$(date +%s)
    out=$(timeout -k 5 "$limit" "$py" "$here/faults.py" "$sc" 2>&1)
    rc=$?
    dt=$(($(date +%s) - t0))
    case $rc in
    0)
        passed=$((passed + 1))
        echo "PASS $sc (${dt}s)"
        ;;
    77)
        skipped=$((skipped + 1))
        echo "SKIP $sc (${dt}s)"
        ;;
    124 | 137)
        failed=$((failed + 1))
        echo "FAIL $sc: timed out after ${limit}s"
        ;;
    *)
        failed=$((failed + 1))
        echo "FAIL $sc (${dt}s, status $rc)"
        ;;
    esac
    # figures and reasons; the full output only on failure
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
        printf '%s\n' "$out" | grep -E '^(RESULT|SKIP):' | sed 's/^/    /'
    else
        printf '%s\n' "$out" | tail -n 60 | sed 's/^/    /'
    fi
done
echo "$passed passed, $failed failed, $skipped skipped ($(($(date +%s) - start_all))s)"
[ "$failed" -eq 0 ]
