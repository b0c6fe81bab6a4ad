//! A fast Gauss transform for the one-dimensional densities of [`super::density::OneDim`]:
//! the narrow kernels (all of one bandwidth σ) grouped in buckets one σ wide, each bucket's
//! sum of Gaussians replaced by a Taylor series about the bucket's centre.
//!
//! With `t` the point's offset from the centre and `v` a kernel's (both in σ, `|v| ≤ 1/2`),
//! `Σ a e^(-(t-v)²/2) = e^(-t²/2) Σ_j t^j M_j / j!` where `M_j = Σ a e^(-v²/2) v^j`. Cut
//! after `FGT_TERMS` terms, the error is at most `M_0 e^(-t²/2 + |t|/2) (|t|/2)^25 / 25!`,
//! below `M_0 e^-45` for every `t` (a test checks the bound): one exponential and 24
//! multiply-adds per bucket replace one exponential per kernel.
//!
//! Both the AVX2 and the plain versions do the same operations in the same order, without
//! fused multiply-add, so a suggestion does not depend on the CPU.

use super::special::exp_nonpositive;

/// Terms of each bucket's series (degree 24).
pub(crate) const FGT_TERMS: usize = 25;

/// `ln` of the bound on the series' error relative to `M_0` (see the module docs).
pub(crate) const LN_FGT_ERROR: f64 = -45.0;

/// The series coefficients `M_j / j!` of four buckets: `[j][bucket]`.
pub(crate) type Group = [[f64; 4]; FGT_TERMS];

/// `1/j!` for the series' terms.
pub(crate) const INV_FACTORIAL: [f64; FGT_TERMS] = {
    let mut c = [1.0; FGT_TERMS];
    let mut j = 1;
    while j < FGT_TERMS {
        c[j] = c[j - 1] / j as f64;
        j += 1;
    }
    c
};

/// A kernel's series terms `a v^j`, `j < FGT_TERMS`, padded to a multiple of four (the
/// padding is never read). Powers by fours (`v^4` steps) keep the chain of products short.
pub(crate) type Sums = [f64; 28];

/// `a v^j` for every term of the series (see [`Sums`]).
#[inline(always)]
pub(crate) fn powers(a: f64, v: f64) -> Sums {
    let v2 = v * v;
    let v4 = v2 * v2;
    let mut q = [a, a * v, a * v2, (a * v2) * v];
    let mut s = [0.0; 28];
    for c in s.chunks_exact_mut(4) {
        c.copy_from_slice(&q);
        for x in &mut q {
            *x *= v4;
        }
    }
    s
}

/// For the groups `g0..g0 + out.len()` and a point `u` (in σ from `lo`), each bucket's
/// `e^(shift - t²/2) · series(t)`, `t = u - (b + 1/2)`: its sum relative to
/// `e^(base_ref - shift)`.
pub(crate) fn window(coef: &[Group], u: f64, shift: f64, g0: usize, out: &mut [[f64; 4]]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { avx2::window(coef, u, shift, g0, out) };
        return;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let g = g0 + i;
        let cg = &coef[g];
        let mut t = [0.0f64; 4];
        for (l, tl) in t.iter_mut().enumerate() {
            *tl = u - ((4 * g + l) as f64 + 0.5);
        }
        let mut p = cg[FGT_TERMS - 1];
        for c in cg[..FGT_TERMS - 1].iter().rev() {
            for l in 0..4 {
                p[l] = p[l] * t[l] + c[l];
            }
        }
        for l in 0..4 {
            o[l] = exp_nonpositive(shift - 0.5 * t[l] * t[l]) * p[l];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::special::{EXP_LN2_HI, EXP_LN2_LO, EXP_MAGIC, EXP_TAYLOR};
    use super::{FGT_TERMS, Group};

    /// [`super::super::special::exp_nonpositive`] on four lanes, operation for operation.
    #[target_feature(enable = "avx2")]
    fn exp4(x: __m256d) -> __m256d {
        let floor = _mm256_set1_pd(-700.0);
        // `if x < -700 { -700 } else { x }` (NaN stays NaN).
        let x = _mm256_blendv_pd(x, floor, _mm256_cmp_pd::<_CMP_LT_OQ>(x, floor));
        let magic = _mm256_set1_pd(EXP_MAGIC);
        let t = _mm256_add_pd(
            _mm256_mul_pd(x, _mm256_set1_pd(std::f64::consts::LOG2_E)),
            magic,
        );
        let n = _mm256_sub_pd(t, magic);
        let r = _mm256_sub_pd(
            _mm256_sub_pd(x, _mm256_mul_pd(n, _mm256_set1_pd(EXP_LN2_HI))),
            _mm256_mul_pd(n, _mm256_set1_pd(EXP_LN2_LO)),
        );
        let mut p = _mm256_set1_pd(EXP_TAYLOR[0]);
        for &c in &EXP_TAYLOR[1..] {
            p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(c));
        }
        let bits = _mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_castpd_si256(t),
            _mm256_set1_epi64x(1023),
        ));
        _mm256_mul_pd(p, _mm256_castsi256_pd(bits))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn window(coef: &[Group], u: f64, shift: f64, g0: usize, out: &mut [[f64; 4]]) {
        let (uu, half, sh) = (
            _mm256_set1_pd(u),
            _mm256_set1_pd(0.5),
            _mm256_set1_pd(shift),
        );
        for (i, o) in out.iter_mut().enumerate() {
            let g = g0 + i;
            let cg = &coef[g];
            let c0 = (4 * g) as f64 + 0.5;
            let t = _mm256_sub_pd(uu, _mm256_setr_pd(c0, c0 + 1.0, c0 + 2.0, c0 + 3.0));
            // SAFETY (loads and stores): each `[f64; 4]` is 32 readable/writable bytes.
            unsafe {
                let mut p = _mm256_loadu_pd(cg[FGT_TERMS - 1].as_ptr());
                for c in cg[..FGT_TERMS - 1].iter().rev() {
                    p = _mm256_add_pd(_mm256_mul_pd(p, t), _mm256_loadu_pd(c.as_ptr()));
                }
                let x = _mm256_sub_pd(sh, _mm256_mul_pd(_mm256_mul_pd(half, t), t));
                _mm256_storeu_pd(o.as_mut_ptr(), _mm256_mul_pd(exp4(x), p));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_error_bound_holds_for_every_offset() {
        // ln of (|t|/2)^25 / 25! · e^(-t²/2 + |t|/2), on a fine grid of t.
        let ln_fact: f64 = (1..=FGT_TERMS).map(|k| (k as f64).ln()).sum();
        let worst = (1..40_000)
            .map(|i| {
                let t = i as f64 * 5e-4;
                -0.5 * t * t + 0.5 * t + FGT_TERMS as f64 * (0.5 * t).ln() - ln_fact
            })
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(worst <= LN_FGT_ERROR, "{worst}");
        assert!(worst > LN_FGT_ERROR - 1.0, "the bound is tight: {worst}");
    }

    #[test]
    fn series_sums_equal_direct_sums() {
        // Kernels in 6 buckets, points up to 12σ away: the series against the direct sum.
        let counts = [3usize, 0, 7, 1, 19, 1];
        let mut coef = vec![[[0.0; 4]; FGT_TERMS]; 2];
        let mut kernels = Vec::new();
        for (b, &c) in counts.iter().enumerate() {
            let mut sums = [0.0; 28];
            for _ in 0..c {
                let i = kernels.len();
                let (mu, a) = (b as f64 + (i as f64 * 0.618).fract(), 1.0 / (1 + i) as f64);
                kernels.push((mu, a));
                let v = mu - (b as f64 + 0.5);
                for (s, t) in sums.iter_mut().zip(powers(a * (-0.5 * v * v).exp(), v)) {
                    *s += t;
                }
            }
            for j in 0..FGT_TERMS {
                coef[b / 4][j][b % 4] = sums[j] * INV_FACTORIAL[j];
            }
        }
        let m0: f64 = kernels.iter().map(|k| k.1).sum();
        for i in 0..=200 {
            let u = -6.0 + i as f64 * 0.09;
            let mut out = vec![[0.0; 4]; 2];
            window(&coef, u, 0.0, 0, &mut out);
            let series: f64 = out.iter().flatten().sum();
            let direct: f64 = kernels
                .iter()
                .map(|&(mu, a)| a * (-0.5 * (u - mu) * (u - mu)).exp())
                .sum();
            assert!(
                (series - direct).abs() <= 1e-14 * direct + 2.0 * m0 * LN_FGT_ERROR.exp(),
                "u {u}: {series} vs {direct}"
            );
        }
    }

    #[test]
    fn powers_are_the_series_terms() {
        for &(a, v) in &[(1.0, 0.5), (0.3, -0.5), (0.7, 0.123), (2.0, 0.0)] {
            let p = powers(a, v);
            for (j, &x) in p.iter().enumerate().take(FGT_TERMS) {
                let want = a * v.powi(j as i32);
                assert!((x - want).abs() <= 1e-15 * a, "{a} {v} {j}: {x} vs {want}");
            }
        }
    }
}
