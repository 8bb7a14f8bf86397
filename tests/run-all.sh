#!/usr/bin/env bash
# run-all.sh - the project's whole test command: install what is missing,
# build the normal and the ASan+UBSan trees with -Werror, run every test
# through ctest in both, the threaded tests under TSan, then the fault,
# fuzz and static-analysis passes. Run as root from any
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

echo "== threads > 1 under ThreadSanitizer"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON \
    -DENABLE_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target mqttd mqttd-passwd test_hub
(cd build-tsan && MQTTD_SANITIZED=1 \
    TSAN_OPTIONS="halt_on_error=0 suppressions=$root/tests/tsan-suppressions.txt" \
    ctest --output-on-failure -j2 -R 'unit_hub|integ_test_threads|integ_threads2_') \
    || status=1

echo "== Debian package: build, lintian, install, run, upgrade, remove, purge"
# (in a mount namespace over an overlay of /: the machine is not changed)
/usr/bin/python3 tests/package/test_package.py || status=1

echo "== fault tests (kill -9, disk full, reload storm)"
MQTTD_BIN=build/mqttd bash tests/fault/run-faults.sh || status=1

echo "== short fuzz runs"
bash tests/fuzz/run-fuzz.sh || status=1

echo "== static analysis (cppcheck, clang-tidy)"
bash tests/static-analysis.sh build || status=1
exit $status
