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

# The operator image (e2e/image.sh, tests/image.rs): built without a Docker daemon by buildah,
# run by podman with runc (crun refuses this machine's hybrid cgroups), or unpacked and run with
# unshare + chroot (util-linux, coreutils); jq reads the OCI config; skopeo pushes it (docs);
# ca-certificates go into the image.
image_need=()
for pkg in buildah podman runc skopeo jq ca-certificates; do
  dpkg -s "$pkg" >/dev/null 2>&1 || image_need+=("$pkg")
done
if ((${#image_need[@]})); then
  echo "install-deps: installing ${image_need[*]}"
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${image_need[@]}"
else
  echo "install-deps: buildah, podman, runc, skopeo, jq, ca-certificates present"
fi

# cargo-deny (licenses, advisories, duplicate versions: e2e/supply-chain.sh), built once from
# crates.io into ~/.cargo/bin; a pinned version so its config format does not move under us.
CARGO_DENY_VERSION="0.20.2"
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  echo "install-deps: cargo install cargo-deny $CARGO_DENY_VERSION (once: 211 crates, ~20 min on 2 busy cores)"
  nice -n 5 cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
fi

# Headless Chromium for the dashboard's browser tests (tests/ui_*.rs, DevTools over a pipe).
command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
