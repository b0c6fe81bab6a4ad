#!/usr/bin/env python3
"""Quality at equal compute on real learning curves nobody here wrote: the Learning Curve
Database (LCDB, Mohr et al. 2022; the `lcdb` package on PyPI ships it as CSV). One dataset is
one study, its 20 scikit-learn learners are the configurations, a learner's validation error
over growing training-set sizes (anchors) is its learning curve, one anchor a step.

For every dataset and seed the same trial sequence (the learners in random order, again and
again: the random sampler) is replayed through each setting with the same step budget
(`--budget-trials` full-length trials' worth); a setting's score is the best validation error
of a trial completed within the budget. Our settings run through `lopper replay`, Optuna 5.0's
pruners through its ask/report/should_prune/tell loop on the same curves in the same run, and
the top-K-after-one-step baseline (Egele et al. 2023) is computed here.

    .venv-oracle/bin/python bench/equal_budget.py                  # builds --release first
    .venv-oracle/bin/python bench/equal_budget.py --no-build --lopper PATH --datasets 40 --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))

import gen_cases  # noqa: E402  (Optuna's loop and pruner construction)
import optuna  # noqa: E402

LCDB = "lcdb==0.1.0"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "lopper-bench")


def load_curves() -> dict[int, dict[str, list[float]]]:
    """Validation error by anchor for every (dataset, learner), outer and inner seed 0."""
    parsed = os.path.join(CACHE, "lcdb-accuracy-seed0.json")
    if os.path.exists(parsed):
        with open(parsed) as f:
            return {int(k): v for k, v in json.load(f).items()}
    os.makedirs(CACHE, exist_ok=True)
    sdist = os.path.join(CACHE, "lcdb-0.1.0.tar.gz")
    if not os.path.exists(sdist):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", LCDB, "-d", CACHE], check=True)
    rows: dict[tuple[int, str], list[tuple[int, float]]] = {}
    with tarfile.open(sdist) as tar:
        f = tar.extractfile("lcdb-0.1.0/lcdb/database-accuracy.csv")
        for r in csv.DictReader(io.TextIOWrapper(f)):
            if r["outer_seed"] != "0" or r["inner_seed"] != "0" or not r["score_valid"]:
                continue
            key = (int(r["openmlid"]), r["learner"])
            rows.setdefault(key, []).append((int(r["size_train"]), float(r["score_valid"])))
    out: dict[int, dict[str, list[float]]] = {}
    for (ds, learner), pts in rows.items():
        pts.sort()
        out.setdefault(ds, {})[learner] = [round(1.0 - v, 4) for _, v in pts]
    with open(parsed, "w") as f:
        json.dump(out, f)
    return out


def pick_datasets(curves, n: int, min_anchors: int) -> list[int]:
    """Datasets where at least 15 learners have a curve of the full length (>= min_anchors)."""
    ok = []
    for ds in sorted(curves):
        lengths = [len(c) for c in curves[ds].values()]
        full = max(lengths)
        if full >= min_anchors and sum(1 for x in lengths if x == full) >= 15:
            ok.append(ds)
    return ok[:n]


def sequence(learners: list[str], budget: int, seed: int) -> list[str]:
    """The random sampler: permutations of the learners, enough for `budget` 1-step trials."""
    rng = random.Random(seed)
    out = []
    while len(out) < budget:
        p = list(learners)
        rng.shuffle(p)
        out.extend(p)
    return out[:budget]


def best_within(trials: list[dict], budget: int) -> float:
    """Best value of a trial completed within the budget (trials run one after another)."""
    spent, best = 0, math.inf
    for t in trials:
        spent += t["stepsRun"]
        if spent > budget:
            break
        if t["state"] == "complete" and t["value"] is not None:
            best = min(best, t["value"])
    return best


def replay(lopper: str, case: dict) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(case, f)
    try:
        p = subprocess.run([lopper, "replay", "--input", f.name], capture_output=True,
                           text=True, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(p.stdout)["trials"]


def optuna_trials(case: dict) -> list[dict]:
    out = gen_cases.run_optuna(case)
    for t, c in zip(out, case["trials"]):
        # Steps are 0, 1, ...: a trial pruned at step s ran s + 1 of them.
        t["stepsRun"] = len(c["values"]) if t["prunedAtStep"] is None else t["prunedAtStep"] + 1
    return out


def top_k(seq: list[str], curves: dict[str, list[float]], budget: int, full: int) -> float:
    """Every distinct learner one step (in the sampler's order), then the best K to the end."""
    first = []
    for name in seq:
        if name not in first:
            first.append(name)
    m = min(len(first), budget // 2)
    first = first[:m]
    k = max(1, (budget - m) // max(1, full - 1))
    ranked = sorted(first, key=lambda n: curves[n][0])[:k]
    spent, best = m, math.inf
    for n in ranked:
        spent += len(curves[n]) - 1
        if spent > budget:
            break
        best = min(best, curves[n][-1])
    return best


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=40)
    ap.add_argument("--seeds", type=int, help="seeds (default 3 on LCDB, 5 on digits)")
    ap.add_argument("--budget-trials", type=float, default=4.0,
                    help="budget in full-length trials' worth of steps")
    ap.add_argument("--min-anchors", type=int, default=10)
    ap.add_argument("--skip-datasets", type=int, default=0,
                    help="start after this many datasets (held-out: --skip-datasets 40)")
    ap.add_argument("--first-seed", type=int, default=0, help="held-out seeds: e.g. 3")
    ap.add_argument("--lopper", default=os.path.join(target, "release", "lopper"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", help="write every case's scores here")
    ap.add_argument("--workload", choices=["lcdb", "digits"], default="lcdb")
    dg = ap.add_argument_group("digits (--workload digits)")
    dg.add_argument("--epochs", type=int, default=10, help="epochs of a full-length trial")
    dg.add_argument("--budget", type=int, default=200, help="epoch budget of a study")
    dg.add_argument("--venv", default=os.path.join(ROOT, ".venv"),
                    help="the trainer's venv (created by examples/setup.sh when missing)")
    dg.add_argument("--out", help="folder of the runs' results (default under the target dir)")
    dg.add_argument("--only", action="append", help="run only this setting (repeatable)")
    dg.add_argument("--force", action="append", help="rerun this setting (repeatable)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "lopper"], cwd=ROOT, check=True)
    if args.workload == "digits":
        import equal_budget_digits

        args.seeds = args.seeds or 5
        equal_budget_digits.main(args)
        return

    args.seeds = args.seeds or 3
    curves = load_curves()
    datasets = pick_datasets(curves, args.skip_datasets + args.datasets,
                             args.min_anchors)[args.skip_datasets:]
    ours = {
        "none": lambda L, B: {"none": {}},
        "median": lambda L, B: {"median": {}},
        "percentile": lambda L, B: {"percentile": {"percentile": 25.0}},
        "successiveHalving": lambda L, B: {"successiveHalving": {}},
        "hyperband": lambda L, B: {"hyperband": {}},
        "asha standard": lambda L, B: {"asha": {"mode": "standard", "maxSteps": L,
                                                "budgetSteps": B, "parallelism": 1}},
        "asha aggressive": lambda L, B: {"asha": {"mode": "aggressive", "maxSteps": L,
                                                  "budgetSteps": B, "parallelism": 1}},
        "asha conservative": lambda L, B: {"asha": {"mode": "conservative", "maxSteps": L,
                                                    "budgetSteps": B, "parallelism": 1}},
    }
    theirs = ["median", "percentile", "successiveHalving", "hyperband"]
    rows = []  # one dict of scores per (dataset, seed)
    for ds in datasets:
        cs = curves[ds]
        full = max(len(c) for c in cs.values())
        budget = int(args.budget_trials * full)
        oracle = min(c[-1] for c in cs.values() if len(c) == full)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            seq = sequence(sorted(cs), budget, seed * 7919 + ds)
            trials = [{"values": cs[n]} for n in seq]
            score = {}
            for name, spec in ours.items():
                case = {"study": f"lcdb-{ds}-{seed}", "direction": "minimize",
                        "pruner": spec(full, budget), "trials": trials}
                score[name] = best_within(replay(args.lopper, case), budget)
            for name in theirs:
                case = {"study": f"lcdb-{ds}-{seed}", "direction": "minimize",
                        "pruner": ours[name](full, budget), "trials": trials}
                score[f"optuna {name}"] = best_within(optuna_trials(case), budget)
            score["top-K after 1 step"] = top_k(seq, cs, budget, full)
            rows.append({"dataset": ds, "seed": seed, "anchors": full, "budget": budget,
                         "oracle": oracle, "score": score})
        print(f"dataset {ds}: {full} anchors, budget {budget} steps", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    report(rows, theirs, len(datasets), args)


def report(rows, theirs, n_datasets, args) -> None:
    names = list(rows[0]["score"])
    ranks = {n: [] for n in names}
    for r in rows:
        s = r["score"]
        for n in names:
            ranks[n].append(1 + sum(1 for m in names if s[m] < s[n]))
    cases = len(rows)
    print(f"\nLCDB validation error, {n_datasets} datasets x {args.seeds} seeds = {cases} cases, "
          f"budget {args.budget_trials:g} full-length trials of steps, random order, 1 at a time")
    # Per dataset: a setting's mean best over the seeds against none's and top-K's.
    by_ds: dict[int, list[dict]] = {}
    for r in rows:
        by_ds.setdefault(r["dataset"], []).append(r["score"])

    def ds_mean(scores, n):
        return statistics.mean(min(s[n], 1.0) for s in scores)

    print(f"{'setting':<24}{'median rank':>12}{'>= none':>9}{'> none':>8}{'>= top-K':>10}"
          f"{'mean regret':>13}{'= Optuna':>10}{'datasets >= none, top-K':>25}")
    for n in names:
        ge = sum(1 for r in rows if r["score"][n] <= r["score"]["none"])
        gt = sum(1 for r in rows if r["score"][n] < r["score"]["none"])
        gk = sum(1 for r in rows if r["score"][n] <= r["score"]["top-K after 1 step"])
        regret = statistics.mean(
            min(r["score"][n], 1.0) - r["oracle"] for r in rows)
        same = ""
        if n in theirs:
            same = f"{sum(1 for r in rows if r['score'][n] == r['score']['optuna ' + n])}/{cases}"
        dn = sum(1 for sc in by_ds.values() if ds_mean(sc, n) <= ds_mean(sc, "none") + 1e-12)
        dk = sum(1 for sc in by_ds.values()
                 if ds_mean(sc, n) <= ds_mean(sc, "top-K after 1 step") + 1e-12)
        print(f"{n:<24}{statistics.median(ranks[n]):>12g}{ge:>9}{gt:>8}{gk:>10}"
              f"{regret:>13.4f}{same:>10}{f'{dn}, {dk} of {len(by_ds)}':>25}")


if __name__ == "__main__":
    main()
