//! Replay of recorded learning curves through a pruner: a pure function from a
//! [`ReplayInput`] to a [`ReplayOutput`], used by `lopper replay` and by tests.
//!
//! Semantics (as a sequential Optuna ask/report/should_prune/tell loop): trials run one
//! after another, trial i has number i, reports its values step by step and asks the
//! pruner after every report; a pruned trial stops there (its value becomes its last
//! intermediate value), a trial never pruned completes with its last value (a NaN or
//! missing last value makes it FAILED, as Optuna's `tell` does).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pruners::wilcoxon::best_trial;
use super::pruners::{PrunerSpec, SpecError, StudyIndex, build};
use super::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

/// Malformed replay input; Display names the place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The pruner spec was rejected while parsing; the text names the field
    /// (`pruner.median: unknown field ...`).
    #[error("{0}")]
    Pruner(String),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ReplayError {
    ReplayError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// One recorded learning curve: values by step (`None` = a reported NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub steps: Vec<i64>,
    pub values: Vec<Option<f64>>,
}

/// What to replay.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayInput {
    pub study: String,
    pub direction: Direction,
    pub pruner: PrunerSpec,
    pub trials: Vec<Curve>,
}

/// The outcome of one trial.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialOutcome {
    pub number: u64,
    pub state: TrialState,
    pub pruned_at_step: Option<i64>,
    pub value: Option<f64>,
    pub steps_run: u64,
    /// The deciding pruner's message when pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Best {
    pub number: u64,
    pub value: f64,
}

/// Replay result, serialized as `lopper replay`'s JSON output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutput {
    pub study: String,
    pub direction: Direction,
    pub pruner: PrunerSpec,
    pub trials: Vec<TrialOutcome>,
    pub best: Option<Best>,
    pub steps_run: u64,
    pub steps_saved: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruner_state: Option<PrunerState>,
}

impl ReplayInput {
    /// Parses JSON (text starting with `{`) or YAML straight into the typed input: the
    /// curves stream into their vectors, with no intermediate value tree (building one
    /// cost several times the replay itself on large inputs). Errors name the place, e.g.
    /// `trials[2].values[5]`; malformed JSON or YAML names the line and column.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let first = FirstError::default();
        if text.trim_start().starts_with('{') {
            let mut de = serde_json::Deserializer::from_str(text);
            let parsed = InputSeed(&first)
                .deserialize(&mut de)
                .and_then(|input| de.end().map(|()| input));
            parsed.map_err(|e| {
                first.take().unwrap_or_else(|| {
                    invalid(
                        format!("line {} column {}", e.line(), e.column()),
                        format!("invalid JSON: {e}"),
                    )
                })
            })
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            InputSeed(&first).deserialize(de).map_err(|e| {
                first.take().unwrap_or_else(|| {
                    let at = e
                        .location()
                        .map(|l| format!("line {} column {}", l.line(), l.column()))
                        .unwrap_or_else(|| "(document)".into());
                    invalid(at, format!("invalid YAML: {e}"))
                })
            })
        }
    }

    /// Parses a JSON value (as from JSON or YAML), with the errors [`ReplayInput::parse`] gives.
    pub fn from_value(v: &Value) -> Result<Self, ReplayError> {
        let first = FirstError::default();
        InputSeed(&first).deserialize(v).map_err(|e| {
            first
                .take()
                .unwrap_or_else(|| invalid("(root)", e.to_string()))
        })
    }
}

/// Deserializes from any format; an error's text is [`ReplayError`]'s, naming the place.
impl<'de> Deserialize<'de> for ReplayInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        InputSeed(&FirstError::default()).deserialize(deserializer)
    }
}

// ---------------------------------------------------------------- streaming parser
//
// One seed per place of the input (root, trials, curve, values, steps); a seed knows its
// place, so an error names it without building path strings for the places that parse.
// The other leaves (study, direction, the small pruner spec) are read as a
// `serde_json::Value`, values and steps as a [`Leaf`]: the checks and their messages
// ("got \"x\"", "got [1]") stay exactly those of a value tree.

/// The first error met. Serde errors carry only text, so a seed leaves its structured
/// error here and aborts the parse with a copy; the caller returns this one.
#[derive(Default)]
struct FirstError(Cell<Option<ReplayError>>);

impl FirstError {
    fn fail<E: de::Error>(&self, err: ReplayError) -> E {
        let e = E::custom(&err);
        self.0.set(Some(err));
        e
    }

    fn take(&self) -> Option<ReplayError> {
        self.0.take()
    }
}

/// A place that must hold a map or a list; any other kind of value there fails with
/// [`Compound::wrong_kind`] (via [`Shape`], which dispatches on what the input holds).
trait Compound<'de>: Sized {
    type Out;
    fn first(&self) -> &FirstError;
    fn wrong_kind(&self) -> ReplayError;
    fn map<A: MapAccess<'de>>(self, _map: A) -> Result<Self::Out, A::Error> {
        Err(self.fail())
    }
    fn seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Self::Out, A::Error> {
        Err(self.fail())
    }
    fn null<E: de::Error>(self) -> Result<Self::Out, E> {
        Err(self.fail())
    }
    fn fail<E: de::Error>(&self) -> E {
        self.first().fail(self.wrong_kind())
    }
}

struct Shape<C>(C);

impl<'de, C: Compound<'de>> Visitor<'de> for Shape<C> {
    type Value = C::Out;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // Only for kinds of value JSON lacks (a tagged YAML value), as a value tree said.
        f.write_str("any valid JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<C::Out, A::Error> {
        self.0.map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<C::Out, A::Error> {
        self.0.seq(seq)
    }
    fn visit_unit<E: de::Error>(self) -> Result<C::Out, E> {
        self.0.null()
    }
    fn visit_none<E: de::Error>(self) -> Result<C::Out, E> {
        self.0.null()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<C::Out, E> {
        Err(self.0.fail())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<C::Out, E> {
        Err(self.0.fail())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<C::Out, E> {
        Err(self.0.fail())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<C::Out, E> {
        Err(self.0.fail())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<C::Out, E> {
        Err(self.0.fail())
    }
}

/// Deserializes a compound place.
fn compound<'de, C: Compound<'de>, D: Deserializer<'de>>(c: C, d: D) -> Result<C::Out, D::Error> {
    d.deserialize_any(Shape(c))
}

/// A map key: one of the place's field names, or an unknown key (kept for the error).
enum Key {
    Known(&'static str),
    Unknown(String),
}

struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
        Ok(match self.0.iter().find(|&&name| name == k) {
            Some(name) => Key::Known(name),
            None => Key::Unknown(k.to_owned()),
        })
    }
}

/// The root: `{study, direction, pruner, trials}`.
struct InputSeed<'a>(&'a FirstError);

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = ReplayInput;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ReplayInput, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for InputSeed<'_> {
    type Out = ReplayInput;
    fn first(&self) -> &FirstError {
        self.0
    }
    fn wrong_kind(&self) -> ReplayError {
        invalid("(root)", "must be an object with `pruner` and `trials`")
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReplayInput, A::Error> {
        let first = self.0;
        let (mut study, mut direction, mut pruner, mut trials) = (None, None, None, None);
        // A repeated key overrides the earlier one, as in a value tree.
        while let Some(key) =
            map.next_key_seed(KeySeed(&["study", "direction", "pruner", "trials"]))?
        {
            match key {
                Key::Known("study") => {
                    study = Some(match map.next_value::<Value>()? {
                        Value::Null => None,
                        Value::String(s) => Some(s),
                        other => {
                            let msg = format!("must be a string, got {other}");
                            return Err(first.fail(invalid("study", msg)));
                        }
                    })
                }
                Key::Known("direction") => {
                    direction = Some(match map.next_value::<Value>()? {
                        Value::Null => Direction::Minimize,
                        Value::String(s) if s == "minimize" => Direction::Minimize,
                        Value::String(s) if s == "maximize" => Direction::Maximize,
                        other => {
                            let msg = format!("must be \"minimize\" or \"maximize\", got {other}");
                            return Err(first.fail(invalid("direction", msg)));
                        }
                    })
                }
                Key::Known("pruner") => {
                    // Through the spec's own Deserialize, from a value: its error text
                    // (naming `pruner.<key>.<field>`) then carries no line and column.
                    let v = map.next_value::<Value>()?;
                    let spec = PrunerSpec::deserialize(&v)
                        .map_err(|e| first.fail(ReplayError::Pruner(e.to_string())))?;
                    pruner = Some(spec);
                }
                Key::Known("trials") => trials = Some(map.next_value_seed(TrialsSeed(first))?),
                Key::Known(other) => unreachable!("not a root field: {other}"),
                Key::Unknown(k) => {
                    let msg = "unknown field, expected one of study, direction, pruner, trials";
                    return Err(first.fail(invalid(k, msg)));
                }
            }
        }
        let Some(pruner) = pruner else {
            return Err(first.fail(invalid("pruner", "missing required field")));
        };
        let Some(trials) = trials else {
            return Err(first.fail(invalid("trials", "missing required field")));
        };
        Ok(ReplayInput {
            study: study.flatten().unwrap_or_else(|| "replay".to_string()),
            direction: direction.unwrap_or(Direction::Minimize),
            pruner,
            trials,
        })
    }
}

/// `trials`: a list of curves.
struct TrialsSeed<'a>(&'a FirstError);

impl<'de> DeserializeSeed<'de> for TrialsSeed<'_> {
    type Value = Vec<Curve>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Curve>, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for TrialsSeed<'_> {
    type Out = Vec<Curve>;
    fn first(&self) -> &FirstError {
        self.0
    }
    fn wrong_kind(&self) -> ReplayError {
        invalid("trials", "must be an array of curves")
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Curve>, A::Error> {
        let mut trials = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        // Curves are usually alike in length: size each one like the one before.
        let mut len_hint = 0;
        while let Some(curve) = seq.next_element_seed(CurveSeed {
            first: self.0,
            trial: trials.len(),
            len_hint,
        })? {
            len_hint = curve.values.len();
            trials.push(curve);
        }
        Ok(trials)
    }
}

/// `trials[i]`: `{values, steps?}`.
#[derive(Clone, Copy)]
struct CurveSeed<'a> {
    first: &'a FirstError,
    trial: usize,
    len_hint: usize,
}

impl<'de> DeserializeSeed<'de> for CurveSeed<'_> {
    type Value = Curve;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Curve, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for CurveSeed<'_> {
    type Out = Curve;
    fn first(&self) -> &FirstError {
        self.first
    }
    fn wrong_kind(&self) -> ReplayError {
        invalid(
            format!("trials[{}]", self.trial),
            "must be an object with `values` (and optional `steps`)",
        )
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Curve, A::Error> {
        let (first, i) = (self.first, self.trial);
        let (mut values, mut steps) = (None, None);
        while let Some(key) = map.next_key_seed(KeySeed(&["steps", "values"]))? {
            match key {
                Key::Known("values") => values = Some(map.next_value_seed(ValuesSeed(self))?),
                Key::Known("steps") => steps = Some(map.next_value_seed(StepsSeed(self))?),
                Key::Known(other) => unreachable!("not a curve field: {other}"),
                Key::Unknown(k) => {
                    let msg = "unknown field, expected steps or values";
                    return Err(first.fail(invalid(format!("trials[{i}].{k}"), msg)));
                }
            }
        }
        let Some(values) = values else {
            let path = format!("trials[{i}].values");
            return Err(first.fail(invalid(path, "missing required field")));
        };
        let steps = match steps.flatten() {
            None => (0..values.len() as i64).collect(),
            Some(steps) if steps.len() != values.len() => {
                let msg = format!(
                    "has {} entries but values has {}",
                    steps.len(),
                    values.len()
                );
                return Err(first.fail(invalid(format!("trials[{i}].steps"), msg)));
            }
            Some(steps) => steps,
        };
        Ok(Curve { steps, values })
    }
}

/// `trials[i].values`: numbers, `null` (NaN) or the strings `nan`, `inf`, `-inf`, ...
struct ValuesSeed<'a>(CurveSeed<'a>);

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = Vec<Option<f64>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for ValuesSeed<'_> {
    type Out = Vec<Option<f64>>;
    fn first(&self) -> &FirstError {
        self.0.first
    }
    fn wrong_kind(&self) -> ReplayError {
        let path = format!("trials[{}].values", self.0.trial);
        invalid(path, "must be an array of numbers or null")
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(self.0.len_hint));
        while let Some(x) = seq.next_element::<Leaf>()? {
            values.push(match x {
                Leaf::U64(n) => Some(n as f64),
                Leaf::I64(n) => Some(n as f64),
                // Non-finite only from YAML (`.inf`, `.nan`): NaN, as a value tree made it.
                Leaf::F64(x) => Some(x).filter(|x| x.is_finite()),
                Leaf::Other(Value::Null) => None,
                Leaf::Other(Value::String(s)) if s.eq_ignore_ascii_case("nan") => None,
                Leaf::Other(Value::String(s))
                    if matches!(s.as_str(), "inf" | "Infinity" | "+inf") =>
                {
                    Some(f64::INFINITY)
                }
                Leaf::Other(Value::String(s)) if matches!(s.as_str(), "-inf" | "-Infinity") => {
                    Some(f64::NEG_INFINITY)
                }
                Leaf::Other(other) => {
                    let path = format!("trials[{}].values[{}]", self.0.trial, values.len());
                    let msg = format!("must be a number or null, got {other}");
                    return Err(self.0.first.fail(invalid(path, msg)));
                }
            });
        }
        Ok(values)
    }
}

/// `trials[i].steps`: non-negative integers, or `null` for 0, 1, 2, ...
struct StepsSeed<'a>(CurveSeed<'a>);

impl<'de> DeserializeSeed<'de> for StepsSeed<'_> {
    type Value = Option<Vec<i64>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for StepsSeed<'_> {
    type Out = Option<Vec<i64>>;
    fn first(&self) -> &FirstError {
        self.0.first
    }
    fn wrong_kind(&self) -> ReplayError {
        let path = format!("trials[{}].steps", self.0.trial);
        invalid(path, "must be an array of non-negative integers")
    }
    fn null<E: de::Error>(self) -> Result<Self::Out, E> {
        Ok(None)
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut steps = Vec::with_capacity(seq.size_hint().unwrap_or(self.0.len_hint));
        while let Some(x) = seq.next_element::<Leaf>()? {
            match x {
                Leaf::U64(n) if n <= i64::MAX as u64 => steps.push(n as i64),
                Leaf::I64(n) if n >= 0 => steps.push(n),
                other => {
                    let path = format!("trials[{}].steps[{}]", self.0.trial, steps.len());
                    let msg = format!("must be a non-negative integer, got {}", other.value());
                    return Err(self.0.first.fail(invalid(path, msg)));
                }
            }
        }
        Ok(Some(steps))
    }
}

/// Replays `input` (with the incremental study index).
pub fn replay(input: &ReplayInput) -> Result<ReplayOutput, ReplayError> {
    replay_with(input, true)
}

/// Replays `input`; `indexed = false` makes every pruner rescan the study (the path the
/// controller takes), which must decide identically.
pub fn replay_with(input: &ReplayInput, indexed: bool) -> Result<ReplayOutput, ReplayError> {
    let pruner = build(&input.pruner)?;
    let mut state = PrunerState::default();
    let mut index = StudyIndex::new();
    let mut trials: Vec<TrialRecord> = Vec::with_capacity(input.trials.len());
    let mut outcomes = Vec::with_capacity(input.trials.len());
    let (mut total_run, mut total_saved) = (0u64, 0u64);
    for (i, curve) in input.trials.iter().enumerate() {
        trials.push(TrialRecord::new(i as u64));
        let mut pruned: Option<(i64, String)> = None;
        let mut run = 0u64;
        for (&step, v) in curve.steps.iter().zip(&curve.values) {
            trials[i].report(step, v.unwrap_or(f64::NAN));
            run += 1;
            let view = StudyView {
                name: &input.study,
                direction: input.direction,
                trials: &trials,
            };
            let d = pruner.prune_indexed(
                &view,
                &trials[i],
                &mut state,
                if indexed { Some(&index) } else { None },
            );
            if !d.record_rungs.is_empty() {
                index.on_rungs(&d.record_rungs);
                trials[i].rungs.extend(d.record_rungs);
            }
            if d.prune {
                pruned = Some((step, format!("{}: {}", d.reason, d.message)));
                break;
            }
        }
        let t = &mut trials[i];
        let (pruned_at_step, reason) = match pruned {
            Some((step, msg)) => {
                t.state = TrialState::Pruned;
                t.value = t.last_value().filter(|v| !v.is_nan());
                (Some(step), Some(msg))
            }
            None => {
                let last = curve.values.last().map(|v| v.unwrap_or(f64::NAN));
                match last {
                    Some(v) if !v.is_nan() => {
                        t.state = TrialState::Complete;
                        t.value = Some(v);
                    }
                    _ => {
                        t.state = TrialState::Failed;
                        t.value = None;
                    }
                }
                (None, None)
            }
        };
        if indexed {
            index.on_finished(t);
        }
        let saved = curve.values.len() as u64 - run;
        total_run += run;
        total_saved += saved;
        outcomes.push(TrialOutcome {
            number: i as u64,
            state: t.state,
            pruned_at_step,
            value: t.value,
            steps_run: run,
            reason,
        });
    }
    let view = StudyView {
        name: &input.study,
        direction: input.direction,
        trials: &trials,
    };
    let best = best_trial(&view).and_then(|t| {
        t.value.map(|value| Best {
            number: t.number,
            value,
        })
    });
    Ok(ReplayOutput {
        study: input.study.clone(),
        direction: input.direction,
        pruner: input.pruner.clone(),
        trials: outcomes,
        best,
        steps_run: total_run,
        steps_saved: total_saved,
        pruner_state: if state == PrunerState::default() {
            None
        } else {
            Some(state)
        },
    })
}

/// One element of `values` or `steps`: a number as the parser read it (no allocation, no
/// tree), or anything else as the value tree it was (rare: nulls, strings, mistakes), so
/// that checks and messages are those of a value tree.
enum Leaf {
    U64(u64),
    I64(i64),
    F64(f64),
    Other(Value),
}

impl Leaf {
    fn value(self) -> Value {
        match self {
            Leaf::U64(n) => n.into(),
            Leaf::I64(n) => n.into(),
            Leaf::F64(x) => x.into(),
            Leaf::Other(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for Leaf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Leaf, D::Error> {
        d.deserialize_any(LeafVisitor)
    }
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_u64<E>(self, n: u64) -> Result<Leaf, E> {
        Ok(Leaf::U64(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Leaf, E> {
        Ok(Leaf::I64(n))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Leaf, E> {
        Ok(Leaf::F64(x))
    }
    fn visit_unit<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other(Value::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Leaf, E> {
        Ok(Leaf::Other(Value::Bool(b)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Leaf, E> {
        Ok(Leaf::Other(Value::String(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Leaf, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Leaf::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Leaf, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Leaf::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIAN: &str = r#""pruner": {"median": {}}"#;

    fn err(text: &str) -> String {
        ReplayInput::parse(text).unwrap_err().to_string()
    }

    /// JSON with `n` good trials before `bad` (a curve's JSON).
    fn with_trial(n: usize, bad: &str) -> String {
        let good = vec![r#"{"values": [1, 2, 3, 4, 5, 6, 7, 8]}"#; n].join(", ");
        format!(r#"{{{MEDIAN}, "trials": [{good}, {bad}]}}"#)
    }

    #[test]
    fn json_and_yaml_parse_alike() {
        let json = r#"{"study": "s", "direction": "maximize",
            "pruner": {"median": {"startupTrials": 2}},
            "trials": [
                {"values": [1, 0.5, null, "nan", "NaN", "inf", "Infinity", "+inf", "-inf",
                            "-Infinity"]},
                {"steps": [0, 3, 7], "values": [3, 2.5, -1]},
                {"steps": null, "values": []}]}"#;
        let yaml = r#"
study: s
direction: maximize
pruner: {median: {startupTrials: 2}}
trials:
  - values: [1, 0.5, null, nan, NaN, inf, Infinity, +inf, -inf, -Infinity]
  - {steps: [0, 3, 7], values: [3, 2.5, -1]}
  - steps:
    values: []
"#;
        let a = ReplayInput::parse(json).unwrap();
        assert_eq!(a, ReplayInput::parse(yaml).unwrap());
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(a, ReplayInput::from_value(&v).unwrap());
        assert_eq!(a, serde_json::from_str::<ReplayInput>(json).unwrap());
        assert_eq!(a.study, "s");
        assert_eq!(a.direction, Direction::Maximize);
        let inf = f64::INFINITY;
        assert_eq!(
            a.trials[0].values,
            [
                Some(1.0),
                Some(0.5),
                None,
                None,
                None,
                Some(inf),
                Some(inf),
                Some(inf),
                Some(-inf),
                Some(-inf)
            ]
        );
        assert_eq!(a.trials[0].steps, (0..10).collect::<Vec<_>>());
        assert_eq!(a.trials[1].steps, [0, 3, 7]);
        assert_eq!(
            a.trials[2],
            Curve {
                steps: vec![],
                values: vec![]
            }
        );
    }

    #[test]
    fn defaults() {
        let a = ReplayInput::parse(&format!(r#"{{{MEDIAN}, "trials": []}}"#)).unwrap();
        assert_eq!(
            (a.study.as_str(), a.direction),
            ("replay", Direction::Minimize)
        );
        let b = ReplayInput::parse("study: null\ndirection: null\npruner: {none: {}}\ntrials: []")
            .unwrap();
        assert_eq!(
            (b.study.as_str(), b.direction),
            ("replay", Direction::Minimize)
        );
    }

    #[test]
    fn a_bad_value_deep_in_the_trials_is_named() {
        assert_eq!(
            err(&with_trial(
                3,
                r#"{"values": [1, 2, 3, 4, 5, 6, 7, "x", 9]}"#
            )),
            r#"trials[3].values[7]: must be a number or null, got "x""#
        );
        assert_eq!(
            err(&with_trial(1, r#"{"values": [true]}"#)),
            "trials[1].values[0]: must be a number or null, got true"
        );
        assert_eq!(
            err(&with_trial(1, r#"{"values": [0, [1, 2]]}"#)),
            "trials[1].values[1]: must be a number or null, got [1,2]"
        );
        assert_eq!(
            err("pruner: {none: {}}\ntrials:\n  - values: [1]\n  - values: [1, {a: 1}]\n"),
            r#"trials[1].values[1]: must be a number or null, got {"a":1}"#
        );
    }

    #[test]
    fn steps_are_checked() {
        let cases = [
            (
                r#"{"steps": [0, 1], "values": [1]}"#,
                "trials[2].steps: has 2 entries but values has 1",
            ),
            (
                r#"{"steps": [0, -1], "values": [1, 2]}"#,
                "trials[2].steps[1]: must be a non-negative integer, got -1",
            ),
            (
                r#"{"steps": [0, 1.5], "values": [1, 2]}"#,
                "trials[2].steps[1]: must be a non-negative integer, got 1.5",
            ),
            (
                r#"{"values": [1, 2], "steps": ["0"]}"#,
                r#"trials[2].steps[0]: must be a non-negative integer, got "0""#,
            ),
            (
                r#"{"steps": 3, "values": [1]}"#,
                "trials[2].steps: must be an array of non-negative integers",
            ),
        ];
        for (bad, want) in cases {
            assert_eq!(err(&with_trial(2, bad)), want);
        }
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let cases = [
            (
                format!(r#"{{{MEDIAN}, "trials": [], "trails": []}}"#),
                "trails: unknown field, expected one of study, direction, pruner, trials",
            ),
            (
                with_trial(2, r#"{"values": [1], "step": [0]}"#),
                "trials[2].step: unknown field, expected steps or values",
            ),
            (
                r#"{"trials": []}"#.to_string(),
                "pruner: missing required field",
            ),
            (format!("{{{MEDIAN}}}"), "trials: missing required field"),
            (
                with_trial(4, r#"{"steps": [0]}"#),
                "trials[4].values: missing required field",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(&text), want);
        }
        assert_eq!(
            err("pruner: {none: {}}\ntrials: []\nextra: 1\n"),
            "extra: unknown field, expected one of study, direction, pruner, trials"
        );
        assert_eq!(
            err("pruner: {none: {}}\ntrials:\n  - {values: [1]}\n  - {valus: [1]}\n"),
            "trials[1].valus: unknown field, expected steps or values"
        );
    }

    #[test]
    fn wrong_kinds_are_named() {
        let cases = [
            (
                "[1, 2]".to_string(),
                "(root): must be an object with `pruner` and `trials`",
            ),
            (
                format!(r#"{{{MEDIAN}, "trials": {{}}}}"#),
                "trials: must be an array of curves",
            ),
            (
                format!(r#"{{{MEDIAN}, "trials": null}}"#),
                "trials: must be an array of curves",
            ),
            (
                with_trial(1, "[1, 2]"),
                "trials[1]: must be an object with `values` (and optional `steps`)",
            ),
            (
                with_trial(1, r#"{"values": null}"#),
                "trials[1].values: must be an array of numbers or null",
            ),
            (
                with_trial(1, r#"{"values": "1"}"#),
                "trials[1].values: must be an array of numbers or null",
            ),
            (
                format!(r#"{{"study": 3, {MEDIAN}, "trials": []}}"#),
                "study: must be a string, got 3",
            ),
            (
                format!(r#"{{"direction": "up", {MEDIAN}, "trials": []}}"#),
                r#"direction: must be "minimize" or "maximize", got "up""#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(&text), want);
        }
    }

    #[test]
    fn pruner_errors_are_the_specs() {
        let cases = [
            (
                r#"{"median": {"warmup": 1}}"#,
                "pruner.median: unknown field `warmup`, expected one of startupTrials, \
                 warmupSteps, intervalSteps, minTrials",
            ),
            (
                r#"{"median": {"warmupSteps": "a"}}"#,
                r#"pruner.median.warmupSteps: must be an integer, got "a""#,
            ),
            (
                r#"{"median": {}, "none": {}}"#,
                "pruner: must have exactly one key (one of median, percentile, \
                 successiveHalving, hyperband, threshold, patient, wilcoxon, none), got 2",
            ),
            (
                r#"{"patient": {"wrapped": {"median": {}}}}"#,
                "pruner.patient: missing required field `patience`",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(err(&format!(r#"{{"pruner": {spec}, "trials": []}}"#)), want);
        }
        // A valid spec breaking one of Optuna's rules is refused when replayed.
        let input =
            ReplayInput::parse(r#"{"pruner": {"median": {"intervalSteps": 0}}, "trials": []}"#)
                .unwrap();
        assert_eq!(
            replay(&input).unwrap_err().to_string(),
            "pruner.median.intervalSteps: must be at least 1, got 0"
        );
    }

    #[test]
    fn malformed_text_names_line_and_column() {
        let e = err("{\"pruner\": {\"none\": {}},\n \"trials\": [}");
        assert!(e.starts_with("line 2 column 13: invalid JSON: "), "{e}");
        let e = err(&format!(r#"{{{MEDIAN}, "trials": []}} x"#));
        assert!(e.contains("invalid JSON: trailing characters"), "{e}");
        let e = err("pruner: {none: {}}\ntrials: [\n");
        assert!(
            e.starts_with("line ") && e.contains("invalid YAML: "),
            "{e}"
        );
    }
}
