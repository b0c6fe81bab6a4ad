//! The operator side of the metric sources.
//!
//! - [`env_hook`]: for `push`, `file` and `tensorboard` studies, the per-trial token Secret
//!   (named like the Trial, key `token`, owned by the Trial) and the Job's `LOPPER_TOKEN`
//!   (secretKeyRef), `LOPPER_REPORT_URL` and `LOPPER_METRIC`; for `file` and `tensorboard`
//!   also `LOPPER_METRICS_PATH` and the metrics sidecar (`crate::sidecar`).
//! - [`PushSink`]: the [`ReportSink`] that checks the token and records through `observe`,
//!   reading only the operator's [`View`] (no API request in the steady state).
//! - [`run`]: follows the view's Studies and Trials and keeps one log follower per unfinished
//!   trial of a `logs` study and one poller per unfinished `prometheus` study.
//! - [`http_router`]: the push route for [`super::server::serve`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::prometheus::{self as prom, Auth, Cursor, PromClient};
use super::push::{self, RateLimiter, ReportError, ReportSink, objective_value, tokens_match};
use super::spec::{MetricsSpec, PrometheusSpec};
use super::telemetry;
use crate::controller::{EnvHook, ObserveError, View, observe};
use crate::crd::{Study, Trial, TrialPhase};
use crate::workload::job::TrialExtras;
use crate::workload::sidecar::shared_folder;

/// The field manager of the `MetricsUnavailable` condition.
pub const FIELD_MANAGER: &str = "lopper-metrics";

/// Key of the token in the per-trial Secret.
pub const TOKEN_KEY: &str = "token";

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The env hook for the Trial controller with the default sidecar image
/// ([`DEFAULT_SIDECAR_IMAGE`]); see [`env_hook_with_sidecar`].
pub fn env_hook(report_base_url: String) -> EnvHook {
    env_hook_with_sidecar(report_base_url, DEFAULT_SIDECAR_IMAGE.to_string())
}

/// The metrics sidecar's image when none is given: the operator's own, as the chart names it
/// by default (`lopper:<appVersion>`).
pub const DEFAULT_SIDECAR_IMAGE: &str = concat!("lopper:", env!("CARGO_PKG_VERSION"));

/// The env hook for the Trial controller: studies whose trials report through the push
/// endpoint (`push`, and `file` / `tensorboard` through their sidecar, whose image is
/// `sidecar_image`) get a token Secret and the env of the push protocol; other sources get
/// nothing. `report_base_url` is how pods reach the operator's HTTP port, e.g.
/// `http://lopper.lopper-system.svc:8080`.
pub fn env_hook_with_sidecar(report_base_url: String, sidecar_image: String) -> EnvHook {
    let base = Arc::new(report_base_url.trim_end_matches('/').to_string());
    let image = Arc::new(sidecar_image);
    Arc::new(move |view: Arc<View>, study: Arc<Study>, trial: Trial| {
        let base = base.clone();
        let image = image.clone();
        Box::pin(async move {
            let metrics = study.metrics();
            if !metrics.uses_push_endpoint() {
                return Ok(TrialExtras::default());
            }
            let ns = trial
                .namespace()
                .ok_or_else(|| "trial without namespace".to_string())?;
            let name = trial.name_any();
            let token = ensure_token_secret(&view.client, &ns, &trial)
                .await
                .map_err(|e| format!("token Secret {ns}/{name}: {e}"))?;
            if let Some(uid) = trial.uid() {
                view.set_token(&uid, token);
            }
            let mut env = push_env(&base, &ns, &name, &study.spec.objective.metric);
            let sidecar = shared_folder(&metrics).map(|(_, followed)| {
                // The trainer can write where the sidecar reads without repeating the path.
                env.push(EnvVar {
                    name: METRICS_PATH_ENV.into(),
                    value: Some(followed),
                    ..Default::default()
                });
                image.to_string()
            });
            Ok(TrialExtras {
                env,
                sidecar_image: sidecar,
            })
        })
    })
}

/// The variable naming the metrics file (or TensorBoard folder) of a `file` or `tensorboard`
/// trial, in the pod and under `lopper run`.
pub const METRICS_PATH_ENV: &str = "LOPPER_METRICS_PATH";

/// The env of a push trial (`LOPPER_TOKEN` from the Secret named like the Trial).
pub fn push_env(base: &str, namespace: &str, trial: &str, metric: &str) -> Vec<EnvVar> {
    vec![
        EnvVar {
            name: "LOPPER_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: trial.to_string(),
                    key: TOKEN_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        EnvVar {
            name: "LOPPER_REPORT_URL".into(),
            value: Some(format!(
                "{}{}",
                base.trim_end_matches('/'),
                push::report_path(namespace, trial)
            )),
            ..Default::default()
        },
        EnvVar {
            name: "LOPPER_METRIC".into(),
            value: Some(metric.to_string()),
            ..Default::default()
        },
    ]
}

/// Creates the trial's token Secret unless it exists (owned by the Trial); returns the token.
pub async fn ensure_token_secret(
    client: &Client,
    namespace: &str,
    trial: &Trial,
) -> Result<String, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = trial.name_any();
    // Create first: the Secret usually does not exist yet, and AlreadyExists says it does.
    let token = random_token();
    let owner = trial
        .controller_owner_ref(&())
        .map(|mut o: OwnerReference| {
            o.controller = Some(false);
            o.block_owner_deletion = Some(true);
            o
        });
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (crate::crd::TRIAL_LABEL.to_string(), name.clone()),
                (
                    crate::crd::STUDY_LABEL.to_string(),
                    trial.spec.study.clone(),
                ),
            ])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(token.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(token),
        Err(e) if is_status(&e, 409) => {
            // Made earlier (a retried reconcile, a restart) or by a racing one: use it.
            let s = api.get(&name).await?;
            secret_token(&s).ok_or_else(|| {
                kube::Error::Service(format!("Secret {namespace}/{name} has no {TOKEN_KEY}").into())
            })
        }
        Err(e) => Err(e),
    }
}

fn secret_token(s: &Secret) -> Option<String> {
    let v = s.data.as_ref()?.get(TOKEN_KEY)?;
    let t = String::from_utf8_lossy(&v.0).trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The operator's [`ReportSink`]. Nothing is revealed before the token is checked: an
/// unknown trial, a namespace the operator does not watch and a wrong token all get the same
/// 401. The trial, its study and its token come from the view (the token Secret is read once
/// per trial, then remembered); then 409 finished, 429 over the per-trial rate, 400 objective
/// missing; records through `observe`.
#[derive(Clone)]
pub struct PushSink {
    view: Arc<View>,
    limiter: Arc<RateLimiter>,
}

impl PushSink {
    pub fn new(view: Arc<View>) -> Self {
        PushSink {
            view,
            limiter: Arc::new(RateLimiter::default()),
        }
    }

    /// The token the trial's pods were given: remembered, else its Secret (owned by it).
    async fn expected_token(&self, t: &Trial) -> Result<Option<String>, ReportError> {
        let Some(uid) = t.uid() else { return Ok(None) };
        if let Some(tok) = self.view.token(&uid) {
            return Ok(Some(tok));
        }
        let ns = t.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.view.client.clone(), &ns);
        let secret = secrets.get_opt(&t.name_any()).await.map_err(unavailable)?;
        let token = secret
            .as_ref()
            .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
            .and_then(secret_token);
        if let Some(tok) = &token {
            self.view.set_token(&uid, tok.clone());
        }
        Ok(token)
    }
}

fn unavailable(e: impl std::fmt::Display) -> ReportError {
    ReportError::Unavailable(format!("kubernetes API: {e}"))
}

impl ReportSink for PushSink {
    fn report<'a>(
        &'a self,
        namespace: &'a str,
        trial: &'a str,
        bearer_token: &'a str,
        step: i64,
        metrics: &'a BTreeMap<String, f64>,
    ) -> BoxFuture<'a, Result<bool, ReportError>> {
        Box::pin(async move {
            // Authenticate before revealing anything.
            let t = match self.view.trial(namespace, trial) {
                Some(t) if self.view.watches(namespace) => t,
                _ => return Err(ReportError::Unauthorized),
            };
            let expected = self.expected_token(&t).await?.unwrap_or_default();
            if !tokens_match(bearer_token, &expected) {
                return Err(ReportError::Unauthorized);
            }
            let phase = t.phase();
            if phase.is_finished() {
                return Err(ReportError::Finished {
                    trial: trial.into(),
                    phase: phase.as_str().into(),
                    prune: phase == TrialPhase::Pruned,
                });
            }
            if !self
                .limiter
                .allow(&t.uid().unwrap_or_default(), Instant::now())
            {
                return Err(ReportError::TooManyRequests);
            }
            let Some(study) = self.view.study(namespace, &t.spec.study) else {
                return Err(ReportError::NotFound(format!(
                    "{trial} (its study {} is gone)",
                    t.spec.study
                )));
            };
            let value = objective_value(metrics, &study.spec.objective.metric)?;
            match observe(&self.view, namespace, trial, &[(step, value)]).await {
                Ok(o) => Ok(o.prune),
                Err(ObserveError::NotFound(_)) => Err(ReportError::NotFound(trial.into())),
                Err(ObserveError::Finished { phase, prune, .. }) => Err(ReportError::Finished {
                    trial: trial.into(),
                    phase: phase.into(),
                    prune,
                }),
                Err(e) => Err(ReportError::Unavailable(e.to_string())),
            }
        })
    }
}

/// The push route backed by [`PushSink`].
pub fn http_router(view: Arc<View>) -> axum::Router {
    push::router(Arc::new(PushSink::new(view)))
}

/// Sets (`Some((reason, message))`) or clears (`None`) the Study's `MetricsUnavailable`
/// condition with server-side apply under [`FIELD_MANAGER`].
pub async fn set_unavailable(
    client: &Client,
    namespace: &str,
    study: &str,
    problem: Option<(&str, &str)>,
) -> Result<(), kube::Error> {
    let api: Api<Study> = Api::namespaced(client.clone(), namespace);
    let (status, reason, message) = match problem {
        Some((r, m)) => ("True", r, m),
        None => ("False", "MetricsAvailable", "metrics are readable again"),
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({
        "apiVersion": "lopper.dev/v1alpha1",
        "kind": "Study",
        "status": {"conditions": [{
            "type": prom::CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }]}
    });
    api.patch_status(
        study,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map(|_| ())
}

/// The running trials of a study as the poller needs them: name and last recorded step.
type TrialList = Vec<(String, Option<i64>)>;

async fn load_auth(
    client: &Client,
    namespace: &str,
    spec: &PrometheusSpec,
) -> Result<Option<Auth>, String> {
    let Some(a) = &spec.auth else { return Ok(None) };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let s = api
        .get(&a.secret_ref.name)
        .await
        .map_err(|e| format!("auth Secret {}: {e}", a.secret_ref.name))?;
    let data: BTreeMap<String, Vec<u8>> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Auth::from_secret(&a.secret_ref.name, s.metadata.labels.as_ref(), &data).map(Some)
}

/// How long a Prometheus client (its connection pool and the credentials it was built with)
/// is reused before the auth Secret is read again: a rotated or withdrawn Secret takes effect
/// within this, and at once after any failed poll.
const CLIENT_RELOAD: Duration = Duration::from_secs(60);

/// The study's Prometheus client, kept across polls in `cache`; built anew (reading the auth
/// Secret) when there is none or it is older than [`CLIENT_RELOAD`].
async fn prom_client<'a>(
    cache: &'a mut Option<(PromClient, Instant)>,
    client: &Client,
    namespace: &str,
    spec: &PrometheusSpec,
    timeout: Duration,
) -> Result<&'a PromClient, (&'static str, String)> {
    if cache
        .as_ref()
        .is_none_or(|(_, built)| built.elapsed() >= CLIENT_RELOAD)
    {
        *cache = None;
        let auth = load_auth(client, namespace, spec)
            .await
            .map_err(|e| ("AuthSecretUnreadable", e))?;
        let pc = PromClient::new(&spec.url, auth, timeout).map_err(|e| ("PrometheusClient", e))?;
        *cache = Some((pc, Instant::now()));
    }
    cache
        .as_ref()
        .map(|(pc, _)| pc)
        .ok_or(("PrometheusClient", "no client".to_string()))
}

/// Polls Prometheus for one study until aborted.
pub async fn poll_study(
    view: Arc<View>,
    namespace: String,
    study: String,
    spec: PrometheusSpec,
    mut trials: watch::Receiver<TrialList>,
    mut condition: Option<bool>,
) {
    let client = view.client.clone();
    let interval = spec.interval().unwrap_or(PrometheusSpec::DEFAULT_INTERVAL);
    let timeout = interval.clamp(Duration::from_secs(2), Duration::from_secs(10));
    let mut cursors: HashMap<String, Cursor> = HashMap::new();
    let mut failures = 0u32;
    let mut last_problem: Option<String> = None;
    let mut http: Option<(PromClient, Instant)> = None;
    loop {
        let list = trials.borrow_and_update().clone();
        let names: Vec<String> = list.iter().map(|(n, _)| n.clone()).collect();
        let problem: Option<(&'static str, String)> = if names.is_empty() {
            None
        } else {
            for (n, last) in &list {
                cursors.entry(n.clone()).or_insert_with(|| Cursor {
                    last_step: *last,
                    ..Default::default()
                });
            }
            let result = match prom_client(&mut http, &client, &namespace, &spec, timeout).await {
                Err(e) => Err(e),
                Ok(pc) => prom::poll_once(pc, &spec, &names, &study, &namespace, &mut cursors)
                    .await
                    .map_err(|e| (e.reason(), e.to_string())),
            };
            if result.is_err() {
                http = None;
            }
            match result {
                Err((reason, msg)) => {
                    failures += 1;
                    telemetry::error("prometheus", reason);
                    tracing::warn!(%namespace, %study, error = %msg, "prometheus metrics unavailable");
                    Some((reason, msg))
                }
                Ok(res) => {
                    failures = 0;
                    let mut by_trial: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
                    for (t, p) in res.points {
                        by_trial.entry(t).or_default().push(p);
                    }
                    for (t, points) in by_trial {
                        telemetry::observed("prometheus", points.len());
                        match observe(&view, &namespace, &t, &points).await {
                            Ok(_) => {}
                            Err(ObserveError::NotFound(_)) | Err(ObserveError::Finished { .. }) => {
                                cursors.remove(&t);
                            }
                            Err(e) => {
                                telemetry::error("prometheus", "observe");
                                tracing::warn!(trial = %t, error = %e, "recording prometheus metrics failed");
                            }
                        }
                    }
                    if res.absent.is_empty() {
                        None
                    } else {
                        telemetry::error("prometheus", "SeriesAbsent");
                        Some((
                            "SeriesAbsent",
                            format!(
                                "no series for running trials {} from {}",
                                res.absent.join(", "),
                                spec.value
                            ),
                        ))
                    }
                }
            }
        };
        // Write the condition on changes only.
        let want = problem.is_some();
        let msg = problem.as_ref().map(|(_, m)| m.clone());
        if condition.is_none() && !want {
            // Never marked and fine: nothing to clear.
            condition = Some(false);
        } else if condition != Some(want) || (want && msg != last_problem) {
            let r = set_unavailable(
                &client,
                &namespace,
                &study,
                problem.as_ref().map(|(r, m)| (*r, m.as_str())),
            )
            .await;
            match r {
                Ok(()) => {
                    condition = Some(want);
                    last_problem = msg;
                }
                Err(e) => {
                    tracing::warn!(%study, error = %e, "writing the MetricsUnavailable condition failed")
                }
            }
        }
        let delay = prom::backoff(interval, failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            r = trials.changed(), if failures == 0 && names.is_empty() => {
                if r.is_err() { return; }
            }
        }
    }
}

struct Poller {
    spec: PrometheusSpec,
    tx: watch::Sender<TrialList>,
    task: JoinHandle<()>,
}

struct Follower {
    uid: String,
    task: JoinHandle<()>,
}

// Followers and pollers end with the manager (e.g. when leadership is lost), never linger.
impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the metric-source manager on `view` until aborted.
pub async fn run(view: Arc<View>) {
    let mut studies_rx = view.study_events.subscribe();
    let mut trials_rx = view.trial_events.subscribe();
    let mut followers: HashMap<(String, String), Follower> = HashMap::new();
    let mut done: HashSet<String> = HashSet::new(); // trial uids whose follower ended
    let mut pollers: HashMap<(String, String), Poller> = HashMap::new();
    loop {
        // Only `logs` and `prometheus` studies need anything here; studies reporting through
        // the push endpoint (push, file, tensorboard: the common case at scale) are skipped
        // before their trials are even looked at.
        let studies: HashMap<(String, String), Arc<Study>> = view
            .all_studies()
            .into_iter()
            .filter(|s| !s.metrics().uses_push_endpoint())
            .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
            .collect();
        let names: HashSet<&str> = studies.keys().map(|(_, n)| n.as_str()).collect();
        let trials: Vec<Arc<Trial>> = if studies.is_empty() {
            Vec::new()
        } else {
            view.all_trials()
                .into_iter()
                .filter(|t| names.contains(t.spec.study.as_str()))
                .collect()
        };
        let mut want_followers = HashSet::new();
        let mut running: HashMap<(String, String), TrialList> = HashMap::new();
        let mut uids = HashSet::new();
        for t in &trials {
            let ns = t.namespace().unwrap_or_default();
            let uid = t.uid().unwrap_or_default();
            uids.insert(uid.clone());
            let phase = t.phase();
            if phase.is_finished() {
                continue;
            }
            let Some(study) = studies.get(&(ns.clone(), t.spec.study.clone())) else {
                continue;
            };
            match study.metrics() {
                MetricsSpec::Logs(spec) => {
                    let key = (ns.clone(), t.name_any());
                    want_followers.insert(key.clone());
                    if done.contains(&uid) || followers.get(&key).is_some_and(|f| f.uid == uid) {
                        continue;
                    }
                    let workload = t
                        .status
                        .as_ref()
                        .and_then(|s| s.job.clone())
                        .unwrap_or_else(|| t.name_any());
                    let job = crate::workload::kinds::metrics_job_name(study, &workload);
                    let container = study.spec.trial_template.primary_container.clone();
                    let metric = study.spec.objective.metric.clone();
                    let (c, n, tn) = (view.clone(), ns.clone(), t.name_any());
                    let uid2 = uid.clone();
                    let task = tokio::spawn(async move {
                        match super::logs::follow_trial(
                            c,
                            n,
                            tn.clone(),
                            job,
                            container,
                            spec,
                            metric,
                        )
                        .await
                        {
                            Ok(end) => tracing::debug!(trial = %tn, ?end, "log follower ended"),
                            Err(e) => {
                                tracing::warn!(trial = %tn, error = %e, "log follower cannot start")
                            }
                        }
                    });
                    if let Some(old) = followers.insert(key, Follower { uid: uid2, task }) {
                        old.task.abort();
                    }
                }
                MetricsSpec::Prometheus(_) if phase == TrialPhase::Running => {
                    running
                        .entry((ns.clone(), t.spec.study.clone()))
                        .or_default()
                        .push((t.name_any(), t.status.as_ref().and_then(|s| s.last_step)));
                }
                _ => {}
            }
        }
        // Followers: stop unwanted ones, remember finished ones.
        followers.retain(|k, f| {
            if !want_followers.contains(k) {
                f.task.abort();
                return false;
            }
            if f.task.is_finished() {
                done.insert(f.uid.clone());
                return false;
            }
            true
        });
        done.retain(|u| uids.contains(u));
        // Pollers: one per unfinished prometheus study.
        let mut want_pollers = HashSet::new();
        for (key, s) in &studies {
            let MetricsSpec::Prometheus(spec) = s.metrics() else {
                continue;
            };
            if s.status
                .as_ref()
                .and_then(|st| st.phase)
                .is_some_and(|p| p.is_finished())
            {
                continue;
            }
            want_pollers.insert(key.clone());
            let mut list = running.remove(key).unwrap_or_default();
            list.sort();
            if let Some(p) = pollers.get(key)
                && p.spec == spec
                && !p.task.is_finished()
            {
                p.tx.send_if_modified(|cur| {
                    if *cur != list {
                        *cur = list.clone();
                        true
                    } else {
                        false
                    }
                });
                continue;
            }
            let condition = s.status.as_ref().and_then(|st| {
                st.conditions
                    .iter()
                    .find(|c| c.type_ == prom::CONDITION)
                    .map(|c| c.status == "True")
            });
            let (tx, rx) = watch::channel(list);
            let task = tokio::spawn(poll_study(
                view.clone(),
                key.0.clone(),
                key.1.clone(),
                spec.clone(),
                rx,
                condition,
            ));
            if let Some(old) = pollers.insert(key.clone(), Poller { spec, tx, task }) {
                old.task.abort();
            }
        }
        pollers.retain(|k, p| {
            let keep = want_pollers.contains(k);
            if !keep {
                p.task.abort();
            }
            keep
        });
        // Woken by any Study or Trial change (a burst is read as one), or every 5 s.
        tokio::select! {
            r = studies_rx.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { return; },
            r = trials_rx.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { return; },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        // Every report changes a Trial: gather a burst into one pass over the view.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while studies_rx.try_recv().is_ok() || trials_rx.try_recv().is_ok() {}
    }
}
