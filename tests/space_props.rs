//! Property tests: every suggestion of every sampler is a point of the space (bounds, steps,
//! integer-ness, choices) and respects `when`; transforms never leave the bounds.

use lopper::engine::samplers::{
    self, GridSpec, History, QmcKind, QmcSpec, RandomSpec, SamplerSpec, Suggestion, TpeSpec,
};
use lopper::engine::space::{ParamSpec, SearchSpace};
use lopper::engine::{Direction, ParamValue, TrialRecord, TrialState};
use proptest::prelude::*;

/// One parameter, valid by construction; `cond` picks an earlier categorical to depend on.
fn param_strategy() -> impl Strategy<Value = Raw> {
    (
        0u8..6,
        -100.0f64..100.0,
        0.01f64..1000.0,
        -50i64..50,
        1i64..40,
        1u8..5,
        proptest::option::of(0usize..8),
    )
}

/// (kind, low, width, int low, int step, steps, condition).
type Raw = (u8, f64, f64, i64, i64, u8, Option<usize>);

/// Turns continuous kinds into stepped ones (the grid needs finite parameters).
fn finite_kind(mut r: Raw) -> Raw {
    r.0 = match r.0 {
        0 | 1 => 2,
        4 => 3,
        k => k,
    };
    r
}

fn build_specs(raw: Vec<Raw>) -> Vec<ParamSpec> {
    let mut specs: Vec<ParamSpec> = Vec::new();
    for (k, (kind, lo, width, ilo, iw, nsteps, cond)) in raw.into_iter().enumerate() {
        let name = format!("p{k}");
        let mut spec = match kind {
            0 => ParamSpec::float(&name, lo, lo + width),
            1 => ParamSpec::log_float(&name, width / 1000.0, width),
            2 => ParamSpec::stepped_float(&name, lo, lo + width, width / nsteps as f64),
            3 => ParamSpec::int(&name, ilo, ilo + iw * nsteps as i64, iw),
            4 => ParamSpec::log_int(
                &name,
                1 + ilo.unsigned_abs() as i64,
                2 + ilo.unsigned_abs() as i64 + iw * 10,
            ),
            _ => ParamSpec::categorical(
                &name,
                (0..nsteps + 1)
                    .map(|c| match c % 3 {
                        0 => ParamValue::Str(format!("c{c}")),
                        1 => ParamValue::Int(c as i64),
                        _ => ParamValue::Bool(c % 2 == 0),
                    })
                    .collect(),
            ),
        };
        if let Some(c) = cond {
            let earlier: Vec<&ParamSpec> =
                specs.iter().filter(|s| s.categorical.is_some()).collect();
            if !earlier.is_empty() {
                let target = earlier[c % earlier.len()];
                let choices = &target.categorical.as_ref().unwrap().choices;
                spec = spec.when(&target.name, vec![choices[c % choices.len()].clone()]);
            }
        }
        specs.push(spec);
    }
    specs
}

fn sampler_specs(seed: u64) -> Vec<SamplerSpec> {
    vec![
        SamplerSpec::Random(RandomSpec { seed: Some(seed) }),
        SamplerSpec::Tpe(TpeSpec {
            seed: Some(seed),
            startup_trials: 4,
            ..TpeSpec::default()
        }),
        SamplerSpec::Tpe(TpeSpec {
            seed: Some(seed),
            startup_trials: 4,
            multivariate: true,
            ..TpeSpec::default()
        }),
        SamplerSpec::Qmc(QmcSpec {
            seed: Some(seed),
            kind: QmcKind::Sobol,
            scramble: true,
        }),
        SamplerSpec::Qmc(QmcSpec {
            seed: Some(seed),
            kind: QmcKind::Halton,
            scramble: seed.is_multiple_of(2),
        }),
    ]
}

fn check_when(space: &SearchSpace, p: &lopper::engine::Params) {
    for (i, param) in space.params().iter().enumerate() {
        assert_eq!(
            p.contains_key(&param.name),
            space.is_active(i, p),
            "{} in {p:?}",
            param.name
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn suggestions_are_inside_the_space(raw in proptest::collection::vec(param_strategy(), 1..6), seed in 0u64..1000, n in 1u64..25) {
        let space = SearchSpace::new(build_specs(raw)).expect("valid by construction");
        for spec in sampler_specs(seed) {
            let sampler = samplers::build(&spec).unwrap();
            let mut history: Vec<TrialRecord> = Vec::new();
            for number in 0..n {
                let p = match sampler.suggest(&space, Direction::Minimize, History::new(&history), number).unwrap() {
                    Suggestion::Params(p) => p,
                    Suggestion::Exhausted => panic!("only grid exhausts"),
                };
                prop_assert_eq!(space.contains(&p), Ok(()), "{:?}: {:?}", spec, p);
                check_when(&space, &p);
                let mut t = TrialRecord::new(number);
                t.state = if number % 7 == 3 { TrialState::Running } else { TrialState::Complete };
                t.value = (t.state == TrialState::Complete).then(|| (number as f64 * 0.37 + seed as f64).sin());
                t.params = p;
                history.push(t);
            }
        }
    }

    #[test]
    fn grid_suggestions_are_inside_and_distinct(raw in proptest::collection::vec(param_strategy(), 1..4), seed in 0u64..1000) {
        let raw: Vec<Raw> = raw.into_iter().map(finite_kind).collect();
        let space = SearchSpace::new(build_specs(raw)).unwrap();
        let sampler = samplers::build(&SamplerSpec::Grid(GridSpec { seed: Some(seed) })).unwrap();
        let mut history: Vec<TrialRecord> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for number in 0..40 {
            match sampler.suggest(&space, Direction::Minimize, History::new(&history), number).unwrap() {
                Suggestion::Params(p) => {
                    prop_assert_eq!(space.contains(&p), Ok(()));
                    check_when(&space, &p);
                    let key = format!("{:?}", p);
                    prop_assert!(seen.insert(key));
                    let mut t = TrialRecord::new(number);
                    t.params = p;
                    history.push(t);
                }
                Suggestion::Exhausted => break,
            }
        }
    }

    #[test]
    fn transforms_never_leave_the_bounds(raw in proptest::collection::vec(param_strategy(), 1..4), x in proptest::num::f64::ANY, u in 0.0f64..=1.0) {
        let space = SearchSpace::new(build_specs(raw)).unwrap();
        for p in space.params() {
            prop_assert!(p.dist.contains(&p.dist.from_internal(x)), "{:?} from_internal({})", p.dist, x);
            let v = p.dist.from_unit(u);
            prop_assert!(p.dist.contains(&v), "{:?} from_unit({})", p.dist, u);
            let back = p.dist.to_internal(&v).unwrap();
            prop_assert_eq!(p.dist.from_internal(back), v);
        }
    }
}
