//! `grid`: every combination of the (finite) parameter values exactly once, as Optuna's
//! `GridSampler`: the next trial takes a combination chosen at random (seeded by trial
//! number) among those no trial of the history holds, whatever that trial's state (running,
//! complete, pruned or failed). When none is left the sampler answers
//! [`Suggestion::Exhausted`] and the study ends.
//!
//! Conditional parameters are handled by enumerating the tree of *active* combinations: an
//! inactive parameter does not multiply the grid.

use std::collections::BTreeSet;

use rand::Rng;

use super::{History, Sampler, SamplerError, Suggestion, trial_rng};
use crate::engine::space::{Distribution, SearchSpace};
use crate::engine::{Direction, Params};

/// Largest grid enumerated (combinations).
pub const GRID_LIMIT: u64 = 1_000_000;

/// Optuna's `GridSampler` over the whole declared space.
#[derive(Clone, Debug)]
pub struct GridSampler {
    seed: u64,
}

/// One combination: (parameter index, value index) for each active parameter.
type Combo = Vec<(usize, u64)>;

impl GridSampler {
    pub fn new(seed: u64) -> Self {
        GridSampler { seed }
    }

    /// Every active combination of `space`, in declaration/value order.
    pub fn combinations(space: &SearchSpace) -> Result<Vec<Params>, SamplerError> {
        Ok(enumerate(space)?
            .iter()
            .map(|c| to_params(space, c))
            .collect())
    }
}

fn check_finite(space: &SearchSpace) -> Result<(), SamplerError> {
    for p in space.params() {
        if let Distribution::Float { step: None, .. } = p.dist {
            return Err(SamplerError::GridNeedsStep(p.name.clone()));
        }
    }
    Ok(())
}

fn enumerate(space: &SearchSpace) -> Result<Vec<Combo>, SamplerError> {
    check_finite(space)?;
    let mut out = Vec::new();
    let mut prefix = Params::new();
    let mut combo = Combo::new();
    walk(space, 0, &mut prefix, &mut combo, &mut out)?;
    Ok(out)
}

fn walk(
    space: &SearchSpace,
    i: usize,
    prefix: &mut Params,
    combo: &mut Combo,
    out: &mut Vec<Combo>,
) -> Result<(), SamplerError> {
    if i == space.len() {
        if out.len() as u64 >= GRID_LIMIT {
            return Err(SamplerError::GridTooLarge(
                out.len() as u128 + 1,
                GRID_LIMIT,
            ));
        }
        out.push(combo.clone());
        return Ok(());
    }
    if !space.is_active(i, prefix) {
        return walk(space, i + 1, prefix, combo, out);
    }
    let p = &space.params()[i];
    let n = p.dist.cardinality().unwrap_or(0);
    for k in 0..n {
        let Some(v) = p.dist.nth(k) else { continue };
        prefix.insert(p.name.clone(), v);
        combo.push((i, k));
        walk(space, i + 1, prefix, combo, out)?;
        combo.pop();
    }
    prefix.remove(&p.name);
    Ok(())
}

fn to_params(space: &SearchSpace, combo: &Combo) -> Params {
    combo
        .iter()
        .filter_map(|&(i, k)| {
            let p = &space.params()[i];
            p.dist.nth(k).map(|v| (p.name.clone(), v))
        })
        .collect()
}

/// The combination a trial holds, if its params are a grid point of `space`.
fn combo_of(space: &SearchSpace, params: &Params) -> Option<Combo> {
    space.contains(params).ok()?;
    let mut c = Combo::new();
    for (i, p) in space.params().iter().enumerate() {
        if let Some(v) = params.get(&p.name) {
            c.push((i, p.dist.index_of(v)?));
        }
    }
    Some(c)
}

impl Sampler for GridSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        _direction: Direction,
        history: History<'_>,
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        let all = enumerate(space)?;
        let own = history.trials.iter().filter(|t| t.number != number);
        let taken: BTreeSet<Combo> = history
            .warm
            .iter()
            .chain(own)
            .filter_map(|t| combo_of(space, &t.params))
            .collect();
        let free: Vec<&Combo> = all.iter().filter(|c| !taken.contains(*c)).collect();
        if free.is_empty() {
            return Ok(Suggestion::Exhausted);
        }
        let mut rng = trial_rng(self.seed, number, 0x67726964);
        let pick = free[rng.random_range(0..free.len())];
        Ok(Suggestion::Params(to_params(space, pick)))
    }
}
