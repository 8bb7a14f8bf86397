#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages mqttd needs to build,
# run and test, skipping what is already installed. Run as root.
set -euo pipefail

PKGS=(build-essential cmake pkg-config libssl-dev openssl libev-dev
      libcjson-dev libcmocka-dev mosquitto mosquitto-clients python3
      clang libclang-rt-14-dev systemd cppcheck clang-tidy python3-paho-mqtt)
# WebSockets: framing library; headless Chromium for the browser test
PKGS+=(libwslay-dev chromium)

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
