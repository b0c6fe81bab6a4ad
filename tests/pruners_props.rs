//! Property tests for the pruners and replay.

use lopper::engine::pruners::percentile::PercentilePruner;
use lopper::engine::pruners::{Pruner, PrunerSpec};
use lopper::engine::replay::{Curve, ReplayInput, replay, replay_with};
use lopper::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};
use proptest::prelude::*;
use serde_json::json;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        20 => (-100i32..100).prop_map(|v| v as f64 / 10.0),
        1 => Just(f64::NAN),
    ]
}

fn curve() -> impl Strategy<Value = Curve> {
    (prop::collection::vec(value(), 1..25), any::<bool>()).prop_map(|(values, sparse)| {
        let steps = sparse.then(|| (0..values.len() as i64).map(|i| i * 3 + (i % 2)).collect());
        Curve { steps, values }
    })
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Minimize), Just(Direction::Maximize)]
}

fn spec() -> impl Strategy<Value = PrunerSpec> {
    let leaf = prop_oneof![
        (0i64..6, 0i64..4, 1i64..4, 1i64..3).prop_map(|(s, w, i, m)| json!({"median": {
            "startupTrials": s, "warmupSteps": w, "intervalSteps": i, "minTrials": m}})),
        (0.0f64..100.0, 0i64..6).prop_map(|(p, s)| json!({"percentile": {"percentile": p, "startupTrials": s}})),
        (prop_oneof![Just(json!("auto")), (1i64..4).prop_map(|v| json!(v))], 2i64..5, 0i64..2)
            .prop_map(|(m, r, e)| json!({"successiveHalving": {"minResource": m, "reductionFactor": r, "minEarlyStoppingRate": e}})),
        (1i64..3, prop_oneof![Just(json!("auto")), (3i64..40).prop_map(|v| json!(v))], 2i64..4)
            .prop_map(|(m, x, r)| json!({"hyperband": {"minResource": m, "maxResource": x, "reductionFactor": r}})),
        (-5.0f64..0.0, 0.0f64..5.0).prop_map(|(l, u)| json!({"threshold": {"lower": l, "upper": u}})),
        (0.0f64..1.0, 0i64..5).prop_map(|(p, s)| json!({"wilcoxon": {"pThreshold": p, "startupSteps": s}})),
        Just(json!({"none": {}})),
    ];
    (leaf, 0i64..4, any::<bool>()).prop_map(|(inner, patience, wrap)| {
        let v = if wrap {
            json!({"patient": {"patience": patience, "wrapped": inner}})
        } else {
            inner
        };
        PrunerSpec::from_value(&v, "pruner").expect("valid generated spec")
    })
}

fn input(pruner: PrunerSpec, direction: Direction, trials: Vec<Curve>) -> ReplayInput {
    ReplayInput {
        study: "props".into(),
        direction,
        pruner,
        trials,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn none_never_prunes(d in direction(), trials in prop::collection::vec(curve(), 1..15)) {
        let out = replay(&input(PrunerSpec::Nop, d, trials)).unwrap();
        prop_assert!(out.trials.iter().all(|t| t.state != TrialState::Pruned));
        prop_assert_eq!(out.steps_saved, 0);
    }

    #[test]
    fn indexed_replay_equals_scanning(s in spec(), d in direction(), trials in prop::collection::vec(curve(), 1..15)) {
        let inp = input(s, d, trials);
        let a = replay_with(&inp, true).unwrap();
        let b = replay_with(&inp, false).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn replay_accounts_for_every_step(s in spec(), d in direction(), trials in prop::collection::vec(curve(), 1..15)) {
        let total: usize = trials.iter().map(|c| c.values.len()).sum();
        let inp = input(s, d, trials.clone());
        let out = replay(&inp).unwrap();
        prop_assert_eq!((out.steps_run + out.steps_saved) as usize, total);
        for (t, c) in out.trials.iter().zip(&trials) {
            match t.pruned_at_step {
                Some(step) => {
                    prop_assert_eq!(t.state, TrialState::Pruned);
                    prop_assert_eq!(c.points().nth(t.steps_run as usize - 1).unwrap().0, step);
                }
                None => prop_assert_eq!(t.steps_run as usize, c.values.len()),
            }
        }
    }

    #[test]
    fn spec_round_trips(s in spec()) {
        let v = serde_json::to_value(&s).unwrap();
        let back: PrunerSpec = serde_json::from_value(v).unwrap();
        prop_assert_eq!(s, back);
    }

    #[test]
    fn arbitrary_specs_never_panic(key in "[a-zA-Z]{1,20}", field in "[a-zA-Z]{1,20}", n in any::<i64>(), f in any::<f64>()) {
        for k in [key.as_str(), "median", "percentile", "successiveHalving", "hyperband", "threshold", "patient", "wilcoxon"] {
            for v in [json!({k: {field.as_str(): n}}), json!({k: {field.as_str(): f}}), json!({k: n}), json!({k: {"percentile": f, "patience": n}})] {
                if let Ok(s) = PrunerSpec::from_value(&v, "pruner") {
                    let _ = lopper::engine::pruners::build(&s);
                }
            }
        }
    }

    /// For a fixed study, a larger percentile (more permissive) never prunes where a
    /// smaller one keeps.
    #[test]
    fn more_permissive_percentile_never_prunes_more(
        d in direction(),
        done in prop::collection::vec(curve(), 1..12),
        current in curve(),
        p1 in 0.0f64..100.0,
        p2 in 0.0f64..100.0,
    ) {
        let (lo, hi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
        let mut trials: Vec<TrialRecord> = done.iter().enumerate().map(|(i, c)| {
            let mut t = TrialRecord::new(i as u64);
            t.intermediate = c.points().collect();
            t.state = TrialState::Complete;
            t.value = c.values.last().copied().filter(|v| !v.is_nan());
            t
        }).collect();
        let n = trials.len() as u64;
        trials.push(TrialRecord::new(n));
        let strict = PercentilePruner::new(lo, 0, 0, 1, 1);
        let loose = PercentilePruner::new(hi, 0, 0, 1, 1);
        for (s, v) in current.points() {
            trials.last_mut().unwrap().intermediate.insert(s, v);
            let view = StudyView { name: "p", direction: d, trials: &trials };
            let cur = trials.last().unwrap();
            let a = strict.prune(&view, cur, &mut PrunerState::default());
            let b = loose.prune(&view, cur, &mut PrunerState::default());
            prop_assert!(!b.prune || a.prune, "percentile {hi} pruned at step {s} where {lo} kept");
        }
    }

    /// A threshold pruner whose bounds contain every value prunes only NaNs.
    #[test]
    fn wide_threshold_prunes_only_nan(d in direction(), trials in prop::collection::vec(curve(), 1..10)) {
        let s = PrunerSpec::from_value(&json!({"threshold": {"lower": -1000.0, "upper": 1000.0}}), "pruner").unwrap();
        let out = replay(&input(s, d, trials.clone())).unwrap();
        for (t, c) in out.trials.iter().zip(&trials) {
            if t.state == TrialState::Pruned {
                prop_assert!(c.values[t.steps_run as usize - 1].is_nan());
            } else {
                prop_assert_eq!(t.steps_run as usize, c.values.len());
            }
        }
    }
}

#[test]
fn hyperband_crc_test_vector() {
    let b = lopper::engine::pruners::hyperband::Brackets::new(1, 243, 3);
    // floor(log(243) / log(3)) + 1 computed in floating point gives 5 brackets.
    assert_eq!(b.budgets.len(), 5);
    assert_eq!(crc32fast::hash(b"oracle_0"), 775048537);
    assert_eq!(b.bracket_of("oracle", 0), {
        let mut n = (775048537u128 % b.total) as i128;
        let mut id = 0;
        for (i, &x) in b.budgets.iter().enumerate() {
            n -= x as i128;
            if n < 0 {
                id = i;
                break;
            }
        }
        id
    });
}
