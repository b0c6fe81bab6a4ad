//! `tpe`: Optuna 5.0's `TPESampler` (single objective).
//!
//! * Until `startupTrials` finished trials (complete, plus pruned when `considerPruned`;
//!   warm-start trials count) exist, a suggestion is [`RandomSampler`](crate::engine::samplers::RandomSampler)'s.
//! * The finished trials are split into "good" (below) and "bad" (above): the best
//!   `gamma(n) = min(ceil(n / 10), 25)` complete trials by value, topped up with pruned trials
//!   ranked as Optuna ranks them (furthest last step first, then that step's value; NaN
//!   last). Failed trials are ignored.
//! * **Running trials (constant liar)**: with `constantLiar` (the default, as Optuna 5.0's
//!   `constant_liar=True`) running trials join the bad group with their params, so parallel
//!   suggestions are pushed away from configurations still being evaluated; they do not count
//!   in `n`. With `constantLiar: false` they are ignored.
//! * A Parzen estimator is fitted to each group (see [`estimator`]); `candidates` points
//!   are drawn from l(x) and the one maximising `log l(x) − log g(x)` is proposed.
//! * By default every parameter is sampled independently, each from the trials where it
//!   was active (Optuna's `multivariate=False`). `multivariate: true` samples the
//!   always-active parameters jointly from one estimator (Optuna's intersection search
//!   space; Optuna 5.0's default for one objective); conditional ones stay independent.
//!
//! Randomness comes from (seed, trial number, parameter index) only, so the same history
//! gives the same suggestion after a restart.
//!
//! The sampler keeps each continuous parameter's "above" fit from one suggestion to the
//! next and extends it as the history grows ([`continuous`]): a speed-up only, a
//! kept fit gives exactly the density a new one would.
//!
//! Files by concern, as Optuna's `_tpe/`: [`sampler`] (the split and the suggestion),
//! [`estimator`] (the Parzen estimator), [`density`] (one-dimensional fast paths),
//! [`continuous`] and [`fgt`] (a kept, incrementally updated density of one continuous
//! parameter), [`bandwidth`], [`weights`], [`special`] and [`truncnorm`] (the normal
//! distribution's functions), [`simd`] (AVX2 dispatch).

mod bandwidth;
mod continuous;
mod density;
mod estimator;
mod fgt;
mod sampler;
mod simd;
mod special;
mod truncnorm;
mod weights;

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;

pub use sampler::TpeSampler;
