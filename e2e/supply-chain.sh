#!/usr/bin/env bash
# Supply-chain checks run by .ci/run (deny.toml says what is allowed):
#   1. cargo deny: licenses, bans (duplicate versions, wildcards), sources: all offline;
#   2. advisories against the RustSec database: fetched when reachable; else a copy already on the
#      machine (a git clone of RustSec/advisory-db where cargo-deny keeps it, see $db below) is
#      used as it is; else skipped with a message saying so (these machines reach no git host);
#   3. reproducible build: the release binary built twice (the second time after `cargo clean -p
#      lopper`, dependencies kept) must have the same SHA-256. Honours CARGO_TARGET_DIR.
#      LOPPER_SKIP_REPRO=1 skips it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[supply-chain %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v cargo-deny >/dev/null || { log "cargo-deny missing: bash e2e/install-deps.sh"; exit 1; }

log "cargo deny check licenses bans sources"
cargo deny --locked check licenses bans sources

# Where cargo-deny keeps the default database (a git clone of RustSec/advisory-db).
db="$HOME/.cargo/advisory-dbs/advisory-db-3157b0e258782691"
fetch_log="$(mktemp)"
trap 'rm -f "$fetch_log"' EXIT
if timeout 120 cargo deny --locked check advisories 2>"$fetch_log"; then
  log "advisories: ok (database fetched)"
elif grep -q 'failed to fetch advisory database' "$fetch_log"; then
  if [[ -d "$db/crates" ]]; then
    log "advisories: the database cannot be fetched; checking against the copy in $db ($(git -C "$db" log -1 --format=%cs 2>/dev/null || echo 'date unknown'))"
    cargo deny --locked --offline check advisories
  else
    log "advisories: SKIPPED: the RustSec advisory database cannot be fetched from this machine and there is no copy in $db:"
    grep -E 'fatal|ERROR' "$fetch_log" | head -n 2 >&2 || true
  fi
else
  # The database was read and something was found: that is a failure.
  cat "$fetch_log" >&2
  exit 1
fi

if [[ "${LOPPER_SKIP_REPRO:-0}" == 1 ]]; then
  log "reproducible build: skipped (LOPPER_SKIP_REPRO=1)"
  exit 0
fi
target="${CARGO_TARGET_DIR:-target}"
log "reproducible build: cargo build --release twice"
cargo build --release --locked --bin lopper
first="$(sha256sum "$target/release/lopper" | cut -d' ' -f1)"
cp "$target/release/lopper" "$target/release/lopper.first"
cargo clean --release -p lopper
cargo build --release --locked --bin lopper
second="$(sha256sum "$target/release/lopper" | cut -d' ' -f1)"
if [[ "$first" != "$second" ]]; then
  log "reproducible build: FAILED: $first then $second (kept the first as $target/release/lopper.first)"
  exit 1
fi
rm -f "$target/release/lopper.first"
log "reproducible build: ok, sha256 $first both times"
