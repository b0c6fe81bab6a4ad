//! Subcommands of the `lopper` binary; one file each, each a thin shell over the library.

pub mod controller;
pub mod crd;
pub mod curve;
pub mod plot;
pub mod preview;
pub mod replay;
pub mod run;
pub mod sidecar;
pub mod ui;
