//! Kernel bandwidths, as Optuna's `_calculate_numerical_distributions`: the larger gap to
//! a sorted neighbour (endpoints only for a single observation), clipped to
//! `[range / min(100, n_kernels + 1), range]` (the "magic clip"). Sorting is avoided where
//! buckets give the same result bit for bit; kernels sharing (μ, σ) are paired so a
//! discrete parameter computes one mass per pair.

use std::collections::HashMap;

use super::special::ln_outlined;

/// The magic clip for `n` observations: bandwidths are at least `range / clip_ratio(n)`.
pub(super) fn clip_ratio(n: usize) -> usize {
    100usize.min(n + 2)
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

/// The kernels' range: `[low, high]`, widened by half a step on each side for a grid, in
/// log space for log ranges.
pub(super) fn kernel_range(low: f64, high: f64, log: bool, step: Option<f64>) -> (f64, f64) {
    let (lo, hi) = match step {
        Some(s) => (low - s / 2.0, high + s / 2.0),
        None => (low, high),
    };
    if log { (lo.ln(), hi.ln()) } else { (lo, hi) }
}

/// [`set_sigmas`] without sorting, for `n ≥ 2` finite values in `[lo, hi]` (false, and
/// nothing written, otherwise). Buckets of width `(hi - lo) / (2 * ratio)`, half of
/// `min_sigma`: two values in one bucket are closer than `min_sigma`, so only the first
/// and the last value of a bucket (in sorted order: ties by position) can have a gap above
/// the clip, and that gap is to the neighbouring non-empty bucket. Every other bandwidth
/// is `min_sigma`. Same results as sorting, bit for bit.
pub(super) fn sigmas_by_buckets(
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
pub(super) struct Pairing {
    /// (μ, 1/σ) per pair: by centre, then by first appearance of σ in trial order.
    pub(super) pairs: Vec<(f64, f64)>,
    /// σ's bits per pair.
    pub(super) sigma_bits: Vec<u64>,
    /// Per kernel, the prior's last: its pair.
    pub(super) pair_of: Vec<u32>,
}

/// The kernels of the centres `mus` (in trial order) and the prior (centre of `[lo, hi]`,
/// σ = `hi - lo`), paired, with the bandwidths [`set_sigmas`] gives, without sorting every
/// centre: kernels at one value are neighbours in sorted order (ties by position), so only
/// the first and the last of a value can have a gap to another value, and sorting the
/// distinct values is enough.
pub(super) fn pair_kernels(mus: &[f64], lo: f64, hi: f64, min_sigma: f64) -> Pairing {
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
