//! `random`: every active parameter drawn independently and uniformly (log-uniform for log
//! ranges, equal mass per step for stepped and integer ranges), as Optuna's `RandomSampler`.

use super::{History, Sampler, SamplerError, Suggestion, trial_rng, unit};
use crate::engine::space::SearchSpace;
use crate::engine::{Direction, Params};

/// Optuna's `RandomSampler`, with the stream derived from (seed, trial number).
#[derive(Clone, Debug)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    pub fn new(seed: u64) -> Self {
        RandomSampler { seed }
    }

    /// A random point of `space` for trial `number` (also TPE's startup and fallback).
    pub fn sample(&self, space: &SearchSpace, number: u64) -> Params {
        let mut rng = trial_rng(self.seed, number, 0x72616e64);
        let picked: Result<Params, SamplerError> =
            space.assemble(|_, p, _| Ok(p.dist.from_unit(unit(&mut rng))));
        picked.unwrap_or_default()
    }
}

impl Sampler for RandomSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        _direction: Direction,
        _history: History<'_>,
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        Ok(Suggestion::Params(self.sample(space, number)))
    }
}
