#!/usr/bin/env bash
# run-fuzz.sh - build every libFuzzer harness with clang (ASan+UBSan) and
# run each for a short, bounded time (FUZZ_SECONDS each, default 7 s; about
# 50 s in all). Longer runs: FUZZ_SECONDS=600 bash tests/fuzz/run-fuzz.sh.
# Crashes are written to build-fuzz/crashes/; a crash fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build-fuzz
secs=${FUZZ_SECONDS:-7}
mkdir -p "$out/crashes"
CC=${CC_FUZZ:-clang}
CFLAGS=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -D_GNU_SOURCE -Iinclude)
SSL=(-lssl -lcrypto)

build() { # name sources...
    local name=$1; shift
    "$CC" "${CFLAGS[@]}" "$@" "tests/fuzz/$name.c" -o "$out/$name" "${SSL[@]}"
}
build fuzz_codec src/mqtt/mqtt_codec.c src/util/util.c
build fuzz_conf src/conf/conf.c src/conf/conf_bridge.c src/conf/bridge_topic.c src/conf/pkcs11_uri.c src/util/util.c src/util/cidr.c src/broker/msg.c
build fuzz_topic src/mqtt/topic.c src/broker/router.c src/broker/retain.c src/broker/msg.c src/util/util.c src/util/hashmap.c
build fuzz_passwd src/auth/passwd.c src/util/util.c src/broker/msg.c
build fuzz_acl src/auth/acl.c src/mqtt/topic.c src/util/util.c src/broker/msg.c
build fuzz_cert_identity src/auth/auth_mtls.c src/util/util.c src/broker/msg.c
build fuzz_proxy_proto src/net/proxy_proto.c src/util/util.c src/broker/msg.c
build fuzz_http_parse src/net/http_parse.c
"$CC" "${CFLAGS[@]}" tests/fuzz/fuzz_ws.c src/net/transport_ws.c \
    src/net/http_parse.c src/util/log.c src/util/util.c -o "$out/fuzz_ws" \
    "${SSL[@]}" -lwslay -lcjson
build fuzz_pkcs11_uri src/conf/pkcs11_uri.c src/util/util.c
build fuzz_ocsp src/net/ocsp.c src/util/util.c
# fuzz_ocsp: the OCSP test PKI, and real `openssl ocsp` answers as seeds
pki="$out/ocsp-pki"
bash certs/mkcerts.sh --ocsp=http://127.0.0.1:9/ "$pki" >/dev/null
mkdir -p "$out/corpus-fuzz_ocsp"
for c in client-good client-revoked client-unknown; do
    openssl ocsp -issuer "$pki/ocsp/ca.crt" -cert "$pki/ocsp/$c.crt" \
        -no_nonce -reqout "$pki/req-$c.der" >/dev/null 2>&1
    for signer in ocsp-signer ca; do
        openssl ocsp -index "$pki/ocsp/index.txt" -CA "$pki/ocsp/ca.crt" \
            -rsigner "$pki/ocsp/$signer.crt" -rkey "$pki/ocsp/$signer.key" \
            -reqin "$pki/req-$c.der" -respout "$out/corpus-fuzz_ocsp/seed-$c-$signer" \
            -nmin 60 >/dev/null 2>&1
    done
done
export MQTTD_FUZZ_OCSP_DIR="$pki/ocsp"
build fuzz_cluster_wire src/cluster/cluster_wire.c src/mqtt/topic.c src/util/util.c
# The core library's sources (CORE_SRCS in CMakeLists.txt: every layer
# below src/daemon) less src/net/conn.c, which mem_conn.c replaces: read
# from CMakeLists.txt so a new module cannot be left out here
# (tests/CMakeLists.txt does the same for the replay test).
mapfile -t SESSION_CORE < <(sed -n '/^set(CORE_SRCS/,/)/p' CMakeLists.txt |
    grep -o 'src/[a-z_0-9/]*\.c' | grep -v -x -e src/net/conn.c -e src/broker/bridge.c)
[ "${#SESSION_CORE[@]}" -gt 10 ] || { echo "run-fuzz.sh: CORE_SRCS not found"; exit 1; }
"$CC" "${CFLAGS[@]}" tests/fuzz/fuzz_session.c tests/fuzz/mem_conn.c \
    "${SESSION_CORE[@]}" -o "$out/fuzz_session" "${SSL[@]}" -lev -lcjson -lm -lpthread -lwslay -lcares
"$CC" -g -O1 -D_GNU_SOURCE -Iinclude tests/fuzz/gen_codec_seeds.c src/mqtt/mqtt_codec.c \
    src/util/util.c -o "$out/gen_codec_seeds"

status=0
for h in fuzz_codec fuzz_conf fuzz_topic fuzz_passwd fuzz_acl fuzz_cert_identity \
    fuzz_pkcs11_uri fuzz_session fuzz_proxy_proto fuzz_http_parse fuzz_ocsp \
    fuzz_cluster_wire fuzz_ws; do
    corpus="$out/corpus-$h"
    mkdir -p "$corpus"
    if [ "$h" = fuzz_session ]; then
        find tests/fuzz/session-seeds tests/fuzz/session-regressions -type f \
            ! -name '*.md' -exec cp {} "$corpus"/ \;
    fi
    if [ "$h" = fuzz_proxy_proto ]; then cp tests/fuzz/proxy-seeds/* "$corpus"/; fi
    if [ "$h" = fuzz_http_parse ]; then
        find tests/fuzz/http-seeds -type f ! -name '*.md' -exec cp {} "$corpus"/ \;
    fi
    if [ "$h" = fuzz_ws ]; then
        find tests/fuzz/ws-seeds -type f ! -name '*.md' -exec cp {} "$corpus"/ \;
    fi
    if [ "$h" = fuzz_codec ]; then "$out/gen_codec_seeds" "$corpus" >/dev/null; fi
    if "$out/$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/crashes/$h-" -print_final_stats=1 "$corpus" \
        >"$out/$h.log" 2>&1; then
        echo "fuzz $h: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$h.log" | grep -o '[0-9]*$') runs in ${secs}s)"
    else
        echo "fuzz $h: FAILED, see $out/$h.log"; tail -30 "$out/$h.log"; status=1
    fi
done
exit $status
