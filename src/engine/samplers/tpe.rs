//! `tpe`: Optuna 5.0's `TPESampler` (placeholder until the Parzen estimator lands).

use super::{RandomSampler, Sampler, SamplerError, Suggestion, TpeSpec};
use crate::engine::space::SearchSpace;
use crate::engine::{Direction, TrialRecord};

/// Tree-structured Parzen Estimator.
#[derive(Clone, Debug)]
pub struct TpeSampler {
    spec: TpeSpec,
}

impl TpeSampler {
    pub fn new(spec: TpeSpec) -> Self {
        TpeSampler { spec }
    }
}

impl Sampler for TpeSampler {
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
