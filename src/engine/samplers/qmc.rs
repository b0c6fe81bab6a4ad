//! `qmc`: scrambled Sobol' or Halton points (placeholder until the sequences land).

use super::{QmcSpec, RandomSampler, Sampler, SamplerError, Suggestion};
use crate::engine::space::SearchSpace;
use crate::engine::{Direction, TrialRecord};

/// Quasi-Monte Carlo sampler: trial `number` takes point `number` of the sequence.
#[derive(Clone, Debug)]
pub struct QmcSampler {
    spec: QmcSpec,
}

impl QmcSampler {
    pub fn new(spec: QmcSpec) -> Self {
        QmcSampler { spec }
    }
}

impl Sampler for QmcSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        _direction: Direction,
        _history: &[TrialRecord],
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        let r = RandomSampler::new(self.spec.seed.unwrap_or(0));
        Ok(Suggestion::Params(r.sample(space, number)))
    }
}
