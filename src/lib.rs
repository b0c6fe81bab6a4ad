//! Lopper: hyperparameter-tuning studies on Kubernetes with Optuna-exact pruning.
//!
//! `engine` is pure (no I/O, no async, no clock); everything else is a shell around it.

pub mod cli;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod metrics;
pub mod plot;
pub mod runner;
pub mod sidecar;
pub mod ui;
pub mod workload;
