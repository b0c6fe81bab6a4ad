//! One-dimensional densities with many kernels: the same sums as the general
//! [`super::estimator::ParzenEstimator`], visiting only the kernels that can matter.

use super::bandwidth::{Pairing, clip_ratio, kernel_range, pair_kernels};
use super::continuous::{ContinuousFit, ContinuousKernels};
use super::estimator::{LSE_CUT, ParzenEstimator, grid_cell};
use super::simd::log_pdf_many_with_avx2;
use super::special::exp_nonpositive;
use super::truncnorm::Masses;
use super::weights::{WeightRamp, w_prior_term};
use crate::engine::space::Distribution;

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

/// A one-dimensional density with at least this many observations uses [`OneDim`].
const ONE_DIM_MIN: usize = 64;
