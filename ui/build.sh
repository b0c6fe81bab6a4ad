#!/usr/bin/env bash
# Rebuilds ui/dist/ (embedded in the binary by src/ui/assets.rs) from the npm packages pinned in
# ui/package-lock.json. `--check` only compares: exit 1 when the committed ui/dist/ is stale.
# The dashboard's own code (ui/src/) is plain JavaScript embedded as written: no bundler.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error >&2
out=dist
if [[ "${1:-}" == "--check" ]]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"
cp node_modules/uplot/dist/uPlot.iife.min.js "$out/uplot.min.js"
cp node_modules/uplot/dist/uPlot.min.css "$out/uplot.min.css"
cp node_modules/uplot/LICENSE "$out/uplot.LICENSE"
if [[ "${1:-}" == "--check" ]]; then
  diff -r "$out" dist >&2 || { echo "ui/dist is stale: run bash ui/build.sh" >&2; exit 1; }
  echo "ui/dist is up to date"
fi
