#!/usr/bin/env bash
# Builds the pinned helm 4 (e2e/tools/helm4: helm.sh/helm/v4) from the Go module proxy, once, and
# prints its path. Cached under ~/.cache/lopper-helm/<key>/helm, <key> hashing the module files and
# the ldflags, so a clean clone reuses it and a new pin builds beside it. Idempotent; concurrent
# callers wait on a lock instead of building twice.
#
#   bash e2e/helm.sh          # build if needed, print the binary's path
#   "$(bash e2e/helm.sh)" version
set -euo pipefail

HELM_VERSION="v4.3.2"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD_DIR="$REPO/e2e/tools/helm4"
CACHE_ROOT="${LOPPER_HELM_CACHE:-$HOME/.cache/lopper-helm}"
# The version string helm prints; -s -w keep the binary small, -trimpath keeps paths out of it.
LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}"

log() { printf '[helm.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

key="$(cat "$MOD_DIR/go.mod" "$MOD_DIR/go.sum" <(printf '%s\n' "$LDFLAGS" trimpath) | sha256sum | cut -c1-16)"
dir="$CACHE_ROOT/$key"
bin="$dir/helm"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null || { log "go is not installed (needed once, to build helm)"; exit 1; }
  mkdir -p "$dir"
  exec 9>"$dir/build.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    log "building helm $HELM_VERSION into $dir (first time: a few minutes on 2 cores)"
    start=$(date +%s)
    tmp="$dir/.helm.tmp.$$"
    if ! (cd "$MOD_DIR" && nice -n "${LOPPER_E2E_BUILD_NICE:-5}" \
          go build -mod=readonly -trimpath -ldflags "$LDFLAGS" -o "$tmp" helm.sh/helm/v4/cmd/helm); then
      rm -f "$tmp"
      log "building helm failed"
      exit 1
    fi
    mv -f "$tmp" "$bin"
    log "built in $(( $(date +%s) - start ))s"
  fi
  exec 9>&-
fi
echo "$bin"
