//! The `Trial` custom resource: one sampled configuration of a Study, run as one Job.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{Params, TrialRecord, TrialState};

/// `spec` of a Trial (written once by the Study controller, never changed).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lopper.dev",
    version = "v1alpha1",
    kind = "Trial",
    namespaced,
    shortname = "tr",
    category = "lopper",
    status = "TrialStatus",
    doc = "One trial of a Study: a sampled configuration run as one Job.",
    printcolumn = r#"{"name":"Study","type":"string","jsonPath":".spec.study"}"#,
    printcolumn = r#"{"name":"Number","type":"integer","jsonPath":".spec.number"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.lastStep"}"#,
    printcolumn = r#"{"name":"Value","type":"number","jsonPath":".status.value"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct TrialSpec {
    /// The owning Study's name.
    #[schemars(length(min = 1))]
    pub study: String,
    /// Dense trial number within the study: 0, 1, 2, …
    pub number: u64,
    /// The sampled (active) parameters.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::params_schema")]
    pub params: Params,
    /// Set (never by the API) when the stored spec could not be read into this type: the
    /// reader's error, with the path of the offending field. Such a spec keeps its study and
    /// number but no params; the operator only fails the Trial with `InvalidSpec`.
    #[serde(skip)]
    #[schemars(skip)]
    pub invalid: Option<String>,
}

// The same guard as `StudySpec`'s: param values are untyped in the schema (a string, number or
// boolean cannot be said structurally), so the API accepts e.g. `params: {lr: {a: 1}}`. One
// such Trial must not fail the list and watch of every Trial: reading never fails, it yields a
// spec marked `invalid` instead.
impl<'de> Deserialize<'de> for TrialSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(
            super::read_spec(&value, |d| TrialSpec::deserialize(d)).unwrap_or_else(|msg| {
                TrialSpec {
                    study: value
                        .get("study")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    number: value
                        .get("number")
                        .and_then(|v| v.as_u64())
                        .unwrap_or_default(),
                    params: Params::new(),
                    invalid: Some(msg),
                }
            }),
        )
    }
}

impl Serialize for TrialSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TrialSpec::serialize(self, s)
    }
}

/// Lifecycle of a Trial. Completed, Pruned and Failed are final. `Queued`: its workload waits,
/// suspended, for admission by Kueue (no pod, no GPU time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TrialPhase {
    Queued,
    #[default]
    Pending,
    Running,
    Completed,
    Pruned,
    Failed,
}

impl TrialPhase {
    pub const ALL: [TrialPhase; 6] = [
        TrialPhase::Queued,
        TrialPhase::Pending,
        TrialPhase::Running,
        TrialPhase::Completed,
        TrialPhase::Pruned,
        TrialPhase::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TrialPhase::Queued => "Queued",
            TrialPhase::Pending => "Pending",
            TrialPhase::Running => "Running",
            TrialPhase::Completed => "Completed",
            TrialPhase::Pruned => "Pruned",
            TrialPhase::Failed => "Failed",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialPhase::Completed | TrialPhase::Pruned | TrialPhase::Failed
        )
    }
    /// The engine's view (Queued and Pending count as Running, as Optuna's WAITING does).
    pub fn engine_state(self) -> TrialState {
        match self {
            TrialPhase::Queued | TrialPhase::Pending | TrialPhase::Running => TrialState::Running,
            TrialPhase::Completed => TrialState::Complete,
            TrialPhase::Pruned => TrialState::Pruned,
            TrialPhase::Failed => TrialState::Failed,
        }
    }
}

/// One reported intermediate value; `value: null` is a reported NaN, ±inf are written as the
/// strings `Infinity` / `-Infinity` (JSON numbers cannot hold them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Point {
    pub step: i64,
    #[serde(with = "value_json")]
    #[schemars(with = "Option<f64>")]
    pub value: Option<f64>,
}

mod rungs_json {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    struct V(f64);

    impl serde::Serialize for V {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::value_json::serialize(&Some(self.0), s)
        }
    }

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &V(*v))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::value_json")] Option<f64>);
        let raw = BTreeMap::<String, W>::deserialize(d)?;
        Ok(raw
            .into_iter()
            .map(|(k, W(v))| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

mod value_json {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if *x == f64::INFINITY => s.serialize_str("Infinity"),
            Some(x) if *x == f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            Some(x) if !x.is_nan() => s.serialize_f64(*x),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        Ok(match Option::<Raw>::deserialize(d)? {
            None => None,
            Some(Raw::Num(x)) => Some(x),
            Some(Raw::Text(t)) => match t.as_str() {
                "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
                "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
                _ => None,
            },
        })
    }
}

/// `status` of a Trial: the single source of truth for its metrics and pruning state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TrialPhase>,
    /// The newest reported points, at most 250 (older ones are in CurveChunks, counted by
    /// curveChunks), as base64 of 16 bytes a point: the step (int64), then the value (float64
    /// bits, NaN for a reported NaN), little endian. `lopper curve TRIAL` prints the whole
    /// curve. Earlier versions wrote a list of {step, value}; it is still read.
    #[serde(
        default,
        with = "super::curve::wire",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "super::schema::points_schema")]
    pub intermediate: Vec<Point>,
    /// How many sealed curve chunks (ConfigMaps `<trial>-curve-<k>`) precede `intermediate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_chunks: Option<u32>,
    /// Points an earlier version did not keep (it capped a curve at 1,000 points); read only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_points: Option<u64>,
    /// The largest reported step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
    /// The step up to which the pruner has been asked (level-triggered re-check after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_step: Option<i64>,
    /// Final objective (completed) or last value (pruned); ±inf as `Infinity` / `-Infinity`.
    #[serde(default, with = "value_json", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::value_schema")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at_step: Option<i64>,
    /// Successive halving's recorded value per rung (rung number as key); ±inf as
    /// `Infinity` / `-Infinity`.
    #[serde(
        default,
        with = "rungs_json",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    #[schemars(schema_with = "super::schema::rungs_schema")]
    pub rungs: BTreeMap<String, f64>,
    /// The workload's name (Job, JobSet or TrainJob), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Seconds the trial ran in admissions that ended in a preemption (requeued); counted as
    /// GPU time with the current run (from `startTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted_seconds: Option<f64>,
    /// How many times the trial was preempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl Trial {
    pub fn phase(&self) -> TrialPhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }

    /// The engine's record of this trial, from spec and status (only the points in
    /// `status.intermediate`; see [`Trial::record_with`] for a curve with sealed chunks).
    pub fn record(&self) -> TrialRecord {
        self.record_with(&[])
    }

    /// Sealed chunks this trial's status counts (0 when none).
    pub fn curve_chunks(&self) -> u32 {
        self.status
            .as_ref()
            .and_then(|s| s.curve_chunks)
            .unwrap_or(0)
    }

    /// The engine's record of this trial, with `sealed`: the points of its sealed chunks in
    /// order (see [`super::curve`]).
    pub fn record_with(&self, sealed: &[Point]) -> TrialRecord {
        let mut r = TrialRecord::new(self.spec.number);
        if let Some(s) = &self.status {
            for p in sealed.iter().chain(&s.intermediate) {
                r.intermediate.insert(p.step, p.value.unwrap_or(f64::NAN));
            }
        }
        self.fill_summary(&mut r);
        r
    }

    /// Brings `r`, a record of this trial that holds its sealed points through step
    /// `sealed_last` (None: no sealed points), up to this Trial, with `sealed_now` (points
    /// sealed since `r` was made) added. Costs the unsealed window, not the whole curve: a
    /// report of a 100,000-step trial touches ~250 points. Returns whether the points changed.
    pub fn refresh_record(
        &self,
        r: &mut TrialRecord,
        sealed_last: Option<i64>,
        sealed_now: &[Point],
    ) -> bool {
        use std::collections::btree_map::Entry;
        use std::ops::Bound;
        let window = self
            .status
            .as_ref()
            .map(|s| s.intermediate.as_slice())
            .unwrap_or(&[]);
        let after = |step: i64| sealed_last.is_none_or(|k| step > k);
        let mut changed = false;
        let mut fresh = 0usize;
        for p in sealed_now.iter().chain(window).filter(|p| after(p.step)) {
            let v = p.value.unwrap_or(f64::NAN);
            match r.intermediate.entry(p.step) {
                Entry::Vacant(e) => {
                    e.insert(v);
                    changed = true;
                }
                Entry::Occupied(mut e) => {
                    if e.get().to_bits() != v.to_bits() {
                        e.insert(v);
                        changed = true;
                    }
                }
            }
            fresh += 1;
        }
        // Points past the sealed ones that the Trial no longer holds (only when someone
        // rewrote its status): dropped, as a rebuild would.
        let lo = sealed_last.map_or(Bound::Unbounded, Bound::Excluded);
        if r.intermediate.range((lo, Bound::Unbounded)).count() != fresh {
            let keep: std::collections::HashSet<i64> =
                sealed_now.iter().chain(window).map(|p| p.step).collect();
            let stale: Vec<i64> = r
                .intermediate
                .range((lo, Bound::Unbounded))
                .map(|(k, _)| *k)
                .filter(|k| !keep.contains(k))
                .collect();
            for k in stale {
                r.intermediate.remove(&k);
                changed = true;
            }
        }
        self.fill_summary(r);
        changed
    }

    /// Everything of the record but its points: params, state, value, rung values.
    fn fill_summary(&self, r: &mut TrialRecord) {
        r.number = self.spec.number;
        r.params.clone_from(&self.spec.params);
        r.state = self.phase().engine_state();
        r.value = None;
        r.rungs.clear();
        if let Some(s) = &self.status {
            r.value = s.value;
            if r.state == TrialState::Complete && r.value.is_none() {
                r.value = Some(f64::NAN);
            }
            for (k, v) in &s.rungs {
                if let Ok(k) = k.parse() {
                    r.rungs.insert(k, *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_params_give_an_invalid_spec_not_an_error() {
        let t: Trial = serde_json::from_value(serde_json::json!({
            "apiVersion": "lopper.dev/v1alpha1",
            "kind": "Trial",
            "metadata": {"name": "s-3"},
            "spec": {"study": "s", "number": 3, "params": {"hidden": 64, "lr": {"a": 1}}}
        }))
        .expect("reading never fails");
        assert_eq!((t.spec.study.as_str(), t.spec.number), ("s", 3));
        assert!(t.spec.params.is_empty());
        let msg = t.spec.invalid.expect("marked invalid");
        assert!(msg.starts_with("spec.params.lr: "), "{msg}");
        let ok: TrialSpec = serde_json::from_value(
            serde_json::json!({"study": "s", "number": 1, "params": {"lr": 0.1}}),
        )
        .unwrap();
        assert_eq!(ok.invalid, None);
        assert_eq!(ok.params.len(), 1);
        // The marker is never written back.
        assert!(!serde_json::to_string(&ok).unwrap().contains("invalid"));
    }
}
