//! The operator: Study and Trial reconcilers, Job rendering, pruning, leader election.
//!
//! [`run`] starts both controllers for the configured namespaces (all when empty) and returns
//! when they stop; tests spawn it on their runtime with a client and one namespace.

pub mod job;
pub mod leader;
pub mod observe;
pub mod prune;
pub mod status;
pub mod study;
pub mod telemetry;
pub mod trial;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::EnvVar;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};

pub use observe::{ObserveError, ObserveOutcome, observe};

use crate::crd::{Study, Trial};
use crate::engine::samplers::{Sampler, SamplerSpec};

/// Extra environment for a trial's containers (e.g. a metric source's token), computed
/// before its Job is created. An error fails nothing: the Job creation is retried.
pub type EnvHook = Arc<
    dyn Fn(Arc<Study>, Trial, Client) -> BoxFuture<'static, Result<Vec<EnvVar>, String>>
        + Send
        + Sync,
>;

/// Reconcile errors (retried with backoff; never a crash).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub env_hook: Option<EnvHook>,
    /// Each study's sampler (by UID, with the spec it was built from), kept between
    /// reconciles so that TPE's kept work carries over from one suggestion to the next.
    /// Only a cache: what a sampler keeps never changes a suggestion, so a restart loses
    /// speed, nothing else.
    pub samplers: KeptSamplers,
}

/// See [`Context::samplers`].
#[derive(Default)]
pub struct KeptSamplers(std::sync::Mutex<std::collections::HashMap<String, KeptSampler>>);

/// A study's sampler and the spec it was built from.
type KeptSampler = (SamplerSpec, Arc<dyn Sampler>);

impl KeptSamplers {
    /// Studies whose samplers are kept at most; past it the cache starts over. A TPE
    /// sampler keeps up to a few MB (its kept fits and normal masses), so 256 bound it.
    const MAX: usize = 256;

    /// The kept sampler of study `uid` if it was built from `spec`, else `built`, kept.
    pub fn get(&self, uid: &str, spec: &SamplerSpec, built: Box<dyn Sampler>) -> Arc<dyn Sampler> {
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, sampler)) = kept.get(uid)
            && s == spec
        {
            return sampler.clone();
        }
        if kept.len() >= Self::MAX {
            kept.clear();
        }
        let sampler: Arc<dyn Sampler> = Arc::from(built);
        kept.insert(uid.to_string(), (spec.clone(), sampler.clone()));
        sampler
    }
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

fn error_policy<K>(_obj: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn apis<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scope(client: Client, ns: Option<String>, cfg: Config) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        env_hook: cfg.env_hook.clone(),
        samplers: KeptSamplers::default(),
    });
    let ns = ns.as_deref();
    let wc = watcher::Config::default();
    let cc = ControllerConfig::default().concurrency(cfg.concurrency);

    // Studies: only spec changes (generation) trigger from the Study itself, so our own status
    // writes do not loop; every Trial change triggers its Study.
    let (reader, writer) = reflector::store::<Study>();
    let studies = watcher(apis::<Study>(&client, ns), wc.clone())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let study_ctl = Controller::for_stream(studies, reader)
        .owns(apis::<Trial>(&client, ns), wc.clone())
        .with_config(cc.clone().debounce(Duration::from_millis(300)))
        .run(study::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "study controller");
            }
        });
    let trial_ctl = Controller::new(apis::<Trial>(&client, ns), wc.clone())
        .owns(apis::<Job>(&client, ns), wc)
        .with_config(cc)
        .run(trial::reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "trial controller");
            }
        });
    futures::join!(study_ctl, trial_ctl);
}

/// Runs the Study and Trial controllers until they stop (the future can simply be dropped
/// or aborted: all state lives in the API).
pub async fn run(client: Client, cfg: Config) {
    if cfg.namespaces.is_empty() {
        run_scope(client, None, cfg).await;
    } else {
        let scopes = cfg
            .namespaces
            .iter()
            .map(|ns| run_scope(client.clone(), Some(ns.clone()), cfg.clone()));
        futures::future::join_all(scopes).await;
    }
}
