//! Long-curve pruner conformance cases (`tests/oracle/long_cases.json`): Optuna 5.0's
//! outcome for trials whose curves span 5,000-20,000 steps, with decisions after step 1,000.
//!
//! The file stores no curves, only the parameters of an integer-only generator
//! (`splitmix64-pwl-v1`, specified in `tests/oracle/gen_long_cases.py`) that [`expand`]
//! re-implements bit for bit; [`load_long_cases`] expands every trial, verifies it against the
//! checksum the generator recorded, and checks that every expected value is the curve's own
//! value at the deciding step. Any decision path can then replay the same cases:
//! [`LongCase::replay_input`] for `lopper::engine::replay`, [`LongCase::input_json`] for
//! anything that takes `lopper replay`'s JSON input, or the raw [`LongTrial`] curves.

use std::path::{Path, PathBuf};

use lopper::engine::replay::{Curve, ReplayInput};
use serde::Deserialize;
use serde_json::{Value, json};

/// The curve generator the committed file must name.
pub const GENERATOR: &str = "splitmix64-pwl-v1";

/// The step after which every pruner kind must prune at least one trial.
pub const LATE_STEP: i64 = 1000;

/// Bits of the NaN a reported NaN contributes to the checksum.
const NAN_BITS: u64 = 0x7ff8_0000_0000_0000;

/// Parameters of one trial's curve (see `gen_long_cases.py` for the formula).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurveParams {
    pub seed: u64,
    /// `[start, stride, count]` pieces of candidate steps.
    pub schedule: Vec<[i64; 3]>,
    pub skip_per_1024: u64,
    pub nan_per_65536: u64,
    #[serde(default)]
    pub nan_at: Vec<i64>,
    pub base: i64,
    /// `[from, to, slope]`: trend(s) = Σ slope · clamp(s − from, 0, to − from).
    pub segments: Vec<[i64; 3]>,
    pub noise_bits: u32,
    pub scale_bits: u32,
    pub check: CurveCheck,
}

/// What the Python generator saw: reported steps, last step, FNV-1a 64 of the
/// little-endian (step i64, value bits u64) pairs, NaN as `0x7ff8000000000000`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurveCheck {
    pub reported: usize,
    pub last_step: i64,
    pub fnv1a64: u64,
}

/// One trial: its generator parameters and the expanded curve (`None` = a reported NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct LongTrial {
    pub params: CurveParams,
    pub steps: Vec<i64>,
    pub values: Vec<Option<f64>>,
}

/// Optuna's outcome for one trial (the format of `cases.json`'s `expected`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expected {
    pub number: u64,
    /// `complete`, `pruned` or `failed`.
    pub state: String,
    pub pruned_at_step: Option<i64>,
    pub value: Option<f64>,
}

/// One long case: a study replayed sequentially (trial i has number i).
#[derive(Clone, Debug, PartialEq)]
pub struct LongCase {
    pub name: String,
    pub study: String,
    /// `minimize` or `maximize`.
    pub direction: String,
    /// The pruner spec, as in `lopper replay` input (`{"median": {...}}`).
    pub pruner: Value,
    pub trials: Vec<LongTrial>,
    pub expected: Vec<Expected>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCase {
    name: String,
    study: String,
    direction: String,
    pruner: Value,
    curves: Vec<CurveParams>,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGenerator {
    curves: String,
}

#[derive(Deserialize)]
struct RawFile {
    generator: RawGenerator,
    cases: Vec<RawCase>,
}

impl LongCase {
    /// The pruner kind (the spec's only key), e.g. `median` or `patient`.
    pub fn kind(&self) -> &str {
        self.pruner
            .as_object()
            .and_then(|o| o.keys().next())
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The case as `lopper replay` JSON input (NaN as `null`).
    pub fn input_json(&self) -> Value {
        let trials: Vec<Value> = self
            .trials
            .iter()
            .map(|t| json!({"steps": t.steps, "values": t.values}))
            .collect();
        json!({
            "study": self.study,
            "direction": self.direction,
            "pruner": self.pruner,
            "trials": trials,
        })
    }

    /// The case as the engine's replay input, parsed as `lopper replay` parses its input.
    pub fn replay_input(&self) -> ReplayInput {
        let spec = json!({
            "study": self.study,
            "direction": self.direction,
            "pruner": self.pruner,
            "trials": [],
        });
        let mut input = ReplayInput::from_value(&spec)
            .unwrap_or_else(|e| panic!("{}: replay input rejected: {e}", self.name));
        input.trials = self
            .trials
            .iter()
            .map(|t| Curve {
                steps: Some(t.steps.clone()),
                values: t.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
            })
            .collect();
        input
    }

    /// The trials Optuna pruned after [`LATE_STEP`].
    pub fn late_prunes(&self) -> usize {
        self.expected
            .iter()
            .filter(|e| e.state == "pruned" && e.pruned_at_step.is_some_and(|s| s > LATE_STEP))
            .count()
    }
}

/// The committed file, `tests/oracle/long_cases.json`.
pub fn long_cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/long_cases.json")
}

/// Loads, expands and verifies the committed long cases.
pub fn load_long_cases() -> Vec<LongCase> {
    load_long_cases_from(&long_cases_path())
}

/// Loads, expands and verifies a long-cases file; panics on anything inconsistent.
pub fn load_long_cases_from(path: &Path) -> Vec<LongCase> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let raw: RawFile =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    assert_eq!(
        raw.generator.curves,
        GENERATOR,
        "{}: unknown curve generator",
        path.display()
    );
    raw.cases.into_iter().map(build_case).collect()
}

fn build_case(raw: RawCase) -> LongCase {
    let name = raw.name;
    assert_eq!(
        raw.curves.len(),
        raw.expected.len(),
        "{name}: one expected outcome per trial"
    );
    let mut trials = Vec::with_capacity(raw.curves.len());
    for (i, params) in raw.curves.into_iter().enumerate() {
        let (steps, values) = expand(&params);
        let check = CurveCheck {
            reported: steps.len(),
            last_step: steps.last().copied().unwrap_or(-1),
            fnv1a64: fnv1a64(&steps, &values),
        };
        assert_eq!(
            check, params.check,
            "{name}: trial {i}: the Rust expansion differs from the generator's"
        );
        trials.push(LongTrial {
            params,
            steps,
            values,
        });
    }
    for (i, (e, t)) in raw.expected.iter().zip(&trials).enumerate() {
        assert_eq!(e.number, i as u64, "{name}: expected outcomes out of order");
        // Pruned: the value at the pruning step; otherwise the last value (NaN → failed).
        let at = match e.pruned_at_step {
            Some(step) => t
                .steps
                .iter()
                .position(|&s| s == step)
                .unwrap_or_else(|| panic!("{name}: trial {i}: pruned at an unreported step")),
            None => t.steps.len() - 1,
        };
        let want = t.values[at];
        assert!(
            e.value.map(f64::to_bits) == want.map(f64::to_bits),
            "{name}: trial {i}: expected value {:?} is not the curve's value {want:?}",
            e.value
        );
    }
    LongCase {
        name,
        study: raw.study,
        direction: raw.direction,
        pruner: raw.pruner,
        trials,
        expected: raw.expected,
    }
}

/// One splitmix64 step: advances `state`, returns the output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn trend(segments: &[[i64; 3]], s: i64) -> i64 {
    segments
        .iter()
        .map(|&[lo, hi, slope]| slope * (s - lo).clamp(0, hi - lo))
        .sum()
}

/// Expands a trial's parameters into its reported (steps, values); `None` = NaN.
pub fn expand(p: &CurveParams) -> (Vec<i64>, Vec<Option<f64>>) {
    assert!(p.scale_bits <= 10 && p.noise_bits <= 24, "generator limits");
    let mut state = p.seed;
    let scale = (1u64 << p.scale_bits) as f64;
    let (mut steps, mut values) = (Vec::new(), Vec::new());
    let mut prev = -1;
    for &[start, stride, count] in &p.schedule {
        assert!(
            start >= 0 && stride >= 1 && count >= 1,
            "bad schedule piece"
        );
        for i in 0..count {
            let s = start + i * stride;
            assert!(s > prev, "candidate steps must strictly increase");
            prev = s;
            let r = splitmix64(&mut state);
            let forced = p.nan_at.contains(&s);
            if !forced && (r >> 54) < p.skip_per_1024 {
                continue;
            }
            steps.push(s);
            if forced || ((r >> 38) & 0xffff) < p.nan_per_65536 {
                values.push(None);
                continue;
            }
            let noise = if p.noise_bits > 0 {
                (r & ((1u64 << p.noise_bits) - 1)) as i64 - (1i64 << (p.noise_bits - 1))
            } else {
                0
            };
            let x = p.base + trend(&p.segments, s) + noise;
            assert!(x.abs() < 1 << 26, "value out of the exact range");
            // Exact: |x| < 2^53 converts exactly and dividing by a power of two is exact.
            values.push(Some(x as f64 / scale));
        }
    }
    (steps, values)
}

/// FNV-1a 64 over the little-endian (step, value bits) pairs, NaN as `0x7ff8000000000000`.
pub fn fnv1a64(steps: &[i64], values: &[Option<f64>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (s, v) in steps.iter().zip(values) {
        let bits = v.map_or(NAN_BITS, f64::to_bits);
        for b in s.to_le_bytes().into_iter().chain(bits.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
