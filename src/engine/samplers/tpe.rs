//! `tpe`: Optuna 5.0's `TPESampler` (single objective), stateless.
//!
//! * Until `startupTrials` finished trials (complete, plus pruned when `considerPruned`;
//!   warm-start trials count) exist, a suggestion is [`RandomSampler`]'s.
//! * The finished trials are split into "good" (below) and "bad" (above): the best
//!   `gamma(n) = min(ceil(n / 10), 25)` complete trials by value, topped up with pruned trials
//!   ranked as Optuna ranks them (furthest last step first, then that step's value; NaN
//!   last). Failed trials are ignored.
//! * **Running trials (constant liar)**: with `constantLiar` (the default, as Optuna 5.0's
//!   `constant_liar=True`) running trials join the bad group with their params, so parallel
//!   suggestions are pushed away from configurations still being evaluated; they do not count
//!   in `n`. With `constantLiar: false` they are ignored.
//! * A Parzen estimator is fitted to each group (see [`super::parzen`]); `candidates` points
//!   are drawn from l(x) and the one maximising `log l(x) − log g(x)` is proposed.
//! * Independent mode (default) does this per active parameter, using the trials that hold
//!   it (conditional parameters learn from the trials where they were active).
//!   `multivariate: true` samples the always-active parameters jointly from one estimator
//!   (Optuna's intersection search space); conditional ones stay independent.
//!
//! Randomness comes from (seed, trial number, parameter index) only, so the same history
//! gives the same suggestion after a restart.

use std::cmp::Ordering;

use super::parzen::{ParzenEstimator, default_gamma};
use super::{RandomSampler, Sampler, SamplerError, Suggestion, TpeSpec, trial_rng};
use crate::engine::space::{Distribution, SearchSpace};
use crate::engine::{Direction, ParamValue, TrialRecord, TrialState};

/// Tree-structured Parzen Estimator.
#[derive(Clone, Debug)]
pub struct TpeSampler {
    spec: TpeSpec,
}

impl TpeSampler {
    pub fn new(spec: TpeSpec) -> Self {
        TpeSampler { spec }
    }

    fn seed(&self) -> u64 {
        self.spec.seed.unwrap_or(0)
    }

    fn usable(&self, t: &TrialRecord) -> bool {
        match t.state {
            TrialState::Complete => t.value.is_some_and(|v| !v.is_nan()),
            TrialState::Pruned => self.spec.consider_pruned,
            TrialState::Running => self.spec.constant_liar,
            TrialState::Failed => false,
        }
    }
}

/// Optuna's ranking key of a pruned trial: later last step first, then its value.
fn pruned_key(t: &TrialRecord, direction: Direction) -> (f64, f64) {
    match t.intermediate.iter().next_back() {
        Some((&step, &v)) => {
            let v = if v.is_nan() {
                f64::INFINITY
            } else if direction == Direction::Minimize {
                v
            } else {
                -v
            };
            (-(step as f64), v)
        }
        None => (1.0, 0.0),
    }
}

fn cmp_pair(a: (f64, f64), b: (f64, f64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
}

/// Splits usable trials (sorted by number) into (below, above), each sorted by number.
fn split<'a>(
    trials: &[&'a TrialRecord],
    n_below: usize,
    direction: Direction,
) -> (Vec<&'a TrialRecord>, Vec<&'a TrialRecord>) {
    let mut complete: Vec<&TrialRecord> = Vec::new();
    let mut pruned: Vec<&TrialRecord> = Vec::new();
    let mut running: Vec<&TrialRecord> = Vec::new();
    for &t in trials {
        match t.state {
            TrialState::Complete => complete.push(t),
            TrialState::Pruned => pruned.push(t),
            TrialState::Running => running.push(t),
            TrialState::Failed => {}
        }
    }
    let value = |t: &TrialRecord| t.value.unwrap_or(f64::INFINITY);
    match direction {
        Direction::Minimize => complete.sort_by(|a, b| value(a).total_cmp(&value(b))),
        Direction::Maximize => complete.sort_by(|a, b| value(b).total_cmp(&value(a))),
    }
    pruned.sort_by(|a, b| cmp_pair(pruned_key(a, direction), pruned_key(b, direction)));
    let nb_c = n_below.min(complete.len());
    let nb_p = (n_below - nb_c).min(pruned.len());
    let mut below: Vec<&TrialRecord> = complete[..nb_c].to_vec();
    below.extend_from_slice(&pruned[..nb_p]);
    let mut above: Vec<&TrialRecord> = complete[nb_c..].to_vec();
    above.extend_from_slice(&pruned[nb_p..]);
    above.extend(running);
    below.sort_by_key(|t| t.number);
    above.sort_by_key(|t| t.number);
    (below, above)
}

/// Internal values of `params` (indices into the space) for each trial holding all of them.
fn observations(space: &SearchSpace, trials: &[&TrialRecord], params: &[usize]) -> Vec<Vec<f64>> {
    let mut obs: Vec<Vec<f64>> = vec![Vec::new(); params.len()];
    let mut row = Vec::with_capacity(params.len());
    'trials: for t in trials {
        row.clear();
        for &i in params {
            let p = &space.params()[i];
            let Some(x) = t.params.get(&p.name).and_then(|v| p.dist.to_internal(v)) else {
                continue 'trials;
            };
            row.push(x);
        }
        for (o, &x) in obs.iter_mut().zip(&row) {
            o.push(x);
        }
    }
    obs
}

impl TpeSampler {
    /// TPE over the parameters `params` jointly: internal values of the best candidate.
    fn sample_group(
        &self,
        space: &SearchSpace,
        below: &[&TrialRecord],
        above: &[&TrialRecord],
        params: &[usize],
        number: u64,
        salt: u64,
    ) -> Vec<f64> {
        let dists: Vec<&Distribution> = params.iter().map(|&i| &space.params()[i].dist).collect();
        let l = ParzenEstimator::new(&observations(space, below, params), &dists);
        let g = ParzenEstimator::new(&observations(space, above, params), &dists);
        let mut rng = trial_rng(self.seed(), number, salt);
        let candidates = l.sample(&mut rng, self.spec.candidates.max(1) as usize);
        let mut scratch = Vec::new();
        let mut best = 0;
        let mut best_acq = f64::NEG_INFINITY;
        for (c, x) in candidates.iter().enumerate() {
            let acq = l.log_pdf(x, &mut scratch) - g.log_pdf(x, &mut scratch);
            let acq = if acq.is_nan() { f64::NEG_INFINITY } else { acq };
            if acq > best_acq || c == 0 {
                best_acq = acq;
                best = c;
            }
        }
        candidates.into_iter().nth(best).unwrap_or_default()
    }
}

impl Sampler for TpeSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        direction: Direction,
        history: &[TrialRecord],
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        let mut trials: Vec<&TrialRecord> = history
            .iter()
            .filter(|t| t.number != number && self.usable(t))
            .collect();
        trials.sort_by_key(|t| t.number);
        let n = trials
            .iter()
            .filter(|t| t.state != TrialState::Running)
            .count();
        if n < self.spec.startup_trials as usize {
            let random = RandomSampler::new(self.seed());
            return Ok(Suggestion::Params(random.sample(space, number)));
        }
        let (below, above) = split(&trials, default_gamma(n), direction);

        let joint: Vec<usize> = if self.spec.multivariate {
            (0..space.len())
                .filter(|&i| !space.is_conditional(i))
                .collect()
        } else {
            Vec::new()
        };
        let joint_values = if joint.is_empty() {
            Vec::new()
        } else {
            self.sample_group(space, &below, &above, &joint, number, u64::MAX)
        };
        let params = space.assemble(|i, p, _| -> Result<ParamValue, SamplerError> {
            if let Some(pos) = joint.iter().position(|&j| j == i) {
                let x = joint_values.get(pos).copied().unwrap_or(f64::NAN);
                return Ok(p.dist.from_internal(x));
            }
            let x = self.sample_group(space, &below, &above, &[i], number, i as u64);
            Ok(p.dist.from_internal(x.first().copied().unwrap_or(f64::NAN)))
        })?;
        Ok(Suggestion::Params(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(
        number: u64,
        state: TrialState,
        value: Option<f64>,
        steps: &[(i64, f64)],
    ) -> TrialRecord {
        let mut t = TrialRecord::new(number);
        t.state = state;
        t.value = value;
        t.intermediate = steps.iter().copied().collect();
        t
    }

    #[test]
    fn split_ranks_complete_then_pruned_by_last_step_then_value() {
        let ts = [
            trial(0, TrialState::Complete, Some(3.0), &[]),
            trial(1, TrialState::Pruned, Some(0.1), &[(1, 0.1)]),
            trial(2, TrialState::Pruned, Some(9.0), &[(1, 5.0), (5, 9.0)]),
            trial(3, TrialState::Complete, Some(1.0), &[]),
            trial(4, TrialState::Running, None, &[]),
            trial(5, TrialState::Pruned, Some(2.0), &[(5, 2.0)]),
            trial(6, TrialState::Pruned, None, &[(5, f64::NAN)]),
        ];
        let refs: Vec<&TrialRecord> = ts.iter().collect();
        let nums = |v: Vec<&TrialRecord>| v.iter().map(|t| t.number).collect::<Vec<_>>();
        let (b, a) = split(&refs, 3, Direction::Minimize);
        // both complete, then the pruned trial that reached step 5 with the lower value
        assert_eq!(nums(b), vec![0, 3, 5]);
        assert_eq!(nums(a), vec![1, 2, 4, 6]);
        let (b, _) = split(&refs, 4, Direction::Maximize);
        assert_eq!(nums(b), vec![0, 2, 3, 5]);
        let (b, _) = split(&refs, 1, Direction::Maximize);
        assert_eq!(nums(b), vec![0]);
    }
}
