//! What Kueue needs of a trial's workload (pure): the queue label, and creation suspended.
//! Kueue admits a workload by unsuspending it and preempts one by suspending it again; both
//! are read back from the workload's `spec.suspend`, so the operator needs no access to
//! Kueue's own objects.

/// The label naming the LocalQueue of a workload.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
