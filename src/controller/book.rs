//! A study's trials as the engine sees them, kept in memory between reports (pure: no API).
//!
//! The book holds one [`TrialRecord`] per trial (sorted by number, as the engine's
//! [`StudyView`] wants them), the pruners' incremental [`StudyIndex`] and the study's pruner
//! state. [`Book::sync`] brings it up to date with the Trials as the view knows them: a
//! record is rebuilt only when its Trial changed (by `resourceVersion`), so a report costs
//! the points it adds, not a re-read of the study.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::ResourceExt;

use super::view::newer;
use crate::crd::{Point, Trial};
use crate::engine::pruners::{self, Decision, PrunerSpec, StudyIndex};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

/// Where a record came from.
#[derive(Clone, Debug, Default)]
struct Entry {
    uid: Option<String>,
    resource_version: Option<String>,
    /// Sealed chunks whose points the record holds.
    chunks: u32,
    /// The step of the last of those points (None: no chunk held).
    sealed_last: Option<i64>,
}

/// See the module docs.
#[derive(Default)]
pub struct Book {
    records: Vec<TrialRecord>,
    entries: Vec<Entry>,
    pos: HashMap<u64, usize>,
    index: StudyIndex,
    /// Trial numbers counted in `index` as complete, and their rung values counted.
    indexed: HashSet<u64>,
    rungs_indexed: HashMap<u64, BTreeMap<u32, f64>>,
    index_dirty: bool,
    pub pruner_state: PrunerState,
}

/// A trial's sealed points: `Some` from the chunk store, `None` when not available.
pub type Sealed<'a> = &'a dyn Fn(&Trial, u32) -> Option<Vec<Point>>;

impl Book {
    /// Every record, sorted by trial number.
    pub fn records(&self) -> &[TrialRecord] {
        &self.records
    }

    pub fn record(&self, number: u64) -> Option<&TrialRecord> {
        self.pos.get(&number).map(|&i| &self.records[i])
    }

    /// Numbers of the trials in the book.
    pub fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.iter().map(|r| r.number)
    }

    fn reindex_positions(&mut self) {
        self.pos = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.number, i))
            .collect();
    }

    /// Brings the book up to `trials` (every Trial of the study, newest known state):
    /// records of changed Trials are rebuilt, missing ones removed. `sealed(trial, count)`
    /// returns the points of its first `count` chunks.
    pub fn sync(&mut self, trials: &[Arc<Trial>], sealed: Sealed<'_>) {
        let mut seen = HashSet::with_capacity(trials.len());
        let mut inserted = false;
        for t in trials {
            let n = t.spec.number;
            if !seen.insert(n) {
                continue;
            }
            let rv = t.resource_version();
            let uid = t.uid();
            let chunks = t.curve_chunks();
            if let Some(&i) = self.pos.get(&n) {
                let e = &self.entries[i];
                // Unchanged, unless its sealed points were missing last time (a chunk not yet
                // in the store): then it is read again until they are there.
                if e.uid == uid
                    && !newer(rv.as_deref(), e.resource_version.as_deref())
                    && e.chunks >= chunks
                {
                    continue;
                }
                // The usual change (a report, a phase): the record already holds the sealed
                // points; only the window is brought up to date.
                if e.uid == uid && e.chunks == chunks {
                    let sealed_last = e.sealed_last;
                    self.refresh(i, t, sealed_last, &[]);
                    self.entries[i].resource_version = rv;
                    continue;
                }
                // Reuse the sealed points we hold when the Trial has no more chunks than we
                // know of (chunks never change once sealed).
                let prefix: Option<Vec<Point>> = if e.uid == uid && e.chunks >= chunks {
                    let r = &self.records[i];
                    let keep = chunks as usize * crate::crd::curve::CHUNK_POINTS;
                    Some(
                        r.intermediate
                            .iter()
                            .take(keep)
                            .map(|(&s, &v)| Point {
                                step: s,
                                value: (!v.is_nan()).then_some(v),
                            })
                            .collect(),
                    )
                } else {
                    None
                };
                let prefix = prefix.or_else(|| sealed(t, chunks));
                let (record, known, sealed_last) = build(t, prefix, chunks);
                let old = std::mem::replace(&mut self.records[i], record);
                self.entries[i] = Entry {
                    uid,
                    resource_version: rv,
                    chunks: known,
                    sealed_last,
                };
                self.on_changed(&old, i);
            } else {
                let prefix = if chunks > 0 { sealed(t, chunks) } else { None };
                let (record, known, sealed_last) = build(t, prefix, chunks);
                self.records.push(record);
                self.entries.push(Entry {
                    uid,
                    resource_version: rv,
                    chunks: known,
                    sealed_last,
                });
                inserted = true;
                let i = self.records.len() - 1;
                self.index_new(i);
            }
        }
        let before = self.records.len();
        if before != seen.len() {
            // Trials gone (deleted by hand): drop them and rebuild the index.
            let mut keep = Vec::with_capacity(seen.len());
            let mut keep_e = Vec::with_capacity(seen.len());
            for (r, e) in self.records.drain(..).zip(self.entries.drain(..)) {
                if seen.contains(&r.number) {
                    keep.push(r);
                    keep_e.push(e);
                }
            }
            self.records = keep;
            self.entries = keep_e;
            self.index_dirty = true;
            inserted = true;
        }
        if inserted {
            let mut pairs: Vec<(TrialRecord, Entry)> =
                self.records.drain(..).zip(self.entries.drain(..)).collect();
            pairs.sort_by_key(|(r, _)| r.number);
            (self.records, self.entries) = pairs.into_iter().unzip();
            self.reindex_positions();
        }
    }

    /// Brings record `i` up to `t` in place (see [`Trial::refresh_record`]), with the index.
    fn refresh(&mut self, i: usize, t: &Trial, sealed_last: Option<i64>, sealed_now: &[Point]) {
        let was_complete = self.records[i].state == TrialState::Complete;
        let changed = t.refresh_record(&mut self.records[i], sealed_last, sealed_now);
        if was_complete && (self.records[i].state != TrialState::Complete || changed) {
            self.index_dirty = true;
            return;
        }
        self.index_new(i);
    }

    /// Index bookkeeping for a record that replaced `old` at `i`.
    fn on_changed(&mut self, old: &TrialRecord, i: usize) {
        let new = &self.records[i];
        let was_complete = old.state == TrialState::Complete;
        if was_complete
            && (new.state != TrialState::Complete || new.intermediate != old.intermediate)
        {
            self.index_dirty = true;
            return;
        }
        self.index_new(i);
    }

    /// Adds what record `i` brings to the index (a completion, new rung values).
    fn index_new(&mut self, i: usize) {
        if self.index_dirty {
            return;
        }
        let r = &self.records[i];
        if r.state == TrialState::Complete && self.indexed.insert(r.number) {
            self.index.on_finished(r);
        }
        let known = self.rungs_indexed.entry(r.number).or_default();
        let mut added = BTreeMap::new();
        for (k, v) in &r.rungs {
            match known.get(k) {
                None => {
                    added.insert(*k, *v);
                }
                Some(old) if old.to_bits() == v.to_bits() => {}
                Some(_) => {
                    self.index_dirty = true;
                    return;
                }
            }
        }
        if known.len() > r.rungs.len() {
            self.index_dirty = true;
            return;
        }
        known.extend(added.iter().map(|(k, v)| (*k, *v)));
        self.index.on_rungs(&added);
    }

    fn rebuild_index(&mut self) {
        self.index = StudyIndex::new();
        self.indexed.clear();
        self.rungs_indexed.clear();
        for r in &self.records {
            if r.state == TrialState::Complete {
                self.indexed.insert(r.number);
                self.index.on_finished(r);
            }
            self.index.on_rungs(&r.rungs);
            self.rungs_indexed.insert(r.number, r.rungs.clone());
        }
        self.index_dirty = false;
    }

    /// Asks the study's pruner about trial `number` with `points` appended to its record
    /// (and the rung values it records). The book is left as it was; see [`Book::commit`].
    pub fn decide(
        &mut self,
        study: &str,
        direction: Direction,
        spec: &PrunerSpec,
        number: u64,
        points: &[Point],
    ) -> Result<(Decision, PrunerState), String> {
        let pruner = pruners::build(spec).map_err(|e| e.to_string())?;
        if self.index_dirty {
            self.rebuild_index();
        }
        let Some(&i) = self.pos.get(&number) else {
            return Err(format!("trial {number} is not in the study's book"));
        };
        let added: Vec<i64> = {
            let r = &mut self.records[i];
            points
                .iter()
                .filter(|p| r.report(p.step, p.value.unwrap_or(f64::NAN)))
                .map(|p| p.step)
                .collect()
        };
        let mut state = self.pruner_state.clone();
        let d = {
            let view = StudyView {
                name: study,
                direction,
                trials: &self.records,
            };
            pruner.prune_indexed(&view, &self.records[i], &mut state, Some(&self.index))
        };
        let r = &mut self.records[i];
        for s in added {
            r.intermediate.remove(&s);
        }
        Ok((d, state))
    }

    /// Applies a written Trial to the book at once (the store sees it later): its record is
    /// rebuilt from `t` with the sealed points the book already holds plus `sealed_now`.
    pub fn commit(&mut self, t: &Trial, sealed_now: &[Point], state: &PrunerState) {
        merge_state(&mut self.pruner_state, state);
        let n = t.spec.number;
        let Some(&i) = self.pos.get(&n) else {
            return;
        };
        let chunks = t.curve_chunks();
        let e = &self.entries[i];
        let per = crate::crd::curve::CHUNK_POINTS;
        // The usual write: the record holds the sealed points, and those sealed now follow.
        if e.uid == t.uid()
            && sealed_now.len().is_multiple_of(per)
            && chunks == e.chunks + (sealed_now.len() / per) as u32
        {
            let sealed_last = sealed_now.last().map(|p| p.step).or(e.sealed_last);
            let before = e.sealed_last;
            self.refresh(i, t, before, sealed_now);
            self.entries[i] = Entry {
                uid: t.uid(),
                resource_version: t.resource_version(),
                chunks,
                sealed_last,
            };
            return;
        }
        let held = e.chunks as usize * per;
        let mut prefix: Vec<Point> = self.records[i]
            .intermediate
            .iter()
            .take(held)
            .map(|(&s, &v)| Point {
                step: s,
                value: (!v.is_nan()).then_some(v),
            })
            .collect();
        prefix.extend_from_slice(sealed_now);
        let known_chunks = if prefix.len() == chunks as usize * per {
            chunks
        } else {
            0
        };
        let (record, known, sealed_last) =
            build(t, (known_chunks == chunks).then_some(prefix), chunks);
        let old = std::mem::replace(&mut self.records[i], record);
        self.entries[i] = Entry {
            uid: t.uid(),
            resource_version: t.resource_version(),
            chunks: known,
            sealed_last,
        };
        self.on_changed(&old, i);
    }

    /// Takes the persisted pruner state of the Study (values resolved once never change).
    pub fn load_state(&mut self, persisted: Option<&PrunerState>) {
        if let Some(p) = persisted {
            merge_state(&mut self.pruner_state, p);
        }
    }
}

/// Values resolved once: the first known value stays.
fn merge_state(into: &mut PrunerState, from: &PrunerState) {
    if into.min_resource.is_none() {
        into.min_resource = from.min_resource;
    }
    if into.max_resource.is_none() {
        into.max_resource = from.max_resource;
    }
}

/// A record from a Trial and the points of its sealed chunks (`None`: not available; the
/// record then holds only `status.intermediate` and says it knows no chunks), with the
/// chunks it holds and the step of their last point.
fn build(t: &Trial, sealed: Option<Vec<Point>>, chunks: u32) -> (TrialRecord, u32, Option<i64>) {
    match sealed {
        Some(p) => (t.record_with(&p), chunks, p.last().map(|p| p.step)),
        None => {
            if chunks > 0 {
                tracing::warn!(
                    trial = %t.name_any(),
                    chunks,
                    "curve chunks not available yet; deciding on the unsealed points only until they are"
                );
            }
            (t.record(), 0, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{TrialPhase, TrialSpec, TrialStatus};

    fn trial(n: u64, rv: u64, phase: TrialPhase, steps: &[(i64, f64)]) -> Arc<Trial> {
        let mut t = Trial::new(
            &format!("s-{n}"),
            TrialSpec {
                study: "s".into(),
                number: n,
                params: Default::default(),
                invalid: None,
            },
        );
        t.metadata.uid = Some(format!("u{n}"));
        t.metadata.resource_version = Some(rv.to_string());
        t.status = Some(TrialStatus {
            phase: Some(phase),
            intermediate: steps
                .iter()
                .map(|&(step, v)| Point {
                    step,
                    value: Some(v),
                })
                .collect(),
            value: steps
                .last()
                .map(|p| p.1)
                .filter(|_| phase == TrialPhase::Completed),
            ..Default::default()
        });
        Arc::new(t)
    }

    fn no_chunks(_: &Trial, _: u32) -> Option<Vec<Point>> {
        None
    }

    fn median() -> PrunerSpec {
        serde_json::from_value(serde_json::json!({"median": {"startupTrials": 1}})).unwrap()
    }

    #[test]
    fn decides_as_the_engine_and_leaves_the_book_unchanged() {
        let mut b = Book::default();
        let done = trial(0, 5, TrialPhase::Completed, &[(0, 1.0), (1, 0.5)]);
        let run = trial(1, 6, TrialPhase::Running, &[(0, 1.0)]);
        b.sync(&[run.clone(), done.clone()], &no_chunks);
        assert_eq!(b.numbers().collect::<Vec<_>>(), vec![0, 1]);
        let p = [Point {
            step: 1,
            value: Some(0.9),
        }];
        let (d, _) = b
            .decide("s", Direction::Minimize, &median(), 1, &p)
            .unwrap();
        assert!(d.prune, "0.9 is worse than the median 0.5 at step 1");
        assert_eq!(b.record(1).unwrap().intermediate.len(), 1);
        let (d, _) = b
            .decide(
                "s",
                Direction::Minimize,
                &median(),
                1,
                &[Point {
                    step: 1,
                    value: Some(0.4),
                }],
            )
            .unwrap();
        assert!(!d.prune);
    }

    #[test]
    fn sync_rebuilds_only_changed_trials_and_drops_deleted_ones() {
        let mut b = Book::default();
        let t0 = trial(0, 5, TrialPhase::Running, &[(0, 1.0)]);
        let t1 = trial(1, 6, TrialPhase::Running, &[]);
        b.sync(&[t0.clone(), t1.clone()], &no_chunks);
        // An older copy (a lagging store) never replaces a newer record.
        let stale = trial(0, 4, TrialPhase::Running, &[]);
        b.sync(&[stale, t1.clone()], &no_chunks);
        assert_eq!(b.record(0).unwrap().intermediate.len(), 1);
        let done = trial(0, 9, TrialPhase::Completed, &[(0, 1.0), (1, 0.2)]);
        b.sync(&[done], &no_chunks);
        assert_eq!(b.records().len(), 1);
        assert_eq!(b.record(0).unwrap().state, TrialState::Complete);
    }

    #[test]
    fn sealed_points_come_from_the_chunks_then_stay_in_the_book() {
        let mut b = Book::default();
        let n = crate::crd::curve::CHUNK_POINTS as i64;
        let mut t = (*trial(0, 5, TrialPhase::Running, &[(n, 7.0)])).clone();
        t.status.as_mut().unwrap().curve_chunks = Some(1);
        let t = Arc::new(t);
        let chunks = |_: &Trial, c: u32| {
            assert_eq!(c, 1);
            Some(
                (0..n)
                    .map(|s| Point {
                        step: s,
                        value: Some(s as f64),
                    })
                    .collect(),
            )
        };
        b.sync(std::slice::from_ref(&t), &chunks);
        assert_eq!(b.record(0).unwrap().intermediate.len(), n as usize + 1);
        // A newer Trial with the same chunks reuses the points held (no chunk read).
        let mut t2 = (*t).clone();
        t2.metadata.resource_version = Some("6".into());
        t2.status.as_mut().unwrap().intermediate.push(Point {
            step: n + 1,
            value: Some(1.0),
        });
        b.sync(&[Arc::new(t2)], &|_, _| panic!("chunks re-read"));
        assert_eq!(b.record(0).unwrap().intermediate.len(), n as usize + 2);
    }

    /// Reports as `observe` writes them (window, sealing, commit), then a sync of each
    /// write as the watch delivers it: the record always equals a rebuild from the whole
    /// curve, while each report only touched the window.
    #[test]
    fn a_long_curve_stays_exact_through_commits_and_syncs() {
        use crate::crd::curve;
        let mut b = Book::default();
        let mut t = (*trial(0, 1, TrialPhase::Running, &[])).clone();
        b.sync(&[Arc::new(t.clone())], &no_chunks);
        let mut all: Vec<Point> = Vec::new();
        let mut rv = 1u64;
        for step in 0..1_600i64 {
            // Every 7th step reports NaN; steps are sparse (every 3rd) to test keys, not indexes.
            let v = if step % 7 == 3 {
                f64::NAN
            } else {
                (step as f64).sin()
            };
            let st = t.status.as_mut().unwrap();
            let mut last = st.intermediate.last().map(|p| p.step).max(st.last_step);
            let rec = curve::append(&mut st.intermediate, &mut last, &[(step * 3, v)]);
            st.last_step = last;
            all.extend(rec);
            let sealed: Vec<Point> = curve::seal(&mut st.intermediate)
                .into_iter()
                .flatten()
                .collect();
            if !sealed.is_empty() {
                let c = st.curve_chunks.unwrap_or(0) + (sealed.len() / curve::CHUNK_POINTS) as u32;
                st.curve_chunks = Some(c);
            }
            rv += 1;
            t.metadata.resource_version = Some(rv.to_string());
            b.commit(&t, &sealed, &PrunerState::default());
            // The watch event of the same write changes nothing; chunks are never re-read.
            b.sync(&[Arc::new(t.clone())], &|_, _| panic!("chunks re-read"));
            if step % 97 == 0 || step == 1_599 {
                let want = t.record_with(&all[..t.curve_chunks() as usize * curve::CHUNK_POINTS]);
                let got = b.record(0).unwrap();
                assert_eq!(got.intermediate.len(), all.len());
                assert!(
                    got.intermediate
                        .iter()
                        .zip(&want.intermediate)
                        .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits()),
                    "record differs from a rebuild at step {step}"
                );
            }
        }
        assert_eq!(
            t.curve_chunks(),
            6,
            "1,600 points: 6 sealed chunks, 100 in the window"
        );
        // Someone rewrote the window (points dropped): the record drops them too.
        rv += 1;
        t.metadata.resource_version = Some(rv.to_string());
        t.status.as_mut().unwrap().intermediate.truncate(10);
        b.sync(&[Arc::new(t.clone())], &|_, _| panic!("chunks re-read"));
        assert_eq!(
            b.record(0).unwrap().intermediate.len(),
            6 * curve::CHUNK_POINTS + 10
        );
        // Completed: the index counts it with its whole curve.
        rv += 1;
        t.metadata.resource_version = Some(rv.to_string());
        let st = t.status.as_mut().unwrap();
        st.phase = Some(TrialPhase::Completed);
        st.value = Some(0.5);
        b.sync(&[Arc::new(t.clone())], &|_, _| panic!("chunks re-read"));
        let r = b.record(0).unwrap();
        assert_eq!((r.state, r.value), (TrialState::Complete, Some(0.5)));
    }

    #[test]
    fn a_trial_whose_chunks_were_missing_is_read_again_until_they_arrive() {
        let mut b = Book::default();
        let n = crate::crd::curve::CHUNK_POINTS as i64;
        let mut t = (*trial(0, 5, TrialPhase::Completed, &[(n, 7.0)])).clone();
        t.status.as_mut().unwrap().curve_chunks = Some(1);
        let t = Arc::new(t);
        b.sync(std::slice::from_ref(&t), &|_, _| None);
        assert_eq!(
            b.record(0).unwrap().intermediate.len(),
            1,
            "only the unsealed point"
        );
        // The same Trial (a completed one never changes again) once its chunk is there.
        let chunk = |_: &Trial, _: u32| {
            Some(
                (0..n)
                    .map(|s| Point {
                        step: s,
                        value: Some(1.0),
                    })
                    .collect(),
            )
        };
        b.sync(std::slice::from_ref(&t), &chunk);
        assert_eq!(b.record(0).unwrap().intermediate.len(), n as usize + 1);
    }
}
