//! The operator's one in-memory view of the cluster: watch-backed stores of Studies, Trials,
//! the trials' Jobs and curve chunks, made once and shared by the reconcilers, the pruning
//! decision and every metric source (so a report reads nothing through the API).
//!
//! Where it can be stale, and why decisions stay exact:
//! - A store lags the API by the watch latency. Our own writes are applied to the view at
//!   once ([`View::wrote`]): the newest of the store's object and our last written one (by
//!   `resourceVersion`) is what every reader gets, so the report path never decides on a
//!   curve older than the one it wrote.
//! - Writes carry the `resourceVersion` they were computed from; when another writer (the
//!   Trial reconciler, a second replica) got there first the API answers 409 and the writer
//!   reads the Trial once and computes again. A decision is therefore always made on the
//!   Trial as stored, and a lost race costs one GET, never a point.
//! - Other trials are read as last seen. A completed trial is final, and the only other
//!   trials' data a pruner reads are completed trials' curves and recorded rung values, so a
//!   decision sees exactly the trials a serial Optuna study would have seen at some order of
//!   the concurrent reports.
//! - A missing Job in the store is confirmed with a GET before a trial is failed for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::book::Book;
use super::samplers::KeptSamplers;
use crate::crd::curve::{self, CHUNK_LABEL, CurveChunk};
use crate::crd::{Point, STUDY_LABEL, Study, TRIAL_LABEL, Trial};

/// Locks a std mutex, ignoring poisoning (a panic elsewhere never wedges the operator).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stores of one watched scope (a namespace, or all of them).
pub struct Scope {
    pub namespace: Option<String>,
    pub studies: Store<Study>,
    pub trials: Store<Trial>,
    /// The same Trials by study, so a report reads its study's trials without scanning the
    /// namespace's.
    pub by_study: Arc<TrialsByStudy>,
    pub jobs: Store<Job>,
    pub chunks: Store<CurveChunk>,
}

/// See the module docs.
pub struct View {
    pub client: Client,
    scopes: Vec<Scope>,
    /// Every applied Study, Trial and Job (fan-out to the controllers; lagging receivers
    /// resynchronise from the stores).
    pub study_events: broadcast::Sender<Arc<Study>>,
    pub trial_events: broadcast::Sender<Arc<Trial>>,
    pub job_events: broadcast::Sender<Arc<Job>>,
    /// Trials as we last wrote them, by (namespace, study) then name; an entry goes once the
    /// store has caught up with it.
    written: Mutex<HashMap<(String, String), Written>>,
    /// Each study's book (by UID).
    books: Mutex<HashMap<String, Arc<Mutex<Book>>>>,
    /// Push tokens by trial UID (read once from the trial's Secret, or written by us).
    tokens: Mutex<HashMap<String, String>>,
    /// Jobs we deleted, and when (the store shows them until the deletion arrives; a second
    /// DELETE of the same Job would only cost a 404).
    deleted_jobs: Mutex<HashMap<(String, String), std::time::Instant>>,
    /// Each study's sampler, kept between reconciles.
    pub samplers: KeptSamplers,
    /// Per-trial report queues (see [`super::observe`]).
    pub slots: super::observe::Slots,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for View {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches `api` into a new store, sending each applied object to `tx`.
fn watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    tx: Option<broadcast::Sender<Arc<K>>>,
    on_event: impl Fn(&watcher::Event<K>, &Store<K>) + Send + 'static,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let r = reader.clone();
    let task = tokio::spawn(
        watcher(api, cfg)
            .default_backoff()
            // Nothing here reads field ownership; at 1,000 live trials it is a third of what
            // the stores would hold.
            .modify(|o| o.meta_mut().managed_fields = None)
            .reflect(writer)
            .for_each(move |ev| {
                if let Ok(ev) = &ev {
                    on_event(ev, &r);
                    if let Some(tx) = &tx {
                        forward(ev, &r, &Default::default(), |a| {
                            let _ = tx.send(a);
                        });
                    }
                }
                futures::future::ready(())
            }),
    );
    (reader, task)
}

/// Passes to `wake` what a watch event changed in `store` (after the reflector applied it).
/// A (re)list's objects reach the store only at its end (`InitDone`), so all of them go out
/// then: after a watch gap (a 410 when a CRD changes, a dropped connection) an object
/// created or changed meanwhile wakes its reconcile like any other change.
pub(super) fn forward<K>(
    ev: &watcher::Event<K>,
    store: &Store<K>,
    dt: &K::DynamicType,
    mut wake: impl FnMut(Arc<K>),
) where
    K: Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match ev {
        watcher::Event::Apply(o) => {
            if let Some(a) = store.get(&ObjectRef::from_obj_with(o, dt.clone())) {
                wake(a);
            }
        }
        watcher::Event::InitDone => store.state().into_iter().for_each(wake),
        watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::Delete(_) => {}
    }
}

/// For watches that keep nothing beside their store.
fn ignore<K>(_: &watcher::Event<K>, _: &Store<K>)
where
    K: Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
}

/// A study's key in [`TrialsByStudy`]: (namespace, study name).
type StudyKey = (String, String);

/// The Trials of a store by study, kept from the same watch events as the store (after the
/// store applied each), and rebuilt from the store after every full list.
#[derive(Default)]
pub struct TrialsByStudy(Mutex<HashMap<StudyKey, HashMap<String, Arc<Trial>>>>);

impl TrialsByStudy {
    fn key(t: &Trial) -> StudyKey {
        (t.namespace().unwrap_or_default(), t.spec.study.clone())
    }

    /// Follows one watch event (`store` has applied it already).
    fn on_event(&self, ev: &watcher::Event<Trial>, store: &Store<Trial>) {
        match ev {
            watcher::Event::Apply(o) => {
                if let Some(a) = store.get(&ObjectRef::from_obj(o)) {
                    lock(&self.0)
                        .entry(Self::key(&a))
                        .or_default()
                        .insert(a.name_any(), a);
                }
            }
            watcher::Event::Delete(o) => {
                let mut all = lock(&self.0);
                let key = Self::key(o);
                if let Some(m) = all.get_mut(&key) {
                    m.remove(&o.name_any());
                    if m.is_empty() {
                        all.remove(&key);
                    }
                }
            }
            // A full list replaced the store: objects deleted meanwhile sent no event.
            watcher::Event::InitDone => self.rebuild(store.state()),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn rebuild(&self, trials: Vec<Arc<Trial>>) {
        let mut all: HashMap<StudyKey, HashMap<String, Arc<Trial>>> = HashMap::new();
        for t in trials {
            all.entry(Self::key(&t))
                .or_default()
                .insert(t.name_any(), t);
        }
        *lock(&self.0) = all;
    }

    /// The Trials naming `study` in `ns`.
    fn of(&self, ns: &str, study: &str) -> Vec<Arc<Trial>> {
        lock(&self.0)
            .get(&(ns.to_string(), study.to_string()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Whether `a` was written after `b` (resourceVersions are etcd revisions; when either does
/// not read as a number, a different one counts as newer).
pub fn newer(a: Option<&str>, b: Option<&str>) -> bool {
    match (
        a.and_then(|a| a.parse::<u64>().ok()),
        b.and_then(|b| b.parse::<u64>().ok()),
    ) {
        (Some(x), Some(y)) => x > y,
        _ => a != b,
    }
}

/// Whether `t` is one of `study`'s trials: it names the study and carries its label (what
/// the operator puts on the Trials it creates; a Trial made by hand without it is not
/// counted, as with a label-selected list).
fn belongs(t: &Trial, ns: &str, study: &str) -> bool {
    t.spec.study == study
        && t.namespace().as_deref() == Some(ns)
        && t.labels().get(STUDY_LABEL).is_some_and(|l| l == study)
}

/// The senders of applied Studies, Trials and Jobs.
type Events = (
    broadcast::Sender<Arc<Study>>,
    broadcast::Sender<Arc<Trial>>,
    broadcast::Sender<Arc<Job>>,
);

/// Our last written Trials of one study, by name.
type Written = HashMap<String, Arc<Trial>>;

/// The newer of the store's `s` and our written copy of it (dropping ours once the store
/// caught up, or when the Trial was recreated under the same name).
fn pick(mine: &mut Written, s: Arc<Trial>) -> Arc<Trial> {
    let name = s.name_any();
    match mine.get(&name) {
        Some(w)
            if w.uid() == s.uid()
                && newer(
                    w.resource_version().as_deref(),
                    s.resource_version().as_deref(),
                ) =>
        {
            w.clone()
        }
        Some(_) => {
            mine.remove(&name);
            s
        }
        None => s,
    }
}

impl View {
    /// Starts the watches for `namespaces` (empty: all) and returns at once; see
    /// [`View::ready`].
    pub fn start(client: Client, namespaces: &[String]) -> Arc<View> {
        let (study_events, _) = broadcast::channel(4096);
        let (trial_events, _) = broadcast::channel(16384);
        let (job_events, _) = broadcast::channel(4096);
        let scopes_ns: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().cloned().map(Some).collect()
        };
        let mut scopes = Vec::new();
        let mut tasks = Vec::new();
        let all = watcher::Config::default();
        for ns in scopes_ns {
            let n = ns.as_deref();
            let (studies, a) = watch(
                api(&client, n),
                all.clone(),
                Some(study_events.clone()),
                ignore,
            );
            let by_study = Arc::new(TrialsByStudy::default());
            let index = by_study.clone();
            let (trials, b) = watch(
                api(&client, n),
                all.clone(),
                Some(trial_events.clone()),
                move |ev, store| index.on_event(ev, store),
            );
            let (jobs, c) = watch(
                api(&client, n),
                watcher::Config::default().labels(TRIAL_LABEL),
                Some(job_events.clone()),
                ignore,
            );
            let (chunks, d) = watch::<CurveChunk>(
                api(&client, n),
                watcher::Config::default().labels(CHUNK_LABEL),
                None,
                ignore,
            );
            tasks.extend([a, b, c, d]);
            scopes.push(Scope {
                namespace: ns,
                studies,
                trials,
                by_study,
                jobs,
                chunks,
            });
        }
        Self::assemble(
            client,
            scopes,
            (study_events, trial_events, job_events),
            tasks,
        )
    }

    fn assemble(
        client: Client,
        scopes: Vec<Scope>,
        (study_events, trial_events, job_events): Events,
        tasks: Vec<JoinHandle<()>>,
    ) -> Arc<View> {
        Arc::new(View {
            client,
            scopes,
            study_events,
            trial_events,
            job_events,
            written: Mutex::new(HashMap::new()),
            books: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            deleted_jobs: Mutex::new(HashMap::new()),
            samplers: KeptSamplers::default(),
            slots: Default::default(),
            tasks,
        })
    }

    /// A view of fixed objects in namespace `ns` (no watches): for tests of the decision and
    /// write paths against a mock API, and for tools that bring their own objects.
    pub fn from_objects(
        client: Client,
        ns: &str,
        studies: Vec<Study>,
        trials: Vec<Trial>,
        jobs: Vec<Job>,
    ) -> Arc<View> {
        fn filled<K>(objs: Vec<K>) -> Store<K>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Default + Eq + std::hash::Hash + Clone,
        {
            let mut w = reflector::store::Writer::<K>::default();
            w.apply_watcher_event(&watcher::Event::Init);
            for o in objs {
                w.apply_watcher_event(&watcher::Event::InitApply(o));
            }
            w.apply_watcher_event(&watcher::Event::InitDone);
            w.as_reader()
        }
        let trials = filled(trials);
        let by_study = Arc::new(TrialsByStudy::default());
        by_study.rebuild(trials.state());
        let scope = Scope {
            namespace: Some(ns.to_string()),
            studies: filled(studies),
            trials,
            by_study,
            jobs: filled(jobs),
            chunks: filled(Vec::new()),
        };
        let events = (
            broadcast::channel(16).0,
            broadcast::channel(16).0,
            broadcast::channel(16).0,
        );
        Self::assemble(client, vec![scope], events, Vec::new())
    }

    /// Waits until every store has its first full list (or `timeout` passes; false then).
    pub async fn ready(&self, timeout: Duration) -> bool {
        let all = async {
            for s in &self.scopes {
                let _ = s.studies.wait_until_ready().await;
                let _ = s.trials.wait_until_ready().await;
                let _ = s.jobs.wait_until_ready().await;
                let _ = s.chunks.wait_until_ready().await;
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The scope watching `ns`; `None` when `ns` is not watched.
    pub fn scope(&self, ns: &str) -> Option<&Scope> {
        self.scopes
            .iter()
            .find(|s| s.namespace.as_deref().is_none_or(|n| n == ns))
    }

    /// Whether `ns` is watched.
    pub fn watches(&self, ns: &str) -> bool {
        self.scope(ns).is_some()
    }

    pub fn study(&self, ns: &str, name: &str) -> Option<Arc<Study>> {
        self.scope(ns)?
            .studies
            .get(&ObjectRef::new(name).within(ns))
    }

    /// The newest known state of a Trial: the store's or the one we last wrote.
    pub fn trial(&self, ns: &str, name: &str) -> Option<Arc<Trial>> {
        let stored = self.scope(ns)?.trials.get(&ObjectRef::new(name).within(ns));
        let mut written = lock(&self.written);
        match stored {
            Some(s) => {
                let key = (ns.to_string(), s.spec.study.clone());
                let Some(mine) = written.get_mut(&key) else {
                    return Some(s);
                };
                Some(pick(mine, s))
            }
            // Ours may simply not have reached the store yet.
            None => written
                .iter()
                .filter(|((n, _), _)| n == ns)
                .find_map(|(_, m)| m.get(name).cloned()),
        }
    }

    /// Records a Trial as the API returned it after our write.
    pub fn wrote(&self, mut t: Trial) {
        t.metadata.managed_fields = None;
        let key = (t.namespace().unwrap_or_default(), t.spec.study.clone());
        lock(&self.written)
            .entry(key)
            .or_default()
            .insert(t.name_any(), Arc::new(t));
    }

    /// Every Trial of `study` in `ns` (newest known state of each).
    pub fn study_trials(&self, ns: &str, study: &str) -> Vec<Arc<Trial>> {
        let Some(scope) = self.scope(ns) else {
            return Vec::new();
        };
        let stored: Vec<Arc<Trial>> = scope
            .by_study
            .of(ns, study)
            .into_iter()
            .filter(|t| belongs(t, ns, study))
            .collect();
        let mut written = lock(&self.written);
        let Some(mine) = written.get_mut(&(ns.to_string(), study.to_string())) else {
            return stored;
        };
        let mut names = std::collections::HashSet::with_capacity(stored.len());
        let mut out: Vec<Arc<Trial>> = stored
            .into_iter()
            .map(|s| {
                names.insert(s.name_any());
                pick(mine, s)
            })
            .collect();
        // Written (created) by us but not in the store yet.
        out.extend(
            mine.iter()
                .filter(|(n, w)| !names.contains(*n) && belongs(w, ns, study))
                .map(|(_, w)| w.clone()),
        );
        out
    }

    pub fn job(&self, ns: &str, name: &str) -> Option<Arc<Job>> {
        self.scope(ns)?.jobs.get(&ObjectRef::new(name).within(ns))
    }

    /// The points of a trial's sealed chunks `0..count`, in order; `None` when one is not
    /// in the store (yet) or unreadable.
    pub fn sealed_points(&self, ns: &str, trial: &str, count: u32) -> Option<Vec<Point>> {
        let scope = self.scope(ns)?;
        let mut out = Vec::new();
        for k in 0..count {
            let cm = scope
                .chunks
                .get(&ObjectRef::new(&curve::chunk_name(trial, k)).within(ns))?;
            match curve::chunk_points(&cm) {
                Ok(p) => out.extend(p),
                Err(e) => {
                    tracing::warn!(namespace = ns, trial, error = %e, "curve chunk unreadable");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The book of a study (made empty on first use; see [`Book::sync`]).
    pub fn book(&self, study: &Study) -> Arc<Mutex<Book>> {
        let uid = study.uid().unwrap_or_else(|| study.name_any());
        lock(&self.books)
            .entry(uid)
            .or_insert_with(|| Arc::new(Mutex::new(Book::default())))
            .clone()
    }

    /// Forgets what is kept for a study that is gone (its book, sampler and the Trials we
    /// wrote last).
    pub fn forget_study(&self, uid: &str) {
        lock(&self.books).remove(uid);
        self.samplers.forget(uid);
        lock(&self.written).retain(|_, m| {
            m.retain(|_, t| !t.owner_references().iter().any(|o| o.uid == uid));
            !m.is_empty()
        });
    }

    /// UIDs of the studies with a book.
    pub fn booked_studies(&self) -> Vec<String> {
        lock(&self.books).keys().cloned().collect()
    }

    /// Records that we deleted Job `ns/name`.
    pub fn deleted_job(&self, ns: &str, name: &str) {
        let mut d = lock(&self.deleted_jobs);
        let now = std::time::Instant::now();
        d.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        d.insert((ns.to_string(), name.to_string()), now);
    }

    /// Whether we deleted Job `ns/name` in the last minute.
    pub fn job_recently_deleted(&self, ns: &str, name: &str) -> bool {
        lock(&self.deleted_jobs)
            .get(&(ns.to_string(), name.to_string()))
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
    }

    pub fn token(&self, trial_uid: &str) -> Option<String> {
        lock(&self.tokens).get(trial_uid).cloned()
    }

    pub fn set_token(&self, trial_uid: &str, token: String) {
        let mut t = lock(&self.tokens);
        // Bounded: tokens of trials that are gone are dropped when it grows large.
        if t.len() > 100_000 {
            t.clear();
        }
        t.insert(trial_uid.to_string(), token);
    }

    /// Every Study in every scope.
    pub fn all_studies(&self) -> Vec<Arc<Study>> {
        self.scopes.iter().flat_map(|s| s.studies.state()).collect()
    }

    /// Every Trial in every scope (store state).
    pub fn all_trials(&self) -> Vec<Arc<Trial>> {
        self.scopes.iter().flat_map(|s| s.trials.state()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TrialSpec;

    fn trial(ns: &str, study: &str, n: u64) -> Trial {
        let mut t = Trial::new(
            &format!("{study}-{n}"),
            TrialSpec {
                study: study.into(),
                number: n,
                params: Default::default(),
                invalid: None,
            },
        );
        t.metadata.namespace = Some(ns.into());
        t.metadata.resource_version = Some(n.to_string());
        t
    }

    fn names(v: Vec<Arc<Trial>>) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|t| t.name_any()).collect();
        v.sort();
        v
    }

    /// What a relist brings (an object created while the watch was down) reaches the
    /// triggers once the store holds it; an applied object at once.
    #[test]
    fn a_relist_wakes_every_object_it_brings() {
        let mut w = reflector::store::Writer::<Trial>::default();
        let store = w.as_reader();
        let (tx, mut rx) = broadcast::channel(16);
        let mut feed = |ev: watcher::Event<Trial>| {
            w.apply_watcher_event(&ev);
            forward(&ev, &store, &(), |a| {
                let _ = tx.send(a);
            });
        };
        let mut sent = || {
            let mut v = Vec::new();
            while let Ok(a) = rx.try_recv() {
                v.push(a);
            }
            names(v)
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(trial("a", "s", 0)));
        feed(watcher::Event::InitDone);
        assert_eq!(sent(), ["s-0"]);
        feed(watcher::Event::Apply(trial("a", "s", 1)));
        assert_eq!(sent(), ["s-1"]);
        // A 410 and a relist that brings a new object: nothing goes out before the store has
        // it, then every object does.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(trial("a", "s", 1)));
        feed(watcher::Event::InitApply(trial("a", "s", 2)));
        assert!(sent().is_empty());
        feed(watcher::Event::InitDone);
        assert_eq!(sent(), ["s-1", "s-2"]);
    }

    /// The index follows the store: applied, deleted, and a relist that misses a deletion.
    #[test]
    fn trials_by_study_follow_the_store() {
        let mut w = reflector::store::Writer::<Trial>::default();
        let store = w.as_reader();
        let index = TrialsByStudy::default();
        let mut feed = |ev: watcher::Event<Trial>| {
            w.apply_watcher_event(&ev);
            index.on_event(&ev, &store);
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(trial("a", "s", 0)));
        feed(watcher::Event::InitDone);
        feed(watcher::Event::Apply(trial("a", "s", 1)));
        feed(watcher::Event::Apply(trial("a", "t", 0)));
        feed(watcher::Event::Apply(trial("b", "s", 5)));
        assert_eq!(names(index.of("a", "s")), ["s-0", "s-1"]);
        assert_eq!(names(index.of("a", "t")), ["t-0"]);
        assert_eq!(names(index.of("b", "s")), ["s-5"]);
        feed(watcher::Event::Delete(trial("a", "s", 0)));
        assert_eq!(names(index.of("a", "s")), ["s-1"]);
        // A relist without `a/t-0` (deleted while the watch was down): gone from the index.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(trial("a", "s", 1)));
        feed(watcher::Event::InitApply(trial("b", "s", 5)));
        feed(watcher::Event::InitDone);
        assert!(index.of("a", "t").is_empty());
        assert_eq!(names(index.of("a", "s")), ["s-1"]);
        // The index holds the store's own objects.
        let s1 = index.of("a", "s").pop().unwrap();
        assert!(Arc::ptr_eq(
            &s1,
            &store.get(&ObjectRef::from_obj(&*s1)).unwrap()
        ));
    }

    #[test]
    fn resource_versions_compare_as_numbers() {
        assert!(newer(Some("10"), Some("9")));
        assert!(!newer(Some("9"), Some("10")));
        assert!(!newer(Some("9"), Some("9")));
        assert!(newer(Some("x"), Some("9")));
        assert!(newer(Some("1"), None));
    }
}
