//! The operator: Study and Trial reconcilers, Job rendering, pruning, leader election.
//!
//! One [`View`] (watch-backed stores of Studies, Trials, Jobs and curve chunks) is made once
//! and shared by the reconcilers, the pruning decision ([`observe`]) and the metric sources.
//! Each reconcile reads the view, plans (pure), then applies its writes; see [`study`] and
//! [`trial`]. [`run`] starts both controllers on a view and returns when they stop.

pub mod book;
#[cfg(test)]
mod fixtures;
/// Job rendering lives in [`crate::workload::job`] (shared with `lopper run`).
pub use crate::workload::job;
pub mod leader;
pub mod observe;
pub mod prune;
pub mod queued;
pub mod samplers;
pub mod status;
pub mod study;
pub mod telemetry;
pub mod trial;
pub mod view;
pub mod workload_watch;
pub mod workloads;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::broadcast;

pub use observe::{ObserveError, ObserveOutcome, Slots, observe};
pub use view::View;

use crate::crd::{Study, Trial};
use crate::workload::job::TrialExtras;
use view::lock;

/// Extra environment for a trial's containers (e.g. a metric source's token) and the
/// metrics sidecar's image, computed before its Job is created. An error fails nothing: the
/// Job creation is retried.
pub type EnvHook = Arc<
    dyn Fn(Arc<View>, Arc<Study>, Trial) -> BoxFuture<'static, Result<TrialExtras, String>>
        + Send
        + Sync,
>;

/// Reconcile errors (retried with per-object backoff; never a crash).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A short label for metrics: `api_<code>`, `api` (no answer) or `other`.
    pub fn kind(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => format!("api_{}", s.code),
            Error::Kube(_) => "api".into(),
            Error::Other(_) => "other".into(),
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub view: Arc<View>,
    pub env_hook: Option<EnvHook>,
    /// Consecutive failures per object (for the backoff), by kind/namespace/name.
    failures: Mutex<HashMap<String, u32>>,
    /// Studies with per-study gauges (removed when the study is gone).
    gauged: Mutex<HashSet<(String, String)>>,
    /// Caches of JobSets and TrainJobs, where the cluster serves them.
    pub workloads: Option<Arc<workload_watch::WorkloadWatches>>,
}

impl Context {
    pub fn new(view: Arc<View>, env_hook: Option<EnvHook>) -> Self {
        Context {
            view,
            env_hook,
            failures: Mutex::new(HashMap::new()),
            gauged: Mutex::new(HashSet::new()),
            workloads: None,
        }
    }

    pub(crate) fn succeeded(&self, key: &str) {
        let mut f = lock(&self.failures);
        if !f.is_empty() {
            f.remove(key);
        }
    }

    /// Records a failure; returns how many in a row.
    fn failed(&self, key: &str) -> u32 {
        let mut f = lock(&self.failures);
        let n = f.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    fn gauged(&self, ns: &str, name: &str) {
        lock(&self.gauged).insert((ns.to_string(), name.to_string()));
    }
}

pub(crate) fn object_key<K: Resource<DynamicType = ()>>(o: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        o.namespace().unwrap_or_default(),
        o.name_any()
    )
}

/// Exponential backoff per object: 1 s, 2 s, 4 s, … up to 5 minutes, with jitter, so a
/// persistent error (a 403, a webhook down) does not hot-loop every object.
pub fn backoff(failures: u32) -> Duration {
    let base = 1u64 << failures.saturating_sub(1).min(9);
    let secs = base.min(300);
    let jitter = rand::random::<u64>() % (secs * 250 + 1);
    Duration::from_millis(secs * 1000 + jitter)
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = object_key(obj.as_ref());
    let n = ctx.failed(&key);
    crate::metrics::telemetry::error(
        &format!("reconcile_{}", K::kind(&()).to_lowercase()),
        &err.kind(),
    );
    let delay = backoff(n);
    tracing::warn!(object = %key, error = %err, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How the controllers run.
#[derive(Clone)]
pub struct Config {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once per controller (0 = unbounded).
    pub concurrency: u16,
    pub env_hook: Option<EnvHook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespaces: Vec::new(),
            concurrency: 16,
            env_hook: None,
        }
    }
}

/// Every object of a store now, then every object applied afterwards (a receiver that lags
/// behind resynchronises from the store), limited to namespace `ns` (None: all).
fn triggers<K>(
    store: Store<K>,
    tx: &broadcast::Sender<Arc<K>>,
    ns: Option<String>,
) -> impl Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let rx = tx.subscribe();
    let initial = store.state();
    let later = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
        match rx.recv().await {
            Ok(a) => Some((vec![a], (rx, store))),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let all = store.state();
                Some((all, (rx, store)))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .flat_map(futures::stream::iter);
    futures::stream::iter(initial)
        .chain(later)
        .filter(move |o| {
            let keep = ns
                .as_deref()
                .is_none_or(|n| o.namespace().as_deref() == Some(n));
            futures::future::ready(keep)
        })
}

/// Passes an object only when `key` of it changed since it last passed (or it is new).
fn changed<K, F>(key: F) -> impl FnMut(&Arc<K>) -> futures::future::Ready<bool>
where
    K: Resource<DynamicType = ()>,
    F: Fn(&K) -> u64,
{
    let mut seen: HashMap<String, u64> = HashMap::new();
    move |o| {
        let k = key(o);
        let id = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
        let fresh = seen.insert(id, k) != Some(k);
        futures::future::ready(fresh)
    }
}

fn hash_of(v: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// What in a Trial matters to its Study's status and plan (not every report does).
fn study_relevance(t: &Trial) -> u64 {
    let s = t.status.as_ref();
    hash_of((
        t.uid(),
        t.phase().as_str(),
        s.and_then(|s| s.value).map(f64::to_bits),
        s.and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_millisecond()),
    ))
}

/// What in a Trial its own reconcile acts on: not the points, only phase, Job and whether
/// a decision is pending.
fn trial_relevance(t: &Trial) -> u64 {
    let s = t.status.as_ref();
    hash_of((
        t.uid(),
        t.meta().generation,
        t.meta().deletion_timestamp.is_some(),
        t.phase().as_str(),
        s.and_then(|s| s.job.clone()),
        s.map(|s| s.checked_step != s.intermediate.last().map(|p| p.step)),
        t.spec.invalid.is_some(),
    ))
}

async fn run_scope(view: Arc<View>, scope: usize, cfg: Config) {
    let s = &view.scopes()[scope];
    let ns = s.namespace.clone();
    let (workloads, watch_workloads, workload_events) =
        workload_watch::start(view.client.clone(), ns.clone());
    let ctx = Arc::new(Context {
        workloads: Some(workloads),
        ..Context::new(view.clone(), cfg.env_hook.clone())
    });
    let cc = ControllerConfig::default().concurrency(cfg.concurrency);

    // Studies: only spec changes (generation) trigger from the Study itself, so our own
    // status writes do not loop; a Trial's phase or value change triggers its Study.
    let studies = triggers(s.studies.clone(), &view.study_events, ns.clone())
        .filter(changed(|s: &Study| hash_of((s.uid(), s.meta().generation))));
    let trials_for_study =
        triggers(s.trials.clone(), &view.trial_events, ns.clone()).filter(changed(study_relevance));
    let study_ctl = Controller::for_shared_stream(studies, s.studies.clone())
        .watches_shared_stream(trials_for_study, |t: Arc<Trial>| {
            Some(ObjectRef::new(&t.spec.study).within(&t.namespace().unwrap_or_default()))
        })
        .with_config(cc.clone().debounce(Duration::from_millis(300)))
        .run(study::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "study controller");
            }
        });
    let trials =
        triggers(s.trials.clone(), &view.trial_events, ns.clone()).filter(changed(trial_relevance));
    let jobs = triggers(s.jobs.clone(), &view.job_events, ns.clone());
    let trial_ctl = Controller::for_shared_stream(trials, s.trials.clone())
        .owns_shared_stream(jobs)
        .reconcile_on(workload_events)
        .with_config(cc)
        .run(trial::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "trial controller");
            }
        });
    let janitor = janitor(ctx.clone(), scope);
    futures::join!(study_ctl, trial_ctl, janitor, watch_workloads);
}

/// Drops what is kept for studies that are gone: books, samplers, per-study gauges.
async fn janitor(ctx: Arc<Context>, scope: usize) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let s = &ctx.view.scopes()[scope];
        let live: Vec<Arc<Study>> = s.studies.state();
        let uids: HashSet<String> = ctx
            .view
            .all_studies()
            .iter()
            .filter_map(|s| s.uid())
            .collect();
        let names: HashSet<(String, String)> = live
            .iter()
            .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
            .collect();
        for uid in ctx.view.booked_studies() {
            if !uids.contains(&uid) {
                ctx.view.forget_study(&uid);
            }
        }
        let gone: Vec<(String, String)> = lock(&ctx.gauged)
            .iter()
            .filter(|k| !names.contains(*k) && s.namespace.as_ref().is_none_or(|n| n == &k.0))
            .cloned()
            .collect();
        for (ns, name) in gone {
            telemetry::forget_study(&ns, &name);
            lock(&ctx.gauged).remove(&(ns, name));
        }
    }
}

/// Runs the Study and Trial controllers on `view` until they stop (the future can simply be
/// dropped or aborted: all state lives in the API).
pub async fn run_on(view: Arc<View>, cfg: Config) {
    let scopes = (0..view.scopes().len()).map(|i| run_scope(view.clone(), i, cfg.clone()));
    futures::future::join_all(scopes).await;
}

/// Starts a view for `cfg.namespaces` and runs the controllers on it.
pub async fn run(client: Client, cfg: Config) {
    let view = View::start(client, &cfg.namespaces);
    view.ready(Duration::from_secs(120)).await;
    run_on(view, cfg).await;
}
