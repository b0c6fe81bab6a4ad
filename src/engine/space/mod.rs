//! Search space: the `spec.parameters` field of a Study.
//!
//! A [`ParamSpec`] is one element of `spec.parameters`, exactly as written in YAML:
//!
//! ```yaml
//! - name: lr
//!   float: {low: 1.0e-4, high: 0.5, log: true}      # optional step (not with log)
//! - name: hidden
//!   int: {low: 16, high: 256, step: 16}             # optional log (not with step > 1)
//! - name: optimizer
//!   categorical: {choices: [adam, sgd, rmsprop]}    # strings, numbers or booleans
//! - name: momentum
//!   float: {low: 0.0, high: 0.99}
//!   when: {optimizer: [sgd, rmsprop]}               # active only for these values
//! ```
//!
//! [`SearchSpace::new`] validates a list of them and names the parameter and the rule it
//! breaks, e.g. `parameters[2] (momentum): when refers to "optim", which is not an earlier
//! parameter`. A `when` may only refer to *earlier* parameters, so a space can never hold a
//! cycle of conditions; activity is decided in declaration order.
//!
//! The specs are plain serde types; the CRD's structural schema for them is
//! `crate::crd::engine_api`'s business.
//!
//! Files: [`spec`] (the specs as written, checked one by one), [`distribution`] (what
//! samplers use), this module (the space as a whole: names, conditions, activity).

mod distribution;
mod spec;

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{ParamValue, Params};

use distribution::DistDisplay;
pub(crate) use distribution::tolerant_bounds;
pub use distribution::{Distribution, values_match};
use spec::validate_dist;
pub use spec::{CategoricalSpec, FloatSpec, IntSpec, ParamSpec, Rule};

/// A validated parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub dist: Distribution,
    /// Conditions as (index of an earlier parameter, accepted values); all must hold.
    pub when: Vec<(usize, Vec<ParamValue>)>,
}

/// Why a list of [`ParamSpec`]s is not a valid search space.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpaceError {
    #[error("parameters: the search space is empty (at least one parameter is needed)")]
    Empty,
    #[error("parameters[{index}] ({name}): {rule}")]
    Invalid {
        index: usize,
        name: String,
        rule: Rule,
    },
}

/// A validated search space: parameters in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpace {
    specs: Vec<ParamSpec>,
    params: Vec<Param>,
}

impl SearchSpace {
    /// Validates `specs` (see the module docs for the rules).
    pub fn new(specs: Vec<ParamSpec>) -> Result<SearchSpace, SpaceError> {
        if specs.is_empty() {
            return Err(SpaceError::Empty);
        }
        let mut params: Vec<Param> = Vec::with_capacity(specs.len());
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, spec) in specs.iter().enumerate() {
            let fail = |rule: Rule| SpaceError::Invalid {
                index,
                name: spec.name.clone(),
                rule,
            };
            if spec.name.trim().is_empty() {
                return Err(fail(Rule::EmptyName));
            }
            if let Some(&first) = by_name.get(spec.name.as_str()) {
                return Err(fail(Rule::DuplicateName(first)));
            }
            let dist = validate_dist(spec).map_err(fail)?;
            let mut when = Vec::with_capacity(spec.when.len());
            for (other, values) in &spec.when {
                if *other == spec.name {
                    return Err(fail(Rule::WhenSelf(other.clone())));
                }
                let Some(&j) = by_name.get(other.as_str()) else {
                    return Err(fail(Rule::WhenNotEarlier(other.clone())));
                };
                if values.is_empty() {
                    return Err(fail(Rule::WhenNoValues(other.clone())));
                }
                for v in values {
                    if !params[j].dist.contains(v) {
                        return Err(fail(Rule::WhenImpossibleValue {
                            param: other.clone(),
                            value: v.clone(),
                        }));
                    }
                }
                when.push((j, values.clone()));
            }
            by_name.insert(spec.name.as_str(), index);
            params.push(Param {
                name: spec.name.clone(),
                dist,
                when,
            });
        }
        Ok(SearchSpace { specs, params })
    }

    /// The specs this space was built from (for serialization).
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The validated parameters, in declaration order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Position of a parameter by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// True when parameter `i` carries a `when`.
    pub fn is_conditional(&self, i: usize) -> bool {
        !self.params[i].when.is_empty()
    }

    /// Whether parameter `i` is active given the values chosen so far (`chosen` holds
    /// earlier parameters; an absent one is inactive, so dependants are inactive too).
    pub fn is_active(&self, i: usize, chosen: &Params) -> bool {
        self.params[i].when.iter().all(|(j, values)| {
            chosen
                .get(&self.params[*j].name)
                .is_some_and(|v| values.iter().any(|w| values_match(w, v)))
        })
    }

    /// Builds a trial's params in declaration order: `pick(i, param)` is asked only for the
    /// parameters that are active given the earlier picks.
    pub fn assemble<E>(
        &self,
        mut pick: impl FnMut(usize, &Param, &Params) -> Result<ParamValue, E>,
    ) -> Result<Params, E> {
        let mut out = Params::new();
        for (i, p) in self.params.iter().enumerate() {
            if self.is_active(i, &out) {
                let v = pick(i, p, &out)?;
                out.insert(p.name.clone(), v);
            }
        }
        Ok(out)
    }

    /// Checks that `params` is a point of this space: every active parameter present and
    /// inside its distribution, no inactive or unknown parameter. The error says why.
    pub fn contains(&self, params: &Params) -> Result<(), String> {
        let known: BTreeSet<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        if let Some(unknown) = params.keys().find(|k| !known.contains(k.as_str())) {
            return Err(format!("parameter {unknown:?} is not in the search space"));
        }
        for (i, p) in self.params.iter().enumerate() {
            let active = self.is_active(i, params);
            match (active, params.get(&p.name)) {
                (true, None) => {
                    return Err(format!("parameter {:?} is active but missing", p.name));
                }
                (true, Some(v)) if !p.dist.contains(v) => {
                    return Err(format!(
                        "parameter {:?} = {v} is outside {}",
                        p.name,
                        DistDisplay(&p.dist)
                    ));
                }
                (false, Some(v)) => {
                    return Err(format!(
                        "parameter {:?} = {v} is set but inactive under its `when`",
                        p.name
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> ParamValue {
        ParamValue::Str(x.to_string())
    }

    fn issue_space() -> Vec<ParamSpec> {
        serde_yaml::from_str(
            r#"
- name: lr
  float: {low: 1.0e-4, high: 0.5, log: true}
- name: hidden
  int: {low: 16, high: 256, step: 16}
- name: optimizer
  categorical: {choices: [adam, sgd, rmsprop]}
- name: momentum
  float: {low: 0.0, high: 0.99}
  when: {optimizer: [sgd, rmsprop]}
"#,
        )
        .unwrap()
    }

    fn err(specs: Vec<ParamSpec>) -> String {
        SearchSpace::new(specs).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_issue_example_and_round_trips() {
        let specs = issue_space();
        assert_eq!(specs[0].float.as_ref().map(|f| f.log), Some(true));
        assert_eq!(specs[3].when["optimizer"], vec![s("sgd"), s("rmsprop")]);
        let json = serde_json::to_string(&specs).unwrap();
        let back: Vec<ParamSpec> = serde_json::from_str(&json).unwrap();
        assert_eq!(specs, back);
        let space = SearchSpace::new(specs).unwrap();
        assert_eq!(space.len(), 4);
        assert!(space.is_conditional(3));
    }

    #[test]
    fn exactly_one_kind_at_parse() {
        let e = serde_yaml::from_str::<ParamSpec>(
            "{name: a, float: {low: 0, high: 1}, int: {low: 0, high: 1}}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("exactly one of float, int or categorical"),
            "{e}"
        );
        let e = serde_yaml::from_str::<ParamSpec>("{name: a}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("found 0"), "{e}");
        assert!(serde_yaml::from_str::<ParamSpec>("{name: a, flaot: {low: 0, high: 1}}").is_err());
        assert!(
            serde_yaml::from_str::<ParamSpec>("{name: a, categorical: {choices: [[1]]}}").is_err()
        );
    }

    #[test]
    fn mixed_choices_keep_their_types() {
        let p: ParamSpec =
            serde_yaml::from_str("{name: c, categorical: {choices: [1, 2.5, true, x]}}").unwrap();
        let c = p.categorical.unwrap().choices;
        assert_eq!(
            c,
            vec![
                ParamValue::Int(1),
                ParamValue::Float(2.5),
                ParamValue::Bool(true),
                s("x")
            ]
        );
        assert_eq!(
            c.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            ["1", "2.5", "true", "x"]
        );
    }

    #[test]
    fn named_errors() {
        assert_eq!(
            err(vec![]),
            "parameters: the search space is empty (at least one parameter is needed)"
        );
        assert_eq!(
            err(vec![
                ParamSpec::float("a", 0.0, 1.0),
                ParamSpec::float("a", 0.0, 1.0)
            ]),
            "parameters[1] (a): duplicate name, already used by parameters[0]"
        );
        assert_eq!(
            err(vec![ParamSpec::float("a", 1.0, 1.0)]),
            "parameters[0] (a): low (1) must be less than high (1)"
        );
        assert_eq!(
            err(vec![ParamSpec::int("a", 5, 2, 1)]),
            "parameters[0] (a): low (5) must be less than high (2)"
        );
        assert_eq!(
            err(vec![ParamSpec::log_float("a", 0.0, 1.0)]),
            "parameters[0] (a): log scale needs low > 0, got low = 0"
        );
        assert_eq!(
            err(vec![ParamSpec::log_int("a", -1, 4)]),
            "parameters[0] (a): log scale needs low > 0, got low = -1"
        );
        assert!(
            err(vec![ParamSpec::stepped_float("a", 0.0, 1.0, 0.3)])
                .contains("high - low is not a multiple")
        );
        assert!(
            err(vec![ParamSpec::stepped_float("a", 0.0, 1.0, 2.0)])
                .contains("larger than high - low")
        );
        assert!(
            err(vec![ParamSpec::int("a", 0, 10, 3)])
                .contains("step 3 does not fit the range [0, 10]")
        );
        assert!(err(vec![ParamSpec::int("a", 0, 10, 0)]).contains("positive"));
        let mut lf = ParamSpec::log_float("a", 1.0, 2.0);
        lf.float.as_mut().unwrap().step = Some(0.5);
        assert!(err(vec![lf]).contains("log cannot be combined"));
        assert_eq!(
            err(vec![ParamSpec::categorical("a", vec![])]),
            "parameters[0] (a): choices is empty"
        );
        assert!(
            err(vec![ParamSpec::categorical(
                "a",
                vec![ParamValue::Int(1), ParamValue::Float(1.0)]
            )])
            .contains("listed twice")
        );
        let later = vec![
            ParamSpec::float("momentum", 0.0, 1.0).when("optim", vec![s("sgd")]),
            ParamSpec::categorical("optim", vec![s("sgd")]),
        ];
        assert_eq!(
            err(later),
            "parameters[0] (momentum): when refers to \"optim\", which is not an earlier parameter"
        );
        let unknown = vec![
            ParamSpec::categorical("optimizer", vec![s("sgd")]),
            ParamSpec::float("x", 0.0, 1.0),
            ParamSpec::float("momentum", 0.0, 1.0).when("optim", vec![s("sgd")]),
        ];
        assert_eq!(
            err(unknown),
            "parameters[2] (momentum): when refers to \"optim\", which is not an earlier parameter"
        );
        let cycle = vec![ParamSpec::float("a", 0.0, 1.0).when("a", vec![ParamValue::Float(0.5)])];
        assert!(err(cycle).contains("the parameter itself (a cycle)"));
        let impossible = vec![
            ParamSpec::categorical("o", vec![s("sgd")]),
            ParamSpec::float("m", 0.0, 1.0).when("o", vec![s("adam")]),
        ];
        assert!(err(impossible).contains("when value adam is never taken by \"o\""));
        let novalues = vec![
            ParamSpec::categorical("o", vec![s("sgd")]),
            ParamSpec::float("m", 0.0, 1.0).when("o", vec![]),
        ];
        assert!(err(novalues).contains("no values"));
    }

    #[test]
    fn transforms_respect_bounds_steps_and_logs() {
        let space = SearchSpace::new(vec![
            ParamSpec::log_float("lr", 1e-4, 0.5),
            ParamSpec::int("h", 16, 256, 16),
            ParamSpec::stepped_float("d", 0.0, 1.0, 0.1),
            ParamSpec::log_int("n", 1, 1000),
        ])
        .unwrap();
        for k in 0..=1000 {
            let u = k as f64 / 1000.0;
            for p in space.params() {
                let v = p.dist.from_unit(u);
                assert!(p.dist.contains(&v), "{} {v} at u={u}", p.name);
                let x = p.dist.to_internal(&v).unwrap();
                assert_eq!(p.dist.from_internal(x), v);
            }
        }
        let lr = &space.params()[0].dist;
        // log-uniform: the median of u maps to the geometric mean.
        let mid = lr.from_unit(0.5);
        let ParamValue::Float(m) = mid else { panic!() };
        assert!((m - (1e-4f64 * 0.5).sqrt()).abs() < 1e-9);
        let h = &space.params()[1].dist;
        assert_eq!(h.from_internal(39.0), ParamValue::Int(32));
        assert_eq!(h.from_internal(41.0), ParamValue::Int(48));
        assert_eq!(h.from_internal(1e9), ParamValue::Int(256));
        assert_eq!(h.from_internal(-5.0), ParamValue::Int(16));
        assert_eq!(h.from_unit(0.0), ParamValue::Int(16));
        assert_eq!(h.from_unit(1.0), ParamValue::Int(256));
        assert!(!h.contains(&ParamValue::Int(17)));
        assert!(h.contains(&ParamValue::Float(32.0)));
        let d = &space.params()[2].dist;
        assert_eq!(d.from_internal(0.3), ParamValue::Float(0.3));
        assert_eq!(d.cardinality(), Some(11));
        assert_eq!(d.nth(10), Some(ParamValue::Float(1.0)));
        assert!(d.contains(&ParamValue::Float(0.30000000000000004)));
        assert!(!d.contains(&ParamValue::Float(0.35)));
        // every step value of an int range gets equal mass under from_unit.
        let mut counts = [0u32; 16];
        for k in 0..16000 {
            if let ParamValue::Int(i) = h.from_unit((k as f64 + 0.5) / 16000.0) {
                counts[((i - 16) / 16) as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 1000), "{counts:?}");
    }

    #[test]
    fn conditional_activation_and_contains() {
        let space = SearchSpace::new(issue_space()).unwrap();
        let mut p = Params::new();
        p.insert("lr".into(), ParamValue::Float(0.01));
        p.insert("hidden".into(), ParamValue::Int(32));
        p.insert("optimizer".into(), s("adam"));
        assert!(!space.is_active(3, &p));
        assert_eq!(space.contains(&p), Ok(()));
        p.insert("momentum".into(), ParamValue::Float(0.9));
        assert!(space.contains(&p).unwrap_err().contains("inactive"));
        p.insert("optimizer".into(), s("sgd"));
        assert!(space.is_active(3, &p));
        assert_eq!(space.contains(&p), Ok(()));
        p.remove("momentum");
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("active but missing")
        );
        p.insert("momentum".into(), ParamValue::Float(1.5));
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("outside float [0, 0.99]")
        );
        p.insert("momentum".into(), ParamValue::Float(0.5));
        p.insert("extra".into(), ParamValue::Int(1));
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("not in the search space")
        );
    }

    #[test]
    fn chained_conditions() {
        let space = SearchSpace::new(vec![
            ParamSpec::categorical("a", vec![ParamValue::Bool(true), ParamValue::Bool(false)]),
            ParamSpec::int("b", 1, 3, 1).when("a", vec![ParamValue::Bool(true)]),
            ParamSpec::float("c", 0.0, 1.0).when("b", vec![ParamValue::Int(2)]),
        ])
        .unwrap();
        let p: Params = [("a".to_string(), ParamValue::Bool(false))].into();
        assert!(!space.is_active(1, &p));
        assert!(
            !space.is_active(2, &p),
            "dependant of an inactive parameter is inactive"
        );
        let p: Params = [
            ("a".to_string(), ParamValue::Bool(true)),
            ("b".to_string(), ParamValue::Float(2.0)),
        ]
        .into();
        assert!(space.is_active(2, &p), "numbers compare numerically");
    }
}
