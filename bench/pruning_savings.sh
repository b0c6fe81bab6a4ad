#!/usr/bin/env bash
# Pruning-savings benchmark: the digits study (examples/digits) run locally with the pruners
# none, median, successiveHalving and hyperband; same TPE seed and trial count for each, for
# several seeds. Prints a Markdown table of total epochs run, wall time and best val_loss.
#
#   bash bench/pruning_savings.sh                 # 3 seeds x 30 trials, parallelism 2
#   SEEDS="1 2 3" PRUNERS_TO_RUN="none median" TRIALS=30 PARALLELISM=2 SAMPLER=random OUT=target/bench-pruning bash bench/pruning_savings.sh
#
# SAMPLER=random (the default) proposes the same configurations for every pruner (a trial's
# params depend only on the seed and its number), so the savings and the quality loss come
# from pruning alone; SAMPLER=tpe measures pruning together with TPE (whose later proposals
# depend on what earlier trials reported, hence on the pruner).
#
# Target: median and successiveHalving save >= 60% of the epochs with a best val_loss within
# 0.5% (relative) of the `none` run. Needs the examples' venv (bash examples/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SEEDS="${SEEDS:-1 2 3}"
TRIALS="${TRIALS:-30}"
SAMPLER="${SAMPLER:-random}"
PARALLELISM="${PARALLELISM:-2}"
OUT="${OUT:-$root/target/bench-pruning-$SAMPLER}"
VENV="${VENV:-$root/.venv}"

if [ -z "${LOPPER:-}" ]; then
  cargo build --release --quiet --bin lopper
  LOPPER="$root/target/release/lopper"
fi
[ -x "$VENV/bin/python" ] || bash examples/setup.sh
export PATH="$VENV/bin:$PATH"
mkdir -p "$OUT"

declare -A PRUNERS=(
  [none]='{none: {}}'
  # median: no warm-up and a short startup. Every trial is judged from its first epoch on, and
  # once pruning starts the completed trials are the survivors, so the median keeps rising.
  [median]='{median: {startupTrials: 2, warmupSteps: 0}}'
  # The cautious setting (5 startup trials, 2 warm-up epochs) for comparison: ~35% here.
  [medianCautious]='{median: {startupTrials: 5, warmupSteps: 2}}'
  [successiveHalving]='{successiveHalving: {minResource: 2, reductionFactor: 3}}'
  [hyperband]='{hyperband: {minResource: 2, maxResource: 20, reductionFactor: 3}}'
  [percentile25]='{percentile: {percentile: 25.0, startupTrials: 5, warmupSteps: 2}}'
)
# PRUNERS_TO_RUN="none percentile25" runs a subset (`none` is the baseline of the table).
ORDER="${PRUNERS_TO_RUN:-none median successiveHalving hyperband}"

for seed in $SEEDS; do
  for p in $ORDER; do
    res="$OUT/seed$seed-$p.json"
    if [ -s "$res" ] && [ "${FORCE:-0}" != 1 ]; then
      echo "seed $seed $p: $res exists (FORCE=1 reruns)" >&2
      continue
    fi
    study="$OUT/seed$seed-$p.yaml"
    sed -e "s|^  sampler: .*|  sampler: {$SAMPLER: {seed: $seed}}|" \
        -e "s|^  pruner: .*|  pruner: ${PRUNERS[$p]}|" \
        -e "s|^  name: digits|  name: digits-$p-$seed|" \
        examples/digits/study.yaml > "$study"
    echo "seed $seed $p ..." >&2
    start=$(date +%s.%N)
    "$LOPPER" run "$study" --no-progress --max-trials "$TRIALS" --parallelism "$PARALLELISM" \
      --workdir "$root/examples/digits" --output "$res.tmp" > "$OUT/seed$seed-$p.log" 2>&1 || true
    end=$(date +%s.%N)
    python3 - "$res.tmp" "$res" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["wallSeconds"] = float(sys.argv[4]) - float(sys.argv[3])
json.dump(r, open(sys.argv[2], "w"))
PY
    rm -f "$res.tmp"
  done
done

# The table shows every result in $OUT (earlier runs of other pruners included).
python3 - "$OUT" "$SEEDS" "none median successiveHalving hyperband percentile25 medianCautious" <<'PY'
import json, os, statistics, sys
out, seeds, order = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
rows = {}
for p in order:
    for s in seeds:
        f = os.path.join(out, f"seed{s}-{p}.json")
        if os.path.exists(f):
            rows[(p, s)] = json.load(open(f))
def best(r):
    return r["best"]["value"] if r.get("best") else float("nan")
print(f"| pruner | seed | trials (complete/pruned/failed) | epochs run | epochs saved vs none | wall time (s) | best val_loss | vs none |")
print("|---|---|---|---|---|---|---|---|")
summary = {}
for p in order:
    for s in seeds:
        r = rows.get((p, s))
        if r is None:
            continue
        base = rows.get(("none", s))
        n = {k: sum(1 for t in r["trials"] if t["state"] == k) for k in ("complete", "pruned", "failed")}
        epochs = r["stepsRun"]
        saved = 1 - epochs / base["stepsRun"] if base else float("nan")
        rel = best(r) / best(base) - 1 if base else float("nan")
        summary.setdefault(p, []).append((epochs, saved, r["wallSeconds"], best(r), rel))
        print(f"| {p} | {s} | {n['complete']}/{n['pruned']}/{n['failed']} | {epochs} | {saved:.0%} | {r['wallSeconds']:.0f} | {best(r):.4f} | {rel:+.2%} |")
print()
print("| pruner | mean epochs run | mean epochs saved | mean wall time (s) | mean best val_loss | mean best vs none | target |")
print("|---|---|---|---|---|---|---|")
for p, xs in summary.items():
    m = lambda i: statistics.mean(x[i] for x in xs)
    worst_rel = max(x[4] for x in xs)
    target = ""
    if p in ("median", "successiveHalving", "percentile25"):
        ok = m(1) >= 0.60 and worst_rel <= 0.005
        target = ("met" if ok else "missed") + f" (saved {m(1):.0%}, worst best {worst_rel:+.2%})"
    print(f"| {p} | {m(0):.0f} | {m(1):.0%} | {m(2):.0f} | {m(3):.4f} | {m(4):+.2%} | {target} |")
PY
