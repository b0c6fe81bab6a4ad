//! Samplers: propose the next trial's parameters from the study's history.
//!
//! `spec.sampler` holds exactly one key:
//!
//! ```yaml
//! random: {seed: 1}
//! grid:   {}                                   # every combination; floats need step
//! tpe:    {seed: 1, startupTrials: 10, candidates: 24, multivariate: false, considerPruned: true}
//! qmc:    {seed: 1, kind: sobol}               # sobol | halton, scrambled
//! ```
//!
//! A suggestion is a pure function of (spec, space, direction, history, trial number): the
//! random stream of trial `number` is a ChaCha8 generator seeded from a hash of (seed,
//! number), so a restarted operator proposes exactly what it would have proposed before.
//! TPE keeps work from one suggestion to the next (the trials' internal values, each
//! continuous parameter's "above" estimator, the normal masses of discrete parameters'
//! cells) and updates it as the history grows, so that a
//! study's suggestions stay cheap; what it keeps never changes a suggestion (tests compare a
//! kept sampler with a new one, suggestion for suggestion).
//!
//! The [`History`] is the warm-start trials of earlier studies (see [`warm_start`]), which
//! come first, as trials added to an Optuna study before it runs, then every trial of the
//! study (running ones included). A trial of the study with the number being proposed is
//! ignored if present; warm-start trials keep their own studies' numbers and never collide
//! with it.

mod grid;
mod qmc;
mod random;
mod sobol_table;
mod tpe;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::space::SearchSpace;
use super::{Direction, Params, TrialRecord, TrialState};

pub use grid::GridSampler;
pub use qmc::QmcSampler;
pub use random::RandomSampler;
pub use tpe::TpeSampler;

/// What a sampler proposes for the next trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Suggestion {
    /// The active parameters of the next trial.
    Params(Params),
    /// Nothing left to propose (grid: every combination is taken); the study should end.
    Exhausted,
}

/// Errors a sampler can report (never panics).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("grid sampler: parameter {0:?} is a float without step; grid needs a finite set")]
    GridNeedsStep(String),
    #[error("grid sampler: {0} combinations exceed the limit of {1}")]
    GridTooLarge(u128, u64),
    #[error("qmc sampler: {0} parameters exceed the {1} dimensions supported by {2}")]
    TooManyDimensions(usize, usize, &'static str),
    #[error("invalid sampler spec: {0}")]
    InvalidSpec(String),
}

/// What a sampler learns from: the warm-start trials, then the study's own.
#[derive(Clone, Copy, Debug, Default)]
pub struct History<'a> {
    /// Finished trials of earlier studies, in their order, before the study's own (their
    /// numbers are their own studies').
    pub warm: &'a [TrialRecord],
    /// The study's trials, running ones included.
    pub trials: &'a [TrialRecord],
}

impl<'a> History<'a> {
    /// The study's trials, without a warm start.
    pub fn new(trials: &'a [TrialRecord]) -> Self {
        History { warm: &[], trials }
    }

    /// Warm-start trials, then the study's.
    pub fn with_warm(warm: &'a [TrialRecord], trials: &'a [TrialRecord]) -> Self {
        History { warm, trials }
    }
}

/// Proposes the next configuration. Implementations are pure: same inputs, same output.
pub trait Sampler: Send + Sync {
    fn suggest(
        &self,
        space: &SearchSpace,
        direction: Direction,
        history: History<'_>,
        number: u64,
    ) -> Result<Suggestion, SamplerError>;
}

/// `random: {seed}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RandomSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `grid: {seed}`: every combination once, in a seeded random order (as Optuna's
/// `GridSampler`); ends the study when exhausted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GridSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `tpe: {...}`: Optuna 5.0's `TPESampler`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TpeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Random trials before TPE starts (finished complete/pruned trials, warm start counted).
    #[serde(default = "default_startup")]
    pub startup_trials: u32,
    /// Candidates drawn from l(x) per suggestion; the best l(x)/g(x) wins.
    #[serde(default = "default_candidates")]
    pub candidates: u32,
    /// `true`: one joint Parzen estimator over the always-active parameters (conditional
    /// ones are sampled independently), Optuna's `multivariate=True`. The default, `false`,
    /// samples every parameter independently, as the issue specifies and as Optuna did
    /// before 5.0 (5.0 made single-objective studies multivariate by default).
    #[serde(default)]
    pub multivariate: bool,
    /// Rank pruned trials after complete ones by (last step desc, value at it) as Optuna.
    /// When false, pruned trials are ignored.
    #[serde(default = "default_true")]
    pub consider_pruned: bool,
    /// Running trials join the "bad" group with their params (Optuna 5.0's default
    /// `constant_liar=True`), so parallel trials spread out. When false they are ignored.
    #[serde(default = "default_true")]
    pub constant_liar: bool,
}

fn default_startup() -> u32 {
    10
}
fn default_candidates() -> u32 {
    24
}
fn default_true() -> bool {
    true
}

impl Default for TpeSpec {
    fn default() -> Self {
        TpeSpec {
            seed: None,
            startup_trials: default_startup(),
            candidates: default_candidates(),
            multivariate: false,
            consider_pruned: true,
            constant_liar: true,
        }
    }
}

/// Low-discrepancy sequence of a [`QmcSpec`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum QmcKind {
    #[default]
    Sobol,
    Halton,
}

/// `qmc: {seed, kind, scramble}`: trial `number` takes point `number` of the sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QmcSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default)]
    pub kind: QmcKind,
    #[serde(default = "default_true")]
    pub scramble: bool,
}

impl Default for QmcSpec {
    fn default() -> Self {
        QmcSpec {
            seed: None,
            kind: QmcKind::Sobol,
            scramble: true,
        }
    }
}

/// The `spec.sampler` field: exactly one key. Default: `tpe: {}`.
///
/// (De)serialized as a map with one key in every format (serde_yaml's default for enums
/// would be a `!tag`), and refused with a message when zero or several keys are given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSamplerSpec", into = "RawSamplerSpec")]
pub enum SamplerSpec {
    Random(RandomSpec),
    Grid(GridSpec),
    Tpe(TpeSpec),
    Qmc(QmcSpec),
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSamplerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    random: Option<RandomSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grid: Option<GridSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tpe: Option<TpeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qmc: Option<QmcSpec>,
}

impl TryFrom<RawSamplerSpec> for SamplerSpec {
    type Error = String;

    fn try_from(r: RawSamplerSpec) -> Result<Self, String> {
        let mut found: Vec<SamplerSpec> = Vec::new();
        found.extend(r.random.map(SamplerSpec::Random));
        found.extend(r.grid.map(SamplerSpec::Grid));
        found.extend(r.tpe.map(SamplerSpec::Tpe));
        found.extend(r.qmc.map(SamplerSpec::Qmc));
        if found.len() != 1 {
            return Err(format!(
                "sampler: exactly one of random, grid, tpe or qmc must be set, found {}",
                found.len()
            ));
        }
        found.pop().ok_or_else(|| "sampler: empty".to_string())
    }
}

impl From<SamplerSpec> for RawSamplerSpec {
    fn from(s: SamplerSpec) -> Self {
        let mut r = RawSamplerSpec::default();
        match s {
            SamplerSpec::Random(x) => r.random = Some(x),
            SamplerSpec::Grid(x) => r.grid = Some(x),
            SamplerSpec::Tpe(x) => r.tpe = Some(x),
            SamplerSpec::Qmc(x) => r.qmc = Some(x),
        }
        r
    }
}

impl Default for SamplerSpec {
    fn default() -> Self {
        SamplerSpec::Tpe(TpeSpec::default())
    }
}

impl SamplerSpec {
    /// The configured seed, if any.
    pub fn seed(&self) -> Option<u64> {
        match self {
            SamplerSpec::Random(s) => s.seed,
            SamplerSpec::Grid(s) => s.seed,
            SamplerSpec::Tpe(s) => s.seed,
            SamplerSpec::Qmc(s) => s.seed,
        }
    }

    /// Fills an absent seed (e.g. with a hash of the study's UID, so two studies differ
    /// but each stays deterministic). Without one, seed 0 is used.
    pub fn with_default_seed(mut self, seed: u64) -> Self {
        let slot = match &mut self {
            SamplerSpec::Random(s) => &mut s.seed,
            SamplerSpec::Grid(s) => &mut s.seed,
            SamplerSpec::Tpe(s) => &mut s.seed,
            SamplerSpec::Qmc(s) => &mut s.seed,
        };
        slot.get_or_insert(seed);
        self
    }

    /// Optuna's class name, for conditions and logs.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerSpec::Random(_) => "RandomSampler",
            SamplerSpec::Grid(_) => "GridSampler",
            SamplerSpec::Tpe(_) => "TPESampler",
            SamplerSpec::Qmc(_) => "QMCSampler",
        }
    }
}

/// Builds the sampler a spec describes.
pub fn build(spec: &SamplerSpec) -> Result<Box<dyn Sampler>, SamplerError> {
    Ok(match spec {
        SamplerSpec::Random(s) => Box::new(RandomSampler::new(s.seed.unwrap_or(0))),
        SamplerSpec::Grid(s) => Box::new(GridSampler::new(s.seed.unwrap_or(0))),
        SamplerSpec::Tpe(s) => {
            if s.candidates == 0 {
                return Err(SamplerError::InvalidSpec(
                    "tpe.candidates must be at least 1".into(),
                ));
            }
            Box::new(TpeSampler::new(s.clone()))
        }
        SamplerSpec::Qmc(s) => Box::new(QmcSampler::new(s.clone())),
    })
}

/// Keeps the earlier trials usable as prior history in `space`: finished (complete or
/// pruned) trials whose params are a point of the space. Returns them and, for each skipped
/// trial, a reason naming it.
pub fn warm_start(space: &SearchSpace, earlier: &[TrialRecord]) -> (Vec<TrialRecord>, Vec<String>) {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for t in earlier {
        let usable = match t.state {
            TrialState::Complete => t.value.is_some_and(|v| !v.is_nan()),
            TrialState::Pruned => true,
            _ => false,
        };
        if !usable {
            skipped.push(format!(
                "trial {}: state {:?} without a usable value",
                t.number, t.state
            ));
            continue;
        }
        match space.contains(&t.params) {
            Ok(()) => kept.push(t.clone()),
            Err(why) => skipped.push(format!("trial {}: {why}", t.number)),
        }
    }
    (kept, skipped)
}

/// The random stream of trial `number` under `seed` (SplitMix64-mixed, then ChaCha8), with a
/// `salt` separating independent uses within one suggestion.
pub(crate) fn trial_rng(seed: u64, number: u64, salt: u64) -> ChaCha8Rng {
    let mut h = splitmix(seed ^ 0x6c6f_7070_6572_0001);
    h = splitmix(h ^ number);
    h = splitmix(h ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut key = [0u8; 32];
    let mut s = h;
    for chunk in key.chunks_mut(8) {
        s = splitmix(s);
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from 53 random bits.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    use rand::RngCore;
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_and_round_trip() {
        let s: SamplerSpec = serde_yaml::from_str("tpe: {}").unwrap();
        assert_eq!(s, SamplerSpec::default());
        let s: SamplerSpec =
            serde_yaml::from_str("tpe: {seed: 1, startupTrials: 5, considerPruned: false}")
                .unwrap();
        let back: SamplerSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(s, back);
        let q: SamplerSpec = serde_yaml::from_str("qmc: {seed: 1, kind: halton}").unwrap();
        assert_eq!(
            q,
            SamplerSpec::Qmc(QmcSpec {
                seed: Some(1),
                kind: QmcKind::Halton,
                scramble: true
            })
        );
        assert!(serde_yaml::from_str::<SamplerSpec>("grid: {}").is_ok());
        assert!(serde_yaml::from_str::<SamplerSpec>("random: {seed: 3}").is_ok());
    }

    #[test]
    fn spec_rejects_unknown_and_multiple_keys() {
        assert!(serde_yaml::from_str::<SamplerSpec>("tpe: {sed: 1}").is_err());
        assert!(serde_yaml::from_str::<SamplerSpec>("cmaes: {}").is_err());
        assert!(serde_yaml::from_str::<SamplerSpec>("{tpe: {}, random: {}}").is_err());
        assert!(serde_yaml::from_str::<SamplerSpec>("qmc: {kind: lattice}").is_err());
        let e = serde_json::from_str::<SamplerSpec>("{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one of random, grid, tpe or qmc"), "{e}");
        let y = serde_yaml::to_string(&SamplerSpec::Grid(GridSpec::default())).unwrap();
        assert_eq!(y.trim(), "grid: {}");
    }

    #[test]
    fn rng_depends_on_seed_and_number_only() {
        let a = unit(&mut trial_rng(1, 7, 0));
        assert_eq!(a, unit(&mut trial_rng(1, 7, 0)));
        assert_ne!(a, unit(&mut trial_rng(1, 8, 0)));
        assert_ne!(a, unit(&mut trial_rng(2, 7, 0)));
        assert_ne!(a, unit(&mut trial_rng(1, 7, 1)));
    }
}
