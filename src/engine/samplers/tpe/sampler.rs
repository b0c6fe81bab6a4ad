//! The sampler: splits the history into "good" and "bad" trials, fits an estimator to
//! each and proposes the candidate with the best density ratio (Optuna's `TPESampler`).

use std::cmp::Ordering;
use std::sync::{Mutex, PoisonError};

use super::continuous::ContinuousFit;
use super::density::Density;
use super::estimator::ParzenEstimator;
use super::truncnorm::Masses;
use crate::engine::samplers::{
    History, RandomSampler, Sampler, SamplerError, Suggestion, TpeSpec, trial_rng,
};
use crate::engine::space::{Distribution, SearchSpace, tolerant_bounds};
use crate::engine::{Direction, ParamValue, TrialRecord, TrialState};

/// Optuna's default gamma: the size of the "good" group.
pub(super) fn default_gamma(n: usize) -> usize {
    (n.div_ceil(10)).min(25)
}

/// Tree-structured Parzen Estimator.
#[derive(Debug)]
pub struct TpeSampler {
    spec: TpeSpec,
    /// The last "above" fit of each parameter (by index) that had one.
    kept: Mutex<Vec<Option<Box<ContinuousFit>>>>,
    rows: Mutex<RowCache>,
    /// Normal masses of discrete parameters' cells, by argument (see [`Masses`]).
    masses: Mutex<Masses>,
}

impl Clone for TpeSampler {
    fn clone(&self) -> Self {
        TpeSampler::new(self.spec.clone())
    }
}

impl TpeSampler {
    pub fn new(spec: TpeSpec) -> Self {
        TpeSampler {
            spec,
            kept: Mutex::new(Vec::new()),
            rows: Mutex::new(RowCache::default()),
            masses: Mutex::new(Masses::default()),
        }
    }

    /// Parameter `i`'s kept fit, taken out (the lock is held only to take or put back).
    fn take_fit(&self, i: usize) -> Option<Box<ContinuousFit>> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get_mut(i).and_then(Option::take)
    }

    fn keep_fit(&self, i: usize, fit: Option<Box<ContinuousFit>>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() <= i {
            kept.resize_with(i + 1, || None);
        }
        kept[i] = fit;
    }

    fn seed(&self) -> u64 {
        self.spec.seed.unwrap_or(0)
    }

    pub(super) fn usable(&self, t: &TrialRecord) -> bool {
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
            // `+ 0.0`: -0.0 ties with 0.0, as Python compares them.
            (-(step as f64), v + 0.0)
        }
        None => (1.0, 0.0),
    }
}

fn cmp_pair(a: (f64, f64), b: (f64, f64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
}

/// Splits usable trials (in history order; `keys` theirs) into (below, above) positions,
/// each in trial order.
pub(super) fn split(
    trials: &[&TrialRecord],
    keys: &[RowKey],
    n_below: usize,
    direction: Direction,
) -> (Vec<usize>, Vec<usize>) {
    // Optuna sorts stably by value and takes the first `n_below`; ranking by (value,
    // position) selects exactly the same trials. `n_below` is at most 25: keep the best so
    // far in a small sorted list rather than sorting or partitioning everything.
    let sign = if direction == Direction::Minimize {
        1.0
    } else {
        -1.0
    };
    let mut best: Vec<(f64, usize)> = Vec::with_capacity(n_below + 1);
    let mut pruned: Vec<usize> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match key.state {
            TrialState::Complete if n_below > 0 => {
                // `+ 0.0`: -0.0 ties with 0.0, as Python compares them.
                let k = sign * key.value().unwrap_or(f64::INFINITY) + 0.0;
                // Later positions lose ties, so only a strictly smaller value can enter a
                // full list (most values do not).
                if best.len() == n_below && best[n_below - 1].0.total_cmp(&k).is_le() {
                    continue;
                }
                let at = best.partition_point(|&(v, _)| v.total_cmp(&k).is_le());
                best.insert(at, (k, i));
                best.truncate(n_below);
            }
            TrialState::Pruned => pruned.push(i),
            _ => {}
        }
    }
    let mut below: Vec<usize> = best.iter().map(|&(_, i)| i).collect();
    let nb_p = (n_below - below.len()).min(pruned.len());
    if nb_p > 0 {
        pruned.sort_by(|&a, &b| {
            cmp_pair(
                pruned_key(trials[a], direction),
                pruned_key(trials[b], direction),
            )
        });
        below.extend_from_slice(&pruned[..nb_p]);
    }
    below.sort_unstable();
    // Everything else, in trial order (failed trials are never among the usable ones):
    // the runs between below positions.
    let mut above = Vec::with_capacity(keys.len() - below.len());
    let mut from = 0;
    for &b in below.iter().chain(std::iter::once(&keys.len())) {
        above.extend(from..b);
        from = b + 1;
    }
    debug_assert!(keys.iter().all(|k| k.state != TrialState::Failed));
    (below, above)
}

/// Brings `cache.columns` to the internal values of `trials` (in history order; `keys`
/// theirs): one column per parameter of the space, one row per trial, NaN where the trial
/// lacks the parameter or holds a value outside it. Rows of trials seen by the previous
/// suggestion are reused (see [`RowCache`]); others come from one merge of the trial's
/// sorted params with the sorted parameter names.
fn internal_matrix(
    space: &SearchSpace,
    trials: &[&TrialRecord],
    keys: Vec<RowKey>,
    cache: &mut RowCache,
) {
    let d = space.len();
    if cache.space.as_ref() != Some(space) {
        *cache = RowCache {
            space: Some(space.clone()),
            columns: vec![Vec::new(); d],
            ..RowCache::default()
        };
    }
    let mut names: Vec<(&str, usize, Conversion)> = space
        .params()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i, Conversion::of(&p.dist)))
        .collect();
    names.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // A place held by two trials (only if the caller passes two study trials of one
    // number; adjacent, as trials are sorted): its key would not say which, so neither is
    // reused.
    let shared = keys.windows(2).any(|w| w[0].ord == w[1].ord);
    let old = cache.keys.len();
    if !shared && !cache.shared && keys.len() >= old && keys[..old] == cache.keys[..] {
        // The usual case: the previous trials, then new ones.
        let mut row = vec![f64::NAN; d];
        for t in &trials[old..] {
            row.fill(f64::NAN);
            fill_row(&names, t, &mut row);
            for (column, &v) in cache.columns.iter_mut().zip(&row) {
                column.push(v);
            }
        }
        cache.keys = keys;
        return;
    }
    let unique = |keys: &[RowKey], shared: bool, at: usize| {
        !shared
            || (keys.get(at + 1).is_none_or(|n| n.ord != keys[at].ord)
                && (at == 0 || keys[at - 1].ord != keys[at].ord))
    };
    let mut columns = vec![Vec::with_capacity(trials.len()); d];
    let mut row = vec![f64::NAN; d];
    let mut c = 0;
    for (at, t) in trials.iter().enumerate() {
        let key = keys[at];
        while c < old && cache.keys[c].ord < key.ord {
            c += 1;
        }
        if c < old
            && cache.keys[c] == key
            && unique(&keys, shared, at)
            && unique(&cache.keys, cache.shared, c)
        {
            for (v, column) in row.iter_mut().zip(&cache.columns) {
                *v = column[c];
            }
        } else {
            row.fill(f64::NAN);
            fill_row(&names, t, &mut row);
        }
        for (column, &v) in columns.iter_mut().zip(&row) {
            column.push(v);
        }
    }
    (cache.keys, cache.shared, cache.columns) = (keys, shared, columns);
}

/// Trial `t`'s internal values into `row` (NaN-filled), merging its sorted params with the
/// sorted parameter names.
fn fill_row(names: &[(&str, usize, Conversion)], t: &TrialRecord, row: &mut [f64]) {
    let mut it = t.params.iter().peekable();
    for (name, i, conv) in names {
        // Usually every key matches the next name: test equality first, and step past a
        // match (keys are unique) so the next name starts at the next key.
        let v = loop {
            match it.peek() {
                Some((k, _)) if same(k, name) => break it.next().map(|(_, v)| v),
                Some((k, _)) if k.as_str() < *name => {
                    it.next();
                }
                _ => break None,
            }
        };
        if let (Some(v), Some(cell)) = (v, row.get_mut(*i)) {
            *cell = conv.internal(v);
        }
    }
}

/// The internal rows of the trials of the previous suggestion, for the same space. A row
/// is reused for a trial of the same number, state, value and number of params: a trial's
/// params never change once it is proposed (the controller and the local runner never
/// change them). Feeding one sampler histories where they do change needs a new sampler.
#[derive(Debug, Default)]
struct RowCache {
    space: Option<SearchSpace>,
    /// The previous suggestion's usable trials, in history order.
    keys: Vec<RowKey>,
    /// Whether two of them share a number.
    shared: bool,
    /// Their internal values, one column per parameter (a column is what a suggestion
    /// reads).
    columns: Vec<Vec<f64>>,
}

/// A study's own trial's place in the history order: after every warm-start trial
/// (placed by position), by number.
const OWN: u64 = 1 << 63;

/// What identifies a trial's row, and what the split reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RowKey {
    /// The trial's place in the history: a warm-start trial's position, or [`OWN`] with a
    /// study trial's number.
    ord: u64,
    state: TrialState,
    /// The value's bits.
    value: Option<u64>,
    params: usize,
}

impl RowKey {
    pub(super) fn of(ord: u64, t: &TrialRecord) -> Self {
        RowKey {
            ord,
            state: t.state,
            value: t.value.map(f64::to_bits),
            params: t.params.len(),
        }
    }

    fn value(&self) -> Option<f64> {
        self.value.map(f64::from_bits)
    }
}

/// `Distribution::to_internal` (NaN for `None`), with a float range's tolerant bounds
/// computed once per parameter, and the common cases inline: a float in a continuous
/// range, an int in an int range, a string among categorical choices. Same results: in
/// range up to the relative tolerance then clamped; on the step grid; the first matching
/// choice.
struct Conversion<'a> {
    dist: &'a Distribution,
    /// For a continuous float range: its bounds widened by the tolerance.
    tolerant: (f64, f64),
}

impl<'a> Conversion<'a> {
    fn of(dist: &'a Distribution) -> Self {
        let tolerant = match dist {
            Distribution::Float { low, high, .. } => tolerant_bounds(*low, *high),
            _ => (f64::NAN, f64::NAN),
        };
        Conversion { dist, tolerant }
    }

    #[inline]
    fn internal(&self, v: &ParamValue) -> f64 {
        match (self.dist, v) {
            (
                Distribution::Float {
                    low,
                    high,
                    step: None,
                    ..
                },
                ParamValue::Float(x),
            ) => {
                let (low_tol, high_tol) = self.tolerant;
                if *x >= low_tol && *x <= high_tol {
                    // `clamp`, without its check of the bounds' order.
                    if x < low {
                        *low
                    } else if x > high {
                        *high
                    } else {
                        *x
                    }
                } else {
                    f64::NAN
                }
            }
            (
                Distribution::Int {
                    low, high, step, ..
                },
                ParamValue::Int(i),
            ) => {
                if i >= low && i <= high && (*step == 1 || (i - low) % step == 0) {
                    *i as f64
                } else {
                    f64::NAN
                }
            }
            (Distribution::Categorical { choices }, ParamValue::Str(x)) => choices
                .iter()
                .position(|c| matches!(c, ParamValue::Str(y) if y == x))
                .map_or(f64::NAN, |k| k as f64),
            _ => self.dist.to_internal(v).unwrap_or(f64::NAN),
        }
    }
}

/// String equality without a library call (parameter names are short).
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Columns `params` of the rows `which` that hold all of them.
fn observations(columns: &[Vec<f64>], which: &[usize], params: &[usize]) -> Vec<Vec<f64>> {
    if let [i] = params {
        // One column (independent sampling, the default): a plain gather.
        let column = &columns[*i];
        // Written unconditionally, kept where not NaN: no branch per row.
        let mut obs = vec![0.0; which.len()];
        let mut len = 0;
        for &r in which {
            let v = column[r];
            obs[len] = v;
            len += usize::from(!v.is_nan());
        }
        obs.truncate(len);
        return vec![obs];
    }
    let mut obs: Vec<Vec<f64>> = vec![Vec::with_capacity(which.len()); params.len()];
    for &r in which {
        if params.iter().all(|&i| !columns[i][r].is_nan()) {
            for (o, &i) in obs.iter_mut().zip(params) {
                o.push(columns[i][r]);
            }
        }
    }
    obs
}

/// The data one suggestion works from.
struct Split<'a> {
    columns: &'a [Vec<f64>],
    below: Vec<usize>,
    above: Vec<usize>,
}

impl TpeSampler {
    /// TPE over the parameters `params` jointly: internal values of the best candidate.
    fn sample_group(
        &self,
        space: &SearchSpace,
        data: &Split<'_>,
        params: &[usize],
        number: u64,
        salt: u64,
    ) -> Vec<f64> {
        let dists: Vec<&Distribution> = params.iter().map(|&i| &space.params()[i].dist).collect();
        let mut masses = self.masses.lock().unwrap_or_else(PoisonError::into_inner);
        let l = ParzenEstimator::new(
            &observations(data.columns, &data.below, params),
            &dists,
            &mut masses,
        );
        // One parameter: its kept fit, if any, is extended.
        let one = match params {
            [i] => Some(*i),
            _ => None,
        };
        let g = Density::extending(
            &observations(data.columns, &data.above, params),
            &dists,
            one.and_then(|i| self.take_fit(i)),
            &mut masses,
        );
        let mut rng = trial_rng(self.seed(), number, salt);
        let candidates = l.sample(&mut rng, self.spec.candidates.max(1) as usize);
        let n_candidates = candidates.len() / l.dims().max(1);
        let (mut ll, mut lg) = (
            Vec::with_capacity(n_candidates),
            Vec::with_capacity(n_candidates),
        );
        l.log_pdf_many(&candidates, &mut ll, &mut masses);
        g.log_pdf_many(&candidates, &mut lg, &mut masses);
        let mut best = 0;
        let mut best_acq = f64::NEG_INFINITY;
        for (c, (a, b)) in ll.iter().zip(&lg).enumerate() {
            let acq = a - b;
            let acq = if acq.is_nan() { f64::NEG_INFINITY } else { acq };
            if acq > best_acq || c == 0 {
                best_acq = acq;
                best = c;
            }
        }
        if let Some(i) = one {
            self.keep_fit(i, g.into_fit());
        }
        let d = l.dims();
        candidates
            .get(best * d..(best + 1) * d)
            .map(<[f64]>::to_vec)
            .unwrap_or_default()
    }
}

impl Sampler for TpeSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        direction: Direction,
        history: History<'_>,
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        // One pass: the usable trials and their keys, how many have finished, whether they
        // are in order (warm-start trials first, by position, then the study's by number).
        let len = history.warm.len() + history.trials.len();
        let mut trials: Vec<&TrialRecord> = Vec::with_capacity(len);
        let mut keys: Vec<RowKey> = Vec::with_capacity(len);
        let (mut n, mut sorted) = (0, true);
        let warm = history.warm.iter().enumerate().map(|(i, t)| (i as u64, t));
        let own = (history.trials.iter())
            .filter(|t| t.number != number)
            .map(|t| (OWN | t.number, t));
        for (ord, t) in warm.chain(own) {
            if self.usable(t) {
                n += usize::from(t.state != TrialState::Running);
                sorted &= keys.last().is_none_or(|l: &RowKey| l.ord <= ord);
                trials.push(t);
                keys.push(RowKey::of(ord, t));
            }
        }
        if !sorted {
            let mut both: Vec<(RowKey, &TrialRecord)> = keys.into_iter().zip(trials).collect();
            both.sort_by_key(|(k, _)| k.ord);
            (keys, trials) = both.into_iter().unzip();
        }
        if n < self.spec.startup_trials as usize {
            let random = RandomSampler::new(self.seed());
            return Ok(Suggestion::Params(random.sample(space, number)));
        }
        let (below, above) = split(&trials, &keys, default_gamma(n), direction);
        // Held for the whole suggestion: the columns are read from it.
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        internal_matrix(space, &trials, keys, &mut rows);
        let data = Split {
            columns: &rows.columns,
            below,
            above,
        };

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
            self.sample_group(space, &data, &joint, number, u64::MAX)
        };
        let params = space.assemble(|i, p, _| -> Result<ParamValue, SamplerError> {
            if let Some(pos) = joint.iter().position(|&j| j == i) {
                let x = joint_values.get(pos).copied().unwrap_or(f64::NAN);
                return Ok(p.dist.from_internal(x));
            }
            let x = self.sample_group(space, &data, &[i], number, i as u64);
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
        let nums = |v: Vec<usize>| v.iter().map(|&i| refs[i].number).collect::<Vec<_>>();
        let keys: Vec<RowKey> = refs.iter().map(|t| RowKey::of(t.number, t)).collect();
        let (b, a) = split(&refs, &keys, 3, Direction::Minimize);
        // both complete, then the pruned trial that reached step 5 with the lower value
        assert_eq!(nums(b), vec![0, 3, 5]);
        assert_eq!(nums(a), vec![1, 2, 4, 6]);
        let (b, _) = split(&refs, &keys, 4, Direction::Maximize);
        assert_eq!(nums(b), vec![0, 2, 3, 5]);
        let (b, _) = split(&refs, &keys, 1, Direction::Maximize);
        assert_eq!(nums(b), vec![0]);
    }

    #[test]
    fn a_kept_sampler_suggests_what_a_new_one_would() {
        use crate::engine::space::ParamSpec;
        let specs: Vec<ParamSpec> = serde_yaml::from_str(
            "- {name: x, float: {low: -5.0, high: 10.0}}
- {name: lr, float: {low: 1.0e-5, high: 1.0, log: true}}
- {name: layers, int: {low: 1, high: 8}}
- {name: width, int: {low: 8, high: 512, log: true}}
- {name: drop, float: {low: 0.0, high: 0.5, step: 0.05}}
- {name: opt, categorical: {choices: [adam, sgd]}}
- {name: momentum, float: {low: 0.0, high: 0.99}, when: {opt: [sgd]}}",
        )
        .unwrap();
        let space = SearchSpace::new(specs).unwrap();
        let spec = TpeSpec {
            seed: Some(3),
            ..TpeSpec::default()
        };
        let kept = TpeSampler::new(spec.clone());
        let objective = |p: &crate::engine::Params| {
            let f = |k: &str| match p.get(k) {
                Some(ParamValue::Float(v)) => *v,
                Some(ParamValue::Int(v)) => *v as f64,
                _ => 0.0,
            };
            (f("x") - 2.0).powi(2)
                + f("lr").ln().abs()
                + f("layers") * 0.1
                + (f("width").log2() - 6.0).abs()
                + f("drop")
                + f("momentum")
        };
        // Warm-start trials whose numbers collide with this study's.
        let random = RandomSampler::new(77);
        let warm: Vec<TrialRecord> = (0..40)
            .map(|n| {
                let mut t = TrialRecord::new(n * 7);
                t.params = random.sample(&space, n);
                t.value = Some(objective(&t.params));
                t.state = TrialState::Complete;
                t
            })
            .collect();
        let mut history: Vec<TrialRecord> = Vec::new();
        let mut rows = RowCache::default();
        for number in 0..260u64 {
            let mut h = history.clone();
            h.extend(warm.iter().cloned());
            // Kept rows are the rows (NaN for inactive parameters), bit for bit.
            let mut trials: Vec<&TrialRecord> = h.iter().collect();
            trials.sort_by_key(|t| t.number);
            let bits = |m: &[f64]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let keys: Vec<RowKey> = trials.iter().map(|t| RowKey::of(t.number, t)).collect();
            let mut fresh = RowCache::default();
            internal_matrix(&space, &trials, keys.clone(), &mut rows);
            internal_matrix(&space, &trials, keys, &mut fresh);
            assert_eq!(
                bits(&rows.columns.concat()),
                bits(&fresh.columns.concat()),
                "trial {number}"
            );
            let ours = kept
                .suggest(
                    &space,
                    Direction::Minimize,
                    History::with_warm(&warm, &history),
                    number,
                )
                .unwrap();
            let fresh = TpeSampler::new(spec.clone())
                .suggest(
                    &space,
                    Direction::Minimize,
                    History::with_warm(&warm, &history),
                    number,
                )
                .unwrap();
            assert_eq!(ours, fresh, "trial {number}");
            let Suggestion::Params(p) = ours else {
                panic!("trial {number}: {ours:?}");
            };
            // The trial runs (constant liar) and finishes at the next suggestion:
            // complete mostly, pruned or failed now and then.
            if let Some(last) = history.last_mut() {
                let v = objective(&last.params);
                last.state = match last.number % 11 {
                    3 => TrialState::Pruned,
                    7 => TrialState::Failed,
                    _ => TrialState::Complete,
                };
                last.value = (last.state != TrialState::Failed).then_some(v);
                if last.state == TrialState::Pruned {
                    last.intermediate.insert(1, v);
                }
            }
            let mut t = TrialRecord::new(number);
            t.params = p;
            t.state = TrialState::Running;
            history.push(t);
        }
    }
}
