//! When a study creates a trial and when it ends: the operator's rules, pure.
//!
//! - keep `parallelism` trials running until `maxTrials` trials exist;
//! - the study succeeds once a completed trial reaches the goal (no new trials; running
//!   ones finish), when `maxTrials` trials have finished, or when the sampler is exhausted;
//! - it fails once more than `maxFailedTrials` trials have failed, and then stops the
//!   running trials.

use crate::engine::{Direction, TrialRecord, TrialState};

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

/// Why a study ended (the operator's condition reasons).
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
    TooManyFailures {
        failed: u32,
        max: u32,
    },
    /// The engine refused to go on (e.g. the sampler failed); running trials are stopped.
    Error(String),
}

impl End {
    pub fn phase(&self) -> &'static str {
        match self {
            End::TooManyFailures { .. } | End::Error(_) => "Failed",
            _ => "Succeeded",
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            End::GoalReached { .. } => "GoalReached",
            End::MaxTrialsReached { .. } => "MaxTrialsReached",
            End::SpaceExhausted => "SpaceExhausted",
            End::TooManyFailures { .. } => "TooManyFailures",
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
            End::TooManyFailures { failed, max } => {
                format!("{failed} trials failed, more than maxFailedTrials={max}")
            }
            End::Error(e) => format!("failed: {e}"),
        }
    }

    /// Whether running trials are stopped (the study failed).
    pub fn stops_running(&self) -> bool {
        matches!(self, End::TooManyFailures { .. } | End::Error(_))
    }
}

/// What the loop does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Create,
    Wait,
    End(End),
}

/// Whether to create a trial now, given the counts and how many processes still run.
pub fn next(counts: &StudyCounts, max_trials: u32, parallelism: u32, running: u32) -> Next {
    if counts.total >= max_trials {
        if running == 0 {
            return Next::End(End::MaxTrialsReached { max: max_trials });
        }
        return Next::Wait;
    }
    if running >= parallelism.max(1) {
        return Next::Wait;
    }
    Next::Create
}

/// Whether the study ends now that `trial` has finished.
pub fn after_finish(
    counts: &StudyCounts,
    direction: Direction,
    goal: Option<f64>,
    max_failed: Option<u32>,
    trial: &TrialRecord,
) -> Option<End> {
    if let Some(max) = max_failed
        && counts.failed > max
    {
        return Some(End::TooManyFailures {
            failed: counts.failed,
            max,
        });
    }
    if let (Some(goal), TrialState::Complete, Some(value)) = (goal, trial.state, trial.value)
        && reaches(direction, value, goal)
    {
        return Some(End::GoalReached {
            number: trial.number,
            value,
            goal,
        });
    }
    None
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

    #[test]
    fn creates_until_max_then_ends() {
        let c = StudyCounts {
            total: 3,
            ..Default::default()
        };
        assert_eq!(next(&c, 5, 2, 1), Next::Create);
        assert_eq!(next(&c, 5, 2, 2), Next::Wait);
        let c = StudyCounts {
            total: 5,
            ..Default::default()
        };
        assert_eq!(next(&c, 5, 2, 1), Next::Wait);
        assert_eq!(
            next(&c, 5, 2, 0),
            Next::End(End::MaxTrialsReached { max: 5 })
        );
    }

    #[test]
    fn goal_and_failures() {
        let done = trial(4, TrialState::Complete, Some(0.5));
        let c = StudyCounts::of(std::slice::from_ref(&done));
        assert!(matches!(
            after_finish(&c, Direction::Minimize, Some(0.5), None, &done),
            Some(End::GoalReached { number: 4, .. })
        ));
        assert_eq!(
            after_finish(&c, Direction::Maximize, Some(0.6), None, &done),
            None
        );
        let failed: Vec<_> = (0..3).map(|n| trial(n, TrialState::Failed, None)).collect();
        let c = StudyCounts::of(&failed);
        assert_eq!(
            after_finish(&c, Direction::Minimize, None, Some(3), &failed[2]),
            None
        );
        let end = after_finish(&c, Direction::Minimize, None, Some(2), &failed[2]).unwrap();
        assert_eq!(end.reason(), "TooManyFailures");
        assert!(end.stops_running());
    }
}
