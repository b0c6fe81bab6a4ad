//! Quality and speed of Lopper's samplers, driven by `bench/samplers_vs_optuna.py` (which
//! runs Optuna on the same functions in the same go and prints the comparison table).
//!
//! `cargo bench --bench samplers -- [--seeds N] [--trials N] [--reps N] [--only FN[:SAMPLER]]
//! [--history 100|1000] [--rounds N] [--warm N]` prints one JSON
//! object per line:
//! `{"kind":"best","function":..,"sampler":..,"seed":..,"best":..}` for every
//! function × sampler × seed, and
//! `{"kind":"time","function":..,"sampler":..,"history":..,"seconds_per_suggestion":..}`
//! (CPU seconds of the suggesting thread; `wall_seconds` too): the mean over `reps`
//! suggestions from `history` trials on, each suggested trial completing and joining the
//! history before the next, as in a study, the sampler having made the `warm` (default 20)
//! suggestions before them, untimed. `cold_seconds` is the first of those, a new sampler's
//! (after a restart), which fits everything from scratch.

use std::time::Instant;

use lopper::engine::samplers::{
    self, History, QmcKind, QmcSpec, RandomSpec, Sampler, SamplerSpec, Suggestion, TpeSpec,
};
use lopper::engine::space::{ParamSpec, SearchSpace};
use lopper::engine::{Direction, ParamValue, Params, TrialRecord, TrialState};

fn f(p: &Params, name: &str) -> f64 {
    match p.get(name) {
        Some(ParamValue::Float(x)) => *x,
        Some(ParamValue::Int(i)) => *i as f64,
        _ => f64::NAN,
    }
}

fn text<'a>(p: &'a Params, name: &str) -> &'a str {
    match p.get(name) {
        Some(ParamValue::Str(s)) => s,
        _ => "",
    }
}

fn branin(p: &Params) -> f64 {
    let (x1, x2) = (f(p, "x1"), f(p, "x2"));
    let pi = std::f64::consts::PI;
    let (a, b, c, r, s, t) = (
        1.0,
        5.1 / (4.0 * pi * pi),
        5.0 / pi,
        6.0,
        10.0,
        1.0 / (8.0 * pi),
    );
    a * (x2 - b * x1 * x1 + c * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}

fn hartmann6(p: &Params) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    let x: Vec<f64> = (0..6).map(|i| f(p, &format!("x{i}"))).collect();
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn rosenbrock4(p: &Params) -> f64 {
    let x: Vec<f64> = (0..4).map(|i| f(p, &format!("x{i}"))).collect();
    (0..3)
        .map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2))
        .sum()
}

/// A small "training run": ints, log ranges, a stepped float, categoricals and a parameter
/// active only for some optimizers. Minimum 0.
fn mixed(p: &Params) -> f64 {
    let layers = f(p, "layers");
    let width = f(p, "width");
    let lr = f(p, "lr").log10();
    let dropout = f(p, "dropout");
    let opt = text(p, "optimizer");
    let (lr_target, opt_cost) = match opt {
        "adam" => (-3.0, 0.2),
        "sgd" => (-1.5, 2.0 * (f(p, "momentum") - 0.9).abs()),
        _ => (-2.5, 0.1 + (f(p, "momentum") - 0.5).abs()),
    };
    let act = match text(p, "activation") {
        "relu" => 0.0,
        "gelu" => 0.05,
        _ => 0.3,
    };
    (lr - lr_target).powi(2)
        + (layers - 4.0).powi(2) / 4.0
        + (width.log2() - 7.0).powi(2) / 4.0
        + 10.0 * (dropout - 0.2).powi(2)
        + opt_cost
        + act
}

fn s(x: &str) -> ParamValue {
    ParamValue::Str(x.to_string())
}

type Objective = fn(&Params) -> f64;

fn problems() -> Vec<(&'static str, SearchSpace, Objective)> {
    let unit = |n: usize| {
        SearchSpace::new(
            (0..n)
                .map(|i| ParamSpec::float(&format!("x{i}"), 0.0, 1.0))
                .collect(),
        )
    };
    let rosen = SearchSpace::new(
        (0..4)
            .map(|i| ParamSpec::float(&format!("x{i}"), -5.0, 10.0))
            .collect(),
    );
    let branin_space = SearchSpace::new(vec![
        ParamSpec::float("x1", -5.0, 10.0),
        ParamSpec::float("x2", 0.0, 15.0),
    ]);
    let mixed_space = SearchSpace::new(vec![
        ParamSpec::int("layers", 1, 8, 1),
        ParamSpec::log_int("width", 8, 512),
        ParamSpec::categorical("optimizer", vec![s("adam"), s("sgd"), s("rmsprop")]),
        ParamSpec::log_float("lr", 1e-5, 1.0),
        ParamSpec::float("momentum", 0.0, 0.99).when("optimizer", vec![s("sgd"), s("rmsprop")]),
        ParamSpec::stepped_float("dropout", 0.0, 0.5, 0.05),
        ParamSpec::categorical("activation", vec![s("relu"), s("tanh"), s("gelu")]),
    ]);
    let mut out: Vec<(&'static str, SearchSpace, Objective)> = Vec::new();
    for (name, space, obj) in [
        ("branin", branin_space, branin as Objective),
        ("hartmann6", unit(6), hartmann6 as Objective),
        ("rosenbrock4", rosen, rosenbrock4 as Objective),
        ("mixed", mixed_space, mixed as Objective),
    ] {
        match space {
            Ok(space) => out.push((name, space, obj)),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    out
}

fn samplers_for(seed: u64) -> Vec<(&'static str, SamplerSpec)> {
    vec![
        (
            "random",
            SamplerSpec::Random(RandomSpec { seed: Some(seed) }),
        ),
        (
            "tpe",
            SamplerSpec::Tpe(TpeSpec {
                seed: Some(seed),
                ..TpeSpec::default()
            }),
        ),
        (
            "tpe-multivariate",
            SamplerSpec::Tpe(TpeSpec {
                seed: Some(seed),
                multivariate: true,
                ..TpeSpec::default()
            }),
        ),
        (
            "qmc",
            SamplerSpec::Qmc(QmcSpec {
                seed: Some(seed),
                kind: QmcKind::Sobol,
                scramble: true,
            }),
        ),
    ]
}

fn suggest(sampler: &dyn Sampler, space: &SearchSpace, h: &[TrialRecord], n: u64) -> Params {
    match sampler.suggest(space, Direction::Minimize, History::new(h), n) {
        Ok(Suggestion::Params(p)) => p,
        other => {
            eprintln!("unexpected suggestion {other:?}");
            Params::new()
        }
    }
}

fn complete(number: u64, params: Params, value: f64) -> TrialRecord {
    let mut t = TrialRecord::new(number);
    t.state = TrialState::Complete;
    t.params = params;
    t.value = Some(value);
    t
}

/// CPU time of this thread in seconds (robust when the machine is shared), falling back to
/// wall time where `/proc/thread-self/schedstat` is missing.
fn cpu_seconds(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 * 1e-9)
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seeds = arg(&args, "--seeds", 10);
    let trials = arg(&args, "--trials", 100);
    let reps = arg(&args, "--reps", 20);
    // `--history N` times only that history length (0: both).
    let history_only = arg(&args, "--history", 0);
    // `--rounds N` fixes the number of timing rounds (0: until 0.2 s of CPU).
    let fixed_rounds = arg(&args, "--rounds", 0);
    // `--warm N`: the sampler made the N suggestions before the timed ones (default 20).
    let warm = arg(&args, "--warm", 20) as usize;
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let problems = problems();

    for (fname, space, obj) in &problems {
        if only.as_deref().is_some_and(|o| !o.starts_with(fname)) {
            continue;
        }
        for seed in 0..seeds {
            for (sname, spec) in samplers_for(seed) {
                let Ok(sampler) = samplers::build(&spec) else {
                    continue;
                };
                let mut history = Vec::with_capacity(trials as usize);
                let mut best = f64::INFINITY;
                for number in 0..trials {
                    let p = suggest(sampler.as_ref(), space, &history, number);
                    let v = obj(&p);
                    best = best.min(v);
                    history.push(complete(number, p, v));
                }
                println!(
                    "{{\"kind\":\"best\",\"function\":\"{fname}\",\"sampler\":\"{sname}\",\"seed\":{seed},\"best\":{best}}}"
                );
            }
        }
    }

    for (fname, space, obj) in &problems {
        if only.as_deref().is_some_and(|o| !o.starts_with(fname)) {
            continue;
        }
        for history_len in [100u64, 1000] {
            if history_only != 0 && history_len != history_only {
                continue;
            }
            // A history of random trials with their objective values.
            let Ok(random) = samplers::build(&SamplerSpec::Random(RandomSpec { seed: Some(99) }))
            else {
                continue;
            };
            let history: Vec<TrialRecord> = (0..history_len)
                .map(|n| {
                    let p = suggest(random.as_ref(), space, &[], n);
                    let v = obj(&p);
                    complete(n, p, v)
                })
                .collect();
            for (sname, spec) in samplers_for(1) {
                if only
                    .as_deref()
                    .is_some_and(|o| o.contains(':') && !o.ends_with(&format!(":{sname}")))
                {
                    continue;
                }
                // As in a running study: the sampler made the previous `warm` suggestions
                // (untimed), then each timed suggestion's trial completes and joins the
                // history, `reps` times. Rounds from the same history until 0.2 s of CPU:
                // the CPU clock ticks coarsely.
                let start = Instant::now();
                let (mut spent, mut cold) = (0.0, 0.0);
                let (mut done, mut rounds, mut untimed) = (0u64, 0u64, 0u64);
                let mut sink = 0usize;
                while rounds == 0
                    || (fixed_rounds == 0 && spent < 0.2 && rounds < 100_000)
                    || rounds < fixed_rounds
                {
                    let Ok(sampler) = samplers::build(&spec) else {
                        break;
                    };
                    // Room for the trials to come: no reallocation while timed.
                    let mut h = Vec::with_capacity(history.len() + reps as usize + 1);
                    h.extend_from_slice(&history);
                    // The first is a new sampler's, timed as `cold`.
                    let first = history.len().saturating_sub(warm.max(1));
                    for k in first..history.len() {
                        let c0 = cpu_seconds(start);
                        sink += suggest(sampler.as_ref(), space, &h[..k], k as u64).len();
                        if k == first {
                            cold += cpu_seconds(start) - c0;
                        }
                        untimed += 1;
                    }
                    // The objective and the bookkeeping are timed too: a few hundred
                    // nanoseconds next to a suggestion, where reading the clock around each
                    // suggestion would cost microseconds.
                    let c0 = cpu_seconds(start);
                    for i in 0..reps.max(1) {
                        let number = history_len + i;
                        let p = suggest(sampler.as_ref(), space, &h, number);
                        sink += p.len();
                        let v = obj(&p);
                        h.push(complete(number, p, v));
                        done += 1;
                    }
                    spent += cpu_seconds(start) - c0;
                    rounds += 1;
                }
                let per = spent / done as f64;
                let cold = cold / rounds as f64;
                let wall = start.elapsed().as_secs_f64() / (done + untimed) as f64;
                println!(
                    "{{\"kind\":\"time\",\"function\":\"{fname}\",\"sampler\":\"{sname}\",\"history\":{history_len},\"seconds_per_suggestion\":{per:e},\"cold_seconds\":{cold:e},\"wall_seconds\":{wall:e},\"sink\":{sink}}}"
                );
            }
        }
    }
}
