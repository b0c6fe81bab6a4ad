//! The Parzen estimator and the split against Optuna 5.0: `tests/oracle/tpe_cases.json`,
//! written by `tests/oracle/gen_tpe_cases.py` (see `tests/oracle/README.md`).
//!
//! Per estimator case (observations and distributions; one dimension, as independent TPE
//! builds them, or several, as multivariate TPE does): the normalised mixture weights,
//! each numerical dimension's kernel centres and bandwidths (transformed space, prior
//! last), each categorical dimension's per-kernel choice probabilities, and the
//! log-density at the recorded points through [`ParzenEstimator::log_pdf`],
//! [`ParzenEstimator::log_pdf_many`] and, for one dimension, [`Density`] (which takes
//! the one-dimensional fast paths from 64 observations on). Per split case: the trial
//! numbers below and above, with and without constant liar.
//!
//! Comparisons are exact where lopper does Optuna's arithmetic; each tolerance below says
//! why it is not. `LOPPER_EXTRA_TPE_CASES=<file>` checks another generated file as well
//! (e.g. one written with another `--seed`).

use serde::Deserialize;

use super::density::Density;
use super::estimator::{Dim, ParzenEstimator, grid_cell};
use super::sampler::{RowKey, TpeSampler, default_gamma, split};
use super::special::{LN_SQRT_2PI, log_gauss_mass, log_ndtr};
use super::truncnorm::Masses;
use crate::engine::samplers::TpeSpec;
use crate::engine::space::Distribution;
use crate::engine::{Direction, ParamValue, TrialRecord, TrialState};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/tpe_cases.json");

/// Mixture weights once the ramp applies (n > 25), relative: lopper sums the ramp in
/// closed form and multiplies by the total's reciprocal where numpy sums pairwise and
/// divides (a few ulps). With n ≤ 25 every weight is 1/(n + 1) on both sides: exact.
const WEIGHT_REL: f64 = 2e-15;
/// Centres and bandwidths of log ranges, in ulps of the larger transformed bound: `ln` is
/// the platform's libm here and numpy's own (SIMD) `log` in Optuna, which may differ by an
/// ulp (they agree on every recorded value on x86-64 Linux). Linear ranges: exact.
const LOG_SPACE_ULPS: f64 = 4.0;
/// Categorical probabilities, relative: lopper keeps their logarithms (ln then exp) and
/// the row sum as `p·c + 1` where numpy adds up the row.
const PROB_REL: f64 = 1e-14;
/// `log_pdf`: lopper's normal CDF uses Numerical Recipes' erfc fit (relative error below
/// 1.2e-7, see `special.rs`) where Optuna uses libm's erf/erfc and a port of FreeBSD's.
/// Each probability mass lopper computes (a kernel's truncation to the range, its mass on
/// a grid cell) differences two tail masses, so its relative error can be far larger:
/// for narrow cells (log ints near their top) and cells in a kernel's tail.
/// [`erfc_error_bound`] carries the bound through the mixture at each point; with libm's
/// erfc in place of lopper's, the differences are below 4e-12 on every recorded point.
const ERFC_REL: f64 = 1.2e-7;
/// `log_pdf`: rounding (summation order, logarithms of the weights and probabilities), on
/// top of [`erfc_error_bound`].
const LOG_PDF_ROUNDING: f64 = 1e-12;

/// A float written as a string (Python's shortest round-trip repr; "nan", "inf", "-inf"):
/// parsed exactly, where serde_json's default float parsing may be an ulp off.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "String")]
struct Num(f64);

impl TryFrom<String> for Num {
    type Error = std::num::ParseFloatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(Num)
    }
}

fn nums(v: &[Num]) -> Vec<f64> {
    v.iter().map(|n| n.0).collect()
}

#[derive(Deserialize)]
struct Cases {
    optuna: String,
    estimators: Vec<EstimatorCase>,
    splits: Vec<SplitCase>,
}

#[derive(Deserialize)]
struct EstimatorCase {
    name: String,
    dists: Vec<Dist>,
    /// Per dimension, the observations (internal representation), oldest first.
    obs: Vec<Vec<Num>>,
    n: usize,
    weights: Vec<Num>,
    kernels: Vec<Kernels>,
    /// Per point, one value per dimension.
    points: Vec<Vec<Num>>,
    log_pdf: Vec<Num>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Dist {
    Float {
        low: Num,
        high: Num,
        log: bool,
        step: Option<Num>,
    },
    Int {
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    },
    Categorical {
        choices: Vec<String>,
    },
}

impl Dist {
    fn distribution(&self) -> Distribution {
        match self {
            Dist::Float {
                low,
                high,
                log,
                step,
            } => Distribution::Float {
                low: low.0,
                high: high.0,
                log: *log,
                step: step.map(|s| s.0),
            },
            Dist::Int {
                low,
                high,
                step,
                log,
            } => Distribution::Int {
                low: *low,
                high: *high,
                step: *step,
                log: *log,
            },
            Dist::Categorical { choices } => Distribution::Categorical {
                choices: choices.iter().cloned().map(ParamValue::Str).collect(),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Kernels {
    Numerical { mus: Vec<Num>, sigmas: Vec<Num> },
    Categorical { probs: Vec<Vec<Num>> },
}

#[derive(Deserialize)]
struct SplitCase {
    name: String,
    direction: Direction,
    /// The trial being suggested for (running, in `trials`).
    number: u64,
    trials: Vec<TrialJson>,
    outcomes: Vec<Outcome>,
}

#[derive(Deserialize)]
struct TrialJson {
    number: u64,
    state: String,
    value: Option<Num>,
    intermediate: Vec<(i64, Num)>,
}

#[derive(Deserialize)]
struct Outcome {
    constant_liar: bool,
    n_below: usize,
    below: Vec<u64>,
    above: Vec<u64>,
}

/// The recorded cases, and the extra file named by `LOPPER_EXTRA_TPE_CASES` if any.
fn load_all() -> Vec<(String, Cases)> {
    let mut paths = vec![CASES.to_string()];
    if let Ok(extra) = std::env::var("LOPPER_EXTRA_TPE_CASES") {
        paths.push(extra);
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let cases: Cases =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                cases.optuna, "5.0.0",
                "{path}: generated with another Optuna"
            );
            (path, cases)
        })
        .collect()
}

/// Mismatches, each naming the case and the quantity; reported together.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn exact(&mut self, what: impl FnOnce() -> String, ours: f64, optuna: f64) {
        if ours.to_bits() != optuna.to_bits() {
            self.0
                .push(format!("{}: ours {ours:?}, Optuna {optuna:?}", what()));
        }
    }

    fn within(&mut self, what: impl FnOnce() -> String, ours: f64, optuna: f64, tol: f64) {
        let ok = ours.to_bits() == optuna.to_bits() || (ours - optuna).abs() <= tol;
        if !ok {
            self.0.push(format!(
                "{}: ours {ours:?}, Optuna {optuna:?} (difference {:.2e}, tolerance {tol:.1e})",
                what(),
                (ours - optuna).abs()
            ));
        }
    }

    fn check(&mut self, what: impl FnOnce() -> String, ok: bool) {
        if !ok {
            self.0.push(what());
        }
    }

    fn assert_none(self, what: &str) {
        let n = self.0.len();
        let shown: Vec<&str> = self.0.iter().take(40).map(String::as_str).collect();
        assert!(
            n == 0,
            "{n} {what} differ from Optuna's:\n{}{}",
            shown.join("\n"),
            if n > shown.len() { "\n..." } else { "" }
        );
    }
}

fn is_log(d: &Distribution) -> bool {
    matches!(
        d,
        Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }
    )
}

/// `ln` of a bound of the relative error of lopper's mass of N(0, 1) on `[a, b]`
/// (`ln(Φ(b) − Φ(a))`, [`log_gauss_mass`]): it differences two tail masses `u` and `v`
/// (Φ at both ends in the lower tail, the upper tails in the upper one, the two tails
/// outside `[a, b]` otherwise), each within [`ERFC_REL`] of exact, so the mass is within
/// `ERFC_REL·(u + v)`.
fn log_mass_error(a: f64, b: f64) -> f64 {
    let (p, q) = if b <= 0.0 {
        (a, b)
    } else if a > 0.0 {
        (-b, -a)
    } else {
        (a, -b)
    };
    let (lu, lv) = (log_ndtr(p), log_ndtr(q));
    let hi = lu.max(lv);
    let ln_sum = hi + ((lu - hi).exp() + (lv - hi).exp()).ln();
    ERFC_REL.ln() + ln_sum - log_gauss_mass(a, b)
}

/// How far lopper's `log_pdf` at `x` may be from the exact value through its erfc alone
/// (to first order): per kernel, the sum of the relative errors of the masses it computes
/// ([`log_mass_error`]: its truncation to the range; its grid cell's), averaged over the
/// kernels with their shares of the density.
fn erfc_error_bound(pe: &ParzenEstimator, x: &[f64]) -> f64 {
    // Per kernel: its log term, and the logarithms of its masses' relative errors.
    let mut terms: Vec<f64> = pe.linear_weights.iter().map(|w| w.ln()).collect();
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); terms.len()];
    for (dim, &xd) in pe.dims.iter().zip(x) {
        match dim {
            Dim::Categorical {
                log_probs,
                n_choices,
                ..
            } => {
                let c = xd as usize;
                for (k, t) in terms.iter_mut().enumerate() {
                    *t += log_probs[k * n_choices + c];
                }
            }
            Dim::Continuous {
                mus,
                sigmas,
                lo,
                hi,
                log,
                ..
            } => {
                let xt = if *log { xd.ln() } else { xd };
                for (k, (&m, &s)) in mus.iter().zip(sigmas).enumerate() {
                    let (a, b) = ((lo - m) / s, (hi - m) / s);
                    let z = (xt - m) / s;
                    terms[k] += -0.5 * z * z - s.ln() - LN_SQRT_2PI - log_gauss_mass(a, b);
                    errors[k].push(log_mass_error(a, b));
                }
            }
            Dim::Discrete {
                mus,
                sigmas,
                lo,
                hi,
                log,
                grid: (step, _, _),
                ..
            } => {
                let (l, r) = grid_cell(xd, *step, *log);
                for (k, (&m, &s)) in mus.iter().zip(sigmas).enumerate() {
                    let (a, b) = ((lo - m) / s, (hi - m) / s);
                    let (ca, cb) = ((l - m) / s, (r - m) / s);
                    terms[k] += log_gauss_mass(ca, cb) - log_gauss_mass(a, b);
                    errors[k].extend([log_mass_error(a, b), log_mass_error(ca, cb)]);
                }
            }
        }
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut total, mut weighted) = (0.0, 0.0);
    for (&t, errs) in terms.iter().zip(&errors) {
        // A kernel without a share adds nothing (its masses' errors may be infinite).
        if t > f64::NEG_INFINITY {
            total += (t - max).exp();
            weighted += errs.iter().map(|e| (t - max + e).exp()).sum::<f64>();
        }
    }
    weighted / total
}

/// Checks one estimator case; whether [`Density`] took a one-dimensional fast path.
fn check_estimator(c: &EstimatorCase, f: &mut Failures) -> bool {
    let name = c.name.as_str();
    let dists: Vec<Distribution> = c.dists.iter().map(Dist::distribution).collect();
    let dist_refs: Vec<&Distribution> = dists.iter().collect();
    let obs: Vec<Vec<f64>> = c.obs.iter().map(|o| nums(o)).collect();
    let pe = ParzenEstimator::new(&obs, &dist_refs, &mut Masses::default());

    let want = nums(&c.weights);
    f.check(
        || {
            format!(
                "{name}: {} weights, Optuna {}",
                pe.linear_weights.len(),
                want.len()
            )
        },
        pe.linear_weights.len() == want.len() && want.len() == c.n + 1,
    );
    for (k, (&ours, &optuna)) in pe.linear_weights.iter().zip(&want).enumerate() {
        let what = || format!("{name}: weight {k}");
        if c.n <= 25 {
            f.exact(what, ours, optuna);
        } else {
            f.within(what, ours, optuna, WEIGHT_REL * optuna);
        }
    }

    f.check(
        || {
            format!(
                "{name}: {} dimensions, Optuna {}",
                pe.dims.len(),
                c.kernels.len()
            )
        },
        pe.dims.len() == c.kernels.len(),
    );
    for (d, (dim, kernels)) in pe.dims.iter().zip(&c.kernels).enumerate() {
        match (dim, kernels) {
            (
                Dim::Continuous {
                    mus,
                    sigmas,
                    lo,
                    hi,
                    ..
                }
                | Dim::Discrete {
                    mus,
                    sigmas,
                    lo,
                    hi,
                    ..
                },
                Kernels::Numerical {
                    mus: want_mus,
                    sigmas: want_sigmas,
                },
            ) => {
                f.check(
                    || {
                        format!(
                            "{name}: dim {d}: {} kernels, Optuna {}",
                            mus.len(),
                            want_mus.len()
                        )
                    },
                    mus.len() == want_mus.len() && sigmas.len() == want_sigmas.len(),
                );
                let tol = LOG_SPACE_ULPS * f64::EPSILON * lo.abs().max(hi.abs());
                let pairs = mus.iter().zip(want_mus).zip(sigmas.iter().zip(want_sigmas));
                for (k, ((&m, wm), (&s, ws))) in pairs.enumerate() {
                    let mu = || format!("{name}: dim {d} kernel {k} mu");
                    let sigma = || format!("{name}: dim {d} kernel {k} sigma");
                    if is_log(&dists[d]) {
                        f.within(mu, m, wm.0, tol);
                        f.within(sigma, s, ws.0, tol);
                    } else {
                        f.exact(mu, m, wm.0);
                        f.exact(sigma, s, ws.0);
                    }
                }
            }
            (
                Dim::Categorical {
                    log_probs,
                    n_choices,
                    ..
                },
                Kernels::Categorical { probs },
            ) => {
                f.check(
                    || format!("{name}: dim {d}: {} probabilities", log_probs.len()),
                    probs.iter().all(|row| row.len() == *n_choices)
                        && log_probs.len() == probs.len() * n_choices,
                );
                for (k, row) in probs.iter().enumerate() {
                    for (j, p) in row.iter().enumerate() {
                        let ours = log_probs
                            .get(k * n_choices + j)
                            .map_or(f64::NAN, |l| l.exp());
                        let what = || format!("{name}: dim {d} kernel {k} probability of {j}");
                        f.within(what, ours, p.0, PROB_REL * p.0);
                    }
                }
            }
            _ => {
                f.0.push(format!("{name}: dim {d}: numerical and categorical"))
            }
        }
    }

    // Densities: each path against Optuna's.
    let points: Vec<f64> = c.points.iter().flat_map(|p| nums(p)).collect();
    let want = nums(&c.log_pdf);
    let mut many = Vec::new();
    pe.log_pdf_many(&points, &mut many, &mut Masses::default());
    let mut scratch = Vec::new();
    let one: Vec<f64> = points
        .chunks_exact(dists.len())
        .map(|x| pe.log_pdf(x, &mut scratch))
        .collect();
    let mut density = None;
    let mut fast = false;
    if let [o] = obs.as_slice() {
        let dens = Density::new(std::slice::from_ref(o), &dist_refs);
        fast = matches!(dens, Density::OneDim(_));
        let mut out = Vec::new();
        dens.log_pdf_many(&points, &mut out, &mut Masses::default());
        density = Some(out);
    }
    f.check(
        || {
            format!(
                "{name}: {} log_pdf_many values for {} points",
                many.len(),
                want.len()
            )
        },
        many.len() == want.len() && one.len() == want.len(),
    );
    for (i, &optuna) in want.iter().enumerate() {
        let at = &c.points[i];
        let x = || nums(at);
        let tol = LOG_PDF_ROUNDING + erfc_error_bound(&pe, &x());
        f.within(
            || format!("{name}: log_pdf at {:?}", x()),
            one[i],
            optuna,
            tol,
        );
        f.within(
            || format!("{name}: log_pdf_many at {:?}", x()),
            many.get(i).copied().unwrap_or(f64::NAN),
            optuna,
            tol,
        );
        if let Some(out) = &density {
            let path = if fast { "one-dimensional" } else { "general" };
            f.within(
                || format!("{name}: Density ({path}) log_pdf_many at {:?}", x()),
                out.get(i).copied().unwrap_or(f64::NAN),
                optuna,
                tol,
            );
        }
    }
    fast
}

#[test]
fn parzen_estimator_matches_optuna() {
    for (path, cases) in load_all() {
        let mut f = Failures::default();
        let mut fast = 0;
        for c in &cases.estimators {
            fast += usize::from(check_estimator(c, &mut f));
        }
        f.assert_none(&format!("estimator quantities of {path}"));
        assert!(
            fast > 0,
            "{path}: no case takes a one-dimensional fast path of `Density`"
        );
    }
}

fn trial_state(s: &str) -> TrialState {
    match s {
        "complete" => TrialState::Complete,
        "pruned" => TrialState::Pruned,
        "running" => TrialState::Running,
        "failed" => TrialState::Failed,
        _ => panic!("unknown trial state {s}"),
    }
}

fn check_split(c: &SplitCase, f: &mut Failures) {
    let history: Vec<TrialRecord> = c
        .trials
        .iter()
        .map(|t| {
            let mut r = TrialRecord::new(t.number);
            r.state = trial_state(&t.state);
            r.value = t.value.map(|v| v.0);
            r.intermediate = t.intermediate.iter().map(|&(s, v)| (s, v.0)).collect();
            r
        })
        .collect();
    for o in &c.outcomes {
        let name = format!("{} (constant liar {})", c.name, o.constant_liar);
        let sampler = TpeSampler::new(TpeSpec {
            constant_liar: o.constant_liar,
            ..TpeSpec::default()
        });
        // The trials `TpeSampler::suggest` splits, and its `n`.
        let mut trials: Vec<&TrialRecord> = history
            .iter()
            .filter(|t| t.number != c.number && sampler.usable(t))
            .collect();
        trials.sort_by_key(|t| t.number);
        let n = trials
            .iter()
            .filter(|t| t.state != TrialState::Running)
            .count();
        let n_below = default_gamma(n);
        f.check(
            || format!("{name}: n_below: ours {n_below}, Optuna {}", o.n_below),
            n_below == o.n_below,
        );
        // A study trial's place in the history does not matter to the split.
        let keys: Vec<RowKey> = trials.iter().map(|t| RowKey::of(t.number, t)).collect();
        let (below, above) = split(&trials, &keys, n_below, c.direction);
        let numbers = |v: &[usize]| v.iter().map(|&i| trials[i].number).collect::<Vec<_>>();
        let (below, above) = (numbers(&below), numbers(&above));
        f.check(
            || format!("{name}: below: ours {below:?}, Optuna {:?}", o.below),
            below == o.below,
        );
        f.check(
            || format!("{name}: above: ours {above:?}, Optuna {:?}", o.above),
            above == o.above,
        );
    }
}

#[test]
fn split_matches_optuna() {
    for (path, cases) in load_all() {
        let mut f = Failures::default();
        for c in &cases.splits {
            check_split(c, &mut f);
        }
        f.assert_none(&format!("splits of {path}"));
    }
}
