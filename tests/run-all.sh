#!/usr/bin/env bash
# run-all.sh - the project's whole test command: install what is missing,
# build the normal and the ASan+UBSan trees with -Werror, run every test
# through ctest in both, then the short fuzz runs. Run as root from any
# directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash tests/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON \
    -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
cmake --build build-asan -j"$jobs"

# development certificates for the TLS tests and the quick start
bash certs/mkcerts.sh >/dev/null

status=0
echo "== ctest (normal build)"
(cd build && ctest --output-on-failure -j2) || status=1
echo "== ctest (ASan + UBSan build)"
(cd build-asan && MQTTD_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j2) || status=1

echo "== fault tests (kill -9, disk full, reload storm)"
MQTTD_BIN=build/mqttd bash tests/fault/run-faults.sh || status=1

echo "== short fuzz runs"
bash tests/fuzz/run-fuzz.sh || status=1

echo "== static analysis (cppcheck, clang-tidy)"
bash tests/static-analysis.sh build || status=1
exit $status
