//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas are safe.
//!
//! Time is only ever measured on this process's own monotonic clock, as client-go's
//! `leaderelection` does, so clock skew between nodes cannot make two leaders:
//!
//! - A candidate takes a Lease held by someone else only once it has seen the same record
//!   (holder, `renewTime`, `resourceVersion`) unchanged for the Lease's `leaseDurationSeconds`,
//!   counted from when *it* first saw that record ([`Observer`]). The holder's `renewTime` is
//!   written for people to read and never compared with the local wall clock.
//! - The holder renews every `duration / 3` and must succeed within its renew deadline
//!   ([`LeaseLock::renew_deadline`], 2/3 of the duration), counted from the start of its last
//!   successful write ([`RenewClock`]); otherwise [`LeaseLock::hold`] returns and the caller
//!   stops (the Deployment restarts it). A candidate's count for the record of that write
//!   starts after the write, so the old leader has stopped at least `duration / 3` before
//!   anyone can take over.
//!
//! Every write is an update carrying the `resourceVersion` read, so two candidates never both
//! win. A free Lease (no holder, e.g. after [`LeaseLock::release`]) is taken at once.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// The identity of one version of the Lease record as a candidate sees it: any write by the
/// holder changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordKey {
    pub holder: String,
    pub renew_time: Option<String>,
    pub resource_version: Option<String>,
}

/// What a candidate has seen of a Lease held by someone else, on its own monotonic clock.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    seen: Option<(RecordKey, Instant)>,
}

impl Observer {
    /// Notes that `record` was read at `now`; true once the same record has been seen
    /// unchanged for longer than `duration` since it was first seen (the holder stopped
    /// renewing). A changed record starts the count again.
    pub fn observe(&mut self, record: RecordKey, now: Instant, duration: Duration) -> bool {
        match &self.seen {
            Some((key, since)) if *key == record => {
                now.saturating_duration_since(*since) > duration
            }
            _ => {
                self.seen = Some((record, now));
                false
            }
        }
    }

    /// Forgets what was seen (after this process wrote the Lease itself).
    pub fn reset(&mut self) {
        self.seen = None;
    }
}

/// The holder's side: when it last renewed, on its own monotonic clock, and how long it may
/// go without renewing before it must stop leading.
#[derive(Clone, Copy, Debug)]
pub struct RenewClock {
    last_ok: Instant,
    deadline: Duration,
}

impl RenewClock {
    /// `last_ok`: when the last successful write (acquire or renew) *started*; the record it
    /// wrote can only have been seen by others after that.
    pub fn new(last_ok: Instant, deadline: Duration) -> Self {
        RenewClock { last_ok, deadline }
    }

    /// A renewal that started at `started` succeeded.
    pub fn renewed(&mut self, started: Instant) {
        self.last_ok = self.last_ok.max(started);
    }

    /// The instant by which the next renewal must have succeeded.
    pub fn expires_at(&self) -> Instant {
        self.last_ok + self.deadline
    }

    /// Whether the holder must give up at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.expires_at()
    }
}

/// Why [`LeaseLock::hold`] returned: this process must stop acting as the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseLost {
    /// Another identity holds the Lease.
    TakenOver { holder: String },
    /// No renewal succeeded within the renew deadline.
    RenewDeadline { deadline: Duration },
}

impl fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseLost::TakenOver { holder } => write!(f, "the lease is held by {holder}"),
            LeaseLost::RenewDeadline { deadline } => {
                write!(f, "the lease was not renewed within {deadline:?}")
            }
        }
    }
}

/// The outcome of one try to take or renew the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// This identity holds the Lease (written just now).
    Held,
    /// Another identity holds it and has not let it expire.
    HeldBy(String),
    /// Someone else wrote the Lease between our read and our write.
    Conflict,
}

#[derive(Debug, Default)]
struct State {
    observer: Observer,
    /// When the last successful write of this identity started.
    last_ok: Option<Instant>,
}

/// A Lease-based lock.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    state: Arc<Mutex<State>>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            state: Arc::default(),
        }
    }

    /// How long the holder may go without a successful renewal before it stops leading:
    /// 2/3 of the lease duration, so it has stopped well before a candidate, counting the full
    /// duration from the last record it saw, takes over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Takes or renews the lease; `Ok(true)` while this identity holds it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        Ok(self.attempt().await? == Attempt::Held)
    }

    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let started = Instant::now();
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(self.written(started)),
                Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = holder.as_ref().filter(|_| !mine) {
            let record = RecordKey {
                holder: holder.clone(),
                renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
                resource_version: lease.metadata.resource_version.clone(),
            };
            let duration = spec
                .lease_duration_seconds
                .filter(|d| *d > 0)
                .map_or(self.duration, |d| Duration::from_secs(d as u64));
            let expired = self
                .state()
                .observer
                .observe(record, Instant::now(), duration);
            if !expired {
                return Ok(Attempt::HeldBy(holder.clone()));
            }
            tracing::info!(lease = %self.name, previous = %holder, "the lease expired; taking it");
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquired, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.written(started)),
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Notes a successful write that started at `started`.
    fn written(&self, started: Instant) -> Attempt {
        let mut st = self.state();
        st.observer.reset();
        st.last_ok = Some(st.last_ok.map_or(started, |t| t.max(started)));
        Attempt::Held
    }

    /// Waits until this identity holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.attempt().await {
                Ok(Attempt::Held) => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "leader election"),
            }
            tokio::time::sleep(self.duration / 4).await;
        }
    }

    /// Renews every `duration / 3` (retrying sooner after a failure) and returns once this
    /// identity no longer leads: another holds the Lease, or no renewal succeeded within
    /// [`LeaseLock::renew_deadline`] of the last successful one (a renewal still in flight
    /// at that instant is abandoned). The caller must then stop acting as the leader. The
    /// reason is logged; [`LeaseLock::hold_until_lost`] returns it.
    pub async fn hold(&self) {
        self.hold_until_lost().await;
    }

    /// [`LeaseLock::hold`], returning why leadership was lost.
    pub async fn hold_until_lost(&self) -> LeaseLost {
        let deadline = self.renew_deadline();
        let retry = (self.duration / 10).max(Duration::from_millis(10));
        let mut clock =
            RenewClock::new(self.state().last_ok.unwrap_or_else(Instant::now), deadline);
        let mut wait = self.duration / 3;
        loop {
            let expires = tokio::time::Instant::from_std(clock.expires_at());
            tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(expires)).await;
            let started = Instant::now();
            if clock.expired(started) {
                return self.lost(LeaseLost::RenewDeadline { deadline });
            }
            match tokio::time::timeout_at(expires, self.attempt()).await {
                Err(_) => return self.lost(LeaseLost::RenewDeadline { deadline }),
                Ok(Ok(Attempt::Held)) => {
                    clock.renewed(started);
                    wait = self.duration / 3;
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    return self.lost(LeaseLost::TakenOver { holder });
                }
                Ok(Ok(Attempt::Conflict)) => {
                    tracing::warn!(lease = %self.name, "lease renewal conflicted; retrying");
                    wait = retry;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.name, "lease renewal failed");
                    wait = retry;
                }
            }
        }
    }

    fn lost(&self, why: LeaseLost) -> LeaseLost {
        tracing::error!(lease = %self.name, identity = %self.identity, reason = %why, "lost leadership");
        self.state().last_ok = None;
        why
    }

    /// Gives the lease up (on a clean shutdown) so the other replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
        self.state().last_ok = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(holder: &str, renew: &str, rv: &str) -> RecordKey {
        RecordKey {
            holder: holder.into(),
            renew_time: Some(renew.into()),
            resource_version: Some(rv.into()),
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_record_expires_only_after_the_full_duration_on_the_candidates_clock() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        // However old its renewTime, a record seen for the first time is never expired: the
        // candidate's wall clock may be ahead of the holder's.
        assert!(!o.observe(key("a", "2000-01-01T00:00:00Z", "1"), t0, D));
        assert!(!o.observe(key("a", "2000-01-01T00:00:00Z", "1"), t0 + D / 2, D));
        assert!(!o.observe(key("a", "2000-01-01T00:00:00Z", "1"), t0 + D, D));
        assert!(o.observe(
            key("a", "2000-01-01T00:00:00Z", "1"),
            t0 + D + Duration::from_millis(1),
            D
        ));
    }

    #[test]
    fn any_change_of_the_record_restarts_the_count() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        assert!(!o.observe(key("a", "r1", "1"), t0, D));
        // Renewed (new renewTime and resourceVersion) just before expiry.
        let t1 = t0 + D - Duration::from_secs(1);
        assert!(!o.observe(key("a", "r2", "2"), t1, D));
        assert!(!o.observe(key("a", "r2", "2"), t0 + D + Duration::from_secs(1), D));
        assert!(o.observe(key("a", "r2", "2"), t1 + D + Duration::from_secs(1), D));
        // Same renewTime, another resourceVersion (any write): counts as a change.
        let t2 = t1 + D * 2;
        assert!(!o.observe(key("a", "r2", "3"), t2, D));
        // Another holder with the same times: a change too.
        assert!(!o.observe(key("b", "r2", "3"), t2 + D * 2, D));
        // Forgotten after this process wrote the lease.
        o.reset();
        assert!(!o.observe(key("b", "r2", "3"), t2 + D * 4, D));
    }

    #[test]
    fn a_clock_going_backwards_never_expires_a_record() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut o = Observer::default();
        assert!(!o.observe(key("a", "r", "1"), t0, D));
        assert!(!o.observe(key("a", "r", "1"), t0 - Duration::from_secs(50), D));
    }

    #[test]
    fn the_holder_gives_up_at_its_renew_deadline_before_any_candidate_takes_over() {
        let t0 = Instant::now();
        let deadline = D * 2 / 3;
        assert!(deadline < D);
        // The holder's write starts at t0; a candidate reads the record a little later.
        let mut holder = RenewClock::new(t0, deadline);
        let mut candidate = Observer::default();
        let seen = t0 + Duration::from_millis(20);
        assert!(!candidate.observe(key("a", "r1", "1"), seen, D));
        // Renewals keep failing from here on.
        assert!(!holder.expired(t0 + deadline - Duration::from_millis(1)));
        assert!(holder.expired(t0 + deadline));
        assert_eq!(holder.expires_at(), t0 + deadline);
        // The candidate still waits when the holder stops...
        assert!(!candidate.observe(key("a", "r1", "1"), holder.expires_at(), D));
        // ...and takes over only a full duration after it first saw the record.
        let takeover = seen + D + Duration::from_millis(1);
        assert!(candidate.observe(key("a", "r1", "1"), takeover, D));
        assert!(takeover - holder.expires_at() >= D - deadline);
        // A successful renewal moves the deadline; an older one never moves it back.
        holder.renewed(t0 + Duration::from_secs(5));
        assert_eq!(holder.expires_at(), t0 + Duration::from_secs(5) + deadline);
        holder.renewed(t0 + Duration::from_secs(1));
        assert_eq!(holder.expires_at(), t0 + Duration::from_secs(5) + deadline);
        assert!(!holder.expired(t0 + deadline));
    }

    #[test]
    fn lease_lost_says_why() {
        assert_eq!(
            LeaseLost::TakenOver { holder: "b".into() }.to_string(),
            "the lease is held by b"
        );
        assert_eq!(
            LeaseLost::RenewDeadline {
                deadline: Duration::from_secs(10)
            }
            .to_string(),
            "the lease was not renewed within 10s"
        );
    }
}
