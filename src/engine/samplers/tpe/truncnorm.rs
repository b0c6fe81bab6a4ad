//! Normal kernels truncated to a range: their log normalising constants (one at a time,
//! batched, or remembered by argument in [`Masses`]) and sampling by inversion.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;

use super::simd::ln_one_minus_upper_tails;
use super::special::{log_gauss_mass, ndtr, ndtri_approx, one_sided};
use crate::engine::samplers::unit;

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
    pub(super) fn truncation(&mut self, lo: f64, hi: f64, m: f64, inv: f64) -> f64 {
        truncation_with(lo, hi, m, inv, |a, b| self.get(a, b))
    }
}

/// Draws from N(0,1) truncated to [a, b] (a ≤ 0 ≤ b in every use here) by inversion.
pub(super) fn truncnorm_std(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
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
pub(super) fn log_truncations(lo: f64, hi: f64, mus: &[f64], invs: &[f64], out: &mut [f64]) {
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
