//! When a study creates a trial and when it ends: the operator's rules, pure. The
//! controller and the local runner (`lopper run`) both decide with these functions.
//!
//! - keep `parallelism` trials running until `maxTrials` trials exist;
//! - stop creating trials once a completed trial reaches the goal, `maxTrials` trials
//!   exist, the budget is spent, or the sampler is exhausted; the running ones finish (a
//!   spent budget with `onSpent: stop` stops them), then the study has
//!   Succeeded — or Failed (`NoTrialCompleted`) if no trial completed and the goal was
//!   not reached;
//! - it fails once more than `maxFailedTrials` trials have failed, and then stops the
//!   running trials (this overrides every other stop, even a reached goal, while trials
//!   still run).

use super::budget::{Budget, OnSpent, Spent};
use super::{Direction, TrialRecord, TrialState};

/// Trials of a study by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StudyCounts {
    pub total: u32,
    pub running: u32,
    pub complete: u32,
    pub pruned: u32,
    pub failed: u32,
}

impl StudyCounts {
    pub fn of(trials: &[TrialRecord]) -> Self {
        let mut c = StudyCounts {
            total: trials.len() as u32,
            ..Default::default()
        };
        for t in trials {
            match t.state {
                TrialState::Running => c.running += 1,
                TrialState::Complete => c.complete += 1,
                TrialState::Pruned => c.pruned += 1,
                TrialState::Failed => c.failed += 1,
            }
        }
        c
    }
}

/// The parts of a study's spec the policy reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    pub direction: Direction,
    pub goal: Option<f64>,
    /// `None`: no limit on the number of trials (a budget bounds the study).
    pub max_trials: Option<u32>,
    pub parallelism: u32,
    pub max_failed_trials: Option<u32>,
    pub budget: Option<Budget>,
}

/// Why a study stopped creating trials, or why it ended (the operator's condition reasons).
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    GoalReached {
        number: u64,
        value: f64,
        goal: f64,
    },
    MaxTrialsReached {
        max: u32,
    },
    SpaceExhausted,
    /// `spec.budget` is spent; `stop_running`: `onSpent: stop`.
    BudgetSpent {
        why: String,
        stop_running: bool,
    },
    TooManyFailures {
        failed: u32,
        max: u32,
    },
    /// The study stopped without the goal and every trial ended without completing.
    NoTrialCompleted {
        created: u32,
    },
    /// The engine refused to go on (e.g. the sampler failed); running trials are stopped.
    Error(String),
}

impl End {
    pub fn phase(&self) -> &'static str {
        if self.failed() { "Failed" } else { "Succeeded" }
    }

    /// Whether the study failed (rather than succeeded) with this end.
    pub fn failed(&self) -> bool {
        matches!(
            self,
            End::TooManyFailures { .. } | End::NoTrialCompleted { .. } | End::Error(_)
        )
    }

    pub fn reason(&self) -> &'static str {
        match self {
            End::GoalReached { .. } => "GoalReached",
            End::MaxTrialsReached { .. } => "MaxTrialsReached",
            End::SpaceExhausted => "SpaceExhausted",
            End::BudgetSpent { .. } => "BudgetSpent",
            End::TooManyFailures { .. } => "TooManyFailures",
            End::NoTrialCompleted { .. } => "NoTrialCompleted",
            End::Error(_) => "Error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            End::GoalReached {
                number,
                value,
                goal,
            } => format!("goal {goal} reached by trial {number} ({value})"),
            End::MaxTrialsReached { max } => format!("all {max} trials finished"),
            End::SpaceExhausted => "the sampler has nothing left to propose".into(),
            End::BudgetSpent { why, stop_running } => format!(
                "budget spent: {why}{}",
                if *stop_running {
                    " (onSpent: stop)"
                } else {
                    ""
                }
            ),
            End::TooManyFailures { failed, max } => {
                format!("{failed} trials failed, more than maxFailedTrials={max}")
            }
            End::NoTrialCompleted { created } => {
                format!("all {created} trials ended without completing")
            }
            End::Error(e) => format!("failed: {e}"),
        }
    }

    /// Whether running trials are stopped at once (the study failed early).
    pub fn stops_running(&self) -> bool {
        matches!(
            self,
            End::TooManyFailures { .. }
                | End::Error(_)
                | End::BudgetSpent {
                    stop_running: true,
                    ..
                }
        )
    }

    /// Whether `self`, decided now, replaces the study's earlier stop `current`: a first
    /// stop always does; a failure that stops running trials replaces one that let them
    /// finish (too many failures after the goal was reached fail the study).
    pub fn replaces(&self, current: Option<&End>) -> bool {
        match current {
            None => true,
            Some(c) => self.stops_running() && !c.stops_running(),
        }
    }
}

/// Why the study stops creating trials, judged from its trials and the GPU-seconds its
/// trials used; `None`: it goes on. (An exhausted sampler is only known by asking it:
/// [`End::SpaceExhausted`].)
pub fn stop(rules: &Rules, trials: &[TrialRecord], gpu_seconds: f64) -> Option<End> {
    let c = StudyCounts::of(trials);
    if let Some(max) = rules.max_failed_trials
        && c.failed > max
    {
        return Some(End::TooManyFailures {
            failed: c.failed,
            max,
        });
    }
    if let Some(goal) = rules.goal
        && let Some((number, value)) = best(rules.direction, trials)
        && reaches(rules.direction, value, goal)
    {
        return Some(End::GoalReached {
            number,
            value,
            goal,
        });
    }
    if let Some(b) = &rules.budget
        && let Some(why) = b.spent_by(&Spent::of(trials, gpu_seconds))
    {
        return Some(End::BudgetSpent {
            why,
            stop_running: b.on_spent == OnSpent::Stop,
        });
    }
    if let Some(max) = rules.max_trials
        && c.total >= max
    {
        return Some(End::MaxTrialsReached { max });
    }
    None
}

/// How many trials to create now, with `running` trials still active (not yet stopped).
pub fn slots(rules: &Rules, counts: &StudyCounts, running: u32) -> u32 {
    rules.parallelism.max(1).saturating_sub(running).min(
        rules
            .max_trials
            .map_or(u32::MAX, |m| m.saturating_sub(counts.total)),
    )
}

/// How the study ends, given why it stopped creating trials: `None` while `running` trials
/// still run and the stop lets them finish.
pub fn outcome(stop: &End, counts: &StudyCounts, running: u32) -> Option<End> {
    if stop.stops_running() {
        return Some(stop.clone());
    }
    if running > 0 {
        return None;
    }
    if counts.complete == 0 && !matches!(stop, End::GoalReached { .. }) {
        return Some(End::NoTrialCompleted {
            created: counts.total,
        });
    }
    Some(stop.clone())
}

/// The best completed trial (number, value); NaN values never count.
pub fn best(direction: Direction, trials: &[TrialRecord]) -> Option<(u64, f64)> {
    let mut best: Option<(u64, f64)> = None;
    for t in trials {
        if t.state != TrialState::Complete {
            continue;
        }
        if let Some(v) = t.value.filter(|v| !v.is_nan())
            && best.is_none_or(|(_, b)| direction.better(v, b))
        {
            best = Some((t.number, v));
        }
    }
    best
}

/// Whether `value` reaches `goal` (at or beyond it in the objective's direction).
pub fn reaches(direction: Direction, value: f64, goal: f64) -> bool {
    match direction {
        Direction::Minimize => value <= goal,
        Direction::Maximize => value >= goal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(n: u64, state: TrialState, value: Option<f64>) -> TrialRecord {
        let mut t = TrialRecord::new(n);
        t.state = state;
        t.value = value;
        t
    }

    fn rules(max_trials: u32, parallelism: u32) -> Rules {
        Rules {
            direction: Direction::Minimize,
            goal: None,
            max_trials: Some(max_trials),
            parallelism,
            max_failed_trials: None,
            budget: None,
        }
    }

    #[test]
    fn creates_until_max_then_ends() {
        let r = rules(5, 2);
        let running: Vec<_> = (0..3)
            .map(|n| trial(n, TrialState::Running, None))
            .collect();
        let c = StudyCounts::of(&running);
        assert_eq!(stop(&r, &running, 0.0), None);
        assert_eq!(slots(&r, &c, 1), 1);
        assert_eq!(slots(&r, &c, 2), 0);
        assert_eq!(slots(&rules(4, 3), &c, 0), 1);
        let mut all: Vec<_> = (0..5)
            .map(|n| trial(n, TrialState::Complete, Some(1.0)))
            .collect();
        all[4].state = TrialState::Running;
        let end = stop(&r, &all, 0.0).unwrap();
        assert_eq!(end, End::MaxTrialsReached { max: 5 });
        let c = StudyCounts::of(&all);
        assert_eq!(slots(&r, &c, 0), 0);
        assert_eq!(outcome(&end, &c, 1), None);
        assert_eq!(outcome(&end, &c, 0), Some(end.clone()));
        assert_eq!(end.phase(), "Succeeded");
    }

    #[test]
    fn goal_and_failures() {
        let done = trial(4, TrialState::Complete, Some(0.5));
        let one = std::slice::from_ref(&done);
        let goal = |g, direction| Rules {
            goal: Some(g),
            direction,
            ..rules(10, 1)
        };
        assert!(matches!(
            stop(&goal(0.5, Direction::Minimize), one, 0.0),
            Some(End::GoalReached { number: 4, .. })
        ));
        assert_eq!(stop(&goal(0.6, Direction::Maximize), one, 0.0), None);
        let nan = [trial(0, TrialState::Complete, Some(f64::NAN))];
        assert_eq!(stop(&goal(0.5, Direction::Minimize), &nan, 0.0), None);

        let failed: Vec<_> = (0..3).map(|n| trial(n, TrialState::Failed, None)).collect();
        let max_failed = |m| Rules {
            max_failed_trials: Some(m),
            ..rules(10, 1)
        };
        assert_eq!(stop(&max_failed(3), &failed, 0.0), None);
        let end = stop(&max_failed(2), &failed, 0.0).unwrap();
        assert_eq!(end.reason(), "TooManyFailures");
        assert!(end.stops_running());
        assert_eq!(end.phase(), "Failed");
        // It fails at once, running trials or not.
        assert_eq!(
            outcome(&end, &StudyCounts::of(&failed), 2),
            Some(end.clone())
        );
    }

    #[test]
    fn failures_override_a_reached_goal() {
        let mut trials = vec![
            trial(0, TrialState::Complete, Some(0.1)),
            trial(1, TrialState::Failed, None),
            trial(2, TrialState::Running, None),
        ];
        let r = Rules {
            goal: Some(0.2),
            max_failed_trials: Some(1),
            ..rules(10, 3)
        };
        let goal = stop(&r, &trials, 0.0).unwrap();
        assert_eq!(goal.reason(), "GoalReached");
        assert!(goal.replaces(None));
        trials[2].state = TrialState::Failed;
        let failed = stop(&r, &trials, 0.0).unwrap();
        assert_eq!(failed.reason(), "TooManyFailures");
        assert!(failed.replaces(Some(&goal)));
        assert!(!goal.replaces(Some(&failed)));
        assert!(!End::SpaceExhausted.replaces(Some(&goal)));
    }

    #[test]
    fn no_trial_completed_fails_unless_the_goal_was_reached() {
        let trials = vec![
            trial(0, TrialState::Pruned, Some(3.0)),
            trial(1, TrialState::Failed, None),
        ];
        let c = StudyCounts::of(&trials);
        let end = stop(&rules(2, 2), &trials, 0.0).unwrap();
        let out = outcome(&end, &c, 0).unwrap();
        assert_eq!(out, End::NoTrialCompleted { created: 2 });
        assert_eq!((out.phase(), out.reason()), ("Failed", "NoTrialCompleted"));
        assert!(!out.stops_running());
        let out = outcome(&End::SpaceExhausted, &c, 0).unwrap();
        assert_eq!(out.reason(), "NoTrialCompleted");
        assert_eq!(outcome(&End::SpaceExhausted, &c, 1), None);
    }

    fn budgeted(steps: Option<u64>, gpu_hours: Option<f64>, on_spent: OnSpent) -> Rules {
        Rules {
            max_trials: None,
            budget: Some(Budget {
                steps,
                gpu_hours,
                on_spent,
            }),
            ..rules(1, 2)
        }
    }

    fn reporting(n: u64, state: TrialState, steps: i64) -> TrialRecord {
        let mut t = trial(n, state, None);
        for s in 0..steps {
            t.report(s, 1.0 / (s + 1) as f64);
        }
        if state != TrialState::Running {
            t.value = t.last_value();
        }
        t
    }

    #[test]
    fn budget_spent_mid_trial_stops_creation_and_running_trials_finish() {
        let r = budgeted(Some(10), None, OnSpent::Finish);
        let mut trials = vec![
            reporting(0, TrialState::Complete, 6),
            reporting(1, TrialState::Running, 3),
        ];
        // 9 of 10 steps: one more trial may start (no maxTrials).
        assert_eq!(stop(&r, &trials, 0.0), None);
        assert_eq!(slots(&r, &StudyCounts::of(&trials), 1), 1);
        // The running trial reports its 4th step: spent while it runs.
        trials[1].report(3, 0.2);
        let end = stop(&r, &trials, 0.0).unwrap();
        assert_eq!(end.reason(), "BudgetSpent");
        assert_eq!(
            end.message(),
            "budget spent: 10 of 10 budgeted steps reported"
        );
        assert!(!end.stops_running() && !end.failed());
        let c = StudyCounts::of(&trials);
        assert_eq!(outcome(&end, &c, 1), None, "the running trial finishes");
        trials[1].state = TrialState::Complete;
        let out = outcome(&end, &StudyCounts::of(&trials), 0).unwrap();
        assert_eq!((out.phase(), out.reason()), ("Succeeded", "BudgetSpent"));
    }

    #[test]
    fn budget_with_on_spent_stop_ends_at_once() {
        let r = budgeted(Some(5), None, OnSpent::Stop);
        let trials = vec![
            reporting(0, TrialState::Complete, 3),
            reporting(1, TrialState::Running, 2),
        ];
        let end = stop(&r, &trials, 0.0).unwrap();
        assert!(end.stops_running());
        assert_eq!(
            outcome(&end, &StudyCounts::of(&trials), 1),
            Some(end.clone())
        );
        assert_eq!(end.phase(), "Succeeded");
        // It replaces an earlier stop that let trials finish.
        assert!(end.replaces(Some(&End::SpaceExhausted)));
    }

    #[test]
    fn gpu_hours_count_pruned_trials_and_max_trials_still_applies() {
        let r = budgeted(None, Some(1.0), OnSpent::Finish);
        let trials = vec![
            reporting(0, TrialState::Pruned, 2),
            reporting(1, TrialState::Complete, 9),
        ];
        assert_eq!(stop(&r, &trials, 3599.0), None);
        let end = stop(&r, &trials, 3600.0).unwrap();
        assert_eq!(
            end.message(),
            "budget spent: 1 of 1 budgeted GPU-hours used"
        );
        let both = Rules {
            max_trials: Some(2),
            ..r
        };
        assert_eq!(
            stop(&both, &trials, 0.0),
            Some(End::MaxTrialsReached { max: 2 })
        );
        assert_eq!(slots(&both, &StudyCounts::of(&trials), 0), 0);
    }
}
