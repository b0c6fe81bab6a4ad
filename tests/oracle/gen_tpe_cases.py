#!/usr/bin/env python3
"""Generates TPE conformance cases with Optuna 5.0 as the oracle.

Two kinds of case, both checked by `src/engine/samplers/tpe/oracle_tests.rs`:

* `estimators`: Optuna's `_ParzenEstimator` (`optuna.samplers._tpe.parzen_estimator`) built
  from given observations with the parameters `TPESampler()` uses (prior_weight 1.0,
  consider_magic_clip, no consider_endpoints, `default_weights`), one dimension per
  estimator (independent TPE) or several (multivariate TPE). Recorded: the normalised
  mixture weights (prior last), per dimension the kernels' centres and bandwidths
  (numerical, in the transformed space: log for log ranges, the prior's kernel last) or
  the per-kernel choice probabilities (categorical), and `log_pdf` at given points.
* `splits`: histories (trials with state, value, intermediate values) and the below/above
  split `TPESampler._sample` makes of them for the next trial (`_split_trials` with
  `n_below = default_gamma(n)`, running trials in "above" with `constant_liar=True`),
  captured from a real `TPESampler` run (`study.ask()` then `suggest_float`).

Values are Optuna's internal representation (numbers in the original scale, categoricals
as the choice index). Floats are written as strings (Python's shortest round-trip repr;
"nan", "inf", "-inf"): serde_json's default float parsing is not correctly rounded, and
the test compares most quantities bit for bit.

Tied centres: Optuna orders kernel centres with `np.argsort(mus)`, which is not stable
(numpy's SIMD sort on AVX-512 CPUs orders ties arbitrarily), and the bandwidths of tied
centres depend on that order. The generator pins ties to trial order (numpy's stable
argsort), as lopper orders them, and marks the cases where Optuna's density depends on
the order of ties (`tie_order_matters`: the mixture, as a set of weighted kernels, changes
under some of 16 seeded random orders of ties).

    python3 -m venv .venv-oracle && .venv-oracle/bin/pip install optuna==5.0.0 scipy
    .venv-oracle/bin/python tests/oracle/gen_tpe_cases.py --seed 7 --out tests/oracle/tpe_cases.json

Deterministic given --seed (Python's `random`; the tie-order check uses seeded numpy
permutations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers._tpe import parzen_estimator as pe_mod
from optuna.samplers._tpe import sampler as sampler_mod
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimatorParameters
from optuna.trial import TrialState

# ---------------------------------------------------------------- encoding


def f(x: float) -> str:
    """A float as a string that parses back to the same bits."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def fl(xs) -> list[str]:
    return [f(x) for x in xs]


def dist_json(d) -> dict:
    if isinstance(d, FloatDistribution):
        return {
            "kind": "float",
            "low": f(d.low),
            "high": f(d.high),
            "log": d.log,
            "step": None if d.step is None else f(d.step),
        }
    if isinstance(d, IntDistribution):
        return {"kind": "int", "low": d.low, "high": d.high, "step": d.step, "log": d.log}
    assert isinstance(d, CategoricalDistribution)
    return {"kind": "categorical", "choices": [str(c) for c in d.choices]}


# ---------------------------------------------------------------- the estimator


def tpe_parameters() -> _ParzenEstimatorParameters:
    """The parameters a default `TPESampler()` hands its estimators."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = optuna.samplers.TPESampler()._parzen_estimator_parameters
    assert p.prior_weight == 1.0
    assert p.consider_magic_clip is True
    assert p.consider_endpoints is False
    assert p.weights is sampler_mod.default_weights
    return p


class _TieOrderedNumpy:
    """numpy, with `argsort` ordering ties by position (`order` None), or by a random
    permutation (`order` a seed)."""

    def __init__(self, order: int | None) -> None:
        self._rng = None if order is None else np.random.RandomState(order)

    def __getattr__(self, name):
        return getattr(np, name)

    def argsort(self, a, *args, **kwargs):
        a = np.asarray(a)
        if self._rng is None:
            return np.argsort(a, kind="stable")
        return np.lexsort((self._rng.permutation(a.size), a))


@contextlib.contextmanager
def ties(order: int | None):
    saved = pe_mod.np
    pe_mod.np = _TieOrderedNumpy(order)
    try:
        yield
    finally:
        pe_mod.np = saved


def build(space: dict, obs: dict, tie_order: int | None = None) -> _ParzenEstimator:
    """Optuna's estimator, tied centres ordered by position (or at random, `tie_order` the
    seed)."""
    with ties(tie_order):
        return _ParzenEstimator(obs, space, tpe_parameters())


def kernel_set(pe: _ParzenEstimator) -> list:
    """The mixture as a sorted list of (weight, per-dimension kernel): what its density
    depends on (the order of kernels only changes the rounding of sums)."""
    mix = pe._mixture_distribution
    rows = []
    for k, w in enumerate(mix.weights):
        row = [float(w)]
        for d in mix.distributions:
            if hasattr(d, "mu"):
                row += [float(d.mu[k]), float(d.sigma[k])]
            else:
                row += [float(v) for v in d.weights[k]]
        rows.append(tuple(row))
    return sorted(rows)


def estimator_case(name: str, space: dict, external: dict, points: list[dict]) -> dict:
    """`external[param]`: observed values (external repr); `points`: internal values."""
    internal = {
        p: np.asarray([space[p].to_internal_repr(v) for v in vs]) for p, vs in external.items()
    }
    pe = build(space, internal)
    mix = pe._mixture_distribution
    xs = {p: np.asarray([pt[p] for pt in points], dtype=float) for p in space}
    log_pdf = pe.log_pdf(xs)
    kernels = []
    for d in mix.distributions:
        if hasattr(d, "mu"):
            kernels.append({"mus": fl(d.mu), "sigmas": fl(d.sigma)})
        else:
            kernels.append({"probs": [fl(row) for row in d.weights]})
    n = len(next(iter(internal.values())))
    return {
        "name": name,
        "params": list(space),
        "dists": [dist_json(space[p]) for p in space],
        "obs": [fl(internal[p]) for p in space],
        "n": n,
        "weights": fl(mix.weights),
        "kernels": kernels,
        "points": [[f(pt[p]) for p in space] for pt in points],
        "log_pdf": fl(log_pdf),
        "tie_order_matters": any(
            kernel_set(build(space, internal, seed)) != kernel_set(pe) for seed in range(16)
        ),
    }


# ---------------------------------------------------------------- observations and points

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # int_step_odd's high is not on the grid, on purpose
    SPACES = {
        "float": FloatDistribution(-5.0, 10.0),
        "float_log": FloatDistribution(1e-5, 1.0, log=True),
        "float_step": FloatDistribution(0.0, 0.5, step=0.05),
        "int": IntDistribution(1, 8),
        "int_step": IntDistribution(0, 100, step=5),
        "int_step_odd": IntDistribution(1, 20, step=3),  # high adjusted to 19
        "int_log": IntDistribution(1, 1024, log=True),
        "cat": CategoricalDistribution(["a", "b", "c"]),
        "cat5": CategoricalDistribution(["p", "q", "r", "s", "t"]),
        "cat2": CategoricalDistribution(["yes", "no"]),
    }


def grid(d) -> list[float]:
    """Every value of a discrete distribution (internal repr), in order."""
    if isinstance(d, CategoricalDistribution):
        return [float(i) for i in range(len(d.choices))]
    if isinstance(d, IntDistribution):
        return [float(v) for v in range(d.low, d.high + 1, d.step)]
    assert d.step is not None
    k = int(round((d.high - d.low) / d.step))
    return [d.low + i * d.step for i in range(k + 1)]


def draw(rng: random.Random, d):
    """One external value of `d`, uniform in its (transformed) range."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[rng.randrange(len(d.choices))]
    if isinstance(d, IntDistribution):
        if d.log:
            v = int(round(math.exp(rng.uniform(math.log(d.low), math.log(d.high)))))
            return min(max(v, d.low), d.high)
        return d.low + d.step * rng.randrange((d.high - d.low) // d.step + 1)
    if d.step is not None:
        return rng.choice(grid(d))
    if d.log:
        return math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
    return rng.uniform(d.low, d.high)


def clustered(rng: random.Random, d, n: int):
    """`n` values, most near a few centres: many ties for discrete ranges, gaps below the
    clip for continuous ones."""
    centres = [draw(rng, d) for _ in range(3)]
    out = []
    for _ in range(n):
        if rng.random() < 0.3 or isinstance(d, CategoricalDistribution):
            out.append(draw(rng, d) if rng.random() < 0.5 else rng.choice(centres))
            continue
        c = rng.choice(centres)
        if isinstance(d, IntDistribution):
            v = c + d.step * rng.randint(-1, 1)
            out.append(min(max(v, d.low), d.high))
        elif d.step is not None:
            v = c + d.step * rng.randint(-1, 1)
            out.append(min(max(v, d.low), d.high))
        elif d.log:
            out.append(min(max(c * math.exp(rng.gauss(0, 0.05)), d.low), d.high))
        else:
            out.append(min(max(c + rng.gauss(0, 0.02) * (d.high - d.low), d.low), d.high))
    return out


def bounds(d) -> list:
    if isinstance(d, CategoricalDistribution):
        return [d.choices[0], d.choices[-1]]
    return [d.low, d.high]


def observations(rng: random.Random, d, kind: str):
    """External values for an observation pattern."""
    lo, hi = bounds(d)
    if kind == "n0":
        return []
    if kind == "n1":
        return [draw(rng, d)]
    if kind == "n1_low":
        return [lo]
    if kind == "n2":
        return [draw(rng, d) for _ in range(2)]
    if kind == "n5":
        return [draw(rng, d) for _ in range(5)]
    if kind == "ties_bounds":
        # Duplicates, both bounds, the same value thrice.
        a, b = draw(rng, d), draw(rng, d)
        return [a, lo, b, a, hi, lo, a, b, hi, draw(rng, d), a, lo]
    if kind == "all_equal":
        a = draw(rng, d)
        return [a] * 6
    if kind == "n30":
        return [draw(rng, d) for _ in range(30)]
    if kind == "n30_ties":
        return clustered(rng, d, 30)
    if kind == "n64":
        return [draw(rng, d) for _ in range(64)]
    if kind == "n130":
        return clustered(rng, d, 130)
    if kind == "n260":
        return [draw(rng, d) for _ in range(260)]
    raise ValueError(kind)


def points_1d(rng: random.Random, d, obs_internal: list[float]) -> list[float]:
    """Internal values to evaluate at: the bounds, grid values, observed values, random."""
    if isinstance(d, CategoricalDistribution) or d.step is not None or (
        isinstance(d, IntDistribution)
    ):
        g = grid(d)
        if len(g) <= 12:
            pts = list(g)
        else:
            pts = [g[0], g[1], g[-2], g[-1]] + rng.sample(g[2:-2], 6)
    else:
        pts = [d.low, d.high]
        if d.log:
            lo, hi = math.log(d.low), math.log(d.high)
            pts += [math.exp(rng.uniform(lo, hi)) for _ in range(6)]
            pts += [d.low * (1 + 1e-9), d.high * (1 - 1e-9)]
        else:
            pts += [rng.uniform(d.low, d.high) for _ in range(6)]
            pts += [0.5 * (d.low + d.high), d.low + 1e-9 * (d.high - d.low)]
    pts += rng.sample(obs_internal, min(3, len(obs_internal)))
    return [float(p) for p in pts]


def internal(d, v) -> float:
    return float(d.to_internal_repr(v))


def independent_cases(rng: random.Random) -> list[dict]:
    kinds = [
        "n0", "n1", "n1_low", "n2", "n5", "ties_bounds", "all_equal", "n30", "n30_ties", "n130",
    ]
    cases = []
    for pname, d in SPACES.items():
        for kind in kinds + (["n64", "n260"] if pname in ("float", "int", "cat") else []):
            ext = observations(rng, d, kind)
            ints = [internal(d, v) for v in ext]
            pts = points_1d(rng, d, ints)
            cases.append(
                estimator_case(f"independent/{pname}/{kind}", {pname: d}, {pname: ext},
                               [{pname: p} for p in pts])
            )
    return cases


def multivariate_cases(rng: random.Random) -> list[dict]:
    full = {k: SPACES[k] for k in
            ["float", "float_log", "float_step", "int", "int_step", "int_log", "cat"]}
    pair = {k: SPACES[k] for k in ["float_log", "int"]}
    cases = []
    for space_name, space in [("all", full), ("pair", pair)]:
        for kind in ["n0", "n1", "n5", "ties_bounds", "n30", "n130"]:
            ext = {}
            for p, d in space.items():
                if kind == "ties_bounds":
                    # Whole rows repeated, and rows with a bound in some dimension.
                    base = [draw(rng, d) for _ in range(4)]
                    lo, hi = bounds(d)
                    ext[p] = [base[0], base[1], base[0], lo, base[2], hi, base[0], base[3]]
                else:
                    ext[p] = observations(rng, d, kind)
            per_dim = {
                p: points_1d(rng, d, [internal(d, v) for v in ext[p]]) for p, d in space.items()
            }
            pts = []
            for i in range(16):
                pt = {}
                for p in space:
                    cand = per_dim[p]
                    # The first points walk the candidates in order (bounds together),
                    # the rest mix them at random.
                    pt[p] = cand[i] if i < 2 else rng.choice(cand)
                pts.append(pt)
            cases.append(estimator_case(f"multivariate/{space_name}/{kind}", space, ext, pts))
    return cases


# ---------------------------------------------------------------- the split


def split_case(name: str, direction: str, history: list[dict]) -> dict:
    """Optuna's below/above split for the trial asked after `history`, with and without
    constant liar.

    Each history entry: state ("complete", "pruned", "running", "failed"), value, intermediate
    ({step: value}). Every trial has param "x".
    """
    trials = None
    outcomes = []
    for constant_liar in (True, False):
        number, recorded, outcome = optuna_split(direction, constant_liar, history)
        assert trials is None or trials == recorded
        trials = recorded
        outcomes.append({"constant_liar": constant_liar, **outcome})
    return {
        "name": name,
        "direction": direction,
        "number": number,
        "trials": trials,
        "outcomes": outcomes,
    }


def optuna_split(direction: str, constant_liar: bool, history: list[dict]):
    """Runs a `TPESampler` on a study holding `history` for the next trial and captures the
    `_split_trials` call `TPESampler._sample` makes."""
    dist = FloatDistribution(0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=0, constant_liar=constant_liar, multivariate=False, seed=0)
    study = optuna.create_study(direction=direction, sampler=sampler)
    states = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "running": TrialState.RUNNING,
        "failed": TrialState.FAIL,
    }
    for i, t in enumerate(history):
        study.add_trial(optuna.trial.create_trial(
            state=states[t["state"]],
            value=t.get("value"),
            params={"x": (i * 0.618) % 1.0},
            distributions={"x": dist},
            intermediate_values=t.get("intermediate", {}),
        ))
    captured = []
    original = sampler_mod._split_trials

    def spy(study_, trials, n_below):
        below, above = original(study_, trials, n_below)
        captured.append((n_below, [t.number for t in below], [t.number for t in above]))
        return below, above

    sampler_mod._split_trials = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask()
            trial.suggest_float("x", 0.0, 1.0)
    finally:
        sampler_mod._split_trials = original
    assert len(captured) == 1, captured
    n_below, below, above = captured[0]
    # The history as the next suggestion sees it: the asked trial is running.
    recorded = []
    for t in study.get_trials(deepcopy=False):
        recorded.append({
            "number": t.number,
            "state": {v: k for k, v in states.items()}[t.state],
            "value": None if t.value is None else f(t.value),
            "intermediate": [[s, f(v)] for s, v in sorted(t.intermediate_values.items())],
        })
    return trial.number, recorded, {"n_below": n_below, "below": below, "above": above}


def histories(rng: random.Random) -> list[tuple[str, str, list[dict]]]:
    out = []
    out.append(("empty", "minimize", []))
    out.append(("complete_only", "minimize",
                [{"state": "complete", "value": rng.choice([1.0, 2.0, 3.0, rng.random()])}
                 for _ in range(15)]))
    # Ties across signs of zero, infinities, duplicates.
    # Python compares -0.0 and 0.0 equal (the earlier trial wins the tie).
    out.append(("signed_zero_ties", "minimize",
                [{"state": "complete", "value": v}
                 for v in [0.0, -0.0, 1.0, -0.0, 0.0, 2.0, math.inf, -math.inf, 3.0, 0.0,
                           5.0, -0.0]]))
    out.append(("signed_zero_ties_max", "maximize",
                [{"state": "complete", "value": v}
                 for v in [0.0, -0.0, -1.0, -0.0, 0.0, -2.0, -math.inf, 0.0, -5.0, -0.0, -0.0,
                           -3.0]]))

    out.append(("pruned_signed_zero_ties", "minimize",
                [{"state": "complete", "value": 1.0},
                 {"state": "pruned", "intermediate": {0: 0.5, 3: 0.0}},
                 {"state": "pruned", "intermediate": {3: -0.0}},
                 {"state": "pruned", "intermediate": {0: -0.0}},
                 {"state": "pruned", "intermediate": {0: 0.0}},
                 {"state": "pruned", "intermediate": {}},
                 {"state": "pruned", "intermediate": {3: math.nan}},
                 {"state": "pruned", "intermediate": {3: math.inf}},
                 {"state": "pruned", "intermediate": {1: -7.0}},
                 {"state": "failed"},
                 {"state": "pruned", "intermediate": {3: -0.0}},
                 {"state": "pruned", "intermediate": {3: 0.0}}]
                + [{"state": "pruned", "intermediate": {1: float(k)}} for k in range(10)]))
    out.append(("pruned_signed_zero_ties_max", "maximize",
                [{"state": "complete", "value": 1.0},
                 {"state": "pruned", "intermediate": {2: 0.0}},
                 {"state": "pruned", "intermediate": {2: -0.0}},
                 {"state": "pruned", "intermediate": {2: 0.0}},
                 {"state": "pruned", "intermediate": {2: math.nan}},
                 {"state": "pruned", "intermediate": {}},
                 {"state": "pruned", "intermediate": {0: 9.0}},
                 {"state": "pruned", "intermediate": {2: -math.inf}},
                 {"state": "failed"},
                 {"state": "pruned", "intermediate": {2: -0.0}},
                 {"state": "running"},
                 {"state": "pruned", "intermediate": {2: -1.0}}]
                + [{"state": "pruned", "intermediate": {0: float(k)}} for k in range(11)]))

    # Pruned trials without intermediate values rank after those with some.
    out.append(("pruned_without_intermediate", "minimize",
                [{"state": "complete", "value": 0.5}]
                + [{"state": "pruned", "intermediate": {}}] * 6
                + [{"state": "pruned", "intermediate": {0: 1.0}},
                   {"state": "pruned", "intermediate": {0: math.nan}},
                   {"state": "running"},
                   {"state": "pruned", "intermediate": {1: 3.0}},
                   {"state": "pruned", "intermediate": {0: -2.0}}]
                + [{"state": "pruned", "intermediate": {}}] * 10))

    def pruned(rng: random.Random, max_step: int, nan: float = 0.1, zero: float = 0.1) -> dict:
        if rng.random() < 0.1:
            return {"state": "pruned", "intermediate": {}}
        steps = sorted(rng.sample(range(max_step + 1), rng.randint(1, min(4, max_step + 1))))
        inter = {}
        for s in steps:
            r = rng.random()
            inter[s] = (math.nan if r < nan else rng.choice([0.0, -0.0]) if r < nan + zero
                        else round(rng.uniform(-1, 1), 2))
        return {"state": "pruned", "intermediate": inter}

    def mixed(n: int, max_step: int, p_complete: float) -> list[dict]:
        h = []
        for _ in range(n):
            r = rng.random()
            if r < p_complete:
                h.append({"state": "complete", "value": round(rng.uniform(-1, 1), 1)})
            elif r < p_complete + 0.5 * (1 - p_complete):
                h.append(pruned(rng, max_step))
            elif r < p_complete + 0.8 * (1 - p_complete):
                h.append({"state": "running"})
            else:
                h.append({"state": "failed"})
        return h

    for direction in ["minimize", "maximize"]:
        out.append((f"mixed_small_{direction}", direction, mixed(40, 3, 0.5)))
        # Few complete trials: the pruned ones fill the good group, ranked by last step
        # then value (NaN last, no intermediate values after any step).
        out.append((f"mostly_pruned_{direction}", direction,
                    [{"state": "complete", "value": 0.5}] + mixed(60, 5, 0.0)))
        out.append((f"mixed_large_{direction}", direction, mixed(320, 6, 0.6)))
    return out


def split_cases(rng: random.Random) -> list[dict]:
    return [split_case(name, direction, history) for name, direction, history in histories(rng)]


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    p = tpe_parameters()
    doc = {
        "generator": "tests/oracle/gen_tpe_cases.py",
        "seed": args.seed,
        "optuna": optuna.__version__,
        "numpy": np.__version__,
        "parameters": {
            "prior_weight": p.prior_weight,
            "consider_magic_clip": p.consider_magic_clip,
            "consider_endpoints": p.consider_endpoints,
            "weights": "optuna.samplers._tpe.sampler.default_weights",
        },
        "estimators": independent_cases(rng) + multivariate_cases(rng),
        "splits": split_cases(rng),
    }
    with open(args.out, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    n_tie = sum(c["tie_order_matters"] for c in doc["estimators"])
    print(f"{len(doc['estimators'])} estimators ({n_tie} with tie-order-dependent densities), "
          f"{len(doc['splits'])} splits -> {args.out}")


if __name__ == "__main__":
    main()
