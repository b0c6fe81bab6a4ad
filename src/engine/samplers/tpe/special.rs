//! Special functions of the normal distribution: erfc, Φ (`ndtr`), ln Φ, the mass
//! between two bounds (Optuna's `_log_gauss_mass`), the inverse CDF, and a branch-free
//! `exp` for non-positive arguments. Optuna keeps these in `_tpe/_erf.py` and
//! `_tpe/_truncnorm.py`.

pub(super) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `ln x`, kept out of line (see `build_dim`).
#[inline(never)]
pub(super) fn ln_outlined(x: f64) -> f64 {
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

/// For `a ≤ 0 < b` (or `a < 0 ≤ b`) with exactly one bound beyond 8.5σ, the other bound's
/// distance `z ≥ 0` from the centre: the mass is then `Φ(z)` (a tail beyond 8.5σ holds
/// under 1e-17, below an ulp of the rest). One bound in reach is the common case: kernels
/// near an end of a dense history.
#[inline(always)]
pub(super) fn one_sided(a: f64, b: f64) -> Option<f64> {
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
pub(super) fn ln_one_minus_upper_tail(b: f64) -> f64 {
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

/// Inverse standard normal CDF, Acklam's rational approximation (relative error below
/// 1.2e-9: finer than the 1.2e-7 of [`ndtr`] that a refinement step would use, so sampling
/// goes without one).
pub(super) fn ndtri_approx(p: f64) -> f64 {
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
