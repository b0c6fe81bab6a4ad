#!/usr/bin/env python3
"""Replays the same 1,000 trials x 50 steps through `lopper replay` and through Optuna 5.0
(in-memory storage) for the median and successive halving pruners, checks that both prune
the same trials at the same steps, and prints the speed ratio.

    .venv-oracle/bin/python bench/pruners_vs_optuna.py            # builds --release first
    .venv-oracle/bin/python bench/pruners_vs_optuna.py --trials 200 --steps 20

Our time is the replay itself as measured by `lopper replay --time` (best of 5 runs,
parsing and printing excluded); Optuna's is its ask / report / should_prune / tell loop.
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


def curves(n_trials: int, n_steps: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_trials):
        a, b, c = rng.uniform(0.2, 2.0), rng.uniform(0.01, 0.3), rng.uniform(-0.5, 0.5)
        out.append({"values": [float(f"{a * math.exp(-b * s) + c + rng.gauss(0, 0.02):.6g}")
                               for s in range(n_steps)]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lopper", default=os.path.join(ROOT, "target", "release", "lopper"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "lopper"], cwd=ROOT, check=True)

    trials = curves(args.trials, args.steps, args.seed)
    print(f"{args.trials} trials x {args.steps} steps")
    print(f"{'pruner':<20}{'lopper (s)':>14}{'optuna (s)':>14}{'ratio':>12}  same decisions")
    for name, spec in [("median", {"median": {}}),
                       ("successiveHalving", {"successiveHalving": {}})]:
        case = {"study": "bench", "direction": "minimize", "pruner": spec, "trials": trials}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(case, f)
            path = f.name
        proc = subprocess.run([args.lopper, "replay", "--input", path, "--time", "5"],
                              capture_output=True, text=True, check=True)
        os.unlink(path)
        m = re.search(r"replay took ([0-9.e+-]+) s", proc.stderr)
        ours_s = float(m.group(1))
        ours = json.loads(proc.stdout)["trials"]

        t0 = time.perf_counter()
        theirs = gen_cases.run_optuna(case)
        optuna_s = time.perf_counter() - t0

        same = all(o["state"] == t["state"] and o["prunedAtStep"] == t["prunedAtStep"]
                   for o, t in zip(ours, theirs))
        print(f"{name:<20}{ours_s:>14.6f}{optuna_s:>14.3f}{optuna_s / ours_s:>11.0f}x  {same}")


if __name__ == "__main__":
    main()
