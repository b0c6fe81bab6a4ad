#!/usr/bin/env bash
# The operator at scale and through faults: one command.
#
#   bash bench/scale.sh [--small | --hundred | --thousand | --long | --faults] [harness options]
#
#   --small     4 studies x 10 trials, 4 in parallel, 10 steps every 0.5 s, 2 SIGKILLs (CI; a few minutes)
#   --hundred   10 studies x 40 trials, 10 in parallel (100 live), 10 steps every 1 s
#   --thousand  50 studies x 20 in parallel (1,000 live trials), 40 trials each, 10 steps every 5 s
#   --steady    50 studies x 20 trials, all 20 in parallel (1,000 live), 40 steps every 5 s: a long
#               steady state (every trial reporting, none created or finished) measured on its own
#   --long      3 studies x 10 in parallel (30 live), 5,000-step curves reported every 0.2 s
#   --faults    4 studies x 50 trials, 5 SIGKILLs and one kube-apiserver restart
#   anything else is passed to bench/scale/harness.py (`bash bench/scale.sh --help`), e.g.
#   bash bench/scale.sh --studies 10 --trials 40 --parallel 10 --steps 10 --interval 1
#   bash bench/scale.sh --small --lopper /work/lopper-before     (an operator binary built elsewhere)
#
# Brings the local control plane up (e2e/cluster.sh, built once from pinned Go modules), builds
# the release binary (skipped when --lopper names one, or LOPPER_SCALE_NO_BUILD=1), then runs the
# harness: the operator as its own process and identity, the trainers played by a separate Python
# process (stdlib only) over the push endpoint. Exit status 1 when a correctness check fails (it
# says which), 2 on bad usage. Prints a table and one `SUMMARY {json}` line. See bench/scale/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=()
rest=()
own_binary=0
for a in "$@"; do
  case "$a" in
    --small) preset=(--studies 4 --trials 10 --parallel 4 --steps 10 --interval 0.5 --kill 2 --timeout 600 --label small) ;;
    --hundred) preset=(--studies 10 --trials 40 --parallel 10 --steps 10 --interval 1 --timeout 900 --label hundred) ;;
    --thousand) preset=(--studies 50 --trials 40 --parallel 20 --steps 10 --interval 5 --workers 96 --gpus-per-node 128 --timeout 1800 --label thousand) ;;
    --steady) preset=(--studies 50 --trials 20 --parallel 20 --steps 40 --interval 5 --workers 96 --gpus-per-node 128 --timeout 1200 --label steady) ;;
    --long) preset=(--studies 3 --trials 10 --parallel 10 --steps 5000 --interval 0.2 --pruner none --timeout 1800 --label long) ;;
    --faults) preset=(--studies 4 --trials 50 --parallel 5 --steps 10 --interval 0.5 --kill 5 --restart-apiserver --timeout 1200 --label faults) ;;
    --lopper|--lopper=*) own_binary=1; rest+=("$a") ;;
    -h|--help) exec python3 bench/scale/harness.py --help ;;
    *) rest+=("$a") ;;
  esac
done

bash e2e/cluster.sh up >/dev/null
if [[ $own_binary == 0 && "${LOPPER_SCALE_NO_BUILD:-0}" != 1 ]]; then
  cargo build --release --locked --quiet
fi
exec python3 bench/scale/harness.py "${preset[@]}" "${rest[@]}"
