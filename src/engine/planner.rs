//! The budget-aware ASHA plan (our design; Determined AI's adaptive ASHA modes as the
//! reference): from a step budget, the full length of a trial, the parallelism and a mode,
//! which brackets to run, their rungs, and how many trials each gets so that the expected
//! spend stays within the budget. Pure arithmetic; the `asha` pruner decides with it and
//! `lopper preview` prints it.
//!
//! A bracket with `r` rungs stops trials at steps `ceil(L / eta^(r-1))`, ..., `ceil(L / eta)`
//! and lets the top `1/eta` of each rung go on; its last rung is the full length `L`. The
//! spend is counted as synchronous successive halving would spend it (`floor(n / eta^k)`
//! trials reach rung k); asynchronous promotion with parallel trials promotes a little
//! more early on, which the study's budget then cuts.
//!
//! `standard` and `conservative` keep a full-length bracket (one rung: no trial stopped) and
//! run its trials first. Low rungs can rank configurations badly (on LCDB's learning curves
//! the ranking after the first anchors is close to noise), and asynchronous promotion lets
//! the first trials of a rung through unopposed; a few full-length trials first give the
//! study a floor that no rung decision can lose, and a model-based sampler full-length
//! results before short trials dominate. When the budget cannot also fund a bracket that
//! stops trials, the plan is that bracket alone: with a budget of a few full trials, pruning
//! would bring fewer trials to full length than not pruning. On a budget that cannot fund
//! all of `standard`'s brackets, it gives up its least aggressive ones first: a small
//! bracket whose first rung comes late sees few configurations more than the full-length
//! bracket does, so the budget goes to the bracket that sees the most, or (when even that
//! one does not fit beside the full-length bracket) to full-length trials. The `asha`
//! pruner never stops a trial that is at least as good at a rung as the best full-length
//! trial was at the same step (see [`crate::engine::pruners::asha`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How aggressively the plan stops trials (Determined's adaptive modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// One bracket, the most rungs: many short trials.
    Aggressive,
    /// The more aggressive half of the brackets (on a tight budget the most aggressive one,
    /// or none), and a full-length bracket run first.
    #[default]
    Standard,
    /// Every bracket, down to one that runs every trial to full length (run first).
    Conservative,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Aggressive => "aggressive",
            Mode::Standard => "standard",
            Mode::Conservative => "conservative",
        }
    }
}

/// What a plan is computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanInput {
    /// Reported steps the study may spend.
    pub budget_steps: u64,
    /// A trial's full length in steps (its last step + 1).
    pub max_steps: u64,
    pub parallelism: u32,
    pub mode: Mode,
    pub reduction_factor: u64,
    pub max_rungs: u32,
}

/// One rung of a bracket: trials reaching it and the step they stop at unless promoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rung {
    pub step: u64,
    pub trials: u64,
}

/// One bracket: its rungs (the last is the full length) and expected spend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bracket {
    pub rungs: Vec<Rung>,
    pub steps: u64,
}

impl Bracket {
    pub fn trials(&self) -> u64 {
        self.rungs.first().map_or(0, |r| r.trials)
    }

    pub fn full_length(&self) -> u64 {
        self.rungs.last().map_or(0, |r| r.trials)
    }

    /// The steps at which this bracket decides (every rung but the full length).
    pub fn decision_steps(&self) -> impl Iterator<Item = u64> + '_ {
        let n = self.rungs.len().saturating_sub(1);
        self.rungs[..n].iter().map(|r| r.step)
    }
}

/// Most entries [`Plan::deal`] returns.
const MAX_DEAL: u64 = 100_000;

/// A plan: brackets and the order trials are dealt to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub brackets: Vec<Bracket>,
    /// Expected steps spent, at most the budget.
    pub steps: u64,
    pub trials: u64,
    pub full_length_trials: u64,
}

/// Rung steps of a bracket with `rungs` rungs: `ceil(L / eta^k)`, lowest first, deduplicated.
fn rung_steps(max_steps: u64, eta: u64, rungs: u32) -> Vec<u64> {
    let mut steps: Vec<u64> = (0..rungs)
        .rev()
        .map(|k| {
            let d = eta.saturating_pow(k).max(1);
            max_steps.div_ceil(d).max(1)
        })
        .collect();
    steps.dedup();
    steps
}

/// A bracket of `n` trials on `steps` and its spend: `floor(n / eta^k)` reach rung k.
fn bracket(n: u64, steps: &[u64], eta: u64) -> Bracket {
    let mut rungs = Vec::with_capacity(steps.len());
    let mut spend = 0u64;
    let mut prev = 0u64;
    let mut reach = n;
    for (k, &s) in steps.iter().enumerate() {
        if k > 0 {
            reach /= eta;
        }
        spend = spend.saturating_add(reach.saturating_mul(s - prev));
        prev = s;
        rungs.push(Rung {
            step: s,
            trials: reach,
        });
    }
    Bracket {
        rungs,
        steps: spend,
    }
}

/// The most trials a bracket on `steps` takes within `budget` (spend grows with `n`).
fn most_trials(budget: u64, steps: &[u64], eta: u64) -> u64 {
    let (mut lo, mut hi) = (0u64, budget.max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if bracket(mid, steps, eta).steps <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// How many rungs the longest bracket may have: rungs must be distinct steps >= 1.
pub fn max_rungs(max_steps: u64, eta: u64, cap: u32) -> u32 {
    let mut r = 1u32;
    while r < cap && rung_steps(max_steps, eta, r + 1).len() == (r + 1) as usize {
        r += 1;
    }
    r
}

/// The plan for `input`; brackets most aggressive first (a full-length bracket, if any,
/// last). Its expected spend never exceeds the budget. When a bracket is too small to bring
/// one trial to full length (or to keep the parallel slots busy at its first rung), a
/// bracket is dropped and its share goes to the others: in `standard` the least aggressive
/// bracket that stops trials (so that a tight budget keeps the bracket that sees the most
/// configurations beside the full-length one, or no bracket that stops trials at all), in
/// `conservative` the most aggressive one that does not fit. If none fits, the least
/// aggressive bracket of the mode takes the whole budget.
pub fn plan(input: &PlanInput) -> Plan {
    let eta = input.reduction_factor.max(2);
    let l = input.max_steps.max(1);
    let top = max_rungs(l, eta, input.max_rungs.max(1));
    let count = match input.mode {
        Mode::Aggressive => 1,
        Mode::Standard => top.div_ceil(2),
        Mode::Conservative => top,
    };
    let mut candidates: Vec<u32> = (0..count).map(|i| top - i).collect();
    // The full-length bracket of standard (conservative's list already ends with it).
    if input.mode != Mode::Aggressive && candidates.last() != Some(&1) {
        candidates.push(1);
    }
    let fits = |rungs: u32, budget: u64| {
        let steps = rung_steps(l, eta, rungs);
        let n = most_trials(budget, &steps, eta);
        let need = eta
            .saturating_pow(steps.len() as u32 - 1)
            .max(u64::from(input.parallelism));
        (n >= need).then(|| bracket(n, &steps, eta))
    };
    loop {
        let share = input.budget_steps / candidates.len().max(1) as u64;
        let brackets: Vec<Option<Bracket>> = candidates.iter().map(|&r| fits(r, share)).collect();
        if brackets.iter().all(Option::is_some) {
            return finish(brackets.into_iter().flatten().collect());
        }
        // Drop a bracket and share again: standard drops its least aggressive bracket that
        // stops trials (it keeps the one that sees the most configurations, or none);
        // conservative the most aggressive one that does not fit.
        if candidates.len() > 1 {
            let pruning = candidates.iter().filter(|&&r| r > 1).count();
            let i = if input.mode == Mode::Standard && pruning > 1 {
                pruning - 1
            } else {
                brackets.iter().position(Option::is_none).unwrap_or(0)
            };
            candidates.remove(i);
            continue;
        }
        // Not even one fits: fewer rungs, down to plain full-length trials.
        let mut r = candidates[0];
        while r > 1 {
            r -= 1;
            if let Some(b) = fits(r, input.budget_steps) {
                return finish(vec![b]);
            }
        }
        let steps = rung_steps(l, eta, 1);
        let n = most_trials(input.budget_steps, &steps, eta);
        return finish(vec![bracket(n, &steps, eta)]);
    }
}

fn finish(brackets: Vec<Bracket>) -> Plan {
    Plan {
        steps: brackets.iter().map(|b| b.steps).sum(),
        trials: brackets.iter().map(Bracket::trials).sum(),
        full_length_trials: brackets.iter().map(Bracket::full_length).sum(),
        brackets,
    }
}

impl Plan {
    /// The full-length bracket that runs first, when the plan also stops trials.
    pub fn startup_bracket(&self) -> Option<usize> {
        if self.brackets.len() < 2 {
            return None;
        }
        self.brackets.iter().position(|b| b.rungs.len() == 1)
    }

    /// The bracket of each trial number: first the full-length bracket's trials (see
    /// [`Plan::startup_bracket`]), then the other brackets' in proportion to their sizes,
    /// interleaved so that every bracket has trials early (trial j of bracket b sits at
    /// `(j + 0.5) / n_b` in the order). Past the end, [`Plan::bracket_of`] cycles through
    /// the interleaved part.
    pub fn deal(&self) -> Deal {
        // A huge budget of short trials would deal millions: the same proportions in fewer.
        let scale = (MAX_DEAL as f64 / self.trials.max(1) as f64).min(1.0);
        let scaled = |n: u64| match n {
            0 => 0,
            n => ((n as f64 * scale).round() as u64).max(1),
        };
        let first = self.startup_bracket();
        let mut order: Vec<(f64, usize)> = Vec::new();
        for (b, br) in self.brackets.iter().enumerate() {
            if Some(b) == first {
                continue;
            }
            let n = scaled(br.trials());
            order.extend((0..n).map(|j| ((2 * j + 1) as f64 / (2 * n) as f64, b)));
        }
        order.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let startup = first.map_or(0, |b| scaled(self.brackets[b].trials()) as usize);
        let mut brackets = vec![first.unwrap_or(0); startup];
        brackets.extend(order.into_iter().map(|(_, b)| b));
        Deal { brackets, startup }
    }
}

/// The order in which trials are dealt to brackets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deal {
    /// The bracket of trial number i, for the planned trials.
    pub brackets: Vec<usize>,
    /// How many of them (at the front) are the full-length bracket run first.
    pub startup: usize,
}

impl Deal {
    pub fn len(&self) -> usize {
        self.brackets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.brackets.is_empty()
    }

    /// The bracket of trial `number`; past the planned trials the order repeats without
    /// the startup trials (the floor they set is already there).
    pub fn bracket_of(&self, number: u64) -> Option<usize> {
        let len = self.brackets.len() as u64;
        if len == 0 {
            return None;
        }
        if number < len {
            return Some(self.brackets[number as usize]);
        }
        let s = (self.startup as u64).min(len - 1);
        Some(self.brackets[(s + (number - s) % (len - s)) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input(budget: u64, max_steps: u64, parallelism: u32, mode: Mode) -> PlanInput {
        PlanInput {
            budget_steps: budget,
            max_steps,
            parallelism,
            mode,
            reduction_factor: 3,
            max_rungs: 5,
        }
    }

    #[test]
    fn a_plan_for_every_mode() {
        let a = plan(&input(1200, 27, 2, Mode::Aggressive));
        assert_eq!(a.brackets.len(), 1);
        let steps: Vec<u64> = a.brackets[0].rungs.iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 3, 9, 27]);
        // 1 + 2/3 + 6/9 + 18/27 = 3 steps a trial: about 400 trials, 14 at full length.
        assert!((390..=410).contains(&a.trials), "{a:?}");
        assert_eq!(a.full_length_trials, a.trials / 27);

        let s = plan(&input(1200, 27, 2, Mode::Standard));
        assert_eq!(s.brackets.len(), 3, "{s:?}");
        assert_eq!(s.brackets[0].rungs.len(), 4);
        assert_eq!(s.brackets[1].rungs.len(), 3);
        assert_eq!(s.brackets[2].rungs.len(), 1, "a full-length bracket");
        assert_eq!(s.brackets[2].trials(), 400 / 27);
        assert_eq!(s.startup_bracket(), Some(2));
        assert_eq!(a.startup_bracket(), None);
        let c = plan(&input(1200, 27, 2, Mode::Conservative));
        assert_eq!(c.brackets.len(), 4);
        let last = c.brackets.last().unwrap();
        assert_eq!(last.rungs.len(), 1, "a bracket that never stops a trial");
        assert_eq!(last.trials(), 300 / 27);
        // More conservative: fewer trials, more of them at full length.
        assert!(a.trials > s.trials && s.trials > c.trials);
        assert!(a.full_length_trials < c.full_length_trials);
        for p in [&a, &s, &c] {
            assert!(p.steps <= 1200);
        }
    }

    #[test]
    fn a_small_budget_drops_brackets_and_rungs() {
        // 60 steps of 27-step trials: one 4-rung bracket needs 27 trials (81 steps).
        let p = plan(&input(60, 27, 1, Mode::Conservative));
        assert!(p.steps <= 60);
        assert!(p.full_length_trials >= 1, "{p:?}");
        // Less than one full trial: no plan brings one to full length.
        let p = plan(&input(20, 27, 1, Mode::Standard));
        assert_eq!(p.full_length_trials, 0);
        assert_eq!(p.steps, 0);
        // Parallelism larger than a bracket's trials drops that bracket.
        let p = plan(&input(300, 27, 64, Mode::Standard));
        assert!(
            p.brackets
                .iter()
                .all(|b| b.trials() >= 64 || p.brackets.len() == 1)
        );
    }

    #[test]
    fn trials_are_dealt_in_proportion() {
        let p = plan(&input(1200, 27, 2, Mode::Conservative));
        let deal = p.deal().brackets;
        assert_eq!(deal.len() as u64, p.trials);
        let mut seen = vec![0u64; p.brackets.len()];
        for &b in &deal {
            seen[b] += 1;
        }
        let want: Vec<u64> = p.brackets.iter().map(Bracket::trials).collect();
        assert_eq!(seen, want);
        // Every bracket gets a trial among the first ones.
        let first: std::collections::BTreeSet<usize> =
            deal[..p.brackets.len() * 40].iter().copied().collect();
        assert_eq!(first.len(), p.brackets.len());
    }

    #[test]
    fn the_full_length_bracket_runs_first() {
        let p = plan(&input(1200, 27, 2, Mode::Standard));
        let deal = p.deal();
        let first = p.startup_bracket().unwrap();
        let n = p.brackets[first].trials() as usize;
        assert_eq!(deal.startup, n);
        assert!(deal.brackets[..n].iter().all(|&b| b == first));
        assert!(deal.brackets[n..].iter().all(|&b| b != first));
        // Past the planned trials the order repeats without the startup trials.
        let len = deal.len() as u64;
        assert_eq!(deal.bracket_of(len), Some(deal.brackets[n]));
        assert_eq!(deal.bracket_of(len + 1), Some(deal.brackets[n + 1]));
        assert_ne!(deal.bracket_of(len), Some(first));
    }

    #[test]
    fn a_budget_of_a_few_full_trials_is_not_pruned() {
        // 4 trials' worth: no bracket that stops trials fits beside the full-length one,
        // so standard runs 4 full-length trials (pruning would complete fewer).
        let p = plan(&input(56, 14, 1, Mode::Standard));
        assert_eq!(p.brackets.len(), 1, "{p:?}");
        assert_eq!(
            p.brackets[0].rungs,
            vec![Rung {
                step: 14,
                trials: 4
            }]
        );
        assert_eq!(p.startup_bracket(), None);
        // Twice that funds one bracket that stops trials, beside 4 full-length ones.
        let p = plan(&input(112, 14, 1, Mode::Standard));
        assert_eq!(p.brackets.len(), 2, "{p:?}");
        assert_eq!(
            p.brackets[1].rungs,
            vec![Rung {
                step: 14,
                trials: 4
            }]
        );
        // The bracket kept is standard's most aggressive (4 rungs: 1, 2, 5, 14 steps).
        assert_eq!(p.brackets[0].rungs.len(), 4, "{p:?}");
        // Aggressive never keeps a full-length bracket.
        let p = plan(&input(56, 14, 1, Mode::Aggressive));
        assert!(p.brackets.iter().all(|b| b.rungs.len() > 1), "{p:?}");
    }

    #[test]
    fn standard_drops_its_least_aggressive_bracket_first() {
        // 6 trials' worth of 14 steps: the 4-rung bracket (27 trials, 55 steps) does not fit
        // in a third of the budget. Standard drops its 3-rung bracket rather than the 4-rung
        // one; with half the budget the 4-rung one still does not fit beside the
        // full-length bracket, so standard does not prune.
        let p = plan(&input(84, 14, 1, Mode::Standard));
        assert_eq!(
            p.brackets,
            vec![Bracket {
                rungs: vec![Rung {
                    step: 14,
                    trials: 6
                }],
                steps: 84
            }]
        );
        // Conservative drops the most aggressive bracket that does not fit and keeps the
        // others: the 2-rung bracket (5, 14 steps) beside the full-length one.
        let c = plan(&input(84, 14, 1, Mode::Conservative));
        let rungs: Vec<usize> = c.brackets.iter().map(|b| b.rungs.len()).collect();
        assert_eq!(rungs, vec![2, 1], "{c:?}");
    }

    proptest! {
        #[test]
        fn the_plan_never_exceeds_the_budget(
            budget in 0u64..200_000,
            max_steps in 1u64..500,
            parallelism in 1u32..64,
            eta in 2u64..6,
            max_rungs in 1u32..7,
            mode in prop_oneof![Just(Mode::Aggressive), Just(Mode::Standard), Just(Mode::Conservative)],
        ) {
            let p = plan(&PlanInput { budget_steps: budget, max_steps, parallelism, mode,
                reduction_factor: eta, max_rungs });
            prop_assert!(p.steps <= budget, "{p:?}");
            prop_assert!(p.deal().len() as u64 <= p.trials.min(MAX_DEAL) + p.brackets.len() as u64);
            prop_assert_eq!(p.steps, p.brackets.iter().map(|b| b.steps).sum::<u64>());
            for b in &p.brackets {
                prop_assert_eq!(b.rungs.last().unwrap().step, max_steps);
                prop_assert!(b.rungs.windows(2).all(|w| w[0].step < w[1].step && w[0].trials >= w[1].trials));
            }
        }
    }
}
