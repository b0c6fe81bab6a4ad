//! Optuna's `MedianPruner`: the percentile pruner at the 50th percentile, under its own
//! name (the Condition reason a user sees).

use serde_json::{Value, json};

use super::Pruner;
use super::percentile::Gate;
use super::spec::{Fields, PrunerParams, SpecError};

/// `median: {startupTrials, warmupSteps, intervalSteps, minTrials}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MedianSpec {
    pub gate: Gate,
}

impl PrunerParams for MedianSpec {
    const KEY: &str = "median";
    const NAME: &str = "MedianPruner";

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&Gate::FIELDS)?;
        Ok(MedianSpec {
            gate: Gate::parse(f)?,
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({});
        self.gate.insert_into(&mut v);
        v
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        self.gate.validate(p)
    }

    fn build(&self) -> Box<dyn Pruner> {
        let mut p = self.gate.pruner(50.0);
        p.reason = Self::NAME;
        Box::new(p)
    }
}
