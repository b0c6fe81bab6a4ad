//! The operator: Study and Trial reconcilers, Job rendering, pruning, leader election.

pub mod job;
pub mod observe;
pub mod prune;
pub mod status;
pub mod telemetry;

pub use observe::{ObserveError, ObserveOutcome, observe};
