#!/usr/bin/env bash
# Installs what e2e/cluster.sh needs besides Go (idempotent; CI calls it before `cluster.sh up`).
#   openssl   certificates and service-account keys
#   curl      readiness probes (etcd /health, apiserver /readyz)
#   flock, setsid (util-linux), sha256sum/base64 (coreutils)
# Go itself (>= 1.26, for the one-time build) is expected on the machine.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v flock >/dev/null || need+=(util-linux)
command -v setsid >/dev/null || need+=(util-linux)
command -v sha256sum >/dev/null || need+=(coreutils)
command -v base64 >/dev/null || need+=(coreutils)

if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
else
  echo "install-deps: openssl, curl, flock, setsid present"
fi

if ! command -v go >/dev/null; then
  echo "install-deps: WARNING: go is not on PATH; e2e/cluster.sh build needs Go >= 1.26 unless the binaries are cached" >&2
fi
