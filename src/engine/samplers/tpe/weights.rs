//! Optuna's mixture weights (`default_weights`): flat for the newest 25 observations, a
//! linear ramp before them, the prior kernel weighing 1; normalised to sum 1.

/// Optuna's mixture weights for `n` observations and the prior, normalised to sum 1.
pub(super) fn normalized_weights(n: usize) -> Vec<f64> {
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
    pub(super) fn raw(&self, k: usize) -> f64 {
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
pub(super) fn w_prior_term(w: f64, c: usize) -> f64 {
    w * (-(c as f64).ln()).exp()
}
