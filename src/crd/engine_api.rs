//! The engine and metric-source types the CRDs embed, in one place.
//!
//! The Study spec reuses the engine's own serde + JsonSchema types for `parameters`,
//! `sampler` and `pruner`, and the metrics module's type for `metrics`, so the CRD schema,
//! `lopper run` and the controller can never disagree about a field.

pub use crate::engine::pruners::PrunerSpec;
pub use crate::engine::samplers::SamplerSpec;
pub use crate::engine::space::ParamSpec;
pub use crate::metrics::spec::MetricsSpec;
