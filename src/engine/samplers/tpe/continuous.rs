//! The "above" group's density for one continuous parameter, kept from one suggestion to
//! the next and updated as the history changes.
//!
//! Between two suggestions a study's "above" group changes by a kernel or two: the newest
//! trial joins it, or the newest trial joins the "below" group and pushes the worst of
//! those into "above" (at its place in trial order). [`ContinuousFit`] keeps what the
//! previous suggestion built, the sorted centres (for the bandwidths), the narrow kernels
//! by bucket with their series terms, and the two sums each bucket's series needs, and
//! inserts the new kernels. Optuna's weight of kernel `k` (in trial order) is
//! `start + k·step` for all but the newest 25 (which weigh 1), `start` and `step` depending
//! on the count only, so a bucket's moments are `start·S0 + step·S1 + F` where
//! `S0 = Σ a_k v_k^j` and `S1 = Σ k a_k v_k^j` run over its older narrow kernels and `F`
//! over the newest ones.
//!
//! Every part of the kept state is a function of the observations alone: `S0` and `S1` are
//! summed kernel by kernel in trial order, and a bucket whose sums an insertion changes
//! (a kernel inserted among them, or their positions moved up by one) is summed again from
//! its stored terms. A kept fit is used only when the new observations contain the old
//! ones in order (bit for bit) with a few inserted, and no kept kernel changes between
//! narrow and wide; anything else (a trial leaving the group, a change of the range or of
//! the magic clip) refits from scratch. So a suggestion never depends on what the sampler
//! saw before: a kept fit and a new one give identical densities (a test checks it bit for
//! bit).

use super::bandwidth::{
    bucket_index, clip_ratio, ln_sigma, neighbour_sigma, set_sigmas, sorted_order,
};
use super::estimator::LSE_CUT;
use super::fgt::{FGT_TERMS, Group, INV_FACTORIAL, LN_FGT_ERROR, Sums, powers, window};
use super::special::{LN_SQRT_2PI, exp_nonpositive};
use super::truncnorm::log_truncation;
use super::weights::WeightRamp;

/// How far `base_ref` sits above an untruncated narrow kernel's constant term: more than
/// `ln 2`, the most a truncation adds to it (a kernel centred on a bound keeps half its
/// mass), so every kernel's series weight `e^(base - base_ref - v²/2)` is at most 1.
const BASE_HEADROOM: f64 = 0.75;

/// More insertions than this refit from scratch: each insertion costs a pass over the
/// kernels.
const MAX_INSERTIONS: usize = 32;

/// A narrow kernel: centre, constant term, position in trial order.
#[derive(Clone, Copy, Debug)]
struct Narrow {
    mu: f64,
    base: f64,
    rank: u32,
}

/// The kernels of one continuous parameter's observations (in trial order), ready to be
/// updated for the next suggestion's. See the module docs.
#[derive(Clone, Debug)]
pub(crate) struct ContinuousFit {
    /// The distribution's range and scale, as given.
    low: f64,
    high: f64,
    log: bool,
    /// The range in kernel space (log space for log ranges).
    lo: f64,
    hi: f64,
    /// The magic clip's ratio: also the number of buckets, each `min_sigma` wide.
    ratio: usize,
    /// Buckets per unit of kernel space.
    scale: f64,
    min_sigma: f64,
    inv_min_sigma: f64,
    ln_min_sigma: f64,
    base_ref: f64,
    /// The observations as given, in order: what a later history must contain.
    raw: Vec<f64>,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    /// Positions sorted by (centre, position).
    sorted: Vec<u32>,
    /// The narrow kernels of each bucket, in trial order, and their series terms.
    narrow: Vec<Vec<Narrow>>,
    terms: Vec<Vec<Sums>>,
    /// Per bucket, over its first `summed` narrow kernels: `Σ a v^j` and `Σ k a v^j`.
    s0: Vec<Sums>,
    s1: Vec<Sums>,
    summed: Vec<u32>,
    /// Per bucket: `s0` and `s1` (2), or `s1` only (1), to sum again.
    stale: Vec<u8>,
    /// How many times this fit was updated rather than refitted (for tests).
    extended: u32,
    /// The last density's coefficients, to be overwritten by the next (no new buffer).
    coef: Vec<Group>,
}

/// How many of `n` observations take the weight ramp (the others weigh 1).
fn ramp_len(n: usize) -> usize {
    n.saturating_sub(25)
}

/// Positions in `new` of the values inserted into `old` (bit for bit, in order) to make
/// it; `None` if `new` does not contain `old` in order or more than `MAX_INSERTIONS`
/// were inserted. Matching greedily is exact for "contains in order", and with equal
/// values any matching gives the same fit.
fn insertions(old: &[f64], new: &[f64]) -> Option<Vec<usize>> {
    if old.len() > new.len() || new.len() - old.len() > MAX_INSERTIONS {
        return None;
    }
    let mut at = Vec::new();
    let mut i = 0;
    for (j, x) in new.iter().enumerate() {
        if i < old.len() && old[i].to_bits() == x.to_bits() {
            i += 1;
        } else {
            at.push(j);
        }
    }
    (i == old.len()).then_some(at)
}

/// `s += r·t`, term by term.
#[inline(always)]
fn add_ranked(s: &mut Sums, r: f64, t: &Sums) {
    for (a, x) in s.iter_mut().zip(t) {
        *a += r * x;
    }
}

impl ContinuousFit {
    /// The fit of `obs` (internal values, in trial order) on `[low, high]`: `kept` updated
    /// where it applies (see the module docs), refitted otherwise. `None` where the
    /// one-dimensional form does not apply: fewer than two observations, a value outside
    /// the range, an empty or infinite range.
    pub(crate) fn fit(
        kept: Option<Box<Self>>,
        obs: &[f64],
        low: f64,
        high: f64,
        log: bool,
    ) -> Option<Box<Self>> {
        let n = obs.len();
        let (lo, hi) = if log {
            (low.ln(), high.ln())
        } else {
            (low, high)
        };
        let span = hi - lo;
        if n < 2 || !(span > 0.0 && span.is_finite()) {
            return None;
        }
        let to_mu = |v: f64| if log { v.ln() } else { v };
        let ratio = clip_ratio(n);
        if let Some(mut fit) = kept
            && fit.low.to_bits() == low.to_bits()
            && fit.high.to_bits() == high.to_bits()
            && fit.log == log
            && fit.ratio == ratio
            && let Some(at) = insertions(&fit.raw, obs)
        {
            if at
                .iter()
                .any(|&j| !(to_mu(obs[j]) >= lo && to_mu(obs[j]) <= hi))
            {
                return None;
            }
            if at.iter().all(|&j| fit.insert(j, obs[j], to_mu(obs[j]))) {
                fit.sum_ramp();
                fit.extended += 1;
                return Some(fit);
            }
        }
        let mus: Vec<f64> = obs.iter().map(|&v| to_mu(v)).collect();
        if !mus.iter().all(|&m| m >= lo && m <= hi) {
            return None;
        }
        let min_sigma = span / ratio as f64;
        let ln_min_sigma = min_sigma.ln();
        let sorted = sorted_order(&mus, lo, hi);
        let mut sigmas = vec![0.0; n];
        set_sigmas(&mus, &sorted, lo, hi, min_sigma, &mut sigmas);
        let mut fit = Box::new(ContinuousFit {
            low,
            high,
            log,
            lo,
            hi,
            ratio,
            scale: ratio as f64 / span,
            min_sigma,
            inv_min_sigma: 1.0 / min_sigma,
            ln_min_sigma,
            base_ref: BASE_HEADROOM - (ln_min_sigma + LN_SQRT_2PI),
            raw: obs.to_vec(),
            mus,
            sigmas,
            sorted,
            narrow: vec![Vec::new(); ratio],
            terms: vec![Vec::new(); ratio],
            s0: vec![[0.0; 28]; ratio],
            s1: vec![[0.0; 28]; ratio],
            summed: vec![0; ratio],
            stale: vec![0; ratio],
            extended: 0,
            coef: Vec::new(),
        });
        for k in 0..n {
            if fit.sigmas[k] == min_sigma {
                let (b, kernel, t) = fit.narrow_kernel(k);
                fit.narrow[b].push(kernel);
                fit.terms[b].push(t);
            }
        }
        fit.sum_ramp();
        Some(fit)
    }

    fn bucket(&self, m: f64) -> usize {
        bucket_index((m - self.lo) * self.scale, self.ratio)
    }

    /// The constant term of a kernel at `m` with bandwidth `s`, as `build_dim` computes it.
    fn base(&self, m: f64, s: f64) -> f64 {
        let inv = if s == self.min_sigma {
            self.inv_min_sigma
        } else {
            1.0 / s
        };
        let ln_s = ln_sigma(s, self.min_sigma, self.ln_min_sigma);
        (0.0 - log_truncation(self.lo, self.hi, m, inv)) - (ln_s + LN_SQRT_2PI)
    }

    /// Kernel `k` (narrow): its bucket, its entry there and its series terms `a v^j` about
    /// the bucket's centre.
    fn narrow_kernel(&self, k: usize) -> (usize, Narrow, Sums) {
        let mu = self.mus[k];
        let base = self.base(mu, self.min_sigma);
        let b = self.bucket(mu);
        let v = (mu - self.lo) * self.inv_min_sigma - (b as f64 + 0.5);
        let a = exp_nonpositive(base - self.base_ref - 0.5 * v * v);
        let kernel = Narrow {
            mu,
            base,
            rank: k as u32,
        };
        (b, kernel, powers(a, v))
    }

    /// Brings each bucket's `s0` and `s1` to its narrow kernels before the ramp's end,
    /// summing again where an insertion made them stale, adding the newer kernels
    /// otherwise: the same additions in the same order either way.
    fn sum_ramp(&mut self) {
        let end = ramp_len(self.mus.len());
        for b in 0..self.ratio {
            let (list, terms) = (&self.narrow[b], &self.terms[b]);
            let to = list.partition_point(|k| (k.rank as usize) < end);
            let mut from = self.summed[b] as usize;
            if self.stale[b] == 0 && from == to {
                continue;
            }
            // Local sums: no aliasing with the lists.
            let (mut s0, mut s1) = (self.s0[b], self.s1[b]);
            match self.stale[b] {
                0 => {}
                1 => {
                    s1 = [0.0; 28];
                    for (k, t) in list[..from].iter().zip(terms) {
                        add_ranked(&mut s1, k.rank as f64, t);
                    }
                }
                _ => {
                    (s0, s1, from) = ([0.0; 28], [0.0; 28], 0);
                }
            }
            for (k, t) in list[from..to].iter().zip(&terms[from..to]) {
                for (a, x) in s0.iter_mut().zip(t) {
                    *a += x;
                }
                add_ranked(&mut s1, k.rank as f64, t);
            }
            (self.s0[b], self.s1[b]) = (s0, s1);
            self.summed[b] = to as u32;
            self.stale[b] = 0;
        }
    }

    /// Bandwidth of the kernel at sorted position `p`, as `set_sigmas` computes it.
    fn sigma_at(&self, p: usize) -> f64 {
        let at = |j: usize| self.mus[self.sorted[j] as usize];
        let next = (p + 1 < self.sorted.len()).then(|| at(p + 1));
        neighbour_sigma(
            p.checked_sub(1).map(at),
            at(p),
            next,
            self.lo,
            self.hi,
            self.min_sigma,
        )
    }

    /// Inserts observation `raw` (centre `m`, in range) at position `p` in trial order.
    /// False when a kept kernel's bandwidth changes between narrow and wide: the caller
    /// refits.
    fn insert(&mut self, p: usize, raw: f64, m: f64) -> bool {
        // The kernels from `p` on move up one place: the sums over them are stale. None
        // do when the newest trial is appended (the usual case).
        if p < self.mus.len() {
            let p32 = p as u32;
            for r in &mut self.sorted {
                *r += u32::from(*r >= p32);
            }
            for (b, list) in self.narrow.iter_mut().enumerate() {
                let at = list.partition_point(|k| k.rank < p32);
                for k in &mut list[at..] {
                    k.rank += 1;
                }
                if at < self.summed[b] as usize {
                    self.stale[b] = self.stale[b].max(1);
                }
            }
        }
        self.raw.insert(p, raw);
        self.mus.insert(p, m);
        self.sigmas.insert(p, 0.0);
        // Ties by position, as in `sorted_order`.
        let j = self.sorted.partition_point(|&r| {
            self.mus[r as usize]
                .total_cmp(&m)
                .then((r as usize).cmp(&p))
                .is_lt()
        });
        self.sorted.insert(j, p as u32);
        let last = self.sorted.len() - 1;
        for q in j.saturating_sub(1)..=(j + 1).min(last) {
            let r = self.sorted[q] as usize;
            let s = self.sigma_at(q);
            if r != p && (s == self.min_sigma) != (self.sigmas[r] == self.min_sigma) {
                return false;
            }
            self.sigmas[r] = s;
        }
        if self.sigmas[p] == self.min_sigma {
            let (b, kernel, t) = self.narrow_kernel(p);
            let at = self.narrow[b].partition_point(|k| (k.rank as usize) < p);
            self.narrow[b].insert(at, kernel);
            self.terms[b].insert(at, t);
            if at < self.summed[b] as usize {
                // Inside the summed kernels: both sums change; the count grows by one.
                self.stale[b] = 2;
                self.summed[b] += 1;
            }
        }
        true
    }

    /// The density this fit describes, for scoring candidates.
    pub(crate) fn density(mut self: Box<Self>) -> ContinuousKernels {
        let n = self.mus.len();
        let nb = self.ratio;
        let weight = WeightRamp::new(n);
        let (start, step, scale) = weight.linear();
        // Per term: the weights' start, step and normalisation with 1/j! folded in.
        let (mut a0, mut a1, mut a2) = ([0.0; 28], [0.0; 28], [0.0; 28]);
        for j in 0..FGT_TERMS {
            let s = scale * INV_FACTORIAL[j];
            (a0[j], a1[j], a2[j]) = (start * s, step * s, s);
        }
        let mut coef = std::mem::take(&mut self.coef);
        // Every bucket's lanes are written below; only the last group's spare lanes (none
        // at 100 buckets) need zeros.
        coef.resize(nb.div_ceil(4), [[0.0; 4]; FGT_TERMS]);
        if let Some(last) = coef.last_mut() {
            *last = [[0.0; 4]; FGT_TERMS];
        }
        let mut m0_max = 0.0f64;
        for b in 0..nb {
            // The newest kernels weigh 1: their sums, from their terms each time.
            let mut flat = [0.0; 28];
            for t in &self.terms[b][self.summed[b] as usize..] {
                for (f, x) in flat.iter_mut().zip(t) {
                    *f += x;
                }
            }
            let (s0, s1) = (&self.s0[b], &self.s1[b]);
            let mut m = [0.0; 28];
            for j in 0..28 {
                m[j] = (a0[j] * s0[j] + a1[j] * s1[j]) + a2[j] * flat[j];
            }
            let c = &mut coef[b / 4];
            for j in 0..FGT_TERMS {
                c[j][b % 4] = m[j];
            }
            m0_max = m0_max.max(m[0]);
        }
        let mut wide = Vec::new();
        for k in 0..n {
            let s = self.sigmas[k];
            if s != self.min_sigma {
                let m = self.mus[k];
                wide.push((m, 1.0 / s, weight.at(k).ln() + self.base(m, s)));
            }
        }
        let (pm, ps) = (0.5 * (self.lo + self.hi), self.hi - self.lo);
        wide.push((pm, 1.0 / ps, weight.at(n).ln() + self.base(pm, ps)));
        ContinuousKernels {
            top: self.base_ref + m0_max.ln() + 0.125,
            weight,
            coef,
            wide,
            fit: self,
        }
    }
}

/// Continuous kernels: those at the minimum bandwidth ("narrow", the vast majority in a
/// dense history) grouped by buckets of their centre, so that the ones within reach of a
/// point are a few adjacent buckets, each summed by its series ([`super::fgt`]) or, where
/// the series' error bound could matter, kernel by kernel; the others ("wide", the prior
/// among them) visited for every point.
#[derive(Clone, Debug)]
pub(crate) struct ContinuousKernels {
    /// The kernels (bucket `b` covers `[lo + bσ, lo + (b+1)σ)`, σ the minimum bandwidth).
    fit: Box<ContinuousFit>,
    weight: WeightRamp,
    /// `ln` of the largest bucket sum's `M_0`, plus 1/8, plus `base_ref`: bounds every
    /// bucket's log-contribution.
    top: f64,
    /// Taylor coefficients of the bucket sums, `[group of 4 buckets][j][bucket]`,
    /// relative to `e^base_ref`.
    coef: Vec<Group>,
    /// (μ, 1/σ, ln w + constant term)
    wide: Vec<(f64, f64, f64)>,
}

impl ContinuousKernels {
    /// The fit behind this density, to extend at the next suggestion.
    pub(crate) fn into_fit(self) -> Box<ContinuousFit> {
        let mut fit = self.fit;
        fit.coef = self.coef;
        fit
    }

    /// Bucket `b`'s sum at `xt`, kernel by kernel, relative to `e^reference`.
    fn bucket_sum(&self, b: usize, xt: f64, reference: f64) -> f64 {
        let mut sum = 0.0;
        for k in &self.fit.narrow[b] {
            let z = (xt - k.mu) * self.fit.inv_min_sigma;
            sum +=
                self.weight.at(k.rank as usize) * exp_nonpositive(k.base - 0.5 * z * z - reference);
        }
        sum
    }

    #[inline(always)]
    pub(crate) fn log_pdf(&self, x: f64) -> f64 {
        let fit = &self.fit;
        let xt = if fit.log { x.ln() } else { x };
        if xt.is_nan() {
            return f64::NAN;
        }
        let inv = fit.inv_min_sigma;
        let nb = fit.ratio;
        let base_ref = fit.base_ref;
        // x in units of σ from `lo`: bucket b's centre is at b + 1/2.
        let u = (xt - fit.lo) * inv;
        let mut wide_max = f64::NEG_INFINITY;
        for &(m, iv, lw) in &self.wide {
            let z = (xt - m) * iv;
            wide_max = wide_max.max(lw - 0.5 * z * z);
        }
        // `floor`, a lower bound of the log-density: the wide terms, and the sums of
        // x's bucket and its neighbours, each at least M_0·e^(-t²/2 - |t|/2).
        let m0 = |b: usize| self.coef[b / 4][0][b % 4];
        // Below the range is bucket 0.
        let own = bucket_index((xt - fit.lo) * fit.scale, nb);
        let mut near = 0.0f64;
        for b in own.saturating_sub(1)..(own + 2).min(nb) {
            let t = u - (b as f64 + 0.5);
            near = near.max(m0(b) * exp_nonpositive(-0.5 * t * t - 0.5 * t.abs()));
        }
        let floor = wide_max.max(base_ref + near.ln());
        // A bucket's log-contribution is at most `top - (|t| - 1/2)²/2`: past
        // `reach` it is below `floor - LSE_CUT`, and left out.
        let reach = 0.5 + (2.0 * (self.top - floor + LSE_CUT).max(0.0)).sqrt();
        let (first, last) = ((u - 0.5 - reach).ceil(), (u - 0.5 + reach).floor());
        let reference = base_ref.max(self.top).max(wide_max);
        let shift = base_ref - reference;
        // The series' error is below M_0·e^(base_ref - 45) (see `super::fgt`): a
        // bucket with M_0 above `limit` could make it more than e^-33 of the
        // density, and is summed kernel by kernel instead.
        let limit = (floor - base_ref + FGT_MARGIN).exp();
        let mut total = 0.0;
        if last >= 0.0 && first <= (nb - 1) as f64 {
            let (b0, b1) = (first.max(0.0) as usize, last.min((nb - 1) as f64) as usize);
            let (g0, g1) = (b0 / 4, b1 / 4);
            let mut sums = [[0.0f64; 4]; 32];
            let mut g = g0;
            while g <= g1 {
                let len = (g1 + 1 - g).min(sums.len());
                window(&self.coef, u, shift, g, &mut sums[..len]);
                for (i, e) in sums[..len].iter_mut().enumerate() {
                    let m0s = self.coef[g + i][0];
                    for (l, &m0) in m0s.iter().enumerate() {
                        let b = 4 * (g + i) + l;
                        if m0 > limit && b < nb {
                            e[l] = self.bucket_sum(b, xt, reference);
                        }
                    }
                    total += (e[0] + e[1]) + (e[2] + e[3]);
                }
                g += len;
            }
        }
        let cut = floor - LSE_CUT;
        for &(m, iv, lw) in &self.wide {
            let z = (xt - m) * iv;
            let t = lw - 0.5 * z * z;
            if t >= cut {
                total += exp_nonpositive(t - reference);
            }
        }
        reference + total.ln()
    }
}

/// A bucket is summed by its series while its error bound, `M_0 e^-45` (relative to
/// `base_ref`), is below `e^-33` of the density's lower bound; otherwise kernel by kernel.
const FGT_MARGIN: f64 = -33.0 - LN_FGT_ERROR;

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::engine::samplers::trial_rng;

    fn log_pdfs(d: &ContinuousKernels, xs: &[f64]) -> Vec<u64> {
        xs.iter().map(|&x| d.log_pdf(x).to_bits()).collect()
    }

    #[test]
    fn an_updated_fit_equals_a_new_fit_bit_for_bit() {
        let mut rng = trial_rng(5, 0, 0);
        for (low, high, log) in [(-5.0, 10.0, false), (1e-4, 1.0, true)] {
            // A history that settles: spread out first, then clustered, with values on
            // the bounds and repeats now and then.
            let mut value = |i: usize| match i % 37 {
                0 => low,
                1 => high,
                _ if i > 150 && !i.is_multiple_of(3) => {
                    let c = if log { 1e-2 } else { 2.0 };
                    (c * (1.0 + rng.random_range(-0.2..0.2f64))).clamp(low, high)
                }
                2 if i > 20 => 0.5 * (low + high),
                _ if log => 10f64.powf(rng.random_range(-4.0..0.0)),
                _ => rng.random_range(low..high),
            };
            let xs: Vec<f64> = (0..=120)
                .map(|i| {
                    let f = i as f64 / 120.0;
                    if log {
                        low * (high / low).powf(f)
                    } else {
                        low + f * (high - low)
                    }
                })
                .collect();
            let mut ops = trial_rng(6, 0, 0);
            let mut obs: Vec<f64> = (0..2).map(&mut value).collect();
            let mut kept: Option<Box<ContinuousFit>> = None;
            let mut updates = 0;
            for i in 2..420 {
                // As TPE's "above" group changes: the newest trial joins it, or a trial
                // moves into it from "below" (anywhere in trial order), or both, or one
                // leaves it.
                match ops.random_range(0..20) {
                    0..12 => obs.push(value(i)),
                    12..17 => {
                        let at = ops.random_range(0..=obs.len());
                        obs.insert(at, value(i));
                    }
                    17..19 => {
                        let at = ops.random_range(0..=obs.len());
                        obs.insert(at, value(i));
                        obs.push(value(i + 1000));
                    }
                    _ => {
                        let at = ops.random_range(0..obs.len());
                        obs.remove(at);
                        obs.push(value(i));
                    }
                }
                let fit = ContinuousFit::fit(kept.take(), &obs, low, high, log).unwrap();
                let was_updated = fit.extended > 0;
                let updated = fit.density();
                let fresh = ContinuousFit::fit(None, &obs, low, high, log)
                    .unwrap()
                    .density();
                let n = obs.len();
                assert_eq!(
                    log_pdfs(&updated, &xs),
                    log_pdfs(&fresh, &xs),
                    "n {n} log {log}"
                );
                let bits = |c: &[Group]| {
                    c.iter()
                        .flatten()
                        .flatten()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&updated.coef), bits(&fresh.coef), "n {n}");
                updates += usize::from(was_updated);
                kept = Some(updated.into_fit());
            }
            // Past the magic clip's last change (n = 98) most steps update the kept fit.
            assert!(updates > 200, "{updates} updates");
        }
    }

    #[test]
    fn a_changed_history_is_refitted() {
        let obs: Vec<f64> = (0..200).map(|i| (i as f64 * 0.618_034).fract()).collect();
        let fit = ContinuousFit::fit(None, &obs[..150], 0.0, 1.0, false).unwrap();
        let mut changed = obs.clone();
        changed[10] = 0.999;
        let refit = ContinuousFit::fit(Some(fit), &changed, 0.0, 1.0, false).unwrap();
        assert_eq!(refit.extended, 0);
        let fresh = ContinuousFit::fit(None, &changed, 0.0, 1.0, false).unwrap();
        let xs: Vec<f64> = (0..50).map(|i| i as f64 / 49.0).collect();
        assert_eq!(
            log_pdfs(&refit.density(), &xs),
            log_pdfs(&fresh.density(), &xs)
        );
        // A value outside the range: no one-dimensional form, kept or not.
        let fit = ContinuousFit::fit(None, &obs[..150], 0.0, 1.0, false).unwrap();
        let mut out = obs[..151].to_vec();
        out[150] = 1.5;
        assert!(ContinuousFit::fit(Some(fit), &out, 0.0, 1.0, false).is_none());
    }
}
