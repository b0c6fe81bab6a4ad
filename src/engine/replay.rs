//! Replay of recorded learning curves through a pruner: a pure function from a
//! [`ReplayInput`] to a [`ReplayOutput`], used by `lopper replay` and by tests.
//!
//! Semantics (as a sequential Optuna ask/report/should_prune/tell loop): trials run one
//! after another, trial i has number i, reports its values step by step and asks the
//! pruner after every report; a pruned trial stops there (its value becomes its last
//! intermediate value), a trial never pruned completes with its last value (a NaN or
//! missing last value makes it FAILED, as Optuna's `tell` does).

mod fast_json;

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

/// One recorded learning curve: the values reported, in order (NaN, `null` in the input,
/// is a reported NaN), and their steps. Kept compact: a replay holds thousands of curves
/// and reads few of their values.
#[derive(Clone, Debug)]
pub struct Curve {
    /// The step of each value; `None`: 0, 1, 2, ... (the input gave none).
    pub steps: Option<Vec<i64>>,
    pub values: Vec<f64>,
}

impl Curve {
    /// `(step, value)` in report order.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        let step = |i: usize| self.steps.as_ref().map_or(i as i64, |s| s[i]);
        self.values
            .iter()
            .enumerate()
            .map(move |(i, &v)| (step(i), v))
    }
}

/// Curves are equal when they report the same values (NaN as NaN) at the same steps,
/// whether or not the steps were given.
impl PartialEq for Curve {
    fn eq(&self, other: &Self) -> bool {
        self.values.len() == other.values.len()
            && self
                .points()
                .zip(other.points())
                .all(|((s, a), (t, b))| s == t && (a == b || (a.is_nan() && b.is_nan())))
    }
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
        if text.trim_start().starts_with('{') {
            // The usual input (JSON of plain numbers) in one tight pass; anything else, and
            // every error, through the general parser.
            fast_json::parse(text).map_or_else(|| Self::parse_json(text), Ok)
        } else {
            Self::parse_yaml(text)
        }
    }

    fn parse_json(text: &str) -> Result<Self, ReplayError> {
        let first = FirstError::default();
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
    }

    fn parse_yaml(text: &str) -> Result<Self, ReplayError> {
        let first = FirstError::default();
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
            None => None,
            Some(steps) if steps.len() != values.len() => {
                let msg = format!(
                    "has {} entries but values has {}",
                    steps.len(),
                    values.len()
                );
                return Err(first.fail(invalid(format!("trials[{i}].steps"), msg)));
            }
            Some(steps) => Some(steps),
        };
        Ok(Curve { steps, values })
    }
}

/// `trials[i].values`: numbers, `null` (NaN) or the strings `nan`, `inf`, `-inf`, ...
struct ValuesSeed<'a>(CurveSeed<'a>);

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = Vec<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        compound(self, d)
    }
}

impl<'de> Compound<'de> for ValuesSeed<'_> {
    type Out = Vec<f64>;
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
                Leaf::U64(n) => n as f64,
                Leaf::I64(n) => n as f64,
                // Non-finite only from YAML (`.inf`, `.nan`): NaN, as a value tree made it.
                Leaf::F64(x) if x.is_finite() => x,
                Leaf::F64(_) => f64::NAN,
                Leaf::Other(Value::Null) => f64::NAN,
                Leaf::Other(Value::String(s)) if s.eq_ignore_ascii_case("nan") => f64::NAN,
                Leaf::Other(Value::String(s))
                    if matches!(s.as_str(), "inf" | "Infinity" | "+inf") =>
                {
                    f64::INFINITY
                }
                Leaf::Other(Value::String(s)) if matches!(s.as_str(), "-inf" | "-Infinity") => {
                    f64::NEG_INFINITY
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
    // An index the pruner does not read would only cost a sorted insert per value.
    let indexed = indexed && pruner.uses_index();
    let mut state = PrunerState::default();
    let mut index = StudyIndex::new();
    let mut trials: Vec<TrialRecord> = Vec::with_capacity(input.trials.len());
    let mut outcomes = Vec::with_capacity(input.trials.len());
    let (mut total_run, mut total_saved) = (0u64, 0u64);
    for (i, curve) in input.trials.iter().enumerate() {
        trials.push(TrialRecord::new(i as u64));
        let mut pruned: Option<(i64, String)> = None;
        let mut run = 0u64;
        for (step, v) in curve.points() {
            trials[i].report(step, v);
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
                match curve.values.last().copied() {
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
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        assert_eq!(
            a.trials[0],
            Curve {
                steps: Some((0..10).collect()),
                values: vec![1.0, 0.5, nan, nan, nan, inf, inf, inf, -inf, -inf],
            }
        );
        assert_eq!(a.trials[0].steps, None);
        assert_eq!(a.trials[1].steps, Some(vec![0, 3, 7]));
        assert_eq!(
            a.trials[2],
            Curve {
                steps: None,
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
                 successiveHalving, hyperband, threshold, patient, wilcoxon, asha, none), got 2",
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

    /// Whether two inputs are the same, values bit for bit (`-0.0` is not `0.0`).
    fn identical(a: &ReplayInput, b: &ReplayInput) -> bool {
        let bits = |c: &Curve| c.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (&a.study, a.direction, &a.pruner) == (&b.study, b.direction, &b.pruner)
            && a.trials.len() == b.trials.len()
            && a.trials
                .iter()
                .zip(&b.trials)
                .all(|(x, y)| x.steps == y.steps && bits(x) == bits(y))
    }

    /// `fast_json::parse(text)`, checked against the general parser: where the fast path
    /// reads the text, the general parser reads the same input from it.
    fn fast(text: &str) -> Option<ReplayInput> {
        let fast = fast_json::parse(text)?;
        match ReplayInput::parse_json(text) {
            Ok(general) => assert!(identical(&fast, &general), "{text}"),
            Err(e) => panic!("fast path read what the general parser refuses ({e}): {text}"),
        }
        Some(fast)
    }

    /// A deterministic pseudo-random sequence (xorshift64).
    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn fast_json_reads_the_usual_shape() {
        let texts = [
            r#"{"pruner": {"median": {}}, "trials": []}"#,
            r#" {"study": "s", "direction": "maximize", "pruner": {"median": {"startupTrials": 2}},
                "trials": [{"values": [1, 0.5, null, -2, -0, 0.0, -0.0, 1e3, 1E-3, 2.5e+2]},
                           {"steps": [0, 3, 7], "values": [3, 2.5, -1]},
                           {"steps": null, "values": []}, {"values": [], "steps": []}]}
            "#,
            "{\"study\":null,\"direction\":null,\"pruner\":{\"none\":{}},\"trials\":[{\"values\":[1]}]}",
            "{\r\n\t\"trials\" : [ { \"values\" : [ 1 , null ] } ] , \"pruner\" : {\"none\": {}} }",
            r#"{"study": "\u00e9t\"ude", "pruner": {"patient": {"patience": 2, "wrapped": {"median": {}}}},
                "trials": [{"values": [123456789012345678, 0.1234567890123456789, 5e-324, 1e308,
                                       1.7976931348623157e308, 2.2250738585072014e-308, 9007199254740993,
                                       46.220536041544236, 4.1882723842698686e-07, 1e-400, -1e-400]}]}"#,
        ];
        for text in texts {
            assert!(fast(text).is_some(), "not read by the fast path: {text}");
        }
    }

    #[test]
    fn fast_json_leaves_the_rest_to_the_general_parser() {
        let texts = [
            // Errors the general parser names.
            r#"{"pruner": {"median": {}}}"#,
            r#"{"trials": []}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"steps": [0]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "steps": [0, 1]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [01]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1.]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [.5]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1e]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [+1]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1e400]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1,]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1]},]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1] "steps": null}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1]}], }"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1]}]} x"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [nul]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [nullx]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "steps": [-1]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "steps": [1.0]}]}"#,
            r#"{"pruner": {"median": {"warmup": 1}}, "trials": []}"#,
            r#"{"pruner": {"median": {}}, "trials": [], "extra": 1}"#,
            r#"{"study": 3, "pruner": {"median": {}}, "trials": []}"#,
            r#"{"direction": "up", "pruner": {"median": {}}, "trials": []}"#,
            r#"{"pruner": {"median": {}}, "trials": {}}"#,
            r#"{"pruner": {"median": {}}, "trials": [[1]]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": "1"}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [true]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "valus": []}]}"#,
            "{\"pruner\": {\"median\": {}}, \"trials\": [",
            "{\"pruner\": {\"median\": {}}, \"tri\x01als\": []}",
            // Valid, but for the general parser: strings, escaped or repeated keys, long numbers.
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1, "nan", "-inf"]}]}"#,
            r#"{"pruner": {"median": {}}, "tri\u0061ls": [{"values": [1]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [], "trials": [{"values": [1]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "values": [2]}]}"#,
            r#"{"pruner": {"median": {}}, "trials": [{"values": [1], "steps": [0000000000000000001]}]}"#,
        ];
        for text in texts {
            assert!(fast(text).is_none(), "read by the fast path: {text}");
        }
        // Long numbers are read through serde_json itself.
        let long = r#"{"pruner": {"none": {}}, "trials": [{"values": [
            123456789012345678901234567890, 0.12345678901234567890123, 1.5e00001, -12345678901234567890.5e-3]}]}"#;
        assert!(fast(long).is_some());
    }

    /// Numbers of every shape read bit for bit as serde_json reads them.
    #[test]
    fn fast_json_numbers_are_serde_jsons() {
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        let mut numbers = Vec::new();
        for _ in 0..20_000 {
            let r = next();
            let x = f64::from_bits(next());
            if !x.is_finite() {
                continue;
            }
            numbers.push(match r % 4 {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                2 => format!("{x:.*e}", (r >> 8) as usize % 20),
                _ => {
                    let digits = (r >> 8) % 10u64.pow(((r >> 40) % 20) as u32);
                    let point = (r >> 24) as usize % 5;
                    let mut s = digits.to_string();
                    if point > 0 && point < s.len() {
                        s.insert(point, '.');
                    }
                    match (r >> 32) % 3 {
                        0 => s,
                        1 => format!("{s}e{}", (r >> 48) as i64 % 330),
                        _ => format!("-{s}E+{}", (r >> 48) % 25),
                    }
                }
            });
        }
        let doc = |values: &str| {
            format!(r#"{{"pruner": {{"none": {{}}}}, "trials": [{{"values": [{values}]}}]}}"#)
        };
        for n in &numbers {
            // Out of range for serde_json (`1e400`): an error the general parser names.
            let text = doc(n);
            if fast(&text).is_none() {
                assert!(ReplayInput::parse_json(&text).is_err(), "not read: {n}");
            }
        }
        let in_range: Vec<&str> = numbers
            .iter()
            .map(String::as_str)
            .filter(|n| ReplayInput::parse_json(&doc(n)).is_ok())
            .collect();
        assert!(in_range.len() > 19_000, "{}", in_range.len());
        let input = fast(&doc(&in_range.join(", "))).expect("read by the fast path");
        assert_eq!(input.trials[0].values.len(), in_range.len());
    }

    /// Damaged texts are either left to the general parser or read exactly as it reads them.
    #[test]
    fn fast_json_never_reads_differently() {
        let base = r#"{"study": "s", "direction": "minimize", "pruner": {"median": {"startupTrials": 1}},
            "trials": [{"values": [0.5, 1, null, -2.5e-3]}, {"steps": [0, 2], "values": [1, 0]}]}"#;
        let alphabet = b"{}[],:\" \n0123456789.-+eEnul\\x";
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let mut read = 0;
        for _ in 0..20_000 {
            let mut b = base.as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % b.len() as u64) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => b[at] = c,
                    1 => b.insert(at, c),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            if let Ok(text) = std::str::from_utf8(&b) {
                read += usize::from(fast(text).is_some());
            }
        }
        assert!(read > 500, "only {read} damaged texts were read");
    }
}
