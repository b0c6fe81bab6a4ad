//! Where a trial's learning curve is stored, at any length.
//!
//! Pruners need every reported point: median and percentile compare a running trial with the
//! completed trials' values at exactly its step, Wilcoxon pairs whole curves, patient reads the
//! trial's own history. So no point is ever dropped. To keep a Trial bounded (etcd limits an
//! object to 1.5 MiB; a Trial stays far below 256 KiB), the curve is split:
//!
//! - `status.intermediate` holds the newest points, at most [`CHUNK_POINTS`] of them, in the
//!   same 16-byte form as the chunks, base64 ([`wire`]). Not a list of `{step, value}`: the
//!   apiserver's cost of a status write grows with every list item (on this project's 2-core
//!   machine 4.2 ms at 10 points, 17 ms at 250), and one string costs it the same at any
//!   length (2-3 ms), so the compact form is what keeps a report's write cheap. Earlier
//!   versions wrote the list; it is still read (and replaced by the next write);
//! - each time it would exceed that, its oldest [`CHUNK_POINTS`] points are sealed into a
//!   [`CurveChunk`] `<trial>-curve-<k>` (a Lopper resource, so the operator needs no access
//!   to the namespace's ConfigMaps; owned by the Trial, so deleted with it; labelled with
//!   [`CHUNK_LABEL`]) in a compact binary form ([`encode`]: 16 bytes a point, NaN kept bit
//!   for bit), and `status.curveChunks` counts the sealed chunks.
//!
//! Chunk `k` always holds points `k·CHUNK_POINTS .. (k+1)·CHUNK_POINTS` of the curve, so
//! sealing is idempotent: a chunk written before a crash is written again with the same
//! content (AlreadyExists is success) and only `status.curveChunks` says which chunks count.
//! A report costs one Trial write; one report in [`CHUNK_POINTS`] costs a ConfigMap create too.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Point, STUDY_LABEL, TRIAL_LABEL, Trial};

/// `spec` of a CurveChunk: sealed points of a trial's curve (written once, never changed).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lopper.dev",
    version = "v1alpha1",
    kind = "CurveChunk",
    namespaced,
    category = "lopper",
    doc = "Sealed points of a Trial's learning curve (see status.curveChunks on the Trial).",
    printcolumn = r#"{"name":"Trial","type":"string","jsonPath":".spec.trial"}"#,
    printcolumn = r#"{"name":"Index","type":"integer","jsonPath":".spec.index"}"#,
    printcolumn = r#"{"name":"Points","type":"integer","jsonPath":".spec.count"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CurveChunkSpec {
    /// The Trial's name.
    pub trial: String,
    /// Chunk index: it holds points `index·250 .. (index+1)·250` of the curve.
    pub index: u32,
    /// How many points `points` holds.
    pub count: u32,
    /// The points, 16 bytes each: step (i64) then value (f64 bits), little endian; base64.
    #[schemars(schema_with = "bytes_schema")]
    pub points: ByteString,
}

fn bytes_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "byte"})
}

/// Points kept in `status.intermediate` before the oldest are sealed into a chunk.
/// Every report rewrites the unsealed points, so this bounds a report's write: 250 points are
/// 5.3 KB of base64. A 100,000-step curve makes 400 chunks of 4 KB.
pub const CHUNK_POINTS: usize = 250;

/// `status.intermediate` on the wire: a base64 string of [`encode`]d points; a JSON list of
/// `{step, value}` (what earlier versions wrote) is read too.
pub mod wire {
    use std::fmt;

    use k8s_openapi::ByteString;
    use serde::de::value::{SeqAccessDeserializer, StrDeserializer};
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Point, decode, encode};

    pub fn serialize<S: Serializer>(points: &[Point], s: S) -> Result<S::Ok, S::Error> {
        ByteString(encode(points)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Point>, D::Error> {
        d.deserialize_any(Points)
    }

    struct Points;

    impl<'de> Visitor<'de> for Points {
        type Value = Vec<Point>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("base64 of 16-byte points, or a list of {step, value}")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<Point>, E> {
            let ByteString(bytes) = ByteString::deserialize(StrDeserializer::<E>::new(v))?;
            decode(&bytes).ok_or_else(|| {
                E::custom(format!(
                    "{} bytes is not a whole number of 16-byte points",
                    bytes.len()
                ))
            })
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<Point>, A::Error> {
            Vec::<Point>::deserialize(SeqAccessDeserializer::new(seq))
        }

        fn visit_unit<E: Error>(self) -> Result<Vec<Point>, E> {
            Ok(Vec::new())
        }
    }
}

/// Label on curve chunks holding the chunk index.
pub const CHUNK_LABEL: &str = "lopper.dev/curve-chunk";

/// The name of chunk `k` of `trial`.
pub fn chunk_name(trial: &str, k: u32) -> String {
    format!("{trial}-curve-{k}")
}

/// Points as 16-byte records: step (i64, little endian) then the value's bits (f64, little
/// endian; `None` is stored as NaN, as a reported NaN).
pub fn encode(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * 16);
    for p in points {
        out.extend_from_slice(&p.step.to_le_bytes());
        out.extend_from_slice(&p.value.unwrap_or(f64::NAN).to_bits().to_le_bytes());
    }
    out
}

/// Why a chunk cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkError {
    #[error("curve chunk {name}: {len} bytes is not spec.count 16-byte points")]
    Length { name: String, len: usize },
}

/// The inverse of [`encode`] (NaN as `None`).
pub fn decode(bytes: &[u8]) -> Option<Vec<Point>> {
    if !bytes.len().is_multiple_of(16) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(16)
            .map(|r| {
                let step = i64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
                let v = f64::from_bits(u64::from_le_bytes(r[8..].try_into().expect("8 bytes")));
                Point {
                    step,
                    value: (!v.is_nan()).then_some(v),
                }
            })
            .collect(),
    )
}

/// The chunk `k` of `trial` holding `points` (owned by the Trial).
pub fn chunk(trial: &Trial, k: u32, points: &[Point]) -> CurveChunk {
    let name = trial.metadata.name.clone().unwrap_or_default();
    let mut c = CurveChunk::new(
        &chunk_name(&name, k),
        CurveChunkSpec {
            trial: name.clone(),
            index: k,
            count: points.len() as u32,
            points: ByteString(encode(points)),
        },
    );
    c.metadata.namespace = trial.metadata.namespace.clone();
    c.metadata.labels = Some(BTreeMap::from([
        (STUDY_LABEL.to_string(), trial.spec.study.clone()),
        (TRIAL_LABEL.to_string(), name),
        (CHUNK_LABEL.to_string(), k.to_string()),
    ]));
    c.metadata.owner_references = kube::Resource::controller_owner_ref(trial, &()).map(|o| vec![o]);
    c
}

/// The points of a chunk.
pub fn chunk_points(c: &CurveChunk) -> Result<Vec<Point>, ChunkError> {
    let name = c.metadata.name.clone().unwrap_or_default();
    let bytes = &c.spec.points.0;
    match decode(bytes) {
        Some(p) if p.len() == c.spec.count as usize => Ok(p),
        _ => Err(ChunkError::Length {
            name,
            len: bytes.len(),
        }),
    }
}

/// Appends points to the unsealed tail: a step at or below the last known step (`last`,
/// which may lie in a sealed chunk) is ignored, as Optuna ignores a repeated report; ±inf is
/// kept, NaN kept as `None`. Returns the points recorded.
pub fn append(tail: &mut Vec<Point>, last: &mut Option<i64>, points: &[(i64, f64)]) -> Vec<Point> {
    let mut recorded = Vec::new();
    for &(step, value) in points {
        if last.is_some_and(|l| l >= step) {
            continue;
        }
        let p = Point {
            step,
            value: (!value.is_nan()).then_some(value),
        };
        tail.push(p.clone());
        recorded.push(p);
        *last = Some(step);
    }
    recorded
}

/// Splits sealed chunks off the front of `tail` while it holds more than [`CHUNK_POINTS`]
/// points; returns them in order (each exactly [`CHUNK_POINTS`] points).
pub fn seal(tail: &mut Vec<Point>) -> Vec<Vec<Point>> {
    let mut sealed = Vec::new();
    while tail.len() > CHUNK_POINTS {
        let rest = tail.split_off(CHUNK_POINTS);
        sealed.push(std::mem::replace(tail, rest));
    }
    sealed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TrialSpec;

    fn pts(steps: impl IntoIterator<Item = i64>) -> Vec<(i64, f64)> {
        steps.into_iter().map(|s| (s, s as f64 * 0.5)).collect()
    }

    #[test]
    fn encoding_round_trips_nan_and_negative_steps() {
        let p = vec![
            Point {
                step: -3,
                value: Some(-0.0),
            },
            Point {
                step: 7,
                value: None,
            },
            Point {
                step: i64::MAX,
                value: Some(f64::MIN_POSITIVE),
            },
        ];
        let back = decode(&encode(&p)).unwrap();
        assert_eq!(back, p);
        assert!(back[0].value.unwrap().is_sign_negative());
        assert_eq!(decode(&[0u8; 15]), None);
    }

    #[test]
    fn the_status_curve_is_written_compactly_and_the_old_list_still_reads() {
        use crate::crd::TrialStatus;
        let status = TrialStatus {
            intermediate: vec![
                Point {
                    step: 0,
                    value: Some(0.5),
                },
                Point {
                    step: 1,
                    value: None,
                },
                Point {
                    step: 2,
                    value: Some(f64::NEG_INFINITY),
                },
            ],
            ..Default::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        let text = json["intermediate"].as_str().expect("a base64 string");
        assert_eq!(text.len(), 64, "3 points of 16 bytes, base64");
        let back: TrialStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back.intermediate, status.intermediate);
        // What earlier versions wrote.
        let old: TrialStatus = serde_json::from_value(serde_json::json!({
            "intermediate": [{"step": 0, "value": 0.5}, {"step": 1, "value": null},
                             {"step": 2, "value": "-Infinity"}]
        }))
        .unwrap();
        assert_eq!(old.intermediate, status.intermediate);
        let err =
            serde_json::from_value::<TrialStatus>(serde_json::json!({"intermediate": "AAAA"}))
                .unwrap_err();
        assert!(err.to_string().contains("16-byte points"), "{err}");
    }

    #[test]
    fn append_ignores_repeats_below_sealed_points_and_keeps_infinities() {
        let mut tail = Vec::new();
        let mut last = Some(10); // the sealed chunks end at step 10
        let got = append(
            &mut tail,
            &mut last,
            &[
                (3, 1.0),
                (10, 1.0),
                (11, f64::INFINITY),
                (12, f64::NAN),
                (12, 2.0),
            ],
        );
        assert_eq!(
            got,
            vec![
                Point {
                    step: 11,
                    value: Some(f64::INFINITY)
                },
                Point {
                    step: 12,
                    value: None
                }
            ]
        );
        assert_eq!((tail.len(), last), (2, Some(12)));
    }

    #[test]
    fn sealing_keeps_every_point_in_order_and_bounds_the_tail() {
        let mut tail = Vec::new();
        let mut last = None;
        let mut sealed = Vec::new();
        // A long curve reported in uneven batches.
        let steps: Vec<i64> = (0..5_321).map(|i| i * 3).collect();
        for batch in steps.chunks(97) {
            append(&mut tail, &mut last, &pts(batch.iter().copied()));
            sealed.extend(seal(&mut tail));
            assert!(tail.len() <= CHUNK_POINTS);
        }
        assert_eq!(sealed.len(), (5_321 - 1) / CHUNK_POINTS);
        assert!(sealed.iter().all(|c| c.len() == CHUNK_POINTS));
        let all: Vec<i64> = sealed
            .iter()
            .flatten()
            .chain(tail.iter())
            .map(|p| p.step)
            .collect();
        assert_eq!(all, steps);
    }

    #[test]
    fn a_chunk_is_owned_by_its_trial_and_reads_back() {
        let mut t = Trial::new(
            "s-4",
            TrialSpec {
                study: "s".into(),
                number: 4,
                params: Default::default(),
                invalid: None,
            },
        );
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("u-1".into());
        let p: Vec<Point> = (0..3)
            .map(|s| Point {
                step: s,
                value: Some(s as f64),
            })
            .collect();
        let cm = chunk(&t, 2, &p);
        assert_eq!(cm.metadata.name.as_deref(), Some("s-4-curve-2"));
        assert_eq!(cm.metadata.owner_references.as_ref().unwrap()[0].uid, "u-1");
        assert_eq!(cm.metadata.labels.as_ref().unwrap()[CHUNK_LABEL], "2");
        assert_eq!(chunk_points(&cm).unwrap(), p);
        let mut broken = cm.clone();
        broken.spec.count = 4;
        assert!(matches!(
            chunk_points(&broken),
            Err(ChunkError::Length { .. })
        ));
    }
}
