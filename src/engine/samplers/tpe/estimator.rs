//! The Parzen estimator, after Optuna 5.0's `_ParzenEstimator`.
//!
//! A mixture of product kernels: one kernel per observation plus a prior kernel (weight 1,
//! centred on the range with σ = range). Numerical dimensions use normal kernels truncated
//! to the range (in log space for log ranges; discretised to the step grid for ints and
//! stepped floats, with the range widened by half a step); categorical dimensions use
//! "observed choice + prior/n_kernels smoothing" kernels. Bandwidths follow Optuna: the
//! larger gap to a sorted neighbour (endpoints only for a single observation), clipped to
//! `[range / min(100, n_kernels + 1), range]` (the "magic clip").
//!
//! Values handed in and out are Optuna's internal representation: numbers as `f64` in the
//! original (untransformed) scale, categoricals as the choice index.

use rand_chacha::ChaCha8Rng;

use super::bandwidth::{
    Pairing, clip_ratio, kernel_range, ln_sigma, pair_kernels, set_sigmas, sigmas_by_buckets,
    sorted_order,
};
use super::simd::log_pdf_many_with_avx2;
use super::special::{LN_SQRT_2PI, exp_nonpositive, log_gauss_mass};
use super::truncnorm::{Masses, log_truncations, truncnorm_std};
use super::weights::normalized_weights;
use crate::engine::samplers::unit;
use crate::engine::space::Distribution;

/// One dimension of the mixture. Per-kernel constants (log weight, normalisers) are folded
/// into [`ParzenEstimator::base`].
#[derive(Clone, Debug)]
pub(super) enum Dim {
    /// Truncated normal kernels in (possibly log-) transformed space.
    Continuous {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        inv_sigmas: Vec<f64>,
        lo: f64,
        hi: f64,
        log: bool,
    },
    /// Truncated normal kernels integrated over each step cell (ints, stepped floats).
    /// Kernels sharing (μ, σ) share one mass evaluation (`pair_of` indexes `pairs`).
    Discrete {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        lo: f64,
        hi: f64,
        log: bool,
        /// (step, low, high) in original space.
        grid: (f64, f64, f64),
        pair_of: Vec<u32>,
        pairs: Vec<(f64, f64)>,
    },
    /// Per-kernel log-probabilities of each choice, row-major (`n_kernels × n_choices`).
    Categorical {
        log_probs: Vec<f64>,
        /// The same, choice-major (`n_choices × n_kernels`): one contiguous column per
        /// choice for density evaluation.
        by_choice: Vec<f64>,
        n_choices: usize,
    },
}

/// A Parzen estimator over some parameters, built from observations (internal values).
#[derive(Clone, Debug)]
pub(crate) struct ParzenEstimator {
    /// Per kernel: the dimensions' constant log-density terms.
    base: Vec<f64>,
    /// Normalised mixture weights (applied linearly in the log-sum-exp: no logarithms).
    pub(super) linear_weights: Vec<f64>,
    cum_weights: Vec<f64>,
    pub(super) dims: Vec<Dim>,
}

impl ParzenEstimator {
    /// `obs[d][i]` is dimension `d` of observation `i` (oldest first); `dists[d]` its
    /// distribution.
    pub(crate) fn new(obs: &[Vec<f64>], dists: &[&Distribution], masses: &mut Masses) -> Self {
        let n = obs.first().map_or(0, Vec::len);
        let linear_weights = normalized_weights(n);
        let mut acc = 0.0;
        let mut cum_weights: Vec<f64> = linear_weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        let mut base = vec![0.0; linear_weights.len()];
        if let Some(last) = cum_weights.last_mut() {
            *last = 1.0;
        }
        let dims = obs
            .iter()
            .zip(dists)
            .map(|(o, d)| build_dim(o, d, &mut base, masses))
            .collect();
        ParzenEstimator {
            base,
            linear_weights,
            cum_weights,
            dims,
        }
    }

    /// Number of dimensions.
    pub(crate) fn dims(&self) -> usize {
        self.dims.len()
    }

    /// Draws `size` joint samples (internal values), flat: sample `i` is
    /// `out[i * dims .. (i + 1) * dims]`.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng, size: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(size * self.dims.len());
        for _ in 0..size {
            let u = unit(rng);
            let k = self
                .cum_weights
                .partition_point(|&c| c <= u)
                .min(self.cum_weights.len() - 1);
            out.extend(self.dims.iter().map(|d| sample_dim(d, k, rng)));
        }
        out
    }

    /// Mixture log-density of one joint sample.
    #[cfg(test)]
    pub(crate) fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        let mut mass = Vec::new();
        scratch.clear();
        scratch.extend_from_slice(&self.base);
        for (d, &xd) in self.dims.iter().zip(x) {
            add_dim_log_pdf(d, xd, scratch, &mut mass);
        }
        log_sum_exp(scratch, &self.linear_weights)
    }

    log_pdf_many_with_avx2! {
        /// Mixture log-densities of the joint samples `xs` (flat, as [`Self::sample`] gives
        /// them), into `out` (one per sample). One scratch buffer serves every sample.
    }

    #[inline(always)]
    fn log_pdf_many_impl(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
        let n_kernels = self.base.len();
        let mut acc = self.base.clone();
        // Discrete dimensions: a pair's mass at a grid value is computed only when some
        // kernel using it could come within `LSE_CUT` of the largest term, and then once
        // for every candidate on that grid value (they often share one). Per dimension:
        // (value bits, masses, NaN where not computed yet).
        let mut seen: Vec<Vec<(u64, Vec<f64>)>> = vec![Vec::new(); self.dims.len()];
        let discrete: Vec<usize> = (0..self.dims.len())
            .filter(|&i| matches!(self.dims[i], Dim::Discrete { .. }))
            .collect();
        let mut max_of_pair: Vec<f64> = Vec::new();
        let mut mass: Vec<f64> = Vec::new();
        out.clear();
        for x in xs.chunks_exact(self.dims.len().max(1)) {
            acc.copy_from_slice(&self.base);
            for (d, &xd) in self.dims.iter().zip(x) {
                if !matches!(d, Dim::Discrete { .. }) {
                    add_dim_log_pdf(d, xd, &mut acc, &mut mass);
                }
            }
            if !discrete.is_empty() {
                // Every term of a kernel is a log-probability (≤ 0) apart from its constant
                // in `base`, so a kernel's partial sum plus an upper bound of its mass in
                // one dimension bounds its final value; the prior kernel's exact value
                // bounds the largest from below.
                let prior = n_kernels - 1;
                let mut floor = acc[prior];
                for &di in &discrete {
                    let Dim::Discrete { pair_of, .. } = &self.dims[di] else {
                        continue;
                    };
                    floor += cell_mass(
                        &self.dims[di],
                        x[di],
                        pair_of[prior] as usize,
                        &mut seen[di],
                        masses,
                    );
                }
                let threshold = floor - LSE_CUT;
                for &di in &discrete {
                    let d = &self.dims[di];
                    let Dim::Discrete { pair_of, pairs, .. } = d else {
                        continue;
                    };
                    max_of_pair.clear();
                    max_of_pair.resize(pairs.len(), f64::NEG_INFINITY);
                    for (&a, &p) in acc.iter().zip(pair_of.iter()) {
                        let m = &mut max_of_pair[p as usize];
                        *m = if a > *m { a } else { *m };
                    }
                    let (l, r) = cell_bounds(d, x[di]);
                    mass.clear();
                    for (p, &(m, inv)) in pairs.iter().enumerate() {
                        let (za, zb) = ((l - m) * inv, (r - m) * inv);
                        // Φ(b) ≤ e^(-b²/2) / 2 for b ≤ 0 (and the mirror image).
                        let bound = if zb <= 0.0 {
                            -0.5 * zb * zb - std::f64::consts::LN_2
                        } else if za >= 0.0 {
                            -0.5 * za * za - std::f64::consts::LN_2
                        } else {
                            0.0
                        };
                        mass.push(if max_of_pair[p] + bound < threshold {
                            f64::NEG_INFINITY
                        } else {
                            cell_mass(d, x[di], p, &mut seen[di], masses)
                        });
                    }
                    for (a, &p) in acc.iter_mut().zip(pair_of) {
                        *a += mass[p as usize];
                    }
                }
            }
            out.push(log_sum_exp(&acc, &self.linear_weights));
        }
    }
}

/// The grid cell of `x` of a discrete dimension, in its (possibly log-) transformed space.
fn cell_bounds(d: &Dim, x: f64) -> (f64, f64) {
    match d {
        Dim::Discrete {
            log,
            grid: (st, _, _),
            ..
        } => grid_cell(x, *st, *log),
        _ => (x, x),
    }
}

/// The grid cell `[x - step/2, x + step/2]`, in log space for log ranges.
#[inline(always)]
pub(super) fn grid_cell(x: f64, step: f64, log: bool) -> (f64, f64) {
    if log {
        ((x - step / 2.0).ln(), (x + step / 2.0).ln())
    } else {
        (x - step / 2.0, x + step / 2.0)
    }
}

/// Log-mass of the grid cell of `x` under pair `p` of a discrete dimension, remembered in
/// `seen` (per grid value) so each is computed once per call.
fn cell_mass(
    d: &Dim,
    x: f64,
    p: usize,
    seen: &mut Vec<(u64, Vec<f64>)>,
    masses: &mut Masses,
) -> f64 {
    let Dim::Discrete { pairs, .. } = d else {
        return 0.0;
    };
    let at = match seen.iter().position(|(b, _)| *b == x.to_bits()) {
        Some(at) => at,
        None => {
            seen.push((x.to_bits(), vec![f64::NAN; pairs.len()]));
            seen.len() - 1
        }
    };
    let v = &mut seen[at].1[p];
    if v.is_nan() {
        let (l, r) = cell_bounds(d, x);
        let (m, inv) = pairs[p];
        *v = masses.get((l - m) * inv, (r - m) * inv);
    }
    *v
}

/// Terms more than this far below the largest one are left out of a log-sum-exp. Weights
/// differ by at most a factor n, so what is left out is below `n² e^-40` of the sum: under
/// 1e-11 relative for n ≤ 1,000 (4e-10 for n = 10^4), far below the 1.2e-7 accuracy of
/// the normal CDF behind the kernels' normalising constants.
pub(super) const LSE_CUT: f64 = 40.0;

/// `ln Σ w_k exp(a_k)` for positive weights `w`.
#[inline(always)]
pub(super) fn log_sum_exp(a: &[f64], w: &[f64]) -> f64 {
    let chunks = a.chunks_exact(4);
    let rest = chunks.remainder();
    let mut m = [f64::NEG_INFINITY; 4];
    for c in chunks {
        for j in 0..4 {
            m[j] = if c[j] > m[j] { c[j] } else { m[j] };
        }
    }
    let mut max = m[0].max(m[1]).max(m[2].max(m[3]));
    for &v in rest {
        max = max.max(v);
    }
    if !max.is_finite() {
        return max;
    }
    let cut = max - LSE_CUT;
    let mut s = [0.0f64; 4];
    for (c, wc) in a.chunks_exact(4).zip(w.chunks_exact(4)) {
        // Most kernels of a dense history are far from any one point: skip their block.
        if (c[0] < cut) & (c[1] < cut) & (c[2] < cut) & (c[3] < cut) {
            continue;
        }
        for j in 0..4 {
            s[j] += wc[j] * exp_nonpositive(c[j] - max);
        }
    }
    let mut total = (s[0] + s[1]) + (s[2] + s[3]);
    let tail = a.len() - rest.len();
    for (&v, &wv) in rest.iter().zip(&w[tail..]) {
        if v >= cut {
            total += wv * exp_nonpositive(v - max);
        }
    }
    max + total.ln()
}

fn build_dim(obs: &[f64], dist: &Distribution, base: &mut [f64], masses: &mut Masses) -> Dim {
    let (low, high, log, step) = match dist {
        Distribution::Categorical { choices } => {
            let n_choices = choices.len();
            let n_kernels = obs.len() + 1;
            let mut log_probs = Vec::with_capacity(n_kernels * n_choices);
            if obs.is_empty() {
                log_probs.extend(std::iter::repeat_n(-(n_choices as f64).ln(), n_choices));
            } else {
                let prior = 1.0 / n_kernels as f64; // prior_weight / n_kernels
                let row_sum_obs = prior * n_choices as f64 + 1.0;
                let (hit, miss) = (
                    ((prior + 1.0) / row_sum_obs).ln(),
                    (prior / row_sum_obs).ln(),
                );
                for &o in obs {
                    let idx = o.round() as usize;
                    log_probs.extend((0..n_choices).map(|c| if c == idx { hit } else { miss }));
                }
                log_probs.extend(std::iter::repeat_n(-(n_choices as f64).ln(), n_choices));
            }
            let by_choice = (0..n_choices)
                .flat_map(|c| log_probs.iter().skip(c).step_by(n_choices).copied())
                .collect();
            return Dim::Categorical {
                log_probs,
                by_choice,
                n_choices,
            };
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => (*low, *high, *log, *step),
        Distribution::Int {
            low,
            high,
            step,
            log,
        } => (*low as f64, *high as f64, *log, Some(*step as f64)),
    };
    let (lo, hi) = kernel_range(low, high, log, step);
    // Room for the prior kernel up front: pushing it later would reallocate.
    let n = obs.len();
    let mut mus: Vec<f64> = Vec::with_capacity(n + 1);
    // Two loops, so that the logarithm is not computed speculatively for linear ranges.
    if log {
        mus.extend(obs.iter().map(|&v| v.ln()));
    } else {
        mus.extend_from_slice(obs);
    }
    let range = hi - lo;
    let ratio = clip_ratio(n);
    let min_sigma = range / ratio as f64;
    let mut sigmas = vec![range; n + 1];
    if !sigmas_by_buckets(&mus, lo, hi, min_sigma, ratio, &mut sigmas[..n]) {
        let order = sorted_order(&mus, lo, hi);
        set_sigmas(&mus, &order, lo, hi, min_sigma, &mut sigmas[..n]);
    }
    mus.push(0.5 * (lo + hi));
    match step {
        None => {
            let ln_min_sigma = min_sigma.ln();
            let inv_sigmas: Vec<f64> = sigmas.iter().map(|s| 1.0 / s).collect();
            let mut trunc = vec![0.0; mus.len()];
            log_truncations(lo, hi, &mus, &inv_sigmas, &mut trunc);
            for ((b, &s), &t) in base.iter_mut().zip(&sigmas).zip(&trunc) {
                *b -= t;
                *b -= ln_sigma(s, min_sigma, ln_min_sigma) + LN_SQRT_2PI;
            }
            Dim::Continuous {
                mus,
                sigmas,
                inv_sigmas,
                lo,
                hi,
                log,
            }
        }
        Some(st) => {
            let Pairing { pairs, pair_of, .. } = pair_kernels(&mus[..n], lo, hi, min_sigma);
            // Kernels of one pair share their truncation: one mass per pair (most
            // discrete kernels reach a bound, where a mass costs a few logarithms).
            let pair_trunc: Vec<f64> = pairs
                .iter()
                .map(|&(m, inv)| masses.truncation(lo, hi, m, inv))
                .collect();
            for (b, &p) in base.iter_mut().zip(&pair_of) {
                *b -= pair_trunc[p as usize];
            }
            Dim::Discrete {
                mus,
                sigmas,
                lo,
                hi,
                log,
                grid: (st, low, high),
                pair_of,
                pairs,
            }
        }
    }
}

fn sample_dim(d: &Dim, k: usize, rng: &mut ChaCha8Rng) -> f64 {
    match d {
        Dim::Categorical {
            log_probs,
            n_choices,
            ..
        } => {
            let row = &log_probs[k * n_choices..(k + 1) * n_choices];
            let u = unit(rng);
            let mut acc = 0.0;
            for (c, lp) in row.iter().enumerate() {
                acc += lp.exp();
                if u < acc {
                    return c as f64;
                }
            }
            (n_choices - 1) as f64
        }
        Dim::Continuous {
            mus,
            sigmas,
            lo,
            hi,
            log,
            ..
        } => {
            let (m, s) = (mus[k], sigmas[k]);
            let x = (m + s * truncnorm_std(rng, (lo - m) / s, (hi - m) / s)).clamp(*lo, *hi);
            if *log { x.exp() } else { x }
        }
        Dim::Discrete {
            mus,
            sigmas,
            lo,
            hi,
            log,
            grid: (st, low, high),
            ..
        } => {
            let (m, s) = (mus[k], sigmas[k]);
            let mut x = (m + s * truncnorm_std(rng, (lo - m) / s, (hi - m) / s)).clamp(*lo, *hi);
            if *log {
                x = x.exp();
            }
            (low + ((x - low) / st).round() * st).clamp(*low, *high)
        }
    }
}

#[inline(always)]
fn add_dim_log_pdf(d: &Dim, x: f64, acc: &mut [f64], mass: &mut Vec<f64>) {
    match d {
        Dim::Categorical {
            by_choice,
            n_choices,
            ..
        } => {
            let c = (x.round().max(0.0) as usize).min(n_choices - 1);
            let n_kernels = acc.len();
            let col = &by_choice[c * n_kernels..(c + 1) * n_kernels];
            for (a, &v) in acc.iter_mut().zip(col) {
                *a += v;
            }
        }
        Dim::Continuous {
            mus,
            inv_sigmas,
            log,
            ..
        } => {
            let xt = if *log { x.ln() } else { x };
            for ((a, &m), &inv) in acc.iter_mut().zip(mus).zip(inv_sigmas) {
                let z = (xt - m) * inv;
                *a -= 0.5 * z * z;
            }
        }
        Dim::Discrete { pair_of, .. } => {
            discrete_masses(d, x, mass);
            for (a, &p) in acc.iter_mut().zip(pair_of) {
                *a += mass[p as usize];
            }
        }
    }
}

/// Log-mass of the grid cell of `x` under each (μ, σ) pair of a discrete dimension.
fn discrete_masses(d: &Dim, x: f64, mass: &mut Vec<f64>) {
    if let Dim::Discrete {
        log,
        grid: (st, _, _),
        pairs,
        ..
    } = d
    {
        let (l, r) = if *log {
            ((x - st / 2.0).ln(), (x + st / 2.0).ln())
        } else {
            (x - st / 2.0, x + st / 2.0)
        };
        mass.clear();
        mass.extend(
            pairs
                .iter()
                .map(|&(m, inv)| log_gauss_mass((l - m) * inv, (r - m) * inv)),
        );
    }
}
