#!/usr/bin/env python3
"""Generates pruner conformance cases with Optuna 5.0 as the oracle.

Each case is a `lopper replay` input (study, direction, pruner spec, learning curves) plus
Optuna's outcome for every trial, obtained by replaying the curves sequentially through
Optuna's own pruner (in-memory storage, ask / report / should_prune / tell).

    python3 -m venv .venv-oracle && .venv-oracle/bin/pip install optuna==5.0.0 scipy
    .venv-oracle/bin/python tests/oracle/gen_cases.py --seed 7 --out tests/oracle/cases.json

Deterministic given --seed (curves use Python's `random` only).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import warnings

import optuna
from optuna.trial import TrialState

KINDS = [
    "median",
    "percentile",
    "successiveHalving",
    "hyperband",
    "threshold",
    "patient",
    "wilcoxon",
    "none",
]

DEFAULTS = {
    "median": {"startupTrials": 5, "warmupSteps": 0, "intervalSteps": 1, "minTrials": 1},
    "percentile": {"startupTrials": 5, "warmupSteps": 0, "intervalSteps": 1, "minTrials": 1},
    "successiveHalving": {
        "minResource": "auto",
        "reductionFactor": 4,
        "minEarlyStoppingRate": 0,
        "bootstrapCount": 0,
    },
    "hyperband": {"minResource": 1, "maxResource": "auto", "reductionFactor": 3, "bootstrapCount": 0},
    "threshold": {"lower": None, "upper": None, "warmupSteps": 0, "intervalSteps": 1},
    "patient": {"minDelta": 0.0},
    "wilcoxon": {"pThreshold": 0.1, "startupSteps": 2},
    "none": {},
}


# ---------------------------------------------------------------- Optuna pruners


def make_pruner(spec: dict) -> optuna.pruners.BasePruner:
    (kind, p), = spec.items()
    full = dict(DEFAULTS[kind])
    full.update(p)
    if kind == "median":
        return optuna.pruners.MedianPruner(
            full["startupTrials"], full["warmupSteps"], full["intervalSteps"],
            n_min_trials=full["minTrials"])
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(
            full["percentile"], full["startupTrials"], full["warmupSteps"],
            full["intervalSteps"], n_min_trials=full["minTrials"])
    if kind == "successiveHalving":
        return optuna.pruners.SuccessiveHalvingPruner(
            full["minResource"], full["reductionFactor"], full["minEarlyStoppingRate"],
            full["bootstrapCount"])
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            full["minResource"], full["maxResource"], full["reductionFactor"],
            full["bootstrapCount"])
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(
            full["lower"], full["upper"], full["warmupSteps"], full["intervalSteps"])
    if kind == "patient":
        wrapped = make_pruner(full["wrapped"]) if full.get("wrapped") else None
        return optuna.pruners.PatientPruner(wrapped, full["patience"], full["minDelta"])
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(
            p_threshold=full["pThreshold"], n_startup_steps=full["startupSteps"])
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(kind)


def decode(v):
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)  # "inf" / "-inf"
    return v


def run_optuna(case_input: dict) -> list[dict]:
    study = optuna.create_study(
        study_name=case_input["study"],
        direction=case_input["direction"],
        pruner=make_pruner(case_input["pruner"]),
        storage=optuna.storages.InMemoryStorage(),
    )
    out = []
    for curve in case_input["trials"]:
        values = [decode(v) for v in curve["values"]]
        steps = curve.get("steps") or list(range(len(values)))
        trial = study.ask()
        pruned_at = None
        for step, v in zip(steps, values):
            trial.report(v, step)
            if trial.should_prune():
                pruned_at = step
                break
        if pruned_at is not None:
            frozen = study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen = study.tell(trial, values[-1])
        state = {
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed",
        }[frozen.state]
        value = frozen.value
        if value is not None and not math.isfinite(value):
            value = None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        out.append({"number": frozen.number, "state": state, "prunedAtStep": pruned_at,
                    "value": value})
    return out


# ---------------------------------------------------------------- random cases


def r6(x: float) -> float:
    return float(f"{x:.6g}")


def gen_curves(rng: random.Random, kind: str) -> list[dict]:
    n_trials = rng.randint(6, 30)
    long = kind in ("successiveHalving", "hyperband") and rng.random() < 0.4
    base_len = rng.choice([rng.randint(3, 15), rng.randint(15, 60)] + ([rng.randint(100, 260)] if long else []))
    nan_p = rng.choice([0.0, 0.0, 0.02, 0.1])
    inf_p = rng.choice([0.0] * 6 + [0.02])
    if kind == "wilcoxon":
        # exact (<= 50, no ties), permutation (<= 13 with ties / zeros) and normal
        # approximation (> 50, or ties with 14..50) regimes of scipy's test
        base_len = rng.choice([rng.randint(3, 13), rng.randint(14, 50), rng.randint(51, 90)])
        nan_p = rng.choice([0.0, 0.0, 0.0, 0.01])
    decimals = rng.choice([None, None, 1, 2])  # coarse values make ties
    sparse = rng.random() < 0.3
    ragged = rng.random() < 0.4
    shared = rng.random() < 0.3 and kind == "wilcoxon"  # identical curve prefixes -> zeros
    template = None
    curves = []
    for _ in range(n_trials):
        n = base_len if not ragged else max(1, base_len + rng.randint(-base_len // 2, base_len // 3))
        if sparse:
            stride = rng.randint(1, 4)
            steps = sorted(set(rng.sample(range(0, n * stride + 1), min(n, n * stride + 1))))
        else:
            steps = list(range(n))
        a = rng.uniform(0.2, 2.0)
        b = rng.uniform(0.005, 0.3)
        c = rng.uniform(-0.5, 0.5)
        noise = rng.choice([0.0, 0.01, 0.05, 0.2])
        vals = []
        for i, s in enumerate(steps):
            if shared and template is not None and i < len(template) and rng.random() < 0.5:
                vals.append(template[i])
                continue
            v = a * math.exp(-b * s) + c + rng.gauss(0, noise)
            v = round(v, decimals) if decimals is not None else r6(v)
            u = rng.random()
            if u < nan_p:
                vals.append(None)
            elif u < nan_p + inf_p:
                vals.append(rng.choice(["inf", "-inf"]))
            else:
                vals.append(v)
        if template is None:
            template = vals
        curve = {"values": vals}
        if sparse or rng.random() < 0.2:
            curve["steps"] = steps
        curves.append(curve)
    return curves


def gen_params(rng: random.Random, kind: str, depth: int = 0) -> dict:
    if kind in ("median", "percentile"):
        p = {
            "startupTrials": rng.choice([0, 1, 2, 3, 5, 8]),
            "warmupSteps": rng.choice([0, 0, 1, 3, 7]),
            "intervalSteps": rng.choice([1, 1, 2, 3, 5]),
            "minTrials": rng.choice([1, 1, 2, 4]),
        }
        if kind == "percentile":
            p["percentile"] = rng.choice([0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 100.0,
                                          r6(rng.uniform(0, 100))])
    elif kind == "successiveHalving":
        mr = rng.choice(["auto", "auto", 1, 2, 3, 5])
        p = {
            "minResource": mr,
            "reductionFactor": rng.choice([2, 3, 4, 5]),
            "minEarlyStoppingRate": rng.choice([0, 0, 1, 2]),
            "bootstrapCount": 0 if mr == "auto" else rng.choice([0, 0, 1, 2, 4]),
        }
    elif kind == "hyperband":
        mx = rng.choice(["auto", "auto", rng.randint(2, 120)])
        p = {
            "minResource": rng.choice([1, 1, 2, 3]),
            "maxResource": mx,
            "reductionFactor": rng.choice([2, 3, 3, 4]),
            "bootstrapCount": 0 if mx == "auto" else rng.choice([0, 0, 1, 2]),
        }
    elif kind == "threshold":
        lo = r6(rng.uniform(-0.6, 0.4))
        hi = r6(lo + rng.uniform(0.2, 2.5))
        which = rng.choice(["lower", "upper", "both"])
        p = {
            "lower": lo if which in ("lower", "both") else None,
            "upper": hi if which in ("upper", "both") else None,
            "warmupSteps": rng.choice([0, 0, 2, 5]),
            "intervalSteps": rng.choice([1, 1, 2, 4]),
        }
    elif kind == "patient":
        p = {
            "patience": rng.choice([0, 1, 2, 3, 5]),
            "minDelta": rng.choice([0.0, 0.0, 0.001, 0.01, 0.1]),
        }
        if depth == 0 and rng.random() < 0.6:
            inner = rng.choice(["median", "percentile", "successiveHalving", "hyperband",
                                "threshold", "wilcoxon", "none"])
            p["wrapped"] = {inner: gen_params(rng, inner, depth + 1)}
    elif kind == "wilcoxon":
        p = {
            "pThreshold": rng.choice([0.01, 0.05, 0.1, 0.1, 0.2, 0.3, 0.5]),
            "startupSteps": rng.choice([0, 2, 2, 3, 5, 10]),
        }
    else:
        p = {}
    # Omit some parameters that equal Optuna's defaults (exercises serde defaults).
    for k, v in list(p.items()):
        if DEFAULTS.get(kind, {}).get(k, object()) == v and rng.random() < 0.5:
            del p[k]
    return p


def gen_case(rng: random.Random, idx: int, kind: str) -> dict:
    study = rng.choice(["oracle", "s1", "study-%d" % rng.randint(0, 999), "hb_%d" % idx])
    case_input = {
        "study": study,
        "direction": rng.choice(["minimize", "maximize"]),
        "pruner": {kind: gen_params(rng, kind)},
        "trials": gen_curves(rng, kind),
    }
    return {"name": f"{idx:03d}-{kind}", "input": case_input, "expected": run_optuna(case_input)}


def special_cases(rng: random.Random, start: int) -> list[dict]:
    """Hand-picked regimes that random draws reach rarely."""
    specs = [
        # 243/1 with eta 3: floor(log(243, 3)) is 4 in floating point -> 5 brackets.
        ("oracle", {"hyperband": {"minResource": 1, "maxResource": 243, "reductionFactor": 3}}, 260),
        ("oracle", {"hyperband": {"minResource": 2, "reductionFactor": 2}}, 120),
        ("s1", {"successiveHalving": {}}, 250),  # auto min resource = 2
        ("s1", {"successiveHalving": {"minResource": 1, "reductionFactor": 2,
                                      "bootstrapCount": 3}}, 40),
        ("w", {"wilcoxon": {"pThreshold": 0.1, "startupSteps": 0}}, 70),
        ("w", {"wilcoxon": {"pThreshold": 0.05, "startupSteps": 55}}, 70),  # normal approx.
        ("w", {"wilcoxon": {"pThreshold": 0.2}}, 30),
        ("w", {"wilcoxon": {"pThreshold": 0.3}}, 10),
        ("p", {"percentile": {"percentile": 0.0, "startupTrials": 0}}, 20),
        ("p", {"percentile": {"percentile": 100.0, "startupTrials": 1, "minTrials": 3}}, 20),
        ("p", {"median": {"startupTrials": 0, "warmupSteps": 4, "intervalSteps": 3}}, 30),
        ("t", {"threshold": {"lower": 0.0, "warmupSteps": 3, "intervalSteps": 3}}, 25),
        ("q", {"patient": {"patience": 2, "minDelta": 0.01,
                           "wrapped": {"successiveHalving": {"minResource": 1}}}}, 40),
        ("q", {"patient": {"patience": 1}}, 15),
    ]
    cases = []
    for k, (study, pruner, n) in enumerate(specs):
        kind = next(iter(pruner))
        trials = []
        for t in range(rng.randint(12, 30)):
            a, b, c = rng.uniform(0.2, 2), rng.uniform(0.005, 0.2), rng.uniform(-0.5, 0.5)
            dec = 1 if kind == "wilcoxon" and k % 2 == 1 else None
            vals = []
            for st in range(n if t % 3 else max(2, n // 2)):
                v = a * math.exp(-b * st) + c + rng.gauss(0, 0.05)
                vals.append(round(v, dec) if dec else r6(v))
            if kind == "threshold" and t % 4 == 0:
                vals[rng.randrange(len(vals))] = rng.choice(["inf", "-inf", None])
            curve = {"values": vals}
            if kind == "percentile" and t % 5 == 0:  # a repeated step: ignored report
                curve["steps"] = list(range(len(vals) - 1)) + [len(vals) - 2]
            trials.append(curve)
        case_input = {"study": study, "direction": rng.choice(["minimize", "maximize"]),
                      "pruner": pruner, "trials": trials}
        cases.append({"name": f"{start + k:03d}-special-{kind}", "input": case_input,
                      "expected": run_optuna(case_input)})
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-kind", type=int, default=12, help="cases per pruner kind")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rng = random.Random(args.seed)
    cases = []
    idx = 0
    for _ in range(args.per_kind):
        for kind in KINDS:
            cases.append(gen_case(rng, idx, kind))
            idx += 1
    cases += special_cases(rng, idx)
    doc = {
        "generator": {"seed": args.seed, "perKind": args.per_kind,
                      "optuna": optuna.__version__},
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    pruned = sum(t["state"] == "pruned" for c in cases for t in c["expected"])
    total = sum(len(c["expected"]) for c in cases)
    print(f"wrote {len(cases)} cases ({total} trials, {pruned} pruned) to {args.out}")


if __name__ == "__main__":
    main()
