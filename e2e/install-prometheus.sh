#!/usr/bin/env bash
# Installs a real Prometheus server (Debian's `prometheus` package) for tests/metrics_e2e.rs.
# The test starts its own instance on a loopback port with its own config; the packaged
# service is not needed and is stopped if the package started it. Idempotent.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus
# The package may start a system service on :9090; the tests use their own instance.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
prometheus --version | head -1
