#!/usr/bin/env python3
"""Lopper's samplers next to Optuna's, in one go.

Runs `cargo bench --bench samplers` (Lopper: random, TPE with defaults (independent per
parameter), TPE with `multivariate: true`, scrambled Sobol QMC) and Optuna's RandomSampler,
TPESampler with the same settings (`multivariate=False`, and `multivariate=True`, Optuna 5.0's
default for one objective) and QMCSampler (scrambled Sobol) on
Branin, Hartmann-6, Rosenbrock-4 and a mixed int/categorical/conditional function:
`--seeds` seeds x `--trials` trials each, median of the best value found. Then times one
suggestion with 100 and 1,000 trials of history for both and prints the speed ratio: each
case is timed `--time-repeats` times, Lopper and Optuna alternating, and each side's median
is kept (a shared machine's slow spells then fall on both sides alike).

    python3 -m venv .venv-bench && .venv-bench/bin/pip install optuna==5.0.0 scipy
    .venv-bench/bin/python bench/samplers_vs_optuna.py            # full run
    .venv-bench/bin/python bench/samplers_vs_optuna.py --seeds 3 --trials 50 --reps 5
    .venv-bench/bin/python bench/samplers_vs_optuna.py --function branin --seeds 100
    .venv-bench/bin/python bench/samplers_vs_optuna.py --function hartmann6 --samplers tpe --seeds 50

`--lopper-cmd` replaces the cargo command (e.g. a prebuilt binary); `--json` saves raw rows.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
import warnings  # noqa: E402

warnings.filterwarnings("ignore")


# --- objectives (same definitions as benches/samplers.rs) -------------------------------


def branin(t):
    x1 = t.suggest_float("x1", -5.0, 10.0)
    x2 = t.suggest_float("x2", 0.0, 15.0)
    b, c, r, s, tt = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - tt) * math.cos(x1) + s


ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
P = np.array(
    [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ]
)


def hartmann6(t):
    x = np.array([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)])
    return float(-(ALPHA * np.exp(-(A * (x - P) ** 2).sum(axis=1))).sum())


def rosenbrock4(t):
    x = [t.suggest_float(f"x{i}", -5.0, 10.0) for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


def mixed(t):
    layers = t.suggest_int("layers", 1, 8)
    width = t.suggest_int("width", 8, 512, log=True)
    opt = t.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"])
    lr = math.log10(t.suggest_float("lr", 1e-5, 1.0, log=True))
    if opt == "adam":
        target, cost = -3.0, 0.2
    else:
        m = t.suggest_float("momentum", 0.0, 0.99)
        target, cost = (-1.5, 2 * abs(m - 0.9)) if opt == "sgd" else (-2.5, 0.1 + abs(m - 0.5))
    dropout = t.suggest_float("dropout", 0.0, 0.5, step=0.05)
    act = {"relu": 0.0, "gelu": 0.05, "tanh": 0.3}[
        t.suggest_categorical("activation", ["relu", "tanh", "gelu"])
    ]
    return (
        (lr - target) ** 2
        + (layers - 4) ** 2 / 4
        + (math.log2(width) - 7) ** 2 / 4
        + 10 * (dropout - 0.2) ** 2
        + cost
        + act
    )


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "rosenbrock4": rosenbrock4, "mixed": mixed}

OPTUNA_SAMPLERS = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # Like for like: Lopper's default TPE is independent per parameter.
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
    "tpe-multivariate": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "qmc": lambda seed: optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False
    ),
}


def optuna_best(fname, sname, seed, trials):
    study = optuna.create_study(sampler=OPTUNA_SAMPLERS[sname](seed))
    study.optimize(FUNCTIONS[fname], n_trials=trials)
    return study.best_value


class _Stop(Exception):
    pass


def seed_trials(fname, history):
    """`history` random trials of `fname` with their values (the timed studies start from them)."""
    seed_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=99))
    seed_study.optimize(FUNCTIONS[fname], n_trials=history)
    return seed_study.trials


def optuna_time(fname, sname, seeds, reps):
    """CPU seconds per suggestion (ask + the objective's suggest_* calls) from the trials
    `seeds` on, each trial completing and joining the history before the next ask (as
    Lopper's side does); CPU rather than wall time so a shared machine skews neither side."""
    fn = FUNCTIONS[fname]
    study = optuna.create_study(sampler=OPTUNA_SAMPLERS[sname](1))
    study.add_trials(seeds)
    # One untimed ask first, as Lopper's side times a sampler that has suggested before
    # (a new study's first ask costs Optuna ~25% more).
    trial = study.ask()
    study.tell(trial, fn(trial))
    spent = 0.0
    for _ in range(reps):
        start = time.process_time()
        trial = study.ask()
        value = fn(trial)  # the objective is trivial next to sampling
        spent += time.process_time() - start
        study.tell(trial, value)
    return spent / reps


def run_lopper(cmd, seeds, trials, reps, extra=()):
    full = cmd + ["--seeds", str(seeds), "--trials", str(trials), "--reps", str(reps), *extra]
    print("running:", " ".join(full), file=sys.stderr)
    out = subprocess.run(full, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20, help="suggestions timed per case (Optuna)")
    ap.add_argument("--lopper-reps", type=int, default=20, help="suggestions timed per round (Lopper; rounds repeat for 0.2 s)")
    ap.add_argument("--time-repeats", type=int, default=3, help="timings per case and side, alternating (median kept)")
    ap.add_argument(
        "--lopper-cmd",
        default="cargo bench --quiet --bench samplers --",
        help="command printing Lopper's JSON rows",
    )
    ap.add_argument("--json", help="write all raw rows here")
    ap.add_argument(
        "--function",
        choices=sorted(FUNCTIONS),
        help="only this function (e.g. more seeds for one: --function branin --seeds 100)",
    )
    ap.add_argument(
        "--samplers",
        help="only these Optuna samplers, comma-separated (e.g. tpe); Lopper runs all of its own",
    )
    args = ap.parse_args()
    if args.samplers:
        keep = set(args.samplers.split(","))
        for name in list(OPTUNA_SAMPLERS):
            if name not in keep:
                del OPTUNA_SAMPLERS[name]
    if args.function:
        for name in list(FUNCTIONS):
            if name != args.function:
                del FUNCTIONS[name]

    cmd = shlex.split(args.lopper_cmd)
    # Quality first (`--history 1`: no timed case has that history; times come below).
    rows = run_lopper(
        cmd + (["--only", args.function] if args.function else []),
        args.seeds,
        args.trials,
        args.lopper_reps,
        ["--history", "1"],
    )
    for r in rows:
        r["impl"] = "lopper"
    for fname in FUNCTIONS:
        for sname in OPTUNA_SAMPLERS:
            for seed in range(args.seeds):
                rows.append(
                    dict(
                        kind="best",
                        impl="optuna",
                        function=fname,
                        sampler=sname,
                        seed=seed,
                        best=optuna_best(fname, sname, seed, args.trials),
                    )
                )
            print(f"optuna {fname} {sname} done", file=sys.stderr)
    for fname in FUNCTIONS:
        for history in (100, 1000):
            seeds = seed_trials(fname, history)
            for sname in (s for s in ("random", "tpe", "tpe-multivariate", "qmc") if s in OPTUNA_SAMPLERS):
                ours, theirs = [], []
                for _ in range(max(1, args.time_repeats)):
                    timed = run_lopper(
                        cmd,
                        0,
                        args.trials,
                        args.lopper_reps,
                        ["--only", f"{fname}:{sname}", "--history", str(history)],
                    )
                    ours += [r["seconds_per_suggestion"] for r in timed if r["kind"] == "time"]
                    theirs.append(optuna_time(fname, sname, seeds, args.reps))
                for impl, times in (("lopper", ours), ("optuna", theirs)):
                    rows.append(
                        dict(
                            kind="time",
                            impl=impl,
                            function=fname,
                            sampler=sname,
                            history=history,
                            seconds_per_suggestion=statistics.median(times),
                            repeats=times,
                        )
                    )
            print(f"timed {fname} at {history}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)

    def med(impl, fname, sname):
        v = [
            r["best"]
            for r in rows
            if r["kind"] == "best" and r["impl"] == impl and r["function"] == fname and r["sampler"] == sname
        ]
        return statistics.median(v) if v else float("nan")

    def tm(impl, fname, sname, history):
        v = [
            r["seconds_per_suggestion"]
            for r in rows
            if r["kind"] == "time"
            and r["impl"] == impl
            and r["function"] == fname
            and r["sampler"] == sname
            and r["history"] == history
        ]
        return v[0] if v else float("nan")

    print(f"\n## Median best value ({args.seeds} seeds x {args.trials} trials, minimisation)\n")
    cols = [
        ("lopper", "random"),
        ("optuna", "random"),
        ("lopper", "tpe"),
        ("optuna", "tpe"),
        ("lopper", "tpe-multivariate"),
        ("optuna", "tpe-multivariate"),
        ("lopper", "qmc"),
        ("optuna", "qmc"),
    ]
    print(
        "| function | "
        + " | ".join(f"{i} {s}" for i, s in cols)
        + " | TPE target | multivariate TPE target |"
    )
    print("|---" * (len(cols) + 3) + "|")
    all_ok = True
    mv_ok = True
    for fname in FUNCTIONS:
        vals = [med(i, fname, s) for i, s in cols]
        def verdict(sname):
            ours, theirs = med("lopper", fname, sname), med("optuna", fname, sname)
            if math.isnan(theirs):
                return None  # not run this time (--samplers)
            return ours <= theirs

        ok, ok_mv = verdict("tpe"), verdict("tpe-multivariate")
        all_ok &= ok is not False
        mv_ok &= ok_mv is not False
        word = {True: "met", False: "NOT met", None: "n/a"}
        print(
            f"| {fname} | "
            + " | ".join(f"{v:.4g}" for v in vals)
            + f" | {word[ok]} | {word[ok_mv]} |"
        )

    print("\n## Time per suggestion (history of random trials; ratio = Optuna / Lopper)\n")
    print("| function | sampler | history | lopper | optuna | ratio |")
    print("|---|---|---|---|---|---|")
    min_ratio_1000 = math.inf
    min_ratio_mv = math.inf
    for fname in FUNCTIONS:
        for sname in ("random", "tpe", "tpe-multivariate", "qmc"):
            for history in (100, 1000):
                ours, theirs = tm("lopper", fname, sname, history), tm("optuna", fname, sname, history)
                if math.isnan(theirs):
                    continue  # not run this time (--samplers)
                ratio = theirs / ours if ours > 0 else math.inf
                if sname == "tpe" and history == 1000:
                    min_ratio_1000 = min(min_ratio_1000, ratio)
                if sname == "tpe-multivariate" and history == 1000:
                    min_ratio_mv = min(min_ratio_mv, ratio)
                print(
                    f"| {fname} | {sname} | {history} | {ours * 1e6:.1f} µs | {theirs * 1e3:.2f} ms | {ratio:.0f}x |"
                )
    print(
        f"\nTPE no worse than Optuna's on every function: {'met' if all_ok else 'NOT met'}; "
        f"TPE speed-up at 1,000 trials >= 100x: {'met' if min_ratio_1000 >= 100 else 'NOT met'} "
        f"(min {min_ratio_1000:.0f}x)"
    )
    print(
        f"multivariate TPE no worse than Optuna's multivariate: {'met' if mv_ok else 'NOT met'}; "
        f"its speed-up at 1,000 trials: min {min_ratio_mv:.0f}x"
    )


if __name__ == "__main__":
    main()
