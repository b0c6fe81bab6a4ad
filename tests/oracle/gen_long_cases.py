#!/usr/bin/env python3
"""Generates long-curve pruner conformance cases with Optuna 5.0 as the oracle (issue 16).

Every case has 6-12 trials whose curves span at least 5,000 steps (some about 20,000), with
reporting gaps, NaN values and step schedules that differ between trials, and every pruner
kind prunes at least one trial at a step after 1,000 (asserted below).

The curves are not stored: each trial is described by the parameters of a small integer-only
generator (`splitmix64-pwl-v1`, below) that `tests/support/long_curves.rs` re-implements, so
both sides see bit-identical inputs and `long_cases.json` stays small. Optuna's outcome for
every trial (state, prunedAtStep, value: the format of `cases.json`) is obtained by replaying
the expanded curves through Optuna's own pruner (`gen_cases.run_optuna`).

    python3 -m venv .venv-oracle && .venv-oracle/bin/pip install optuna==5.0.0 scipy
    .venv-oracle/bin/python tests/oracle/gen_long_cases.py --out tests/oracle/long_cases.json

Curve generator `splitmix64-pwl-v1` (all integer arithmetic; a trial's parameters):

    seed          u64, the splitmix64 state
    schedule      [[start, stride, count], ...]: candidate steps start + i*stride, i < count,
                  pieces concatenated; candidate steps must strictly increase
    skipPer1024   a candidate step is not reported when (r >> 54) < skipPer1024
    nanPer65536   a reported value is NaN when ((r >> 38) & 0xFFFF) < nanPer65536
    nanAt         candidate steps that are always reported, as NaN
    base          integer
    segments      [[from, to, slope], ...]: trend(s) = sum slope * clamp(s - from, 0, to - from)
    noiseBits     noise = (r & (2^noiseBits - 1)) - 2^(noiseBits - 1)  (0 when noiseBits = 0)
    scaleBits     value = (base + trend(s) + noise) / 2^scaleBits

where r is the next splitmix64 output, drawn exactly once per candidate step (reported or
not), in step order. |base + trend + noise| < 2^26 and scaleBits <= 10, so every value is a
dyadic rational that float64 holds exactly and that JSON prints with at most 15 significant
digits (serde_json reads it back exactly). `check` in each trial (reported steps, last step,
FNV-1a 64 of the little-endian (step i64, value f64 bits) pairs, NaN as 0x7ff8000000000000)
lets the Rust side verify its expansion before replaying anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
import warnings
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import optuna  # noqa: E402

from gen_cases import run_optuna  # noqa: E402

GENERATOR = "splitmix64-pwl-v1"
MASK64 = (1 << 64) - 1
NAN_BITS = 0x7FF8000000000000
LATE = 1000  # "decisions after step 1,000"


# ---------------------------------------------------------------- the curve generator


def splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def trend(segments: list[list[int]], s: int) -> int:
    t = 0
    for lo, hi, slope in segments:
        t += slope * min(max(s - lo, 0), hi - lo)
    return t


def expand(c: dict) -> tuple[list[int], list[float | None]]:
    """The (steps, values) of one trial; None is a reported NaN."""
    state = c["seed"]
    assert 0 <= state <= MASK64
    scale = c["scaleBits"]
    assert 0 <= scale <= 10
    nb = c["noiseBits"]
    assert 0 <= nb <= 24
    nan_at = set(c.get("nanAt", []))
    steps: list[int] = []
    values: list[float | None] = []
    prev = -1
    seen_nan_at = set()
    for start, stride, count in c["schedule"]:
        assert start >= 0 and stride >= 1 and count >= 1
        for i in range(count):
            s = start + i * stride
            assert s > prev, "candidate steps must strictly increase"
            prev = s
            state, r = splitmix64(state)
            forced = s in nan_at
            if forced:
                seen_nan_at.add(s)
            elif (r >> 54) < c["skipPer1024"]:
                continue
            steps.append(s)
            if forced or ((r >> 38) & 0xFFFF) < c["nanPer65536"]:
                values.append(None)
                continue
            noise = (r & ((1 << nb) - 1)) - (1 << (nb - 1)) if nb > 0 else 0
            x = c["base"] + trend(c["segments"], s) + noise
            assert abs(x) < (1 << 26), x
            v = x / (1 << scale)
            # the float is exactly the integer formula's value
            assert Fraction(v) == Fraction(x, 1 << scale), (x, v)
            assert math.ldexp(float(x), -scale) == v
            values.append(v)
    assert seen_nan_at == nan_at, "nanAt steps must be candidate steps"
    return steps, values


def fnv1a64(steps: list[int], values: list[float | None]) -> int:
    h = 0xCBF29CE484222325
    for s, v in zip(steps, values):
        bits = NAN_BITS if v is None else struct.unpack("<Q", struct.pack("<d", v))[0]
        for b in struct.pack("<qQ", s, bits):
            h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def curve(seed: int, schedule, base: int, segments, *, noise: int = 8, skip: int = 0,
          nan: int = 0, nan_at=(), scale: int = 8) -> dict:
    c = {"seed": seed, "schedule": [list(p) for p in schedule], "skipPer1024": skip,
         "nanPer65536": nan}
    if nan_at:
        c["nanAt"] = sorted(nan_at)
    c.update({"base": base, "segments": [list(g) for g in segments], "noiseBits": noise,
              "scaleBits": scale})
    return c


# ---------------------------------------------------------------- the cases
#
# Values are in units of 2^-8 unless scaleBits says otherwise; "loss" curves decrease
# (minimize), "accuracy" curves increase (maximize). Designs aim at late decisions: curves
# that are good early and get overtaken later, divergence after a knee, NaN at late
# checkpoints, and rungs placed after step 1,000.


def cases() -> list[dict]:
    out = []

    # Median: three completed decreasing trials set the bar; trials that drop fast and then
    # plateau are overtaken around step 3,500-5,000 and pruned there (checks every 25 steps
    # after a 500-step warm-up; a missed checkpoint is postponed to the next report).
    out.append({
        "name": "long-median",
        "study": "long-median",
        "direction": "minimize",
        "pruner": {"median": {"startupTrials": 3, "warmupSteps": 500, "intervalSteps": 25,
                              "minTrials": 2}},
        "curves": [
            curve(101, [[0, 1, 12000]], 1_000_000, [[0, 4000, -40], [4000, 12000, -10]],
                  noise=10, skip=20),
            curve(102, [[0, 1, 8000]], 1_010_000, [[0, 3000, -45], [3000, 8000, -8]],
                  noise=10, skip=40, nan=60),
            curve(103, [[0, 2, 5000]], 990_000, [[0, 5000, -35], [5000, 10000, -12]],
                  nan=40),
            curve(104, [[0, 1, 9000]], 1_000_000, [[0, 1500, -100], [1500, 9000, 0]],
                  noise=9, skip=30),
            curve(105, [[0, 1, 2000], [2000, 3, 6000]], 1_000_000,
                  [[0, 2500, -60], [2500, 20000, -1]], skip=10, nan_at=[2003, 4001]),
            curve(106, [[0, 1, 20000]], 980_000, [[0, 6000, -50], [6000, 20000, -5]],
                  noise=10, skip=50),
            curve(107, [[1, 2, 5000]], 1_000_000, [[0, 2000, -70], [2000, 10000, -5]],
                  skip=5),
            curve(108, [[0, 1, 6000]], 1_200_000, [[0, 6000, -20]], skip=100),
            curve(109, [[0, 1, 7000]], 970_000, [[0, 7000, -45]], noise=10, skip=15,
                  nan_at=[3000, 6999]),
        ],
    })

    # Percentile 25 (maximize: the 75th percentile of completed trials is the bar), warm-up
    # 1,000, checks every 10 steps, at least 3 completed trials at the step.
    out.append({
        "name": "long-percentile",
        "study": "long-percentile",
        "direction": "maximize",
        "pruner": {"percentile": {"percentile": 25.0, "startupTrials": 4, "warmupSteps": 1000,
                                  "intervalSteps": 10, "minTrials": 3}},
        "curves": [
            curve(201, [[0, 1, 10000]], 100_000, [[0, 3000, 60], [3000, 10000, 10]],
                  noise=10, skip=30),
            curve(202, [[0, 1, 9000]], 110_000, [[0, 3000, 55], [3000, 9000, 12]],
                  noise=10, skip=30),
            curve(203, [[0, 1, 12000]], 90_000, [[0, 4000, 50], [4000, 12000, 11]],
                  noise=10, skip=60, nan=50),
            curve(204, [[0, 2, 6000]], 95_000, [[0, 6000, 45], [6000, 12000, 9]],
                  skip=20),
            # fast start, early plateau: overtaken after a few thousand steps
            curve(205, [[0, 1, 8000]], 100_000, [[0, 1500, 140], [1500, 8000, 0]],
                  noise=10, skip=30),
            curve(206, [[0, 1, 1500], [1500, 5, 3000]], 100_000,
                  [[0, 2000, 100], [2000, 20000, 1]], skip=20, nan_at=[1505, 2600]),
            curve(207, [[0, 1, 15000]], 105_000, [[0, 5000, 62], [5000, 15000, 14]],
                  noise=10, skip=10),
            curve(208, [[3, 3, 3000]], 100_000, [[0, 2500, 90], [2500, 9000, 2]],
                  noise=9),
            curve(209, [[0, 1, 6000]], 80_000, [[0, 6000, 30]], skip=200),
            curve(210, [[0, 1, 7000]], 100_000, [[0, 3000, 75], [3000, 7000, 3]],
                  noise=10, skip=40, nan=200),
        ],
    })

    # Successive halving with rungs at 300, 900, 2,700, 8,100: decisions at the last two
    # rungs (reached at the first reported step at or after them) are late.
    out.append({
        "name": "long-successive-halving",
        "study": "long-sha",
        "direction": "minimize",
        "pruner": {"successiveHalving": {"minResource": 300, "reductionFactor": 3,
                                         "minEarlyStoppingRate": 0, "bootstrapCount": 0}},
        "curves": [
            curve(301, [[0, 1, 10000]], 1_000_000, [[0, 3000, -60], [3000, 10000, -20]],
                  noise=10, skip=30),
            curve(302, [[0, 1, 9000]], 990_000, [[0, 1000, -90], [1000, 9000, -10]],
                  noise=10, skip=50),
            curve(303, [[0, 1, 12000]], 1_005_000, [[0, 3000, -70], [3000, 12000, -25]],
                  noise=10, skip=30, nan=30),
            curve(304, [[0, 1, 9000]], 960_000, [[0, 2000, -100], [2000, 9000, 5]],
                  noise=10, skip=80),
            curve(305, [[0, 1, 3000], [3000, 7, 2000]], 980_000,
                  [[0, 3000, -75], [3000, 20000, -15]], noise=10, skip=20),
            curve(306, [[0, 1, 9000]], 950_000, [[0, 2000, -95], [2000, 9000, -3]],
                  noise=10, skip=40, nan_at=[2700]),
            curve(307, [[1, 2, 9000]], 1_000_000, [[0, 4000, -80], [4000, 18000, -30]],
                  noise=10, skip=10),
            curve(308, [[0, 1, 20000]], 985_000, [[0, 3000, -85], [3000, 20000, -22]],
                  noise=10, skip=25),
            curve(309, [[0, 1, 6000]], 1_100_000, [[0, 6000, -40]], noise=10),
            curve(310, [[0, 1, 9000]], 970_000, [[0, 2700, -90], [2700, 9000, -4]],
                  noise=10, skip=100),
        ],
    })

    # Successive halving with an `auto` minimum resource (max last step of completed
    # trials // 100 = 150 once the first 15,000-step trial completes) and a minimum early
    # stopping rate of 1: rungs at 600, 2,400 and 9,600 (eta 4). Maximize.
    out.append({
        "name": "long-successive-halving-auto",
        "study": "long-sha-auto",
        "direction": "maximize",
        "pruner": {"successiveHalving": {"minResource": "auto", "reductionFactor": 4,
                                         "minEarlyStoppingRate": 1}},
        "curves": [
            curve(401, [[0, 1, 15000]], 100_000, [[0, 3000, 60], [3000, 15000, 10]],
                  noise=10, skip=30),
            curve(402, [[0, 1, 12000]], 120_000, [[0, 2000, 80], [2000, 12000, 5]],
                  noise=10, skip=30),
            curve(403, [[0, 2, 7000]], 100_000, [[0, 5000, 50], [5000, 14000, 15]],
                  noise=10, skip=20, nan=40),
            curve(404, [[0, 1, 11000]], 90_000, [[0, 11000, 30]], noise=10, skip=60),
            curve(405, [[0, 1, 2000], [2000, 3, 4000]], 130_000,
                  [[0, 2400, 75], [2400, 14000, 4]], noise=10, skip=10, nan_at=[2402]),
            # top at the first rung, then flat: pruned at 2,384
            curve(406, [[0, 1, 12000]], 160_000, [[0, 800, 60], [800, 12000, 0]],
                  noise=10, skip=40),
            # top at the first two rungs, then nearly flat: pruned at 9,536
            curve(407, [[0, 1, 10000]], 150_000, [[0, 2400, 70], [2400, 10000, 1]],
                  noise=10, skip=20),
            curve(408, [[5, 5, 2400]], 100_000, [[0, 4000, 65], [4000, 12000, 18]],
                  noise=10),
        ],
    })

    # Hyperband, minResource 100, maxResource 12,000, eta 3: 5 brackets, rungs at
    # 100 * 3^k; a trial competes only inside its bracket (crc32 of "long-hb_<number>").
    hb_curves = []
    for k in range(12):
        knee = 1500 + 700 * (k % 5)
        base = 1_000_000 + 7_000 * ((k * 5) % 7)
        slope1 = -(60 + 9 * ((k * 3) % 8))
        slope2 = -(2 + 3 * ((k * 7) % 6))
        sched = [[0, 1, 12000]] if k % 4 else [[0, 1, 4000], [4000, 4, 2000]]
        if k % 6 == 5:
            sched = [[1, 2, 6000]]
        hb_curves.append(curve(500 + k, sched, base, [[0, knee, slope1], [knee, 13000, slope2]],
                               noise=10, skip=10 + 17 * (k % 4), nan=20 if k % 3 == 0 else 0,
                               nan_at=[8100] if k == 7 else []))
    out.append({
        "name": "long-hyperband",
        "study": "long-hb",
        "direction": "minimize",
        "pruner": {"hyperband": {"minResource": 100, "maxResource": 12000, "reductionFactor": 3}},
        "curves": hb_curves,
    })

    # Hyperband with an `auto` maximum resource (last step of the first completed trial + 1
    # = 20,000), minResource 200, eta 4: 4 brackets, rungs at 200 * 4^k. Maximize.
    hb2 = []
    for k in range(10):
        knee = 1200 + 900 * (k % 4)
        base = 100_000 + 5_000 * ((k * 3) % 5)
        slope1 = 40 + 7 * ((k * 5) % 6)
        slope2 = 1 + 2 * ((k * 3) % 5)
        if k % 2 == 1:  # fast start, then flat: strong at early rungs only
            base, knee, slope1, slope2 = 150_000 + 4_000 * k, 600 + 300 * k, 80 + 5 * k, 0
        n = 20000 if k == 0 else 9000 + 1000 * (k % 4)
        sched = [[0, 1, n]] if k % 3 else [[0, 2, n // 2]]
        hb2.append(curve(600 + k, sched, base, [[0, knee, slope1], [knee, 20000, slope2]],
                         noise=10, skip=15 + 11 * (k % 3), nan=25 if k % 4 == 1 else 0))
    out.append({
        "name": "long-hyperband-auto",
        "study": "long-hb-auto",
        "direction": "maximize",
        "pruner": {"hyperband": {"minResource": 200, "reductionFactor": 4}},
        "curves": hb2,
    })

    # Threshold: bounds [100, 3000] (in value units), warm-up 1,200, checks every 50 steps.
    # Curves diverge after a knee, sink below the lower bound, or report NaN at a late
    # checkpoint; NaN away from a checkpoint is not looked at.
    out.append({
        "name": "long-threshold",
        "study": "long-threshold",
        "direction": "minimize",
        "pruner": {"threshold": {"lower": 100.0, "upper": 3000.0, "warmupSteps": 1200,
                                 "intervalSteps": 50}},
        "curves": [
            curve(701, [[0, 1, 10000]], 600_000, [[0, 10000, -20]], noise=10, skip=30),
            # diverges after step 3,000: crosses 3000.0 (768,000) near step 4,100
            curve(702, [[0, 1, 9000]], 600_000, [[0, 3000, -20], [3000, 9000, 200]],
                  noise=10, skip=30),
            # above the upper bound during warm-up only
            curve(703, [[0, 1, 8000]], 900_000, [[0, 1100, -200], [1100, 8000, -5]],
                  noise=10, skip=20),
            # sinks below the lower bound (25,600) late; stride 7 postpones checks
            curve(704, [[0, 7, 3000]], 500_000, [[0, 21000, -30]], noise=10, skip=40),
            # NaN at a checkpoint after warm-up
            curve(705, [[0, 1, 9000]], 500_000, [[0, 9000, -10]], noise=10, skip=0,
                  nan_at=[2050]),
            # NaN only between checkpoints: kept, completes
            curve(706, [[0, 1, 6000]], 500_000, [[0, 6000, -10]], noise=10, skip=10,
                  nan_at=[2051, 5123]),
            curve(707, [[0, 1, 2000], [2000, 3, 6000]], 400_000,
                  [[0, 12000, -25], [12000, 20000, -40]], noise=10, skip=20, nan=30),
            curve(708, [[2, 2, 4000]], 700_000, [[0, 5000, 5], [5000, 8000, 60]], noise=10),
        ],
    })

    # Patient (patience 30 reports, minDelta 1.0) wrapping a median pruner: a trial whose
    # loss rises after a knee is handed to the median only when it stops improving; the
    # median then prunes it if its best value is worse than the completed trials' median.
    out.append({
        "name": "long-patient-median",
        "study": "long-patient",
        "direction": "minimize",
        "pruner": {"patient": {"patience": 30, "minDelta": 1.0,
                               "wrapped": {"median": {"startupTrials": 2, "warmupSteps": 100,
                                                      "intervalSteps": 1}}}},
        "curves": [
            curve(801, [[0, 1, 8000]], 1_000_000, [[0, 8000, -40]], noise=8, skip=20),
            curve(802, [[0, 1, 7000]], 1_010_000, [[0, 7000, -42]], noise=8, skip=20, nan=40),
            curve(803, [[0, 1, 6000]], 1_005_000, [[0, 6000, -41]], noise=8, skip=30),
            # knee at 3,000 well above the median there: pruned soon after the knee
            curve(804, [[0, 1, 7000]], 1_000_000, [[0, 3000, -20], [3000, 7000, 30]],
                  noise=8, skip=20),
            # knee at 500: pruned before step 1,000
            curve(805, [[0, 1, 5000]], 1_050_000, [[0, 500, -20], [500, 5000, 40]],
                  noise=8, skip=10),
            # good until a knee at 4,000 (better than the median then): the median prunes
            # it later, once the completed trials pass its best value
            curve(806, [[0, 1, 7500]], 1_000_000, [[0, 4000, -45], [4000, 7500, 10]],
                  noise=8, skip=20, nan_at=[4500]),
            curve(807, [[0, 2, 3000]], 1_000_000, [[0, 2500, -60], [2500, 6000, 25]],
                  noise=8, skip=15),
            curve(808, [[0, 1, 6000]], 990_000, [[0, 6000, -43]], noise=8, skip=40),
        ],
    })

    # Wilcoxon against the best completed trial, p < 0.1, at least 1,100 paired steps: a
    # trial worse from the start is pruned once it has 1,100 shared steps; crossing curves
    # (better early, worse later) are pruned when the late differences outweigh.
    out.append({
        "name": "long-wilcoxon",
        "study": "long-wilcoxon",
        "direction": "minimize",
        "pruner": {"wilcoxon": {"pThreshold": 0.1, "startupSteps": 1100}},
        "curves": [
            curve(901, [[0, 1, 7000]], 1_000_000, [[0, 7000, -50]], noise=10),
            curve(902, [[0, 1, 7000]], 1_020_000, [[0, 7000, -50]], noise=10, skip=40),
            curve(903, [[0, 1, 6000]], 960_000, [[0, 2000, -50], [2000, 6000, -40]],
                  noise=10, skip=20),
            curve(904, [[0, 1, 6500]], 1_000_000, [[0, 7000, -52]], noise=12, skip=30),
            curve(905, [[0, 2, 3000]], 950_000, [[0, 1500, -50], [1500, 6000, -30]],
                  noise=10, skip=10),
            # a NaN keeps a trial from being pruned from then on (Optuna warns, keeps)
            curve(906, [[0, 1, 6000]], 1_030_000, [[0, 6000, -50]], noise=10, skip=20,
                  nan_at=[900]),
            curve(907, [[0, 1, 5000]], 990_000, [[0, 5000, -52]], noise=12, skip=50),
        ],
    })

    # Wilcoxon, maximize, p < 0.05 after 2 paired steps: crossing accuracy curves.
    out.append({
        "name": "long-wilcoxon-crossing",
        "study": "long-wilcoxon-x",
        "direction": "maximize",
        "pruner": {"wilcoxon": {"pThreshold": 0.05}},
        "curves": [
            curve(951, [[0, 1, 6000]], 100_000, [[0, 6000, 50]], noise=11),
            # better than the best trial early, worse after the crossing (step 1,333)
            curve(952, [[0, 1, 6000]], 104_000, [[0, 6000, 47]], noise=11, skip=30),
            curve(953, [[0, 1, 5500]], 102_000, [[0, 6000, 48]], noise=11, skip=20),
            curve(954, [[0, 2, 3000]], 106_000, [[0, 6000, 46]], noise=11, skip=10),
            # worse early, better later: pruned early
            curve(955, [[0, 1, 5000]], 99_000, [[0, 5000, 51]], noise=12, skip=40),
            curve(956, [[0, 1, 6000]], 103_000, [[0, 6000, 49]], noise=11, skip=25,
                  nan=3),
        ],
    })
    return out


# ---------------------------------------------------------------- driver


def kind_of(pruner: dict) -> str:
    return next(iter(pruner))


def build(case: dict) -> tuple[dict, list[dict]]:
    trials = []
    for c in case["curves"]:
        steps, values = expand(c)
        c["check"] = {"reported": len(steps), "lastStep": steps[-1],
                      "fnv1a64": fnv1a64(steps, values)}
        trials.append({"steps": steps, "values": values})
    replay_input = {"study": case["study"], "direction": case["direction"],
                    "pruner": case["pruner"], "trials": trials}
    expected = run_optuna(replay_input)
    # Told PRUNED, a trial's value is its last reported value; COMPLETE, its last value:
    # either way a value of the generated curve, bit for bit.
    for e, t in zip(expected, trials):
        if e["state"] == "pruned":
            i = t["steps"].index(e["prunedAtStep"])
            want = t["values"][i]
        else:
            want = t["values"][-1]
        assert e["value"] == want and (want is None) == (e["value"] is None), (e, want)
    return replay_input, expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="generate only the case with this name (no checks)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    all_cases = cases()
    if args.only:
        all_cases = [c for c in all_cases if c["name"] == args.only]
    out_cases = []
    late_by_kind: dict[str, int] = {}
    for case in all_cases:
        t0 = time.time()
        replay_input, expected = build(case)
        kind = kind_of(case["pruner"])
        n = len(case["curves"])
        assert 6 <= n <= 12, case["name"]
        for c, t in zip(case["curves"], replay_input["trials"]):
            sched_last = c["schedule"][-1][0] + (c["schedule"][-1][2] - 1) * c["schedule"][-1][1]
            assert sched_last >= 4999, (case["name"], c["seed"], "curve shorter than 5,000 steps")
            assert len(t["steps"]) >= 1000
        pruned = [e for e in expected if e["state"] == "pruned"]
        late = [e for e in pruned if e["prunedAtStep"] > LATE]
        late_by_kind[kind] = late_by_kind.get(kind, 0) + len(late)
        span = max(t["steps"][-1] for t in replay_input["trials"])
        reports = sum(len(t["steps"]) for t in replay_input["trials"])
        nans = sum(v is None for t in replay_input["trials"] for v in t["values"])
        print(f"{case['name']:32s} {kind:18s} trials={n:2d} maxStep={span:5d} "
              f"reports={reports:6d} nan={nans:3d} pruned={len(pruned)} "
              f"late={len(late)} at={[e['prunedAtStep'] for e in pruned]} "
              f"failed={sum(e['state'] == 'failed' for e in expected)} "
              f"({time.time() - t0:.0f}s)", flush=True)
        out_cases.append({
            "name": case["name"],
            "study": case["study"],
            "direction": case["direction"],
            "pruner": case["pruner"],
            "curves": case["curves"],
            "expected": expected,
        })
    if not args.only:
        for kind in ["median", "percentile", "successiveHalving", "hyperband", "threshold",
                     "patient", "wilcoxon"]:
            assert late_by_kind.get(kind, 0) >= 1, f"{kind}: no pruning after step {LATE}"
    doc = {
        "generator": {"curves": GENERATOR, "optuna": optuna.__version__,
                      "lateStep": LATE},
        "cases": out_cases,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {len(out_cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
