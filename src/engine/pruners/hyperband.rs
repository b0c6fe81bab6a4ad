//! Optuna's `HyperbandPruner`: successive halving in brackets chosen by CRC-32.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, Resource, SpecError, at_least, invalid};
use super::successive_halving::{Competitors, SuccessiveHalvingPruner};
use super::{Decision, Message, Pruner};
use crate::engine::{PrunerState, StudyView, TrialRecord, TrialState};

const R: &str = "HyperbandPruner";

#[derive(Clone, Debug, PartialEq)]
pub struct HyperbandPruner {
    pub min_resource: i64,
    /// `None` = `auto`: the largest last step of a completed trial + 1 (kept in state).
    pub max_resource: Option<i64>,
    pub reduction_factor: i64,
    pub bootstrap_count: u64,
}

/// The brackets' trial allocation budgets.
#[derive(Clone, Debug, PartialEq)]
pub struct Brackets {
    pub budgets: Vec<u128>,
    pub total: u128,
}

impl Brackets {
    /// As Optuna: `floor(log(max / min, eta)) + 1` brackets, computed in floating point.
    pub fn new(min_resource: i64, max_resource: i64, eta: i64) -> Self {
        let ratio = max_resource as f64 / min_resource as f64;
        let n = (ratio.ln() / (eta as f64).ln()).floor() + 1.0;
        let n = if n.is_finite() && n > 0.0 {
            n as i64
        } else {
            0
        };
        let budgets: Vec<u128> = (0..n)
            .map(|i| {
                let s = n - 1 - i;
                let num = (eta as u128)
                    .checked_pow(s as u32)
                    .and_then(|p| p.checked_mul(n as u128));
                let num = match num {
                    Some(v) => v as f64,
                    None => (n as f64) * (eta as f64).powi(s as i32),
                };
                (num / (s + 1) as f64).ceil() as u128
            })
            .collect();
        let total = budgets.iter().sum();
        Brackets { budgets, total }
    }

    /// Bracket of a trial: CRC-32 of `"{study}_{number}"` mod the total budget.
    pub fn bracket_of(&self, study: &str, number: u64) -> usize {
        if self.total == 0 {
            return 0;
        }
        // The CRC-32 of `"{study}_{number}"`, fed in pieces: a decision asks this for every
        // trial of the study, so no string is built.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = number;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut h = crc32fast::Hasher::new();
        h.update(study.as_bytes());
        h.update(b"_");
        h.update(&digits[at..]);
        let crc = h.finalize() as u128;
        let mut n = (crc % self.total) as i128;
        for (i, &b) in self.budgets.iter().enumerate() {
            n -= b as i128;
            if n < 0 {
                return i;
            }
        }
        self.budgets.len().saturating_sub(1)
    }
}

impl Pruner for HyperbandPruner {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision {
        let max_resource = match self.max_resource.or(state.max_resource) {
            Some(m) => m,
            None => {
                let last = study
                    .trials
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .filter_map(|t| t.last_step())
                    .max();
                match last {
                    Some(l) => {
                        state.max_resource = Some(l + 1);
                        l + 1
                    }
                    None => return Decision::keep(R, "max resource not yet known"),
                }
            }
        };
        let brackets = Brackets::new(self.min_resource, max_resource, self.reduction_factor);
        if brackets.budgets.is_empty() {
            return Decision::keep(R, "no brackets (max resource below min resource)");
        }
        let b = brackets.bracket_of(study.name, trial.number);
        let sha = SuccessiveHalvingPruner {
            min_resource: Some(self.min_resource),
            reduction_factor: self.reduction_factor,
            min_early_stopping_rate: b as i64,
            bootstrap_count: self.bootstrap_count,
        };
        let same = |t: &TrialRecord| brackets.bracket_of(study.name, t.number) == b;
        let mut d = sha.decide(study, trial, state, Competitors::Scan(&same), R);
        d.message = Message::joined(message!("bracket {b}", b), ": ", d.message);
        d
    }
}

/// `hyperband: {minResource, maxResource, reductionFactor, bootstrapCount}`.
#[derive(Clone, Debug, PartialEq)]
pub struct HyperbandSpec {
    pub min_resource: i64,
    pub max_resource: Resource,
    pub reduction_factor: i64,
    pub bootstrap_count: i64,
}

impl Default for HyperbandSpec {
    fn default() -> Self {
        HyperbandSpec {
            min_resource: 1,
            max_resource: Resource::Auto,
            reduction_factor: 3,
            bootstrap_count: 0,
        }
    }
}

impl PrunerParams for HyperbandSpec {
    const KEY: &str = "hyperband";
    const NAME: &str = R;

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&[
            "minResource",
            "maxResource",
            "reductionFactor",
            "bootstrapCount",
        ])?;
        let d = HyperbandSpec::default();
        Ok(HyperbandSpec {
            min_resource: f.int("minResource", d.min_resource)?,
            max_resource: f.resource("maxResource", d.max_resource)?,
            reduction_factor: f.int("reductionFactor", d.reduction_factor)?,
            bootstrap_count: f.int("bootstrapCount", d.bootstrap_count)?,
        })
    }

    fn to_value(&self) -> Value {
        json!({
            "minResource": self.min_resource,
            "maxResource": self.max_resource.to_value(),
            "reductionFactor": self.reduction_factor,
            "bootstrapCount": self.bootstrap_count})
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        at_least(p, "minResource", self.min_resource, 1)?;
        if let Resource::Steps(n) = self.max_resource {
            at_least(p, "maxResource", n, 1)?;
        }
        at_least(p, "reductionFactor", self.reduction_factor, 2)?;
        at_least(p, "bootstrapCount", self.bootstrap_count, 0)?;
        if self.bootstrap_count > 0 && self.max_resource == Resource::Auto {
            return Err(invalid(
                &format!("{p}.bootstrapCount"),
                format!(
                    "must be 0 when maxResource is auto, got {}",
                    self.bootstrap_count
                ),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(HyperbandPruner {
            min_resource: self.min_resource,
            max_resource: self.max_resource.steps(),
            reduction_factor: self.reduction_factor,
            bootstrap_count: self.bootstrap_count.max(0) as u64,
        })
    }
}
