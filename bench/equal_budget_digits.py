"""The digits workload of the equal-budget bench: real training (examples/digits, the
scikit-learn MLP) at one epoch budget for every setting, several seeds.

Ours run through `lopper run` (the study of examples/digits/budget.yaml with the setting's
pruner, `budget: {steps: B, onSpent: stop}`, multivariate TPE with the seed as Optuna 5.0's
default, parallelism 2). Optuna 5.0's
pruners run the same trainer as subprocesses from Optuna's ask/report/should_prune/tell
loop with its TPE sampler, two trials at a time, under the same budget rule (steps reported
by all trials; once spent no trial starts and the running ones are stopped as pruned). The
top-K-after-one-step baseline (Egele et al. 2023) trains B/2 configurations (TPE through
`lopper run`) for one epoch, then the best K to the full length, charged as if resumed
(K = (B - B/2) / (L - 1)). A setting's score is the best val_loss of a completed trial.

Every run's result is kept in --out (a rerun skips what is there; --force SETTING reruns one).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time

import optuna
import yaml
from optuna.trial import TrialState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")

# Defaults as in the README's pruner table (the LCDB workload uses the same).
PRUNERS = {
    "none": {"none": {}},
    "median": {"median": {}},
    "percentile": {"percentile": {"percentile": 25.0}},
    "successiveHalving": {"successiveHalving": {}},
    "hyperband": {"hyperband": {}},
}
OPTUNA = ["none", "median", "percentile", "successiveHalving", "hyperband"]


def settings(epochs: int) -> dict[str, dict]:
    out = dict(PRUNERS)
    out["asha standard"] = {"asha": {"mode": "standard", "maxSteps": epochs}}
    return out


def sampler(seed: int) -> dict:
    """Ours as Optuna's: Optuna 5.0's TPESampler() is multivariate for a single-objective
    study (ours is independent unless told), so the same sampler means multivariate on both
    sides."""
    return {"tpe": {"seed": seed, "multivariate": True}}


def manifest(name: str, pruner: dict, seed: int, epochs: int, budget: int | None,
             max_trials: int | None = None) -> dict:
    with open(os.path.join(DIGITS, "budget.yaml")) as f:
        m = yaml.safe_load(f)
    spec = m["spec"]
    m["metadata"]["name"] = name
    spec["sampler"] = sampler(seed)
    spec["pruner"] = pruner
    spec["parallelism"] = 2
    if budget is None:
        spec.pop("budget", None)
    else:
        spec["budget"] = {"steps": budget, "onSpent": "stop"}
    if max_trials is not None:
        spec["maxTrials"] = max_trials
    args = spec["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--epochs") + 1] = str(epochs)
    return m


def lopper_run(lopper: str, venv: str, m: dict, out: str) -> dict:
    study = out + ".yaml"
    with open(study, "w") as f:
        yaml.safe_dump(m, f)
    env = dict(os.environ, PATH=os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"])
    t0 = time.monotonic()
    with open(out + ".log", "w") as log:
        subprocess.run([lopper, "run", study, "--no-progress", "--workdir", DIGITS,
                        "--grace", "2", "--output", out + ".tmp"], env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=False)
    with open(out + ".tmp") as f:
        r = json.load(f)
    os.unlink(out + ".tmp")
    return {"wallSeconds": time.monotonic() - t0,
            "trials": [{"params": t["params"], "state": t["state"], "value": t["value"],
                        "steps": len(t["intermediate"])} for t in r["trials"]]}


def train_argv(python: str, params: dict, epochs: int) -> tuple[list[str], dict]:
    argv = [python, "train.py", "--lr", repr(params["lr"]), "--hidden", str(params["hidden"]),
            "--alpha", repr(params["alpha"]), "--batch", str(params["batch"]),
            "--solver", str(params["solver"]), "--epochs", str(epochs)]
    env = dict(os.environ)
    if "momentum" in params:
        env["LOPPER_PARAM_MOMENTUM"] = repr(params["momentum"])
    return argv, env


def lines(text):
    """(epoch, val_loss) from the trainer's `epoch=N val_loss=...` lines."""
    for line in text:
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "epoch" in kv and "val_loss" in kv:
            yield int(kv["epoch"]), float(kv["val_loss"])


def suggest(trial: optuna.Trial, parameters: list[dict]) -> dict:
    """The manifest's search space through Optuna's suggest API (conditions included)."""
    out = {}
    for p in parameters:
        when = p.get("when")
        if when and any(out.get(k) not in v for k, v in when.items()):
            continue
        if "float" in p:
            d = p["float"]
            out[p["name"]] = trial.suggest_float(p["name"], d["low"], d["high"],
                                                 log=d.get("log", False))
        elif "int" in p:
            d = p["int"]
            out[p["name"]] = trial.suggest_int(p["name"], d["low"], d["high"],
                                               step=d.get("step", 1))
        else:
            out[p["name"]] = trial.suggest_categorical(p["name"], p["categorical"]["choices"])
    return out


def optuna_run(kind: str, seed: int, epochs: int, budget: int, python: str) -> dict:
    """Optuna's pruner on the same trainer, two trials at a time, same budget rule."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
    import gen_cases  # Optuna's pruner construction with our defaults

    with open(os.path.join(DIGITS, "budget.yaml")) as f:
        parameters = yaml.safe_load(f)["spec"]["parameters"]
    study = optuna.create_study(
        study_name=f"digits-{kind}-{seed}", direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=gen_cases.make_pruner(PRUNERS[kind]),
        storage=optuna.storages.InMemoryStorage())
    lock = threading.Lock()
    spent = [0]
    trials = []

    def worker():
        while True:
            with lock:
                if spent[0] >= budget:
                    return
                trial = study.ask()
                params = suggest(trial, parameters)
            argv, env = train_argv(python, params, epochs)
            proc = subprocess.Popen(argv, cwd=DIGITS, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            steps, last, state = 0, math.nan, TrialState.COMPLETE
            for epoch, loss in lines(proc.stdout):
                with lock:
                    over = spent[0] >= budget
                    if not over:
                        spent[0] += 1
                if over:
                    state = TrialState.PRUNED
                    break
                steps, last = steps + 1, loss
                trial.report(loss, epoch)
                if trial.should_prune():
                    state = TrialState.PRUNED
                    break
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            with lock:
                if state == TrialState.COMPLETE and math.isfinite(last):
                    study.tell(trial, last)
                elif state == TrialState.PRUNED:
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    study.tell(trial, state=TrialState.FAIL)
                trials.append({"params": params, "steps": steps, "value": last,
                               "state": {TrialState.COMPLETE: "complete",
                                         TrialState.PRUNED: "pruned"}.get(state, "failed")})

    t0 = time.monotonic()
    ws = [threading.Thread(target=worker) for _ in range(2)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    return {"wallSeconds": time.monotonic() - t0, "trials": trials}


def top_k_run(lopper: str, venv: str, seed: int, epochs: int, budget: int, out: str) -> dict:
    """B/2 configurations one epoch each (TPE through `lopper run`), the best K to the end."""
    m = budget // 2
    k = max(1, (budget - m) // max(1, epochs - 1))
    first = lopper_run(lopper, venv, manifest(f"digits-topk-{seed}", {"none": {}}, seed, 1,
                                              None, max_trials=m), out + "-first")
    ok = [t for t in first["trials"] if t["state"] == "complete" and t["value"] is not None]
    best = sorted(ok, key=lambda t: t["value"])[:k]
    python = os.path.join(venv, "bin", "python")
    t0 = time.monotonic()
    results = []

    def train(t):
        argv, env = train_argv(python, t["params"], epochs)
        p = subprocess.run(argv, cwd=DIGITS, env=env, capture_output=True, text=True)
        curve = [v for _, v in lines(p.stdout.splitlines())]
        results.append({"params": t["params"], "state": "complete", "steps": epochs - 1,
                        "value": curve[-1] if curve else math.nan})

    queue = list(best)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                t = queue.pop(0)
            train(t)

    ws = [threading.Thread(target=worker) for _ in range(2)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    trials = [dict(t, steps=1) for t in first["trials"]] + results
    return {"wallSeconds": first["wallSeconds"] + time.monotonic() - t0, "trials": trials,
            "k": k, "m": m}


def best_of(run: dict) -> float:
    vals = [t["value"] for t in run["trials"]
            if t["state"] == "complete" and t["value"] is not None and math.isfinite(t["value"])]
    return min(vals) if vals else math.inf


def main(args) -> None:
    venv = os.path.abspath(args.venv)
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        subprocess.run(["bash", os.path.join(ROOT, "examples", "setup.sh")], check=True,
                       env=dict(os.environ, VENV=venv))
    python = os.path.join(venv, "bin", "python")
    epochs, budget = args.epochs, args.budget
    out = os.path.abspath(args.out or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
        f"bench-equal-budget-digits-L{epochs}-B{budget}"))
    os.makedirs(out, exist_ok=True)
    ours = settings(epochs)
    names = list(ours) + ["top-K after 1 step"] + [f"optuna {k}" for k in OPTUNA]
    seeds = list(range(args.seeds))
    t_all = time.monotonic()
    runs: dict[tuple[str, int], dict] = {}
    for seed in seeds:
        for name in names:
            if args.only and name not in args.only:
                continue
            path = os.path.join(out, f"{name.replace(' ', '_')}-seed{seed}.json")
            if os.path.exists(path) and name not in (args.force or []):
                with open(path) as f:
                    cached = json.load(f)
                # A run of ours with another sampler than today's is run again.
                if name.startswith("optuna ") or cached.get("sampler") == sampler(seed):
                    runs[(name, seed)] = cached
                    continue
            print(f"seed {seed} {name} ...", file=sys.stderr, flush=True)
            base = os.path.join(out, f"{name.replace(' ', '_')}-seed{seed}")
            if name in ours:
                r = lopper_run(args.lopper, venv,
                               manifest(f"digits-{name.replace(' ', '-').lower()}-{seed}",
                                        ours[name], seed, epochs, budget), base)
            elif name.startswith("optuna "):
                r = optuna_run(name[len("optuna "):], seed, epochs, budget, python)
            else:
                r = top_k_run(args.lopper, venv, seed, epochs, budget, base)
            r["best"] = best_of(r)
            if not name.startswith("optuna "):
                r["sampler"] = sampler(seed)
            r["stepsRun"] = sum(t["steps"] for t in r["trials"])
            with open(path, "w") as f:
                json.dump(r, f)
            runs[(name, seed)] = r
            print(f"  best {r['best']:.4f}, {len(r['trials'])} trials, {r['stepsRun']} epochs, "
                  f"{r['wallSeconds']:.0f} s", file=sys.stderr, flush=True)
    report(runs, names, seeds, epochs, budget, time.monotonic() - t_all)


def report(runs, names, seeds, epochs, budget, seconds) -> None:
    names = [n for n in names if all((n, s) in runs for s in seeds)]
    theirs = [f"optuna {k}" for k in OPTUNA]
    ranks = {n: [] for n in names}
    for s in seeds:
        for n in names:
            ranks[n].append(1 + sum(1 for m in names if runs[(m, s)]["best"] < runs[(n, s)]["best"]))
    print(f"\ndigits MLP val_loss at equal budget: {budget} epochs, {epochs} a full trial, "
          f"TPE, parallelism 2, {len(seeds)} seeds")
    print("| setting | best val_loss per seed | mean | median rank | beats none | "
          "beats best Optuna | vs Optuna same setting | trials (mean) | epochs run (mean) "
          "| wall s (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        b = [runs[(n, s)]["best"] for s in seeds]
        none = [runs[("none", s)]["best"] for s in seeds] if ("none", seeds[0]) in runs else b
        best_optuna = [min(runs[(t, s)]["best"] for t in theirs if (t, s) in runs) for s in seeds]
        beats_none = sum(1 for x, y in zip(b, none) if x < y)
        beats_optuna = sum(1 for x, y in zip(b, best_optuna) if x < y)
        same = ""
        if f"optuna {n}" in names:
            o = [runs[(f"optuna {n}", s)]["best"] for s in seeds]
            same = f"{sum(1 for x, y in zip(b, o) if x < y)}/{len(seeds)} better"
        def mean(f):
            return sum(f(runs[(n, s)]) for s in seeds) / len(seeds)

        print(f"| {n} | {' / '.join(f'{x:.4f}' for x in b)} | {sum(b) / len(b):.4f} | "
              f"{sorted(ranks[n])[len(seeds) // 2]} | {beats_none}/{len(seeds)} | "
              f"{beats_optuna}/{len(seeds)} | {same} | {mean(lambda r: len(r['trials'])):.0f} | "
              f"{mean(lambda r: r['stepsRun']):.0f} | {mean(lambda r: r['wallSeconds']):.0f} |")
    print(f"\n(this invocation: {seconds:.0f} s; runs already in the output folder are reused)")
