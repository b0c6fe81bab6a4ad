//! Parameter importance for the dashboard: how much of the objective's spread each parameter
//! explains on its own.
//!
//! Method: the correlation ratio of the objective's *ranks* grouped by the parameter's value,
//! bias-corrected (ε²: between-group sum of squares less what chance gives that many groups,
//! over the total sum of squares, floored at 0), normalised so the importances sum to 1.
//! Numeric parameters are grouped into at most min([`BINS`], √n) equal-count bins of their
//! sorted values (so a log-scaled parameter bins the same as a linear one), categorical ones
//! by category, and trials where a conditional parameter is inactive form a group of their
//! own. Ranks keep one diverged trial from deciding everything. This is simpler than Optuna's
//! default (fANOVA on a random forest): it sees each parameter alone, not interactions, but is
//! exact, deterministic and linear-time after sorting, which matters at 10,000 trials.

use std::collections::HashMap;

use super::ParamValue;

/// Numeric parameters are split into at most this many equal-count bins (fewer below 100 trials).
pub const BINS: usize = 10;

/// One parameter's importance (shares sum to 1 over the parameters, or are all 0).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Importance {
    pub param: String,
    pub importance: f64,
}

/// Importance of each of `names` from `trials`: (the trial's value of each name, in order,
/// `None` where inactive; objective). Trials with a non-finite objective are skipped. Sorted
/// from most to least important, ties by name.
pub fn importance(names: &[String], trials: &[(Vec<Option<&ParamValue>>, f64)]) -> Vec<Importance> {
    let kept: Vec<&(Vec<Option<&ParamValue>>, f64)> =
        trials.iter().filter(|(_, v)| v.is_finite()).collect();
    let ranks = ranks(&kept.iter().map(|(_, v)| *v).collect::<Vec<_>>());
    let mean = ranks.iter().sum::<f64>() / ranks.len().max(1) as f64;
    let total: f64 = ranks.iter().map(|r| (r - mean).powi(2)).sum();
    let mut raw: Vec<f64> = (0..names.len())
        .map(|i| {
            if total <= 0.0 {
                return 0.0;
            }
            // At most √n groups: with as many groups as trials every parameter "explains" all.
            let bins = ((ranks.len() as f64).sqrt() as usize).clamp(2, BINS);
            let groups = group(&kept.iter().map(|(p, _)| p[i]).collect::<Vec<_>>(), bins);
            let mut sums: HashMap<usize, (f64, f64)> = HashMap::new();
            for (g, r) in groups.iter().zip(&ranks) {
                let e = sums.entry(*g).or_default();
                e.0 += r;
                e.1 += 1.0;
            }
            let between: f64 = sums.values().map(|(s, n)| n * (s / n - mean).powi(2)).sum();
            // ε²: η² less what chance alone gives k groups (η² of noise is about
            // (k - 1) / (n - 1)), so a parameter that does nothing scores about 0.
            let (k, n) = (sums.len() as f64, ranks.len() as f64);
            if n <= k {
                return 0.0;
            }
            let within_mean = (total - between) / (n - k);
            ((between - (k - 1.0) * within_mean) / total).max(0.0)
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    if sum > 0.0 {
        raw.iter_mut().for_each(|r| *r /= sum);
    }
    let mut out: Vec<Importance> = names
        .iter()
        .zip(raw)
        .map(|(n, importance)| Importance {
            param: n.clone(),
            importance,
        })
        .collect();
    out.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then_with(|| a.param.cmp(&b.param))
    });
    out
}

/// Average ranks (ties share their mean rank).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            out[k] = r;
        }
        i = j + 1;
    }
    out
}

/// A group id per trial: 0 for inactive, then categories or equal-count numeric bins.
fn group(values: &[Option<&ParamValue>], bins: usize) -> Vec<usize> {
    let numeric = |v: &ParamValue| match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    };
    let mut nums: Vec<f64> = values.iter().flatten().filter_map(|v| numeric(v)).collect();
    nums.sort_by(f64::total_cmp);
    let distinct = {
        let mut d = nums.clone();
        d.dedup();
        d.len()
    };
    let mut cats: HashMap<String, usize> = HashMap::new();
    values
        .iter()
        .map(|v| match v {
            None => 0,
            Some(v) => match numeric(v) {
                // Few distinct values (an int with a small range): one group each.
                Some(x) if distinct <= bins => 1 + nums.partition_point(|y| *y < x).min(nums.len()),
                Some(x) => {
                    let pos = nums.partition_point(|y| *y < x);
                    1 + pos * bins / nums.len().max(1)
                }
                None => {
                    // After every numeric group id (at most 1 + nums.len()).
                    let n = cats.len();
                    2 + nums.len() + *cats.entry(v.to_string()).or_insert(n)
                }
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> ParamValue {
        ParamValue::Float(x)
    }

    #[test]
    fn the_parameter_that_drives_the_objective_ranks_first() {
        // Objective = 10·x + tiny noise from y: x explains nearly everything.
        let names = vec!["x".to_string(), "y".to_string()];
        let xs: Vec<ParamValue> = (0..200).map(|i| f((i * 37 % 200) as f64 / 200.0)).collect();
        let ys: Vec<ParamValue> = (0..200).map(|i| f((i * 91 % 200) as f64 / 200.0)).collect();
        let trials: Vec<(Vec<Option<&ParamValue>>, f64)> = (0..200)
            .map(|i| {
                let (ParamValue::Float(x), ParamValue::Float(y)) = (&xs[i], &ys[i]) else {
                    unreachable!()
                };
                (vec![Some(&xs[i]), Some(&ys[i])], 10.0 * x + 0.01 * y)
            })
            .collect();
        let imp = importance(&names, &trials);
        assert_eq!(imp[0].param, "x");
        assert!(imp[0].importance > 0.9, "{imp:?}");
        let total: f64 = imp.iter().map(|i| i.importance).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn categories_and_inactive_values_are_groups() {
        let names = vec!["opt".to_string(), "momentum".to_string()];
        let adam = ParamValue::Str("adam".into());
        let sgd = ParamValue::Str("sgd".into());
        let m = f(0.9);
        let mut trials = Vec::new();
        for i in 0..40 {
            // sgd is always worse; momentum is constant where active, so it explains only
            // what "active or not" (= sgd) explains.
            if i % 2 == 0 {
                trials.push((vec![Some(&adam), None], 1.0 + i as f64 * 1e-3));
            } else {
                trials.push((vec![Some(&sgd), Some(&m)], 5.0 + i as f64 * 1e-3));
            }
        }
        let imp = importance(&names, &trials);
        assert!((imp[0].importance - 0.5).abs() < 1e-9, "{imp:?}");
        assert!((imp[1].importance - 0.5).abs() < 1e-9, "{imp:?}");
    }

    #[test]
    fn no_spread_means_no_importance_and_nan_is_skipped() {
        let names = vec!["x".to_string()];
        let a = f(1.0);
        let b = f(2.0);
        let trials = vec![
            (vec![Some(&a)], 3.0),
            (vec![Some(&b)], 3.0),
            (vec![Some(&b)], f64::NAN),
        ];
        assert_eq!(importance(&names, &trials)[0].importance, 0.0);
    }
}
