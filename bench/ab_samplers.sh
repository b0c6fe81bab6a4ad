#!/usr/bin/env bash
# A/B timing of sampler builds on a noisy machine: runs each given `samplers` bench binary in
# turn, ROUNDS times, and prints the median and minimum CPU time per TPE suggestion with 1,000
# trials of history. Interleaving the runs lets both builds see the same machine load.
#
#   cargo bench --bench samplers --no-run     # note the binary path it prints; copy it aside
#   bash bench/ab_samplers.sh hartmann6 /tmp/samplers-before /tmp/samplers-after
set -euo pipefail
fn="${1:?function: branin | hartmann6 | rosenbrock4 | mixed}"
shift
ROUNDS="${ROUNDS:-5}"
declare -A res
for _ in $(seq "$ROUNDS"); do
  for b in "$@"; do
    v=$("$b" --seeds 0 --reps 50 --only "$fn:tpe" | grep '"history":1000' |
      grep -o 'seconds_per_suggestion":[0-9.e+-]*' | cut -d: -f2)
    res[$b]="${res[$b]:-} $v"
  done
done
for b in "$@"; do
  # shellcheck disable=SC2086
  python3 -c 'import statistics, sys; v = [float(x) * 1e6 for x in sys.argv[2:]]; print(f"{sys.argv[1]}: median {statistics.median(v):.0f} us, min {min(v):.0f} us")' "$b" ${res[$b]}
done
