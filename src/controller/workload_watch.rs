//! Watches of the optional workload kinds (JobSet, TrainJob). Their CRDs may be missing, or
//! the operator may not be allowed to list them, so each watch runs on its own, apart from
//! the view (whose readiness must not wait on them): while the kind is not served, or its
//! watch has not listed yet, [`WorkloadWatch::get`] answers "not known" and the trial
//! reconcile reads the object itself and polls, as it did before the watch. Once listed,
//! the watch's events wake the trial (by its `lopper.dev/trial` label) and the reconcile
//! reads the cache: a running JobSet trial costs no request until its workload changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::status::is_status;
use super::view::forward;
use crate::crd::{TRIAL_LABEL, Trial};
use crate::workload::kinds::WorkloadKind;

/// How long to wait before looking again for a kind the cluster does not serve (or lets the
/// operator not list).
const RECHECK: Duration = Duration::from_secs(60);

/// One optional kind's cache.
pub struct WorkloadWatch {
    kind: WorkloadKind,
    store: Store<DynamicObject>,
    /// Listed and watching; false again after a watch error, until it has listed again.
    ready: AtomicBool,
}

impl WorkloadWatch {
    /// The workload `name` in `ns`: `None` when the cache cannot answer (not served, not
    /// listed yet, or not there yet: a workload just created may not have arrived), so the
    /// caller reads it through the API.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        if !self.is_ready() {
            return None;
        }
        self.store
            .get(&ObjectRef::new_with(name, self.kind.api_resource()).within(ns))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The watches of one scope (a namespace, or all).
pub struct WorkloadWatches {
    watches: Vec<Arc<WorkloadWatch>>,
}

impl WorkloadWatches {
    pub fn of(&self, kind: WorkloadKind) -> Option<&WorkloadWatch> {
        self.watches.iter().find(|w| w.kind == kind).map(|w| &**w)
    }
}

/// The watches for `namespace` (None: all), the future that runs them (run it as long as
/// the controllers), and the Trials their events wake.
pub fn start(
    client: Client,
    namespace: Option<String>,
) -> (
    Arc<WorkloadWatches>,
    impl Future<Output = ()>,
    mpsc::UnboundedReceiver<ObjectRef<Trial>>,
) {
    let (tx, rx) = mpsc::unbounded();
    let mut watches = Vec::new();
    let mut runs = Vec::new();
    for kind in [WorkloadKind::JobSet, WorkloadKind::TrainJob] {
        let writer = Writer::new(kind.api_resource());
        let w = Arc::new(WorkloadWatch {
            kind,
            store: writer.as_reader(),
            ready: AtomicBool::new(false),
        });
        watches.push(w.clone());
        runs.push(run(
            client.clone(),
            namespace.clone(),
            w,
            writer,
            tx.clone(),
        ));
    }
    let all = async move {
        futures::future::join_all(runs).await;
    };
    (Arc::new(WorkloadWatches { watches }), all, rx)
}

async fn run(
    client: Client,
    namespace: Option<String>,
    w: Arc<WorkloadWatch>,
    mut writer: Writer<DynamicObject>,
    tx: mpsc::UnboundedSender<ObjectRef<Trial>>,
) {
    let ar = w.kind.api_resource();
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    // Served and listable? A watcher on a missing CRD would only retry errors forever.
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => break,
            Err(e) if is_status(&e, 404) || is_status(&e, 403) => {
                tracing::debug!(kind = ?w.kind, error = %e, "workload kind not watched; trials poll it");
            }
            Err(e) => tracing::debug!(kind = ?w.kind, error = %e, "workload kind check"),
        }
        tokio::time::sleep(RECHECK).await;
    }
    tracing::info!(kind = ?w.kind, "watching workloads");
    let mut events = watcher(api, watcher::Config::default().labels(TRIAL_LABEL))
        .default_backoff()
        .boxed();
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                // The cache may be stale until the watcher has listed again.
                w.ready.store(false, Ordering::Release);
                tracing::debug!(kind = ?w.kind, error = %e, "workload watch");
                continue;
            }
        };
        writer.apply_watcher_event(&ev);
        let wake = |o: &DynamicObject| {
            if let Some(t) = trial_of(o) {
                let _ = tx.unbounded_send(t);
            }
        };
        match &ev {
            watcher::Event::InitDone => w.ready.store(true, Ordering::Release),
            // A deleted workload fails its running trial (`JobDeleted`).
            watcher::Event::Delete(o) => wake(o),
            _ => {}
        }
        forward(&ev, &w.store, &ar, |o| wake(&o));
    }
}

/// The Trial a workload belongs to, by its `lopper.dev/trial` label.
fn trial_of(o: &DynamicObject) -> Option<ObjectRef<Trial>> {
    let name = o.labels().get(TRIAL_LABEL)?;
    Some(ObjectRef::new(name).within(&o.namespace().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn jobset(name: &str, trial: Option<&str>) -> DynamicObject {
        let mut o = DynamicObject::new(name, &WorkloadKind::JobSet.api_resource()).within("ns");
        o.metadata = ObjectMeta {
            labels: trial.map(|t| [(TRIAL_LABEL.to_string(), t.to_string())].into()),
            ..o.metadata
        };
        o
    }

    #[test]
    fn the_cache_answers_only_once_listed() {
        let mut writer = Writer::new(WorkloadKind::JobSet.api_resource());
        let w = WorkloadWatch {
            kind: WorkloadKind::JobSet,
            store: writer.as_reader(),
            ready: AtomicBool::new(false),
        };
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(jobset("s-1", Some("s-1"))));
        assert!(w.get("ns", "s-1").is_none(), "not listed yet: read it");
        writer.apply_watcher_event(&watcher::Event::InitDone);
        w.ready.store(true, Ordering::Release);
        assert_eq!(w.get("ns", "s-1").unwrap().name_any(), "s-1");
        assert!(w.get("ns", "s-2").is_none());
        assert!(w.get("other", "s-1").is_none());
    }

    #[test]
    fn an_event_wakes_the_trial_of_its_label() {
        let t = trial_of(&jobset("s-7", Some("s-7"))).unwrap();
        assert_eq!(
            (t.name.as_str(), t.namespace.as_deref()),
            ("s-7", Some("ns"))
        );
        assert!(trial_of(&jobset("other", None)).is_none());
    }
}
