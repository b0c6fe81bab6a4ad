//! Pruners: one file per pruner behind the tiny [`Pruner`] trait, Optuna 5.0 semantics.
//! Each file holds the pruner and its spec (parameters, defaults, checks); [`spec`] is the
//! tagged enum `spec.pruner` parses into. The controller, the local runner and replay
//! decide through these names alike.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use super::{PrunerState, StudyView, TrialRecord};

/// A [`Message`] written from a format string and named values only when it is read:
/// `message!("step {step} is within warm-up", step)` or `message!("... {n}", n = x + 1)`.
/// Each value is kept as an [`Arg`] and shown exactly as the value itself would be.
macro_rules! message {
    ($fmt:literal, $($name:ident $(= $value:expr)?),+ $(,)?) => {
        $crate::engine::pruners::Message::deferred(
            [$($crate::engine::pruners::Arg::from(message!(@value $name $(= $value)?))),+],
            |args, f| {
                let [$($name,)+ ..] = args;
                write!(f, $fmt)
            },
        )
    };
    (@value $name:ident = $value:expr) => { $value };
    (@value $name:ident) => { $name };
}

pub mod asha;
pub mod hyperband;
pub mod index;
pub mod median;
pub mod none;
pub mod patient;
pub mod percentile;
pub mod spec;
pub mod successive_halving;
pub mod threshold;
pub mod wilcoxon;

pub use index::StudyIndex;
pub use spec::{PrunerSpec, SpecError, build};

/// The outcome of asking a pruner about one trial after a report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub prune: bool,
    /// Optuna's class name of the deciding pruner, e.g. `MedianPruner` (a Condition reason).
    pub reason: &'static str,
    /// Human message naming the step, the value and the threshold.
    pub message: Message,
    /// Rung values to record on the trial (successive halving), to persist before acting.
    pub record_rungs: BTreeMap<u32, f64>,
}

impl Decision {
    pub(crate) fn keep(reason: &'static str, message: impl Into<Message>) -> Self {
        Decision {
            prune: false,
            reason,
            message: message.into(),
            record_rungs: BTreeMap::new(),
        }
    }

    pub(crate) fn prune(reason: &'static str, message: impl Into<Message>) -> Self {
        Decision {
            prune: true,
            reason,
            message: message.into(),
            record_rungs: BTreeMap::new(),
        }
    }
}

/// Most values a deferred message shows; see [`message!`].
const MAX_ARGS: usize = 5;

/// A decision's message. Most decisions keep the trial and nobody reads why (a replay of
/// thousands of trials makes hundreds of thousands of them), so a formatted message keeps
/// its values and is written out only when read: through `Display`, or as a `&str`
/// (`Deref`), rendered once and kept.
#[derive(Clone, Default)]
pub struct Message {
    parts: Parts,
    rendered: OnceLock<String>,
}

#[derive(Clone)]
enum Parts {
    Static(&'static str),
    Owned(String),
    Deferred {
        args: [Arg; MAX_ARGS],
        write: fn(&[Arg; MAX_ARGS], &mut fmt::Formatter<'_>) -> fmt::Result,
    },
    /// Two messages with a separator between them.
    Joined(Box<(Message, &'static str, Message)>),
}

impl Default for Parts {
    fn default() -> Self {
        Parts::Static("")
    }
}

impl Message {
    /// The message `write` writes from `args` (the first `N` of them), when read.
    pub(crate) fn deferred<const N: usize>(
        args: [Arg; N],
        write: fn(&[Arg; MAX_ARGS], &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> Self {
        const { assert!(N <= MAX_ARGS, "too many values for a deferred message") };
        let mut all = [Arg::Str(""); MAX_ARGS];
        all[..N].copy_from_slice(&args);
        Message {
            parts: Parts::Deferred { args: all, write },
            rendered: OnceLock::new(),
        }
    }
}

impl Message {
    /// `first`, `separator`, then `second` (a wrapping pruner's message around the
    /// wrapped one's), still written out only when read.
    pub(crate) fn joined(first: Message, separator: &'static str, second: Message) -> Self {
        Message {
            parts: Parts::Joined(Box::new((first, separator, second))),
            rendered: OnceLock::new(),
        }
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Self {
        Message {
            parts: Parts::Static(s),
            rendered: OnceLock::new(),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message {
            parts: Parts::Owned(s),
            rendered: OnceLock::new(),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.parts {
            Parts::Static(s) => f.write_str(s),
            Parts::Owned(s) => f.write_str(s),
            Parts::Deferred { args, write } => write(args, f),
            Parts::Joined(parts) => write!(f, "{}{}{}", parts.0, parts.1, parts.2),
        }
    }
}

impl Deref for Message {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.parts {
            Parts::Static(s) => s,
            Parts::Owned(s) => s,
            Parts::Deferred { .. } | Parts::Joined(_) => {
                self.rendered.get_or_init(|| self.to_string())
            }
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Messages are equal when their texts are.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// One value of a deferred [`Message`], displayed exactly as the value it was made from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'static str),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Int(v) => fmt::Display::fmt(v, f),
            Arg::Uint(v) => fmt::Display::fmt(v, f),
            Arg::Float(v) => fmt::Display::fmt(v, f),
            Arg::Str(v) => f.write_str(v),
        }
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::Uint(v)
    }
}

impl From<usize> for Arg {
    fn from(v: usize) -> Self {
        Arg::Uint(v as u64)
    }
}

impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Uint(v.into())
    }
}

impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Float(v)
    }
}

impl From<&'static str> for Arg {
    fn from(v: &'static str) -> Self {
        Arg::Str(v)
    }
}

/// Decides prune / keep for one trial given the study. `state` carries values resolved
/// once per study (persist it when it changes).
pub trait Pruner: Send + Sync {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision;

    /// As [`Pruner::prune`], with an optional incrementally maintained index of the
    /// study (completed values per step, recorded rung values) that lets a pruner skip
    /// rescanning every trial. The decision must equal `prune`'s; the default ignores it.
    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        let _ = index;
        self.prune(study, trial, state)
    }

    /// Whether [`Pruner::prune_indexed`] reads the index: a caller that keeps one only for
    /// this pruner can skip keeping it (keeping it costs a sorted insert per value).
    fn uses_index(&self) -> bool {
        false
    }
}

/// Optuna's `_is_first_in_interval_step`: whether a check is due at `step` (the trial's
/// last step), postponing a missed pruning point to the next report.
pub(crate) fn is_first_in_interval_step(
    step: i64,
    trial: &TrialRecord,
    warmup: i64,
    interval: i64,
) -> bool {
    let nearest = (step - warmup).div_euclid(interval) * interval + warmup;
    // max(-1, largest reported step other than `step`), as Optuna's reduce.
    let second_last = match trial.intermediate.keys().next_back() {
        Some(&k) if k != step => k,
        _ => trial
            .intermediate
            .range(..step)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(-1),
    }
    .max(-1);
    second_last < nearest
}

/// numpy's `nanmin` / `nanmax` over values: NaN when every value is NaN (or none).
pub(crate) fn nan_best(values: impl Iterator<Item = f64>, maximize: bool) -> f64 {
    values.fold(f64::NAN, |best, v| nan_better(best, v, maximize))
}

/// One step of [`nan_best`]: `v` if it is not NaN and beats `best` (or `best` is NaN;
/// the first of equal values stays).
pub(crate) fn nan_better(best: f64, v: f64, maximize: bool) -> f64 {
    let beats = if maximize { v > best } else { v < best };
    if !v.is_nan() && (best.is_nan() || beats) {
        v
    } else {
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_formatted() {
        let (step, n, best, word) = (7i64, 3usize, 0.1 + 0.2, "worse");
        let m = message!(
            "best {best} at step {step} of {n}: {word} ({x})",
            best,
            step,
            n,
            word,
            x = -0.0
        );
        let want = format!("best {best} at step {step} of {n}: {word} ({})", -0.0);
        assert_eq!(m.to_string(), want);
        assert_eq!(&*m, want);
        let j = Message::joined(m.clone(), "; wrapped pruner: ", "kept".into());
        assert_eq!(&*j, format!("{want}; wrapped pruner: kept"));
        assert_eq!(j.clone().to_string(), *j);
        assert_eq!(
            format!("{:?}", Message::from(String::from("a\"b"))),
            r#""a\"b""#
        );
        assert_eq!(Message::default(), Message::from(""));
    }
}
