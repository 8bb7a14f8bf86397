#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages mqttd needs to build,
# run and test, skipping what is already installed. Run as root.
set -euo pipefail

PKGS=(build-essential cmake pkg-config libssl-dev openssl libev-dev
      libcjson-dev libcmocka-dev mosquitto mosquitto-clients python3
      clang libclang-rt-14-dev systemd cppcheck clang-tidy clang-format python3-paho-mqtt
      prometheus chromium softhsm2 libengine-pkcs11-openssl)
# the Debian package test (tests/package/test_package.py)
PKGS+=(debhelper dpkg-dev lintian logrotate)
# HAProxy 2.6 in front of mqttd for tests/integration/test_proxy_protocol.py
# (run there as a child on ephemeral ports, never as the system service)
PKGS+=(haproxy)
# OCSP tests: stale answers built by the responder front (test_ocsp.py)
PKGS+=(python3-cryptography)
# cluster mode (docs/cluster.md): the NATS C client and a NATS server for the tests
PKGS+=(nats-server libnats-dev)
# WebSockets: framing library (headless Chromium above, for the browser tests)
PKGS+=(libwslay-dev)
# non-blocking host name resolution (src/net/resolve.c)
PKGS+=(libc-ares-dev)

# node and npm: whatever is on PATH (e.g. a newer nodejs that bundles npm),
# Debian's packages otherwise
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# MQTT.js for the interoperability tests and puppeteer-core for the browser
# test (tests/integration/test_websockets.py), pinned by package-lock.json
interop="$(cd "$(dirname "$0")" && pwd)/interop"
if [ ! -d "$interop/node_modules/mqtt" ] ||
    [ ! -d "$interop/node_modules/puppeteer-core" ]; then
    echo "install-deps: npm ci in tests/interop"
    (cd "$interop" && npm ci --no-audit --no-fund >/dev/null)
fi
# Debian starts a system mosquitto on 1883 when the package is installed;
# the tests never use fixed ports, but stop it so it cannot confuse anyone.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    systemctl stop mosquitto || true
fi
exit 0
