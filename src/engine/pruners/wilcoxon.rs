//! Optuna's `WilcoxonPruner`: a paired signed-rank test of the current trial against the
//! best completed trial at their shared steps, with p-values equal to scipy's
//! `wilcoxon(d, alternative=..., zero_method="zsplit")` (exact, permutation and normal
//! approximation regimes, chosen as scipy chooses).

// The cephes coefficients below are kept digit for digit as scipy's sources write them.
#![allow(clippy::excessive_precision)]

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, SpecError, at_least, invalid};
use super::{Decision, Pruner};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

const R: &str = "WilcoxonPruner";

#[derive(Clone, Debug, PartialEq)]
pub struct WilcoxonPruner {
    pub p_threshold: f64,
    pub n_startup_steps: u64,
}

/// The alternative hypothesis of the one-sided test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    Less,
    Greater,
}

/// The best COMPLETE trial as Optuna's in-memory storage tracks it: the first trial
/// (in study order) with a strictly better value than every earlier one.
pub fn best_trial<'a>(study: &StudyView<'a>) -> Option<&'a TrialRecord> {
    let mut best: Option<(&TrialRecord, f64)> = None;
    for t in study.trials {
        if t.state != TrialState::Complete {
            continue;
        }
        let Some(v) = t.value else { continue };
        match best {
            None => best = Some((t, v)),
            Some((_, b)) => {
                if study.direction.better(v, b) {
                    best = Some((t, v));
                }
            }
        }
    }
    best.map(|(t, _)| t)
}

impl Pruner for WilcoxonPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &TrialRecord, _: &mut PrunerState) -> Decision {
        if trial.intermediate.is_empty() {
            return Decision::keep(R, "no intermediate value reported");
        }
        if trial.intermediate.values().any(|v| !v.is_finite()) {
            return Decision::keep(R, "the trial's values contain NaN or infinity");
        }
        let Some(best) = best_trial(study) else {
            return Decision::keep(R, "no completed trial yet");
        };
        if best.intermediate.is_empty() {
            return Decision::keep(R, "the best trial has no intermediate values");
        }
        if best.intermediate.values().any(|v| !v.is_finite()) {
            return Decision::keep(R, "the best trial's values contain NaN or infinity");
        }
        let diffs: Vec<f64> = trial
            .intermediate
            .iter()
            .filter_map(|(s, v)| best.intermediate.get(s).map(|b| v - b))
            .collect();
        let need = self.n_startup_steps.max(2);
        if (diffs.len() as u64) < need {
            return Decision::keep(
                R,
                message!(
                    "{shared} shared steps with the best trial, {need} needed",
                    shared = diffs.len(),
                    need
                ),
            );
        }
        let mean = |t: &TrialRecord| {
            let mut s = 0.0;
            for v in t.intermediate.values() {
                s += v;
            }
            s / t.intermediate.len() as f64
        };
        let (mb, mc) = (mean(best), mean(trial));
        let (alt, average_is_best) = match study.direction {
            Direction::Maximize => (Alternative::Less, mb <= mc),
            Direction::Minimize => (Alternative::Greater, mb >= mc),
        };
        let p = wilcoxon_pvalue(&diffs, alt);
        let below = p < self.p_threshold;
        let prune = below && !average_is_best;
        let message = message!(
            "p-value {p} against best trial {best} over {shared} steps (threshold {threshold}){note}",
            p,
            best = best.number,
            shared = diffs.len(),
            threshold = self.p_threshold,
            note = if below && average_is_best {
                "; the trial's mean is at least as good"
            } else {
                ""
            }
        );
        Decision {
            prune,
            reason: R,
            message,
            record_rungs: Default::default(),
        }
    }
}

/// numpy's pairwise summation (`np.sum` of a contiguous float64 array).
pub fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = -0.0;
        for &x in a {
            r += x;
        }
        r
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// scipy's `_get_wilcoxon_distr(n)`: pmf of the signed-rank statistic.
fn wilcoxon_distr(n: usize) -> Vec<f64> {
    let mut c = vec![1.0f64];
    for k in 1..=n {
        let len = k * (k + 1) / 2 + 1;
        let m = c.len();
        let mut next = vec![0.0f64; len];
        for i in 0..m {
            next[i] = c[i] * 0.5;
        }
        let off = len - m;
        for i in 0..m {
            next[off + i] += c[i] * 0.5;
        }
        c = next;
    }
    c
}

/// Cephes (scipy/xsf) `polevl` and `p1evl`.
fn polevl(x: f64, coef: &[f64]) -> f64 {
    let mut ans = coef[0];
    for &c in &coef[1..] {
        ans = ans * x + c;
    }
    ans
}

fn p1evl(x: f64, coef: &[f64]) -> f64 {
    let mut ans = x + coef[0];
    for &c in &coef[1..] {
        ans = ans * x + c;
    }
    ans
}

const NDTR_P: [f64; 9] = [
    2.46196981473530512524E-10,
    5.64189564831068821977E-1,
    7.46321056442269912687E0,
    4.86371970985681366614E1,
    1.96520832956077098242E2,
    5.26445194995477358631E2,
    9.34528527171957607540E2,
    1.02755188689515710272E3,
    5.57535335369399327526E2,
];
const NDTR_Q: [f64; 8] = [
    1.32281951154744992508E1,
    8.67072140885989742329E1,
    3.54937778887819891062E2,
    9.75708501743205489753E2,
    1.82390916687909736289E3,
    2.24633760818710981792E3,
    1.65666309194161350182E3,
    5.57535340817727675546E2,
];
const NDTR_R: [f64; 6] = [
    5.64189583547755073984E-1,
    1.27536670759978104416E0,
    5.01905042251180477414E0,
    6.16021097993053585195E0,
    7.40974269950448939160E0,
    2.97886665372100240670E0,
];
const NDTR_S: [f64; 6] = [
    2.26052863220117276590E0,
    9.39603524938001434673E0,
    1.20489539808096656605E1,
    1.70814450747565897222E1,
    9.60896809063285878198E0,
    3.36907645100081516050E0,
];
const NDTR_T: [f64; 5] = [
    9.60497373987051638749E0,
    9.00260197203842689217E1,
    2.23200534594684319226E3,
    7.00332514112805075473E3,
    5.55923013010394962768E4,
];
const NDTR_U: [f64; 5] = [
    3.35617141647503099647E1,
    5.21357949780152679795E2,
    4.59432382970980127987E3,
    2.26290000613890934246E4,
    4.92673942608635921086E4,
];
const MAXLOG: f64 = 7.09782712893383996843E2;

fn cephes_erfc(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a.abs();
    if x < 1.0 {
        return 1.0 - cephes_erf(a);
    }
    let z = -a * a;
    if z < -MAXLOG {
        return if a < 0.0 { 2.0 } else { 0.0 };
    }
    let z = z.exp();
    let (p, q) = if x < 8.0 {
        (polevl(x, &NDTR_P), p1evl(x, &NDTR_Q))
    } else {
        (polevl(x, &NDTR_R), p1evl(x, &NDTR_S))
    };
    let mut y = (z * p) / q;
    if a < 0.0 {
        y = 2.0 - y;
    }
    if y != 0.0 {
        y
    } else if a < 0.0 {
        2.0
    } else {
        0.0
    }
}

fn cephes_erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return -cephes_erf(-x);
    }
    if x.abs() > 1.0 {
        return 1.0 - cephes_erfc(x);
    }
    let z = x * x;
    x * polevl(z, &NDTR_T) / p1evl(z, &NDTR_U)
}

/// scipy's `special.ndtr` (standard normal CDF), as xsf's cephes port computes it.
pub fn ndtr(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * cephes_erf(x)
    } else {
        let y = 0.5 * cephes_erfc(z);
        if x > 0.0 { 1.0 - y } else { y }
    }
}

/// Average ranks of `|d|` (1-based) and the tie group sizes.
fn abs_ranks(d: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let n = d.len();
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| {
        abs[i]
            .partial_cmp(&abs[j])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut ranks = vec![0.0; n];
    let mut groups = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && abs[order[j]] == abs[order[i]] {
            j += 1;
        }
        let count = j - i;
        let rank = (i + 1) as f64 + (count as f64 - 1.0) / 2.0;
        for &k in &order[i..j] {
            ranks[k] = rank;
        }
        groups.push(count);
        i = j;
    }
    (ranks, groups)
}

/// `r_plus` with zsplit zero handling for the signs given by `positive` / `zero`.
fn r_plus(d: &[f64], ranks: &[f64]) -> f64 {
    let mut plus = 0.0;
    let mut zero = 0.0;
    for (v, r) in d.iter().zip(ranks) {
        if *v > 0.0 {
            plus += r;
        } else if *v == 0.0 {
            zero += r;
        }
    }
    plus + zero / 2.0
}

/// scipy.stats.wilcoxon(d, alternative=alt, zero_method="zsplit").pvalue for finite `d`.
pub fn wilcoxon_pvalue(d: &[f64], alt: Alternative) -> f64 {
    let n = d.len();
    if n == 0 {
        return f64::NAN;
    }
    let n_zero = d.iter().filter(|v| **v == 0.0).count();
    let (ranks, groups) = abs_ranks(d);
    let has_ties = groups.iter().any(|&g| g > 1);
    let rp = r_plus(d, &ranks);
    let count = n as f64;
    let mn = count * (count + 1.0) * 0.25;
    let se = count * (count + 1.0) * (2.0 * count + 1.0);
    let tie_correct: f64 = groups
        .iter()
        .map(|&g| {
            let t = g as f64;
            t * t * t - t
        })
        .sum();
    let se = ((se - tie_correct / 2.0) / 24.0).sqrt();
    let z = (rp - mn) / se;

    enum Method {
        Exact,
        Permutation,
        Asymptotic,
    }
    let method = if n > 50 {
        Method::Asymptotic
    } else if !(has_ties || n_zero > 0) {
        Method::Exact
    } else if n <= 13 {
        Method::Permutation
    } else {
        Method::Asymptotic
    };
    match method {
        Method::Asymptotic => match alt {
            Alternative::Greater => ndtr(-z),
            Alternative::Less => ndtr(z),
        },
        Method::Exact => {
            let pmfs = wilcoxon_distr(n);
            let mean = (n * (n + 1)) as f64 / 4.0;
            let cdf = |k: i64| -> f64 {
                // sum(pmfs[:k + 1]) with numpy slice clipping
                let end = (k + 1).clamp(0, pmfs.len() as i64) as usize;
                numpy_sum(&pmfs[..end])
            };
            let sf = |k: i64| -> f64 {
                let start = k.clamp(0, pmfs.len() as i64) as usize;
                numpy_sum(&pmfs[start..])
            };
            match alt {
                Alternative::Less => {
                    let k = rp.ceil() as i64;
                    if (k as f64) <= mean {
                        cdf(k)
                    } else {
                        1.0 - sf(k + 1)
                    }
                }
                Alternative::Greater => {
                    let k = rp.floor() as i64;
                    if (k as f64) <= mean {
                        sf(k)
                    } else {
                        1.0 - cdf(k - 1)
                    }
                }
            }
        }
        Method::Permutation => {
            // Every sign flip of the non-zero differences (zeros stay zeros), 2^n of them.
            let total: u32 = 1 << n;
            let mut hits: u64 = 0;
            let eps = f64::EPSILON * 100.0;
            let gamma = (eps * rp).abs();
            for mask in 0..total {
                let mut plus = 0.0;
                let mut zero = 0.0;
                for (i, v) in d.iter().enumerate() {
                    let v = if mask & (1 << i) != 0 { -v } else { *v };
                    if v > 0.0 {
                        plus += ranks[i];
                    } else if v == 0.0 {
                        zero += ranks[i];
                    }
                }
                let stat = plus + zero / 2.0;
                let hit = match alt {
                    Alternative::Greater => stat >= rp - gamma,
                    Alternative::Less => stat <= rp + gamma,
                };
                if hit {
                    hits += 1;
                }
            }
            hits as f64 / total as f64
        }
    }
}

/// `wilcoxon: {pThreshold, startupSteps}`.
#[derive(Clone, Debug, PartialEq)]
pub struct WilcoxonSpec {
    pub p_threshold: f64,
    pub startup_steps: i64,
}

impl Default for WilcoxonSpec {
    fn default() -> Self {
        WilcoxonSpec {
            p_threshold: 0.1,
            startup_steps: 2,
        }
    }
}

impl PrunerParams for WilcoxonSpec {
    const KEY: &str = "wilcoxon";
    const NAME: &str = R;

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&["pThreshold", "startupSteps"])?;
        let d = WilcoxonSpec::default();
        Ok(WilcoxonSpec {
            p_threshold: f.float("pThreshold", d.p_threshold)?,
            startup_steps: f.int("startupSteps", d.startup_steps)?,
        })
    }

    fn to_value(&self) -> Value {
        json!({"pThreshold": self.p_threshold, "startupSteps": self.startup_steps})
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        if !(0.0..=1.0).contains(&self.p_threshold) {
            return Err(invalid(
                &format!("{p}.pThreshold"),
                format!("must be within [0, 1], got {}", self.p_threshold),
            ));
        }
        at_least(p, "startupSteps", self.startup_steps, 0)
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(WilcoxonPruner {
            p_threshold: self.p_threshold,
            n_startup_steps: self.startup_steps.max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndtr_values() {
        assert_eq!(ndtr(0.0), 0.5);
        assert!((ndtr(1.96) - 0.9750021048517795).abs() < 1e-15);
    }

    #[test]
    fn exact_small() {
        // scipy.stats.wilcoxon([1, 2, -3, 4, 5], alternative="greater").pvalue == 0.15625
        let p = wilcoxon_pvalue(&[1.0, 2.0, -3.0, 4.0, 5.0], Alternative::Greater);
        assert_eq!(p, 0.15625);
    }
}
