//! Sampler behaviour: determinism, grid exhaustion, conditional spaces, warm start, TPE.

use std::collections::BTreeSet;

use lopper::engine::samplers::{
    self, GridSpec, History, QmcKind, QmcSpec, RandomSpec, SamplerError, SamplerSpec, Suggestion,
    TpeSpec,
};
use lopper::engine::space::{ParamSpec, SearchSpace};
use lopper::engine::{Direction, ParamValue, Params, TrialRecord, TrialState};

fn s(x: &str) -> ParamValue {
    ParamValue::Str(x.to_string())
}

fn issue_space() -> SearchSpace {
    SearchSpace::new(vec![
        ParamSpec::log_float("lr", 1e-4, 0.5),
        ParamSpec::int("hidden", 16, 256, 16),
        ParamSpec::categorical("optimizer", vec![s("adam"), s("sgd"), s("rmsprop")]),
        ParamSpec::float("momentum", 0.0, 0.99).when("optimizer", vec![s("sgd"), s("rmsprop")]),
    ])
    .unwrap()
}

fn all_specs() -> Vec<SamplerSpec> {
    vec![
        SamplerSpec::Random(RandomSpec { seed: Some(3) }),
        SamplerSpec::Tpe(TpeSpec {
            seed: Some(3),
            startup_trials: 5,
            ..TpeSpec::default()
        }),
        SamplerSpec::Tpe(TpeSpec {
            seed: Some(3),
            startup_trials: 5,
            multivariate: true,
            ..TpeSpec::default()
        }),
        SamplerSpec::Qmc(QmcSpec {
            seed: Some(3),
            kind: QmcKind::Sobol,
            scramble: true,
        }),
        SamplerSpec::Qmc(QmcSpec {
            seed: Some(3),
            kind: QmcKind::Halton,
            scramble: true,
        }),
    ]
}

fn params_of(sug: Suggestion) -> Params {
    match sug {
        Suggestion::Params(p) => p,
        Suggestion::Exhausted => panic!("unexpected Exhausted"),
    }
}

fn objective(p: &Params) -> f64 {
    let lr = match p["lr"] {
        ParamValue::Float(x) => x,
        _ => 1.0,
    };
    let h = match p["hidden"] {
        ParamValue::Int(i) => i as f64,
        _ => 0.0,
    };
    let bonus = match (&p["optimizer"], p.get("momentum")) {
        (ParamValue::Str(o), Some(ParamValue::Float(m))) if o == "sgd" => (m - 0.9).abs(),
        (ParamValue::Str(o), _) if o == "adam" => 0.3,
        _ => 0.6,
    };
    (lr.log10() + 2.5).powi(2) + ((h - 128.0) / 64.0).powi(2) + bonus
}

/// Runs `n` sequential trials, completing each with `objective`.
fn run(spec: &SamplerSpec, space: &SearchSpace, n: u64) -> Vec<TrialRecord> {
    let sampler = samplers::build(spec).unwrap();
    let mut history: Vec<TrialRecord> = Vec::new();
    for number in 0..n {
        let p = params_of(
            sampler
                .suggest(space, Direction::Minimize, History::new(&history), number)
                .unwrap(),
        );
        space.contains(&p).unwrap();
        let mut t = TrialRecord::new(number);
        t.value = Some(objective(&p));
        t.params = p;
        t.state = TrialState::Complete;
        history.push(t);
    }
    history
}

#[test]
fn every_sampler_is_deterministic_and_stays_in_the_space() {
    let space = issue_space();
    for spec in all_specs() {
        let a = run(&spec, &space, 30);
        let b = run(&spec, &space, 30);
        assert_eq!(a, b, "{spec:?}");
        // a fresh sampler (a restarted operator) proposes the same for the same history
        let again = samplers::build(&spec).unwrap();
        let p = again
            .suggest(&space, Direction::Minimize, History::new(&a[..20]), 20)
            .unwrap();
        assert_eq!(p, Suggestion::Params(a[20].params.clone()), "{spec:?}");
        let distinct: BTreeSet<String> = a.iter().map(|t| format!("{:?}", t.params)).collect();
        assert!(
            distinct.len() > 25,
            "{spec:?} proposes too few distinct points"
        );
        // conditional parameter present exactly when active
        for t in &a {
            let active = matches!(&t.params["optimizer"], ParamValue::Str(o) if o != "adam");
            assert_eq!(t.params.contains_key("momentum"), active);
        }
    }
}

#[test]
fn seeds_change_the_stream() {
    let space = issue_space();
    let a = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(1) }),
        &space,
        5,
    );
    let b = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(2) }),
        &space,
        5,
    );
    assert_ne!(a, b);
}

#[test]
fn grid_visits_every_combination_once_then_exhausts() {
    let space = SearchSpace::new(vec![
        ParamSpec::int("a", 0, 2, 1),
        ParamSpec::categorical("opt", vec![s("adam"), s("sgd")]),
        ParamSpec::stepped_float("m", 0.0, 1.0, 0.5).when("opt", vec![s("sgd")]),
    ])
    .unwrap();
    // 3 × (adam + sgd × 3 momenta) = 12 combinations
    let sampler = samplers::build(&SamplerSpec::Grid(GridSpec::default())).unwrap();
    let mut history = Vec::new();
    let mut seen = BTreeSet::new();
    for number in 0..12 {
        let p = params_of(
            sampler
                .suggest(&space, Direction::Minimize, History::new(&history), number)
                .unwrap(),
        );
        space.contains(&p).unwrap();
        assert!(seen.insert(format!("{p:?}")), "grid proposed {p:?} twice");
        let mut t = TrialRecord::new(number);
        t.params = p;
        // running, failed, pruned and complete trials all hold their combination
        t.state = [
            TrialState::Running,
            TrialState::Failed,
            TrialState::Pruned,
            TrialState::Complete,
        ][number as usize % 4];
        history.push(t);
    }
    assert_eq!(
        sampler
            .suggest(&space, Direction::Minimize, History::new(&history), 12)
            .unwrap(),
        Suggestion::Exhausted
    );
    // the trial being proposed (already recorded before a restart) gets the same answer
    let again = sampler
        .suggest(
            &space,
            Direction::Minimize,
            History::new(&history[..11]),
            11,
        )
        .unwrap();
    let again2 = sampler
        .suggest(&space, Direction::Minimize, History::new(&history), 11)
        .unwrap();
    assert_eq!(again, again2);
    assert_eq!(again, Suggestion::Params(history[11].params.clone()));
}

#[test]
fn grid_needs_steps() {
    let space = SearchSpace::new(vec![ParamSpec::float("x", 0.0, 1.0)]).unwrap();
    let sampler = samplers::build(&SamplerSpec::Grid(GridSpec::default())).unwrap();
    assert_eq!(
        sampler.suggest(&space, Direction::Minimize, History::new(&[]), 0),
        Err(SamplerError::GridNeedsStep("x".into()))
    );
    let ints = SearchSpace::new(vec![
        ParamSpec::int("x", 0, 1_000_000, 1),
        ParamSpec::int("y", 0, 10, 1),
    ])
    .unwrap();
    assert!(matches!(
        sampler.suggest(&ints, Direction::Minimize, History::new(&[]), 0),
        Err(SamplerError::GridTooLarge(..))
    ));
}

#[test]
fn warm_start_skips_trials_outside_the_space_with_reasons() {
    let space = issue_space();
    let earlier = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(9) }),
        &space,
        20,
    );
    let mut odd = earlier[0].clone();
    odd.params.insert("hidden".into(), ParamValue::Int(17));
    let mut unknown = earlier[1].clone();
    unknown
        .params
        .insert("dropout".into(), ParamValue::Float(0.1));
    let mut failed = earlier[2].clone();
    failed.state = TrialState::Failed;
    let mut all = earlier.clone();
    all.extend([odd, unknown, failed]);
    let (kept, skipped) = samplers::warm_start(&space, &all);
    assert_eq!(kept.len(), 20);
    assert_eq!(skipped.len(), 3);
    assert!(
        skipped[0].contains("\"hidden\" = 17 is outside int [16, 256] step 16"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].contains("\"dropout\" is not in the search space"),
        "{skipped:?}"
    );
    assert!(skipped[2].contains("Failed"), "{skipped:?}");

    // With 20 warm trials, TPE is past its 10 startup trials at trial 0.
    let tpe = samplers::build(&SamplerSpec::Tpe(TpeSpec {
        seed: Some(1),
        ..TpeSpec::default()
    }))
    .unwrap();
    let random = samplers::build(&SamplerSpec::Random(RandomSpec { seed: Some(1) })).unwrap();
    let warm = tpe
        .suggest(
            &space,
            Direction::Minimize,
            History::with_warm(&kept, &[]),
            0,
        )
        .unwrap();
    let cold = tpe
        .suggest(&space, Direction::Minimize, History::new(&[]), 0)
        .unwrap();
    assert_eq!(
        cold,
        random
            .suggest(&space, Direction::Minimize, History::new(&[]), 0)
            .unwrap()
    );
    assert_ne!(warm, cold);
}

#[test]
fn tpe_beats_random_on_a_smooth_problem() {
    let space = issue_space();
    let best = |h: &[TrialRecord]| {
        h.iter()
            .filter_map(|t| t.value)
            .fold(f64::INFINITY, f64::min)
    };
    let mut wins = 0;
    for seed in 0..5 {
        let tpe = run(
            &SamplerSpec::Tpe(TpeSpec {
                seed: Some(seed),
                ..TpeSpec::default()
            }),
            &space,
            60,
        );
        let rnd = run(
            &SamplerSpec::Random(RandomSpec { seed: Some(seed) }),
            &space,
            60,
        );
        if best(&tpe) < best(&rnd) {
            wins += 1;
        }
    }
    assert!(wins >= 4, "TPE won only {wins}/5");
}

#[test]
fn tpe_handles_running_pruned_and_failed_trials() {
    let space = issue_space();
    let mut history = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(4) }),
        &space,
        30,
    );
    for (k, t) in history.iter_mut().enumerate() {
        match k % 5 {
            0 => {
                t.state = TrialState::Pruned;
                t.intermediate.insert(k as i64 % 3, t.value.unwrap_or(0.0));
                t.value = t.intermediate.values().next_back().copied();
            }
            1 => {
                t.state = TrialState::Running;
                t.value = None;
            }
            2 => {
                t.state = TrialState::Failed;
                t.value = None;
            }
            _ => {}
        }
    }
    for spec in [
        TpeSpec {
            seed: Some(2),
            ..TpeSpec::default()
        },
        TpeSpec {
            seed: Some(2),
            constant_liar: false,
            consider_pruned: false,
            ..TpeSpec::default()
        },
        TpeSpec {
            seed: Some(2),
            multivariate: true,
            ..TpeSpec::default()
        },
    ] {
        let sampler = samplers::build(&SamplerSpec::Tpe(spec.clone())).unwrap();
        for dir in [Direction::Minimize, Direction::Maximize] {
            let p = params_of(
                sampler
                    .suggest(&space, dir, History::new(&history), 30)
                    .unwrap(),
            );
            space.contains(&p).unwrap();
            assert_eq!(
                sampler
                    .suggest(&space, dir, History::new(&history), 30)
                    .unwrap(),
                Suggestion::Params(p)
            );
        }
    }
    // constant liar: a running trial changes what is proposed next
    let liar = samplers::build(&SamplerSpec::Tpe(TpeSpec {
        seed: Some(2),
        ..TpeSpec::default()
    }))
    .unwrap();
    let honest = samplers::build(&SamplerSpec::Tpe(TpeSpec {
        seed: Some(2),
        constant_liar: false,
        ..TpeSpec::default()
    }))
    .unwrap();
    assert_ne!(
        liar.suggest(&space, Direction::Minimize, History::new(&history), 30)
            .unwrap(),
        honest
            .suggest(&space, Direction::Minimize, History::new(&history), 30)
            .unwrap()
    );
}

#[test]
fn maximize_direction_is_honoured() {
    let space = SearchSpace::new(vec![ParamSpec::float("x", 0.0, 1.0)]).unwrap();
    let sampler = samplers::build(&SamplerSpec::Tpe(TpeSpec {
        seed: Some(5),
        ..TpeSpec::default()
    }))
    .unwrap();
    let mut history = Vec::new();
    for number in 0..60 {
        let p = params_of(
            sampler
                .suggest(&space, Direction::Maximize, History::new(&history), number)
                .unwrap(),
        );
        let ParamValue::Float(x) = p["x"] else {
            panic!()
        };
        let mut t = TrialRecord::new(number);
        t.params = p;
        t.state = TrialState::Complete;
        t.value = Some(x);
        history.push(t);
    }
    let late: f64 = history[40..].iter().filter_map(|t| t.value).sum::<f64>() / 20.0;
    assert!(late > 0.8, "late mean {late}");
}

/// Warm-start trials keep their own studies' numbers. Whatever those are, even the number
/// of the trial being suggested, every warm-start trial counts, and counts first.
#[test]
fn warm_start_trials_count_whatever_their_numbers() {
    let space = issue_space();
    // Numbers 0..12 (earlier study) and 0..5 (this study): they collide.
    let earlier = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(9) }),
        &space,
        12,
    );
    let own = run(
        &SamplerSpec::Random(RandomSpec { seed: Some(4) }),
        &space,
        5,
    );
    let mut renumbered = earlier.clone();
    for t in &mut renumbered {
        t.number += 1000;
    }
    for multivariate in [false, true] {
        let tpe = samplers::build(&SamplerSpec::Tpe(TpeSpec {
            seed: Some(2),
            multivariate,
            ..TpeSpec::default()
        }))
        .unwrap();
        for number in [5, 7] {
            let colliding = tpe
                .suggest(
                    &space,
                    Direction::Minimize,
                    History::with_warm(&earlier, &own),
                    number,
                )
                .unwrap();
            let apart = tpe
                .suggest(
                    &space,
                    Direction::Minimize,
                    History::with_warm(&renumbered, &own),
                    number,
                )
                .unwrap();
            assert_eq!(
                colliding, apart,
                "trial {number}, multivariate {multivariate}"
            );
        }
    }

    // Grid: a warm-start combination is taken whatever its number.
    let small = SearchSpace::new(vec![ParamSpec::int("x", 0, 3, 1)]).unwrap();
    let warm: Vec<TrialRecord> = (0..3)
        .map(|x| {
            let mut t = TrialRecord::new(x as u64);
            t.params.insert("x".into(), ParamValue::Int(x));
            t.value = Some(x as f64);
            t.state = TrialState::Complete;
            t
        })
        .collect();
    for seed in 0..16 {
        let grid = samplers::build(&SamplerSpec::Grid(GridSpec { seed: Some(seed) })).unwrap();
        let p = params_of(
            grid.suggest(
                &small,
                Direction::Minimize,
                History::with_warm(&warm, &[]),
                0,
            )
            .unwrap(),
        );
        assert_eq!(p["x"], ParamValue::Int(3), "seed {seed}");
    }
}
