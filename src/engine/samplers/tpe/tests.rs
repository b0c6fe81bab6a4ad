//! The estimator's pieces against direct computations and each other.

use super::bandwidth::*;
use super::density::*;
use super::estimator::*;
use super::sampler::default_gamma;
use super::special::*;
use super::truncnorm::*;
use super::weights::*;
use crate::engine::samplers::trial_rng;
use crate::engine::space::Distribution;

/// Inverse standard normal CDF, refined by one Halley step against [`ndtr`] (so that
/// `ndtr(ndtri(p)) ≈ p` to `ndtr`'s own precision).
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

/// Optuna's default weights: flat for the newest 25 observations, a linear ramp from 1/n
/// before them.
fn default_weights(n: usize) -> Vec<f64> {
    let ramp = WeightRamp::new(n);
    (0..n).map(|k| ramp.raw(k)).collect()
}

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
        let pe = ParzenEstimator::new(std::slice::from_ref(&obs), &[dist], &mut Masses::default());
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
