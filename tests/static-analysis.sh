#!/usr/bin/env bash
# static-analysis.sh - check the C formatting against .clang-format, that
# every layer of src/ includes only the layers below it, run cppcheck and
# clang-tidy over src/, and fail on any finding. Part of the test command; installs nothing (tests/install-deps.sh
# does). About a minute on two cores.
#
#   clang-format  every C file of src/, include/, tests/, bench/.
#   layers     the #include "..." lines of src/*/ and include/ against the
#              layer order (below).
#   cppcheck   warning, performance and portability checks; false positives
#              are listed, each with its reason, in
#              tests/cppcheck-suppressions.txt.
#   clang-tidy the checks in .clang-tidy (clang static analyzer, bugprone,
#              cert, misc, ...), all as errors, using the compile commands of
#              build/ (or of a throw-away configure if build/ has none).
#
# Usage: tests/static-analysis.sh [build-dir]     (default: build)
# Environment: JOBS (parallel clang-tidy runs, default nproc),
#              CLANG_TIDY, CPPCHECK (tool names or paths).
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
jobs=${JOBS:-$(nproc)}
CPPCHECK=${CPPCHECK:-cppcheck}
CLANG_TIDY=${CLANG_TIDY:-}

die() {
    echo "static-analysis: $*" >&2
    exit 2
}

# ---- tools -----------------------------------------------------------------
command -v "$CPPCHECK" >/dev/null 2>&1 ||
    die "cppcheck not found; install it with 'apt-get install cppcheck'" \
        "(tests/install-deps.sh does)"
if [ -z "$CLANG_TIDY" ]; then
    for t in clang-tidy clang-tidy-14 clang-tidy-15 clang-tidy-16; do
        if command -v "$t" >/dev/null 2>&1; then
            CLANG_TIDY=$t
            break
        fi
    done
fi
if [ -z "$CLANG_TIDY" ] || ! command -v "$CLANG_TIDY" >/dev/null 2>&1; then
    die "clang-tidy not found; install it with 'apt-get install clang-tidy'" \
        "(tests/install-deps.sh does)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqttd-static.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- compile commands ------------------------------------------------------
if [ ! -f "$builddir/compile_commands.json" ]; then
    echo "static-analysis: no $builddir/compile_commands.json;" \
        "configuring a temporary tree"
    command -v cmake >/dev/null 2>&1 || die "cmake not found"
    cmake -S . -B "$tmp/build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
        >"$tmp/cmake.log" 2>&1 || {
        cat "$tmp/cmake.log" >&2
        die "cmake configure failed"
    }
    builddir=$tmp/build
fi

# largest first, so the slowest files do not start last in the parallel run
mapfile -t sources < <(find src -name '*.c' -printf '%s %p\n' |
    sort -rn | cut -d' ' -f2-)
[ ${#sources[@]} -gt 0 ] || die "no sources in src/"

status=0

# ---- clang-format ----------------------------------------------------------
# The committed .clang-format is followed by every C file of the project.
echo "== clang-format"
fmt_log=$(mktemp)
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
command -v "$CLANG_FORMAT" >/dev/null 2>&1 ||
    die "clang-format not found; install it with 'apt-get install clang-format'" \
        "(tests/install-deps.sh does)"
mapfile -t fmt_files < <(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' \
    'tests/*.c' 'tests/*.h' 'bench/*.c' 2>/dev/null ||
    find src include tests bench -name '*.[ch]' -not -path '*/node_modules/*')
if "$CLANG_FORMAT" --dry-run --Werror "${fmt_files[@]}" 2>"$fmt_log"; then
    echo "clang-format: clean, ${#fmt_files[@]} files"
else
    grep -o '^[^:]*:[0-9]*' "$fmt_log" | sort -u | head -20
    echo "clang-format: FAILED (run clang-format -i on the files above)"
    status=1
fi
rm -f "$fmt_log"

# ---- layers ----------------------------------------------------------------
# Each directory of src/ includes only its own headers and those of the
# layers below it (README.md, "Layout"):
#   daemon > broker > net, auth > mqtt, conf > util
#   daemon > cluster > broker (cluster mode: src/cluster)
# A header belongs to the directory holding the .c of its name
# (include/conn.h: src/net/conn.c) or holding the header itself (the
# private src/net/tls_ssl.h). include/*.h are held to their module's
# layer too. The tools at the top of src/ may include anything.
echo "== layers"
start=$SECONDS
declare -A allowed=(
    [util]="util"
    [conf]="conf util"
    [mqtt]="mqtt util"
    [net]="net conf util"
    [auth]="auth mqtt conf util"
    [broker]="broker net auth mqtt conf util"
    [cluster]="cluster broker net auth mqtt conf util"
    [daemon]="daemon broker net auth mqtt conf util"
)
allowed[daemon]+=" cluster"
layer_status=0
layer_of() { # header file name -> its layer, or nothing
    local d
    for d in src/*/; do
        d=${d%/}
        if [ -f "$d/${1%.h}.c" ] || [ -f "$d/$1" ]; then
            echo "${d#src/}"
            return
        fi
    done
}
check_includes() { # file layer
    local h hl
    while read -r h; do
        h=${h##*/}
        hl=$(layer_of "$h")
        if [ -z "$hl" ]; then
            echo "$1: includes \"$h\", which belongs to no layer" \
                "(no src/*/${h%.h}.c)"
            layer_status=1
        elif [[ " ${allowed[$2]} " != *" $hl "* ]]; then
            echo "$1: layer $2 includes \"$h\" of layer $hl"
            layer_status=1
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1")
}
for d in src/*/; do
    l=$(basename "$d")
    if [ -z "${allowed[$l]:-}" ]; then
        echo "src/$l: not a known layer (add it to tests/static-analysis.sh)"
        layer_status=1
        continue
    fi
    for f in "$d"*.[ch]; do
        check_includes "$f" "$l"
    done
done
for f in include/*.h; do
    l=$(layer_of "$(basename "$f")")
    if [ -z "$l" ]; then
        echo "$f: belongs to no layer (no src/*/$(basename "$f" .h).c)"
        layer_status=1
    else
        check_includes "$f" "$l"
    fi
done
if [ $layer_status -ne 0 ]; then
    echo "layers: FAILED (move the code to the right layer, or pass a" \
        "callback down as src/net/listener.c does)"
    status=1
else
    echo "layers: clean ($((SECONDS - start)) s)"
fi

# ---- cppcheck --------------------------------------------------------------
echo "== cppcheck ($("$CPPCHECK" --version))"
start=$SECONDS
if ! "$CPPCHECK" --enable=warning,performance,portability --inline-suppr \
    --suppressions-list=tests/cppcheck-suppressions.txt \
    --error-exitcode=1 --std=c11 -D_GNU_SOURCE -Iinclude \
    --library=posix --library=openssl -j"$jobs" -q \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]\n{code}' \
    "${sources[@]}"; then
    echo "cppcheck: FAILED (fix the finding, or suppress a false positive" \
        "in tests/cppcheck-suppressions.txt with a reason)"
    status=1
else
    echo "cppcheck: clean ($((SECONDS - start)) s)"
fi

# ---- clang-tidy ------------------------------------------------------------
echo "== clang-tidy ($("$CLANG_TIDY" --version | sed -n 's/.*version /version /p' |
    head -n1))"
start=$SECONDS
mkdir -p "$tmp/tidy"
export CLANG_TIDY builddir tmp
# One process per file, $jobs at a time; each writes its own log so the
# output of parallel runs does not interleave. -UNDEBUG keeps assert()s
# visible to the analyzer (the release build defines NDEBUG).
# shellcheck disable=SC2016 # the inner script expands its own variables
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c '
    f=$1
    log=$tmp/tidy/$(basename "$f").log
    if ! "$CLANG_TIDY" -p "$builddir" --quiet --use-color=false \
        --extra-arg=-UNDEBUG --extra-arg=-Wno-unknown-warning-option \
        "$f" >"$log" 2>&1; then
        echo "$f" >>"$tmp/tidy/failed"
    fi
' sh {}
for f in "${sources[@]}"; do
    log=$tmp/tidy/$(basename "$f").log
    # drop the "N warnings generated." chatter of clean files
    grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$log" || true
done
if [ -s "$tmp/tidy/failed" ]; then
    echo "clang-tidy: FAILED in: $(tr '\n' ' ' <"$tmp/tidy/failed")"
    echo "  (fix the finding; a false positive gets a NOLINT(check) comment" \
        "with the reason, or the check is disabled in .clang-tidy with one)"
    status=1
else
    echo "clang-tidy: clean, ${#sources[@]} files ($((SECONDS - start)) s)"
fi

exit $status
