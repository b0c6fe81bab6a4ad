#!/usr/bin/env python3
"""Replays the same learning curves through `lopper replay` and through Optuna 5.0 (in-memory
storage) for the median and successive halving pruners, checks that both prune the same
trials at the same steps, and prints the speed ratios:

* replay alone (1,000 trials x 50 steps): ours as measured by `lopper replay --time` (best of
  20 replays, parsing and printing excluded);
* end to end (3,000 trials x 100 steps): the whole `lopper replay` process, from spawn to
  exit (reading and parsing the JSON input, replaying, writing the JSON output to a pipe;
  best of --runs), with the replay alone beside it.

Optuna's time is always its in-process ask / report / should_prune / tell loop on the same
curves, measured in the same run (best of --optuna-runs).

    .venv-oracle/bin/python bench/pruners_vs_optuna.py            # builds --release first
    .venv-oracle/bin/python bench/pruners_vs_optuna.py --no-build --lopper PATH
    .venv-oracle/bin/python bench/pruners_vs_optuna.py --trials 200 --steps 20 --e2e-trials 500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))

import gen_cases  # noqa: E402  (Optuna replay and pruner construction)
import optuna  # noqa: E402

PRUNERS = [("median", {"median": {}}), ("successiveHalving", {"successiveHalving": {}})]
TARGET_E2E = 100  # the target: the whole process >= 100x Optuna's loop


def curves(n_trials: int, n_steps: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_trials):
        a, b, c = rng.uniform(0.2, 2.0), rng.uniform(0.01, 0.3), rng.uniform(-0.5, 0.5)
        out.append({"values": [float(f"{a * math.exp(-b * s) + c + rng.gauss(0, 0.02):.6g}")
                               for s in range(n_steps)]})
    return out


def write_case(case: dict) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(case, f)
        return f.name


def replay_alone(lopper: str, path: str, n: int = 20) -> tuple[float, list[dict]]:
    """The replay alone (best of n, in the process), and the outcome."""
    proc = subprocess.run([lopper, "replay", "--input", path, "--time", str(n)],
                          capture_output=True, text=True, check=True)
    m = re.search(r"replay took ([0-9.e+-]+) s", proc.stderr)
    return float(m.group(1)), json.loads(proc.stdout)["trials"]


def whole_process(lopper: str, path: str, runs: int) -> tuple[float, list[dict]]:
    """The whole process, spawn to exit with its output read from a pipe (best of runs)."""
    best, out = math.inf, b""
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([lopper, "replay", "--input", path], stdout=subprocess.PIPE,
                              check=True)
        best = min(best, time.perf_counter() - t0)
        out = proc.stdout
    return best, json.loads(out)["trials"]


def optuna_loop(case: dict, runs: int) -> tuple[float, list[dict]]:
    """Optuna's ask / report / should_prune / tell loop, a fresh study each run (best of runs)."""
    best, theirs = math.inf, []
    for _ in range(runs):
        t0 = time.perf_counter()
        theirs = gen_cases.run_optuna(case)
        best = min(best, time.perf_counter() - t0)
    return best, theirs


def same(ours: list[dict], theirs: list[dict]) -> bool:
    return len(ours) == len(theirs) and all(
        o["state"] == t["state"] and o["prunedAtStep"] == t["prunedAtStep"]
        for o, t in zip(ours, theirs))


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000, help="replay alone: trials")
    ap.add_argument("--steps", type=int, default=50, help="replay alone: steps per trial")
    ap.add_argument("--e2e-trials", type=int, default=3000, help="end to end: trials")
    ap.add_argument("--e2e-steps", type=int, default=100, help="end to end: steps per trial")
    ap.add_argument("--runs", type=int, default=10, help="end to end: processes, best taken")
    ap.add_argument("--optuna-runs", type=int, default=1, help="Optuna loops, best taken")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lopper", default=os.path.join(target, "release", "lopper"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "lopper"], cwd=ROOT, check=True)

    trials = curves(args.trials, args.steps, args.seed)
    print(f"replay alone: {args.trials} trials x {args.steps} steps")
    print(f"{'pruner':<20}{'lopper (s)':>14}{'optuna (s)':>14}{'ratio':>12}  same decisions")
    for name, spec in PRUNERS:
        case = {"study": "bench", "direction": "minimize", "pruner": spec, "trials": trials}
        path = write_case(case)
        ours_s, ours = replay_alone(args.lopper, path)
        os.unlink(path)
        optuna_s, theirs = optuna_loop(case, args.optuna_runs)
        print(f"{name:<20}{ours_s:>14.6f}{optuna_s:>14.3f}{optuna_s / ours_s:>11.0f}x"
              f"  {same(ours, theirs)}")

    trials = curves(args.e2e_trials, args.e2e_steps, args.seed)
    print(f"\nend to end: {args.e2e_trials} trials x {args.e2e_steps} steps, "
          f"whole `lopper replay` process (best of {args.runs}) vs Optuna's loop")
    print(f"{'pruner':<20}{'process (ms)':>14}{'replay (ms)':>13}{'optuna (s)':>12}"
          f"{'ratio':>10}  same decisions")
    worst = math.inf
    for name, spec in PRUNERS:
        case = {"study": "bench", "direction": "minimize", "pruner": spec, "trials": trials}
        path = write_case(case)
        process_s, ours = whole_process(args.lopper, path, args.runs)
        alone_s, _ = replay_alone(args.lopper, path)
        os.unlink(path)
        optuna_s, theirs = optuna_loop(case, args.optuna_runs)
        ratio = optuna_s / process_s
        worst = min(worst, ratio)
        print(f"{name:<20}{process_s * 1e3:>14.2f}{alone_s * 1e3:>13.2f}{optuna_s:>12.3f}"
              f"{ratio:>9.0f}x  {same(ours, theirs)}")
    verdict = "met" if worst >= TARGET_E2E else "NOT met"
    print(f"target >= {TARGET_E2E}x Optuna's loop end to end: {verdict} (worst {worst:.0f}x)")


if __name__ == "__main__":
    main()
