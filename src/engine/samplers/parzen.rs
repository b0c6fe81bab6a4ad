//! Parzen estimators for TPE, after Optuna 5.0's `_ParzenEstimator`.
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

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;

use super::continuous::{ContinuousFit, ContinuousKernels};
use super::unit;
use crate::engine::space::Distribution;

pub(super) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `ln x`, kept out of line (see `build_dim`).
#[inline(never)]
fn ln_outlined(x: f64) -> f64 {
    x.ln()
}

/// Numerical Recipes' Chebyshev fit of `ln erfc(z) - ln t` for `z ≥ 0`, `t = 1 / (1 + z/2)`
/// (relative error of erfc below 1.2e-7 everywhere).
#[inline(always)]
fn erfc_poly(z: f64, t: f64) -> f64 {
    -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))))
}

/// `ln erfc(x)` for `x ≥ 0` without underflow.
fn ln_erfc_pos(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * z);
    t.ln() + erfc_poly(z, t)
}

/// `erfc(x)`: one exponential (`t · e^poly`), no logarithm.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let e = t * erfc_poly(z, t).exp();
    if x >= 0.0 { e } else { 2.0 - e }
}

/// Standard normal CDF.
pub(crate) fn ndtr(a: f64) -> f64 {
    0.5 * erfc(-a * FRAC_1_SQRT_2)
}

/// `ln Φ(a)`, accurate in the lower tail.
pub(crate) fn log_ndtr(a: f64) -> f64 {
    if a < 0.0 {
        ln_erfc_pos(-a * FRAC_1_SQRT_2) - std::f64::consts::LN_2
    } else {
        (-0.5 * erfc(a * FRAC_1_SQRT_2)).ln_1p()
    }
}

/// `ln(Φ(b) - Φ(a))` for `a ≤ b`, stable in both tails (Optuna's `_log_gauss_mass`).
pub(crate) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        let lb = log_ndtr(b);
        let la = log_ndtr(a);
        lb + (-(la - lb).exp()).ln_1p()
    } else if a > 0.0 {
        log_gauss_mass(-b, -a)
    } else if a < -8.5 && b > 8.5 {
        // Φ(-8.5) < 1e-17: the mass is 1 to double precision.
        0.0
    } else if let Some(z) = one_sided(a, b) {
        ln_one_minus_upper_tail(z)
    } else {
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// More entries than this clear [`Masses`]: about 3 MB at most (the hash table of 65,536
/// entries of 24 bytes), reached only by wide discrete ranges (hundreds of grid values).
const MASSES_CAP: usize = 1 << 16;

/// [`log_gauss_mass`] remembered by its arguments' bits, kept from one suggestion to the
/// next: a discrete parameter's cells and kernel centres sit on its grid and, from 98
/// observations on, its minimum bandwidth is fixed, so most masses a suggestion needs were
/// computed by the previous one. A remembered value is the function's own: no suggestion
/// depends on what is remembered.
#[derive(Debug, Default)]
pub(crate) struct Masses(HashMap<(u64, u64), f64, foldhash::fast::FixedState>);

impl Masses {
    #[inline]
    pub(crate) fn get(&mut self, a: f64, b: f64) -> f64 {
        if self.0.len() >= MASSES_CAP {
            self.0.clear();
        }
        *self
            .0
            .entry((a.to_bits(), b.to_bits()))
            .or_insert_with(|| log_gauss_mass(a, b))
    }

    /// `log_truncation`, remembered.
    fn truncation(&mut self, lo: f64, hi: f64, m: f64, inv: f64) -> f64 {
        truncation_with(lo, hi, m, inv, |a, b| self.get(a, b))
    }
}

/// For `a ≤ 0 < b` (or `a < 0 ≤ b`) with exactly one bound beyond 8.5σ, the other bound's
/// distance `z ≥ 0` from the centre: the mass is then `Φ(z)` (a tail beyond 8.5σ holds
/// under 1e-17, below an ulp of the rest). One bound in reach is the common case: kernels
/// near an end of a dense history.
#[inline(always)]
fn one_sided(a: f64, b: f64) -> Option<f64> {
    if a < -8.5 && b > 0.0 && b <= 8.5 {
        Some(b)
    } else if b > 8.5 && (-8.5..=0.0).contains(&a) {
        Some(-a)
    } else {
        None
    }
}

/// `ln(1 − Φ(−b)) = ln Φ(b)` for `b ≥ 0` without library calls: [`log_gauss_mass`]
/// with one bound in reach.
/// `Φ(−b) = erfc(b/√2)/2` as [`erfc`] computes it (same polynomial, the exponential by
/// [`exp_nonpositive`]), and `ln(1 − p) = −2 atanh(p / (2 − p))` by its series (p ≤ ½, so
/// the ratio is at most ⅓ and 17 terms reach double precision).
#[inline(always)]
fn ln_one_minus_upper_tail(b: f64) -> f64 {
    let z = b * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    // The polynomial is at most ~1e-8 above zero (at b = 0), where the exponential is
    // still exact.
    let p = 0.5 * t * exp_nonpositive(erfc_poly(z, t));
    let u = p / (2.0 - p);
    let u2 = u * u;
    // 1/(2k+1), k = 16 down to 0 (Horner in u²).
    const INV_ODD: [f64; 17] = {
        let mut c = [0.0; 17];
        let mut k = 0;
        while k < 17 {
            c[k] = 1.0 / (33 - 2 * k) as f64;
            k += 1;
        }
        c
    };
    let mut series = 0.0;
    for c in INV_ODD {
        series = series * u2 + c;
    }
    -2.0 * u * series
}

/// Inverse standard normal CDF, refined by one Halley step against [`ndtr`] (so that
/// `ndtr(ndtri(p)) ≈ p` to `ndtr`'s own precision).
#[cfg(test)]
pub(crate) fn ndtri(p: f64) -> f64 {
    let x = ndtri_approx(p);
    if !x.is_finite() {
        return x;
    }
    let e = ndtr(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    let y = x - u / (1.0 + 0.5 * x * u);
    if y.is_finite() { y } else { x }
}

/// Inverse standard normal CDF, Acklam's rational approximation (relative error below
/// 1.2e-9: finer than the 1.2e-7 of [`ndtr`] that a refinement step would use, so sampling
/// goes without one).
fn ndtri_approx(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let p_low = 0.02425;
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (-p).ln_1p()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// Draws from N(0,1) truncated to [a, b] (a ≤ 0 ≤ b in every use here) by inversion.
fn truncnorm_std(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
    let q = unit(rng);
    // Beyond 8.5σ the tail mass is under 1e-17: below an ulp of what it would be added to.
    let pa = if a < -8.5 { 0.0 } else { ndtr(a) };
    let pb = if b > 8.5 { 1.0 } else { ndtr(b) };
    let z = ndtri_approx(pa + q * (pb - pa));
    if z.is_finite() {
        z.clamp(a, b)
    } else {
        0.5 * (a + b)
    }
}

/// `log_pdf_many(xs, out)` calling the type's `log_pdf_many_impl`, which is compiled a
/// second time with 256-bit vectors and used on x86-64 CPUs with AVX2. Neither copy uses
/// fused multiply-add and Rust never reassociates floating point, so both give
/// bit-identical results: a suggestion does not depend on the CPU.
macro_rules! log_pdf_many_with_avx2 {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        pub(crate) fn log_pdf_many(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { self.log_pdf_many_avx2(xs, out, masses) };
                return;
            }
            self.log_pdf_many_impl(xs, out, masses);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn log_pdf_many_avx2(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
            self.log_pdf_many_impl(xs, out, masses);
        }
    };
}

/// Optuna's default weights: flat for the newest 25 observations, a linear ramp from 1/n
/// before them.
#[cfg(test)]
fn default_weights(n: usize) -> Vec<f64> {
    let ramp = WeightRamp::new(n);
    (0..n).map(|k| ramp.raw(k)).collect()
}

/// Optuna's mixture weights for `n` observations and the prior, normalised to sum 1.
fn normalized_weights(n: usize) -> Vec<f64> {
    let ramp = WeightRamp::new(n);
    (0..=n).map(|k| ramp.at(k)).collect()
}

/// Optuna's weights one at a time: observation `k` of `n` (`k = n`: the prior, weight 1).
#[derive(Clone, Debug)]
pub(super) struct WeightRamp {
    n: usize,
    ramp: usize,
    start: f64,
    step: f64,
    inv_total: f64,
}

impl WeightRamp {
    pub(super) fn new(n: usize) -> Self {
        let (ramp, start, step) = if n < 25 {
            (0, 0.0, 0.0)
        } else {
            // As numpy's `linspace(1/n, 1, n - 25)`: start + i * step.
            let m = n - 25;
            let start = 1.0 / n as f64;
            let step = if m > 1 {
                (1.0 - start) / (m - 1) as f64
            } else {
                0.0
            };
            (m, start, step)
        };
        let mut ramp = WeightRamp {
            n,
            ramp,
            start,
            step,
            inv_total: 1.0,
        };
        // The sum in closed form (the ramp's, then the flat weights' and the prior's):
        // within a few ulps of any order of summation, Optuna's pairwise one included, and
        // no O(n) chain of additions per estimator.
        let m = ramp.ramp;
        let total =
            (m as f64 * start + step * ((m * m.saturating_sub(1) / 2) as f64)) + (n + 1 - m) as f64;
        ramp.inv_total = 1.0 / total;
        ramp
    }

    /// The weight before normalisation.
    #[inline(always)]
    fn raw(&self, k: usize) -> f64 {
        debug_assert!(k <= self.n);
        if k < self.ramp {
            self.start + k as f64 * self.step
        } else {
            1.0
        }
    }

    /// `(start, step, 1/total)`: the ramp's raw weight `start + k·step` and the
    /// normalisation, for sums kept apart by `k`.
    pub(super) fn linear(&self) -> (f64, f64, f64) {
        (self.start, self.step, self.inv_total)
    }

    /// The normalised weight (the weights and the prior's sum to 1).
    #[inline(always)]
    pub(super) fn at(&self, k: usize) -> f64 {
        self.raw(k) * self.inv_total
    }
}

/// The prior kernel's term for one of `c` choices: weight times `e^(ln(1/c))`, as the
/// general estimator computes it.
fn w_prior_term(w: f64, c: usize) -> f64 {
    w * (-(c as f64).ln()).exp()
}

/// The magic clip for `n` observations: bandwidths are at least `range / clip_ratio(n)`.
pub(super) fn clip_ratio(n: usize) -> usize {
    100usize.min(n + 2)
}

/// `ln` of the mass over `[lo, hi]` of the normal kernel at `m` (`inv` = 1/σ): its
/// truncation constant. 0 when both bounds lie beyond 8.5σ (most kernels).
pub(super) fn log_truncation(lo: f64, hi: f64, m: f64, inv: f64) -> f64 {
    truncation_with(lo, hi, m, inv, log_gauss_mass)
}

/// `log_truncation` with the mass computed by `mass`.
#[inline(always)]
fn truncation_with(lo: f64, hi: f64, m: f64, inv: f64, mass: impl FnOnce(f64, f64) -> f64) -> f64 {
    let (za, zb) = ((lo - m) * inv, (hi - m) * inv);
    if za < -8.5 && zb > 8.5 {
        0.0
    } else {
        mass(za, zb)
    }
}

/// `log_truncation` of every kernel (`mus`, `invs`) into `out`, bit for bit. The kernels
/// with one bound in reach (a sixth of a dense history on a range 100σ wide) are gathered
/// and their masses computed in one branch-free loop, vectorised where the CPU allows:
/// one at a time they cost more than scoring half the candidates.
fn log_truncations(lo: f64, hi: f64, mus: &[f64], invs: &[f64], out: &mut [f64]) {
    let mut at: Vec<u32> = Vec::new();
    let mut zs: Vec<f64> = Vec::new();
    for (k, ((&m, &inv), o)) in mus.iter().zip(invs).zip(out.iter_mut()).enumerate() {
        let (za, zb) = ((lo - m) * inv, (hi - m) * inv);
        *o = if za < -8.5 && zb > 8.5 {
            0.0
        } else if let Some(z) = one_sided(za, zb) {
            at.push(k as u32);
            zs.push(z);
            0.0
        } else {
            log_gauss_mass(za, zb)
        };
    }
    ln_one_minus_upper_tails(&mut zs);
    for (&k, &v) in at.iter().zip(&zs) {
        out[k as usize] = v;
    }
}

/// [`ln_one_minus_upper_tail`] of each value, in place.
fn ln_one_minus_upper_tails(zs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { ln_one_minus_upper_tails_avx2(zs) };
        return;
    }
    for z in zs {
        *z = ln_one_minus_upper_tail(*z);
    }
}

/// The same loop with 256-bit vectors (no fused multiply-add: identical results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ln_one_minus_upper_tails_avx2(zs: &mut [f64]) {
    for z in zs {
        *z = ln_one_minus_upper_tail(*z);
    }
}

/// `ln σ`, with the clipped bandwidth's logarithm computed once (`ln_min_sigma`): dense
/// histories clip most bandwidths to the minimum.
#[inline(always)]
pub(super) fn ln_sigma(s: f64, min_sigma: f64, ln_min_sigma: f64) -> f64 {
    if s == min_sigma {
        ln_min_sigma
    } else {
        ln_outlined(s)
    }
}

/// `⌊x⌋` clamped to `0..n`, as `(x as usize).min(n - 1)` (NaN and negatives give 0) for
/// `n < 2^31`, through a signed 32-bit conversion: a few instructions where the unsigned
/// 64-bit one branches.
#[inline(always)]
pub(super) fn bucket_index(x: f64, n: usize) -> usize {
    (x as i32).clamp(0, n as i32 - 1) as usize
}

/// Optuna's default gamma: the size of the "good" group.
pub(crate) fn default_gamma(n: usize) -> usize {
    (n.div_ceil(10)).min(25)
}

/// One dimension of the mixture. Per-kernel constants (log weight, normalisers) are folded
/// into [`ParzenEstimator::base`].
#[derive(Clone, Debug)]
enum Dim {
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
    linear_weights: Vec<f64>,
    cum_weights: Vec<f64>,
    dims: Vec<Dim>,
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

/// The density of a one-dimensional estimator with many kernels, visiting only the kernels
/// that can matter: the same sum as the general path (every term within `LSE_CUT` of the
/// largest), up to the rounding of a different summation order (and, for continuous
/// kernels, a series error below e^-33 of the density).
#[derive(Clone, Debug)]
pub(crate) enum OneDim {
    Continuous(ContinuousKernels),
    /// Categorical: a kernel's term is "hit" or "miss" (the prior's is uniform), so the
    /// density of choice `c` is `hit·W_c + miss·(W − W_c) + w_prior/n_choices`, with `W_c`
    /// the weight of the kernels observed at `c`: no per-kernel work per point. Holds the
    /// ln of the density of each choice.
    Categorical(Vec<f64>),
    Discrete(DiscretePairs),
}

/// Discrete kernels (ints, stepped floats): kernels sharing (μ, σ) share their cell mass,
/// so each such pair is one term `ln(Σ w) + constant + ln mass`. Pairs at the minimum
/// bandwidth are sorted by μ and only those within reach of a cell get a mass; the others
/// ("wide") get one for every point.
#[derive(Clone, Debug)]
pub(crate) struct DiscretePairs {
    log: bool,
    step: f64,
    inv_min_sigma: f64,
    /// The largest `ln(Σ w) + constant` of a narrow pair: bounds their terms.
    narrow_lnw_max: f64,
    narrow_mu: Vec<f64>,
    narrow_lnw: Vec<f64>,
    /// (μ, 1/σ, ln(Σ w) + constant)
    wide: Vec<(f64, f64, f64)>,
}

/// What TPE evaluates the "above" group's density with: [`OneDim`] where it applies (one
/// continuous or categorical parameter, many observations), the general estimator
/// otherwise. Same densities up to rounding.
#[derive(Clone, Debug)]
pub(crate) enum Density {
    Parzen(ParzenEstimator),
    OneDim(OneDim),
}

impl Density {
    #[cfg(test)]
    pub(crate) fn new(obs: &[Vec<f64>], dists: &[&Distribution]) -> Self {
        Density::extending(obs, dists, None, &mut Masses::default())
    }

    /// As [`Density::new`], extending `kept` (the fit of an earlier suggestion's
    /// observations, see [`super::continuous`]) where it applies: the same density.
    pub(crate) fn extending(
        obs: &[Vec<f64>],
        dists: &[&Distribution],
        kept: Option<Box<ContinuousFit>>,
        masses: &mut Masses,
    ) -> Self {
        if let ([o], [dist]) = (obs, dists)
            && o.len() >= ONE_DIM_MIN
        {
            let one = match dist {
                Distribution::Float {
                    low,
                    high,
                    log,
                    step: None,
                } => ContinuousFit::fit(kept, o, *low, *high, *log)
                    .map(|fit| OneDim::Continuous(fit.density())),
                Distribution::Categorical { choices } => OneDim::categorical(o, choices.len()),
                _ => OneDim::discrete(o, dist, masses),
            };
            if let Some(one) = one {
                return Density::OneDim(one);
            }
        }
        Density::Parzen(ParzenEstimator::new(obs, dists, masses))
    }

    /// The continuous fit behind this density, if any, to extend at the next suggestion.
    pub(crate) fn into_fit(self) -> Option<Box<ContinuousFit>> {
        match self {
            Density::OneDim(OneDim::Continuous(c)) => Some(c.into_fit()),
            _ => None,
        }
    }

    pub(crate) fn log_pdf_many(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
        match self {
            Density::Parzen(pe) => pe.log_pdf_many(xs, out, masses),
            Density::OneDim(one) => one.log_pdf_many(xs, out, masses),
        }
    }
}

impl OneDim {
    /// One discrete parameter (an int or a stepped float) from its observations (internal
    /// values, in trial order), with the kernels and pairs `build_dim` makes
    /// ([`pair_kernels`]). `None` for a non-finite centre.
    fn discrete(obs: &[f64], dist: &Distribution, masses: &mut Masses) -> Option<OneDim> {
        let (low, high, log, step) = match dist {
            Distribution::Float {
                low,
                high,
                log,
                step: Some(s),
            } => (*low, *high, *log, *s),
            Distribution::Int {
                low,
                high,
                step,
                log,
            } => (*low as f64, *high as f64, *log, *step as f64),
            _ => return None,
        };
        let (lo, hi) = kernel_range(low, high, log, Some(step));
        let n = obs.len();
        let min_sigma = (hi - lo) / clip_ratio(n) as f64;
        let mus: Vec<f64> = if log {
            obs.iter().map(|v| v.ln()).collect()
        } else {
            obs.to_vec()
        };
        if !mus.iter().all(|m| m.is_finite()) {
            return None;
        }
        let Pairing {
            pairs,
            sigma_bits,
            pair_of,
        } = pair_kernels(&mus, lo, hi, min_sigma);
        // Per pair: total weight, summed in trial order (the prior's last).
        let weight = WeightRamp::new(n);
        let mut wsum = vec![0.0; pairs.len()];
        for (k, &p) in pair_of.iter().enumerate() {
            wsum[p as usize] += weight.at(k);
        }
        let prior_pair = pair_of[n] as usize;
        let mut by_mu: Vec<(f64, f64)> = Vec::new();
        let mut wide = Vec::new();
        for (p, &(m, inv)) in pairs.iter().enumerate() {
            if wsum[p] <= 0.0 {
                continue;
            }
            let lnw = wsum[p].ln() + (0.0 - masses.truncation(lo, hi, m, inv));
            if p != prior_pair && sigma_bits[p] == min_sigma.to_bits() {
                by_mu.push((m, lnw));
            } else {
                wide.push((m, inv, lnw));
            }
        }
        by_mu.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        Some(OneDim::Discrete(DiscretePairs {
            log,
            step,
            inv_min_sigma: 1.0 / min_sigma,
            narrow_lnw_max: by_mu
                .iter()
                .map(|&(_, w)| w)
                .fold(f64::NEG_INFINITY, f64::max),
            narrow_mu: by_mu.iter().map(|&(m, _)| m).collect(),
            narrow_lnw: by_mu.iter().map(|&(_, w)| w).collect(),
            wide,
        }))
    }

    /// One categorical parameter with `c` choices, from its observations (choice indices),
    /// with the kernels `build_dim` makes: an observation's kernel gives its choice
    /// `hit = (p + 1) / (p c + 1)` and every other `miss = p / (p c + 1)`, `p = 1/(n + 1)`;
    /// the prior's is uniform. `None` for an index outside the choices.
    fn categorical(obs: &[f64], c: usize) -> Option<OneDim> {
        let n = obs.len();
        let prior = 1.0 / (n + 1) as f64;
        let row_sum = prior * c as f64 + 1.0;
        // Through `ln` and back, as the general estimator's log-probabilities go.
        let eh = ((prior + 1.0) / row_sum).ln().exp();
        let em = if c > 1 {
            (prior / row_sum).ln().exp()
        } else {
            0.0
        };
        let weight = WeightRamp::new(n);
        let mut w_at = vec![0.0; c];
        let mut w_obs = 0.0;
        for (k, &o) in obs.iter().enumerate() {
            let at = o.round();
            if !(at >= 0.0 && at < c as f64) {
                return None;
            }
            let w = weight.at(k);
            w_at[at as usize] += w;
            w_obs += w;
        }
        let uniform = w_prior_term(weight.at(n), c);
        let log_density = w_at
            .iter()
            .map(|&w| (eh * w + em * (w_obs - w) + uniform).ln())
            .collect();
        Some(OneDim::Categorical(log_density))
    }

    log_pdf_many_with_avx2! {
        /// Log-densities of the points `xs`, into `out`.
    }

    #[inline(always)]
    fn log_pdf_many_impl(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
        out.clear();
        if let OneDim::Discrete(d) = self {
            // Candidates on a grid often share a value: each value once.
            let mut seen: Vec<(u64, f64)> = Vec::new();
            for &x in xs {
                let v = match seen.iter().find(|s| s.0 == x.to_bits()) {
                    Some(&(_, v)) => v,
                    None => {
                        let v = d.log_pdf(x, masses);
                        seen.push((x.to_bits(), v));
                        v
                    }
                };
                out.push(v);
            }
            return;
        }
        // A plain loop: a closure could be compiled out of line, without AVX2.
        for &x in xs {
            out.push(self.log_pdf(x, masses));
        }
    }

    #[inline(always)]
    fn log_pdf(&self, x: f64, masses: &mut Masses) -> f64 {
        match self {
            OneDim::Categorical(log_density) => {
                let c = (x.round().max(0.0) as usize).min(log_density.len() - 1);
                log_density[c]
            }
            OneDim::Discrete(d) => d.log_pdf(x, masses),
            OneDim::Continuous(c) => c.log_pdf(x),
        }
    }
}

impl DiscretePairs {
    #[inline(always)]
    fn log_pdf(&self, x: f64, masses: &mut Masses) -> f64 {
        let (l, r) = grid_cell(x, self.step, self.log);
        if l.is_nan() || r.is_nan() {
            return f64::NAN;
        }
        let inv = self.inv_min_sigma;
        let mut mass = |m: f64, iv: f64| masses.get((l - m) * iv, (r - m) * iv);
        let mut terms: Vec<f64> = Vec::with_capacity(self.wide.len() + 16);
        for &(m, iv, w) in &self.wide {
            terms.push(w + mass(m, iv));
        }
        // Lower bound of the largest term: the wide pairs and the narrow pairs
        // nearest the cell, exact.
        let p = self.narrow_mu.partition_point(|&m| m < l);
        let mut floor = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for k in p.saturating_sub(1)..(p + 1).min(self.narrow_mu.len()) {
            floor = floor.max(self.narrow_lnw[k] + mass(self.narrow_mu[k], inv));
        }
        // A narrow pair at distance d from the cell has mass ≤ e^(-d²/2σ²)/2: past
        // `reach` its term is below `floor - LSE_CUT`, so below the largest minus
        // the cut.
        let room = (self.narrow_lnw_max - std::f64::consts::LN_2 - floor + LSE_CUT).max(0.0);
        let reach = (2.0 * room).sqrt() / inv;
        let (a, b) = if reach.is_finite() {
            (
                self.narrow_mu.partition_point(|&m| m < l - reach),
                self.narrow_mu.partition_point(|&m| m <= r + reach),
            )
        } else {
            (0, self.narrow_mu.len())
        };
        for k in a..b {
            terms.push(self.narrow_lnw[k] + mass(self.narrow_mu[k], inv));
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        let cut = max - LSE_CUT;
        let total: f64 = terms
            .iter()
            .filter(|&&t| t >= cut)
            .map(|&t| exp_nonpositive(t - max))
            .sum();
        max + total.ln()
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
fn grid_cell(x: f64, step: f64, log: bool) -> (f64, f64) {
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

/// 1.5 · 2^52: adding it rounds to an integer (kept in the low mantissa bits).
pub(crate) const EXP_MAGIC: f64 = 6_755_399_441_055_744.0;
/// ln 2 in two parts, so that `x - n ln 2` is exact enough.
pub(crate) const EXP_LN2_HI: f64 = 6.931_471_803_691_238e-1;
pub(crate) const EXP_LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// `1/k!` for k = 11 down to 0: the Taylor polynomial of `e^r`, `|r| ≤ ln 2 / 2`, for Horner.
pub(crate) const EXP_TAYLOR: [f64; 12] = [
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// `exp(x)` for `x ≤ 0`, branch-free so the caller's loop vectorises (relative error
/// below 1e-14; inputs under -700 are treated as -700).
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    let x = if x < -700.0 { -700.0 } else { x };
    let t = x * std::f64::consts::LOG2_E + EXP_MAGIC;
    let n = t - EXP_MAGIC;
    let r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    let mut p = EXP_TAYLOR[0];
    for c in &EXP_TAYLOR[1..] {
        p = p * r + c;
    }
    // The low mantissa bits of `t` hold n; 2^n = (n + 1023) << 52.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// `ln Σ w_k exp(a_k)` for positive weights `w`.
#[inline(always)]
fn log_sum_exp(a: &[f64], w: &[f64]) -> f64 {
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

/// A one-dimensional density with at least this many observations uses [`OneDim`].
const ONE_DIM_MIN: usize = 64;

/// The kernels' range: `[low, high]`, widened by half a step on each side for a grid, in
/// log space for log ranges.
fn kernel_range(low: f64, high: f64, log: bool, step: Option<f64>) -> (f64, f64) {
    let (lo, hi) = match step {
        Some(s) => (low - s / 2.0, high + s / 2.0),
        None => (low, high),
    };
    if log { (lo.ln(), hi.ln()) } else { (lo, hi) }
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

/// [`set_sigmas`] without sorting, for `n ≥ 2` finite values in `[lo, hi]` (false, and
/// nothing written, otherwise). Buckets of width `(hi - lo) / (2 * ratio)`, half of
/// `min_sigma`: two values in one bucket are closer than `min_sigma`, so only the first
/// and the last value of a bucket (in sorted order: ties by position) can have a gap above
/// the clip, and that gap is to the neighbouring non-empty bucket. Every other bandwidth
/// is `min_sigma`. Same results as sorting, bit for bit.
fn sigmas_by_buckets(
    mus: &[f64],
    lo: f64,
    hi: f64,
    min_sigma: f64,
    ratio: usize,
    sigmas: &mut [f64],
) -> bool {
    let n = sigmas.len();
    let span = hi - lo;
    if n < 2 || !(span > 0.0 && span.is_finite() && min_sigma > 0.0) {
        return false;
    }
    let nb = 2 * ratio;
    let scale = nb as f64 / span;
    const EMPTY: u32 = u32::MAX;
    let mut first = vec![EMPTY; nb];
    let mut last = vec![EMPTY; nb];
    for (i, &m) in mus[..n].iter().enumerate() {
        if !(m >= lo && m <= hi) {
            return false;
        }
        let b = bucket_index((m - lo) * scale, nb);
        let (f, l) = (&mut first[b], &mut last[b]);
        // Ties: the earliest position comes first, the latest last.
        if *f == EMPTY || m < mus[*f as usize] {
            *f = i as u32;
        }
        if *l == EMPTY || m >= mus[*l as usize] {
            *l = i as u32;
        }
    }
    let range = span;
    sigmas.fill(min_sigma);
    // The non-empty buckets in order, as (first, last); a gap between two of them is a
    // gap between neighbours in sorted order, computed as `set_sigmas` computes it.
    let spans: Vec<(usize, usize)> = first
        .iter()
        .zip(&last)
        .filter(|(f, _)| **f != EMPTY)
        .map(|(&f, &l)| (f as usize, l as usize))
        .collect();
    let k = spans.len();
    for (j, &(f, l)) in spans.iter().enumerate() {
        let left = (j > 0).then(|| mus[f] - mus[spans[j - 1].1]);
        let right = (j + 1 < k).then(|| mus[spans[j + 1].0] - mus[l]);
        if f == l {
            // Alone in its bucket: both gaps are to other buckets (the ends use their
            // inner gap only; with n ≥ 2 at least one exists).
            let g = match (left, right) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or(min_sigma),
            };
            sigmas[f] = g.clamp(min_sigma, range);
        } else {
            // The other gap of each is inside the bucket, below the clip.
            if let Some(a) = left {
                sigmas[f] = a.clamp(min_sigma, range);
            }
            if let Some(b) = right {
                sigmas[l] = b.clamp(min_sigma, range);
            }
        }
    }
    true
}

/// Positions of `mus` sorted by value, ties by position (the order `total_cmp` then
/// position gives). Values in `[lo, hi]` go to one of `n` equal-width buckets (a monotone
/// map), so the concatenated buckets are almost sorted and one insertion sort finishes the
/// job in about linear time; anything else falls back to a comparison sort.
pub(super) fn sorted_order(mus: &[f64], lo: f64, hi: f64) -> Vec<u32> {
    let n = mus.len();
    let key = |i: u32| mus[i as usize];
    let less = |a: u32, b: u32| key(a).total_cmp(&key(b)).then(a.cmp(&b)).is_lt();
    let span = hi - lo;
    if n < 32 || !(span > 0.0 && span.is_finite()) || !mus.iter().all(|m| m.is_finite()) {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        return order;
    }
    let scale = n as f64 / span;
    // Values below `lo` land in bucket 0.
    let bucket = |m: f64| bucket_index((m - lo) * scale, n);
    let mut start = vec![0u32; n + 1];
    for &m in mus {
        start[bucket(m) + 1] += 1;
    }
    for b in 0..n {
        start[b + 1] += start[b];
    }
    let mut order = vec![0u32; n];
    for (i, &m) in mus.iter().enumerate() {
        let b = bucket(m);
        order[start[b] as usize] = i as u32;
        start[b] += 1;
    }
    for j in 1..n {
        let v = order[j];
        let mut k = j;
        while k > 0 && less(v, order[k - 1]) {
            order[k] = order[k - 1];
            k -= 1;
        }
        order[k] = v;
    }
    order
}

/// Optuna's bandwidths, given the sorted order of `mus`, clipped to `[min_sigma, hi - lo]`
/// (the "magic clip"), into `sigmas` (one per observation). A kernel's bandwidth is the
/// larger gap to its sorted neighbours, `lo` and `hi` standing in at the ends; with two or
/// more observations the outermost ones use their inner gap only.
pub(super) fn set_sigmas(
    mus: &[f64],
    order: &[u32],
    lo: f64,
    hi: f64,
    min_sigma: f64,
    sigmas: &mut [f64],
) {
    let n = order.len();
    let at = |j: usize| mus[order[j] as usize];
    for j in 0..n {
        let (prev, next) = ((j > 0).then(|| at(j - 1)), (j + 1 < n).then(|| at(j + 1)));
        sigmas[order[j] as usize] = neighbour_sigma(prev, at(j), next, lo, hi, min_sigma);
    }
}

/// The bandwidth of the kernel at `m` whose neighbours in sorted order are at `prev` and
/// `next`: the larger gap to them, the inner one at the ends (the distance to the farther
/// bound for a lone kernel), clipped to `[min_sigma, hi - lo]`.
#[inline(always)]
pub(super) fn neighbour_sigma(
    prev: Option<f64>,
    m: f64,
    next: Option<f64>,
    lo: f64,
    hi: f64,
    min_sigma: f64,
) -> f64 {
    let g = match (prev, next) {
        (None, Some(b)) => b - m,
        (Some(a), None) => m - a,
        (Some(a), Some(b)) => (m - a).max(b - m),
        (None, None) => (m - lo).max(hi - m),
    };
    g.clamp(min_sigma, hi - lo)
}

/// A discrete dimension's kernels grouped into (μ, σ) pairs, which share their masses.
struct Pairing {
    /// (μ, 1/σ) per pair: by centre, then by first appearance of σ in trial order.
    pairs: Vec<(f64, f64)>,
    /// σ's bits per pair.
    sigma_bits: Vec<u64>,
    /// Per kernel, the prior's last: its pair.
    pair_of: Vec<u32>,
}

/// The kernels of the centres `mus` (in trial order) and the prior (centre of `[lo, hi]`,
/// σ = `hi - lo`), paired, with the bandwidths [`set_sigmas`] gives, without sorting every
/// centre: kernels at one value are neighbours in sorted order (ties by position), so only
/// the first and the last of a value can have a gap to another value, and sorting the
/// distinct values is enough.
fn pair_kernels(mus: &[f64], lo: f64, hi: f64, min_sigma: f64) -> Pairing {
    let range = hi - lo;
    // The distinct centres (bit for bit): centre, count, first and last position.
    let mut index: HashMap<u64, u32, foldhash::fast::FixedState> = HashMap::default();
    let mut values: Vec<(f64, u32, u32, u32)> = Vec::new();
    let mut value_of: Vec<u32> = Vec::with_capacity(mus.len());
    for (k, &m) in mus.iter().enumerate() {
        let g = *index.entry(m.to_bits()).or_insert_with(|| {
            values.push((m, 0, k as u32, k as u32));
            values.len() as u32 - 1
        });
        let e = &mut values[g as usize];
        e.1 += 1;
        e.3 = k as u32;
        value_of.push(g);
    }
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| values[a as usize].0.total_cmp(&values[b as usize].0));
    let sigma = |prev, m, next| neighbour_sigma(prev, m, next, lo, hi, min_sigma);
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    let mut sigma_bits: Vec<u64> = Vec::new();
    // The pair of (μ, σ) among the pairs of the current value (from `run`), new if none.
    let mut pair_in_run = |pairs: &mut Vec<(f64, f64)>, run: usize, m: f64, s: f64| match sigma_bits
        [run..]
        .iter()
        .position(|&b| b == s.to_bits())
    {
        Some(p) => (p + run) as u32,
        None => {
            pairs.push((m, 1.0 / s));
            sigma_bits.push(s.to_bits());
            pairs.len() as u32 - 1
        }
    };
    // Per value: the pairs of its first, middle and last kernels (by position).
    let mut role_pair: Vec<[u32; 3]> = vec![[0; 3]; values.len()];
    let mut run = 0;
    for (j, &g) in order.iter().enumerate() {
        let (m, count, _, _) = values[g as usize];
        let prev = (j > 0).then(|| values[order[j - 1] as usize].0);
        let next = order.get(j + 1).map(|&h| values[h as usize].0);
        run = pairs.len();
        role_pair[g as usize] = if count == 1 {
            [pair_in_run(&mut pairs, run, m, sigma(prev, m, next)); 3]
        } else {
            let first = pair_in_run(&mut pairs, run, m, sigma(prev, m, Some(m)));
            // A value seen twice has no middle kernel.
            let middle = if count > 2 {
                pair_in_run(&mut pairs, run, m, sigma(Some(m), m, Some(m)))
            } else {
                first
            };
            let last = pair_in_run(&mut pairs, run, m, sigma(Some(m), m, next));
            [first, middle, last]
        };
    }
    let mut pair_of: Vec<u32> = value_of
        .iter()
        .enumerate()
        .map(|(k, &g)| {
            let (_, _, first, last) = values[g as usize];
            let role = if k as u32 == first {
                0
            } else if k as u32 == last {
                2
            } else {
                1
            };
            role_pair[g as usize][role]
        })
        .collect();
    // The prior ends the walk: a new run unless it sits on the last value.
    let prior = 0.5 * (lo + hi);
    if order.last().map(|&g| values[g as usize].0.to_bits()) != Some(prior.to_bits()) {
        run = pairs.len();
    }
    pair_of.push(pair_in_run(&mut pairs, run, prior, range));
    Pairing {
        pairs,
        sigma_bits,
        pair_of,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::samplers::trial_rng;

    #[test]
    fn normal_functions() {
        assert!((ndtr(0.0) - 0.5).abs() < 1e-7);
        assert!((ndtr(1.96) - 0.975_002_1).abs() < 1e-6);
        assert!((log_ndtr(-40.0) - (-804.608_442_013_754_6)).abs() < 1e-3);
        for p in [1e-10, 0.001, 0.02, 0.3, 0.5, 0.8, 0.99, 1.0 - 1e-9] {
            assert!((ndtr(ndtri(p)) - p).abs() < 1e-7 * p.max(1e-3), "{p}");
        }
        let m = log_gauss_mass(-1.0, 1.0).exp();
        assert!((m - 0.682_689_49).abs() < 1e-6);
        let tail = log_gauss_mass(30.0, 31.0);
        assert!(tail.is_finite() && tail < -400.0);
    }

    #[test]
    fn batched_truncations_equal_one_by_one() {
        // Kernels across a range, its ends, beyond it, and narrow and wide bandwidths.
        let (lo, hi) = (-1.0, 3.0);
        let mus: Vec<f64> = (0..2000).map(|i| -1.5 + 5.0 * i as f64 / 1999.0).collect();
        let invs: Vec<f64> = (0..2000).map(|i| [25.0, 100.0, 3.0, 0.25][i % 4]).collect();
        let mut out = vec![f64::NAN; mus.len()];
        log_truncations(lo, hi, &mus, &invs, &mut out);
        for ((&m, &inv), &o) in mus.iter().zip(&invs).zip(&out) {
            assert_eq!(
                o.to_bits(),
                log_truncation(lo, hi, m, inv).to_bits(),
                "μ {m} 1/σ {inv}"
            );
        }
    }

    #[test]
    fn one_sided_mass_matches_the_library_formula() {
        for i in 1..=850 {
            let b = i as f64 * 0.01;
            let fast = ln_one_minus_upper_tail(b);
            // The library formula `log_gauss_mass` used before.
            let general = (-ndtr(-b)).ln_1p();
            assert!((fast - general).abs() <= 1e-14, "{b}: {fast} vs {general}");
        }
        assert!((ln_one_minus_upper_tail(1e-300) - 0.5f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn fast_exp_and_log_sum_exp() {
        for i in 0..=7000 {
            let x = -(i as f64) * 0.1;
            let (a, b) = (exp_nonpositive(x), x.exp());
            assert!((a - b).abs() <= 1e-13 * b, "{x}: {a} vs {b}");
        }
        let v = [-1.0, -2.0, -3.0, -1000.0, 0.5];
        let w = [0.1, 0.2, 0.3, 0.2, 0.2];
        let direct = v
            .iter()
            .zip(&w)
            .map(|(x, w): (&f64, &f64)| w * x.exp())
            .sum::<f64>()
            .ln();
        assert!((log_sum_exp(&v, &w) - direct).abs() < 1e-12);
        assert_eq!(
            log_sum_exp(&[f64::NEG_INFINITY; 3], &[1.0; 3]),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn bucket_bandwidths_equal_sorted_bandwidths_bit_for_bit() {
        use rand::Rng;
        let mut rng = trial_rng(7, 0, 0);
        for case in 0..3000 {
            let n = 2 + case % 300;
            let (lo, hi) = if case % 3 == 0 {
                (-5.0, 10.0)
            } else {
                (0.0, 1.0)
            };
            // Dense, sparse, clustered and duplicated values, with the bounds themselves.
            let clusters = 1 + case % 7;
            let mus: Vec<f64> = (0..n)
                .map(|i| match (case + i) % 5 {
                    0 => lo,
                    1 if case % 2 == 0 => hi,
                    2 => lo + (hi - lo) * ((i % clusters) as f64 / clusters as f64),
                    _ => rng.random_range(lo..=hi),
                })
                .collect();
            let ratio = clip_ratio(n);
            let min_sigma = (hi - lo) / ratio as f64;
            let mut by_sort = vec![0.0; n];
            set_sigmas(
                &mus,
                &sorted_order(&mus, lo, hi),
                lo,
                hi,
                min_sigma,
                &mut by_sort,
            );
            let mut by_buckets = vec![0.0; n];
            assert!(sigmas_by_buckets(
                &mus,
                lo,
                hi,
                min_sigma,
                ratio,
                &mut by_buckets
            ));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&by_sort), bits(&by_buckets), "case {case}: {mus:?}");
        }
        let mut out = vec![0.0; 2];
        assert!(!sigmas_by_buckets(&[0.5, 2.0], 0.0, 1.0, 0.1, 10, &mut out));
    }

    #[test]
    fn one_dimensional_fast_density_equals_the_general_sum() {
        use rand::Rng;
        let mut rng = trial_rng(11, 0, 0);
        let mut warm = Masses::default();
        let float = Distribution::Float {
            low: -5.0,
            high: 10.0,
            log: false,
            step: None,
        };
        let log_float = Distribution::Float {
            low: 1e-5,
            high: 1.0,
            log: true,
            step: None,
        };
        let cat = Distribution::Categorical {
            choices: (0..4).map(crate::engine::ParamValue::Int).collect(),
        };
        let int = Distribution::Int {
            low: 1,
            high: 8,
            step: 1,
            log: false,
        };
        let log_int = Distribution::Int {
            low: 8,
            high: 512,
            step: 1,
            log: true,
        };
        let stepped = Distribution::Float {
            low: 0.0,
            high: 0.5,
            log: false,
            step: Some(0.05),
        };
        let unit = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        };
        for case in 0..105 {
            let n = 64 + case * 9;
            let (dist, obs): (&Distribution, Vec<f64>) = match case % 7 {
                // Dense and uniform: every kernel at the minimum bandwidth, some at the
                // bounds.
                6 => (
                    &unit,
                    (0..n)
                        .map(|i| match i % 50 {
                            0 => 0.0,
                            1 => 1.0,
                            _ => rng.random_range(0.0..1.0),
                        })
                        .collect(),
                ),
                3 => (&int, (0..n).map(|i| (1 + (i * i) % 8) as f64).collect()),
                4 => (
                    &log_int,
                    (0..n)
                        .map(|_| 2f64.powf(rng.random_range(3.0..9.0)).round())
                        .collect(),
                ),
                5 => (
                    &stepped,
                    (0..n)
                        .map(|_| (rng.random_range(0..=10) as f64 * 0.05).min(0.5))
                        .collect(),
                ),
                // Clustered values leave gaps wider than the minimum bandwidth.
                0 => (
                    &float,
                    (0..n)
                        .map(|i| {
                            if i % 4 == 0 {
                                rng.random_range(-5.0..10.0)
                            } else {
                                rng.random_range(2.0..2.5)
                            }
                        })
                        .collect(),
                ),
                1 => (
                    &log_float,
                    (0..n)
                        .map(|_| 10f64.powf(rng.random_range(-5.0..0.0)))
                        .collect(),
                ),
                _ => (&cat, (0..n).map(|i| ((i * i) % 7 % 4) as f64).collect()),
            };
            let density = Density::new(std::slice::from_ref(&obs), &[dist]);
            assert!(matches!(density, Density::OneDim(_)), "case {case}");
            let pe =
                ParzenEstimator::new(std::slice::from_ref(&obs), &[dist], &mut Masses::default());
            let xs: Vec<f64> = match case % 7 {
                6 => (0..=200).map(|i| i as f64 / 200.0).collect(),
                0 => (0..50).map(|i| -5.0 + 15.0 * i as f64 / 49.0).collect(),
                1 => (0..50)
                    .map(|i| 10f64.powf(-5.0 + 5.0 * i as f64 / 49.0))
                    .collect(),
                3 => (1..=8).map(f64::from).collect(),
                4 => (8..=512).step_by(7).map(f64::from).collect(),
                5 => (0..=10).map(|i| i as f64 * 0.05).collect(),
                _ => (0..4).map(f64::from).collect(),
            };
            let mut fast = Vec::new();
            density.log_pdf_many(&xs, &mut fast, &mut Masses::default());
            // Masses remembered from the earlier cases (other histories) change nothing.
            let again = Density::extending(std::slice::from_ref(&obs), &[dist], None, &mut warm);
            let mut remembered = Vec::new();
            again.log_pdf_many(&xs, &mut remembered, &mut warm);
            assert!(
                fast.iter()
                    .zip(&remembered)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "case {case}"
            );
            let mut scratch = Vec::new();
            for (x, f) in xs.iter().zip(&fast) {
                let general = pe.log_pdf(&[*x], &mut scratch);
                // Discrete pairs are summed with their weights before the cut: the same sum
                // up to what the cut leaves out (far below 1e-9).
                let tol = if (3..6).contains(&(case % 7)) {
                    1e-9
                } else {
                    1e-12
                };
                assert!(
                    (general - f).abs() <= tol * general.abs().max(1.0),
                    "case {case} x {x}: {general} vs {f}"
                );
            }
        }
    }

    #[test]
    fn weights_and_gamma_match_optuna() {
        assert_eq!(default_gamma(0), 0);
        assert_eq!(default_gamma(10), 1);
        assert_eq!(default_gamma(11), 2);
        assert_eq!(default_gamma(1000), 25);
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!((w[4] - 1.0).abs() < 1e-12);
        assert!(w[25..].iter().all(|&x| x == 1.0));
        for n in [0, 1, 24, 25, 26, 27, 64, 99, 1000, 4321] {
            // Normalised as Optuna does: the weights and the prior's, divided by their sum.
            let mut reference = default_weights(n);
            reference.push(1.0);
            let inv_total = 1.0 / reference.iter().sum::<f64>();
            let ramp = WeightRamp::new(n);
            for (k, w) in reference.iter().enumerate() {
                let want = w * inv_total;
                assert!(
                    (ramp.at(k) - want).abs() <= 4.0 * f64::EPSILON * want,
                    "n {n} k {k}: {} vs {want}",
                    ramp.at(k)
                );
            }
        }
    }

    #[test]
    fn samples_stay_in_bounds_and_density_integrates() {
        let d = Distribution::Float {
            low: 0.0,
            high: 2.0,
            log: false,
            step: None,
        };
        let pe = ParzenEstimator::new(&[vec![0.1, 1.0, 1.9]], &[&d], &mut Masses::default());
        let mut rng = trial_rng(1, 2, 3);
        for s in pe.sample(&mut rng, 500) {
            assert!((0.0..=2.0).contains(&s));
        }
        let mut scratch = Vec::new();
        let n = 4000;
        let integral: f64 = (0..n)
            .map(|i| {
                pe.log_pdf(&[(i as f64 + 0.5) * 2.0 / n as f64], &mut scratch)
                    .exp()
                    * 2.0
                    / n as f64
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let di = Distribution::Int {
            low: 1,
            high: 8,
            step: 1,
            log: true,
        };
        let pe = ParzenEstimator::new(&[vec![2.0, 3.0]], &[&di], &mut Masses::default());
        let mass: f64 = (1..=8)
            .map(|v| pe.log_pdf(&[v as f64], &mut scratch).exp())
            .sum();
        assert!((mass - 1.0).abs() < 1e-6, "{mass}");
        for s in pe.sample(&mut rng, 500) {
            assert!((1.0..=8.0).contains(&s) && s.fract() == 0.0);
        }
        let dc = Distribution::Categorical {
            choices: vec![
                crate::engine::ParamValue::Int(1),
                crate::engine::ParamValue::Int(2),
            ],
        };
        let pe = ParzenEstimator::new(&[vec![1.0, 1.0]], &[&dc], &mut Masses::default());
        let p1 = pe.log_pdf(&[1.0], &mut scratch).exp();
        let p0 = pe.log_pdf(&[0.0], &mut scratch).exp();
        assert!((p0 + p1 - 1.0).abs() < 1e-9 && p1 > p0);
    }
}
