//! Progress: an `indicatif` bar on a terminal, plain log lines otherwise; the summary table.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::Params;
use crate::engine::budget::Budget;
use crate::runner::results::Results;

pub struct Ui {
    bar: Option<ProgressBar>,
    /// What the bar counts.
    pub total: Total,
}

/// What the bar counts: finished trials out of `maxTrials`, or, for a study bounded only
/// by its budget (no trial count to fill a bar), the budget spent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Total {
    Trials(u64),
    Steps(u64),
    GpuSeconds(u64),
}

impl Total {
    /// The bar's total for a study: `maxTrials` when set, else the step budget, else the
    /// GPU-hour budget in GPU-seconds.
    pub fn of(max_trials: Option<u32>, budget: Option<&Budget>) -> Total {
        match (max_trials, budget) {
            (Some(m), _) => Total::Trials(m.into()),
            (None, Some(b)) => match (b.steps, b.gpu_hours) {
                (Some(s), _) => Total::Steps(s),
                (None, Some(h)) => Total::GpuSeconds((h * 3600.0).ceil() as u64),
                (None, None) => Total::Trials(0),
            },
            (None, None) => Total::Trials(0),
        }
    }

    fn len(self) -> u64 {
        match self {
            Total::Trials(n) | Total::Steps(n) | Total::GpuSeconds(n) => n,
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Total::Trials(_) => "trials",
            Total::Steps(_) => "steps",
            Total::GpuSeconds(_) => "GPU-s",
        }
    }

    /// The bar's position: finished trials, steps reported or GPU-seconds used.
    pub fn position(self, finished: u64, steps: u64, gpu_seconds: f64) -> u64 {
        match self {
            Total::Trials(_) => finished,
            // Past the budget (onSpent: finish overshoots) the bar stays full.
            Total::Steps(n) => steps.min(n),
            Total::GpuSeconds(n) => (gpu_seconds.max(0.0) as u64).min(n),
        }
    }
}

impl Ui {
    /// With `progress`, a bar on stderr; otherwise every event is one line on stderr.
    pub fn new(progress: bool, total: Total) -> Ui {
        let bar = progress.then(|| {
            let bar = ProgressBar::new(total.len());
            let template = format!(
                "{{spinner}} [{{elapsed_precise}}] {{bar:30.cyan/blue}} {{pos}}/{{len}} {} · {{msg}}",
                total.unit()
            );
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Ui { bar, total }
    }

    /// One log line (above the bar on a terminal).
    pub fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{}", s),
        }
    }

    pub fn progress(&self, done: u64, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(msg.to_string());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn format_params(p: &Params) -> String {
    p.iter()
        .map(|(k, v)| match v {
            crate::engine::ParamValue::Float(x) => format!("{k}={}", fmt_value(*x)),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value with 4 significant digits.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&v.abs()) {
        let digits = (3 - (v.abs().log10().floor() as i32).clamp(-10, 10)).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

/// An axis tick: [`fmt_value`] without trailing zeros, compact scientific notation.
pub fn fmt_tick(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-3..1e5).contains(&v.abs()) {
        let s = format!("{v:.1e}");
        return s.replacen(".0e", "e", 1);
    }
    let s = fmt_value(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A tick on a log axis: two significant digits (ticks there are not round numbers).
pub fn fmt_log_tick(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return fmt_tick(v);
    }
    let digits = 1 - v.log10().floor() as i32;
    let scale = 10f64.powi(digits);
    fmt_tick((v * scale).round() / scale)
}

/// The table printed at the end of a run.
pub fn summary(r: &Results) -> String {
    let mut out = String::new();
    let w_params = 60;
    out.push_str(&format!(
        "{:>5}  {:<9} {:>12} {:>6} {:>8}  {}\n",
        "trial", "state", r.objective, "steps", "seconds", "params"
    ));
    for t in &r.trials {
        let state = t.state.as_str();
        let mark = if r.best.as_ref().is_some_and(|b| b.number == t.number) {
            "*"
        } else {
            " "
        };
        let mut params = format_params(&t.params);
        if params.chars().count() > w_params {
            params = params.chars().take(w_params - 1).collect::<String>() + "…";
        }
        out.push_str(&format!(
            "{:>4}{mark}  {:<9} {:>12} {:>6} {:>8.1}  {}\n",
            t.number,
            state,
            t.value.map(fmt_value).unwrap_or_else(|| "-".into()),
            t.intermediate.len(),
            t.seconds,
            params
        ));
    }
    let counts = crate::runner::state_counts(&r.trials);
    out.push_str(&format!(
        "\n{} {} ({}) in {:.1}s: {}\n",
        r.study,
        r.phase,
        r.reason,
        r.seconds,
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let total = r.steps_run + r.steps_saved_estimate;
    if total > 0 {
        out.push_str(&format!(
            "steps run {}, saved by pruning ~{} ({:.0}%)\n",
            r.steps_run,
            r.steps_saved_estimate,
            100.0 * r.steps_saved_estimate as f64 / total as f64
        ));
    }
    match &r.best {
        Some(b) => out.push_str(&format!(
            "best: trial {} {}={} {}\n",
            b.number,
            r.objective,
            fmt_value(b.value),
            format_params(&b.params)
        )),
        None => out.push_str("best: none (no trial completed)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_only_study_counts_the_budget() {
        let steps = Budget {
            steps: Some(400),
            ..Default::default()
        };
        let t = Total::of(None, Some(&steps));
        assert_eq!(t, Total::Steps(400));
        assert_eq!((t.len(), t.unit()), (400, "steps"));
        assert_eq!(t.position(3, 120, 9.0), 120);
        assert_eq!(
            t.position(3, 422, 9.0),
            400,
            "an overshoot keeps the bar full"
        );

        let gpu = Budget {
            gpu_hours: Some(0.5),
            ..Default::default()
        };
        let t = Total::of(None, Some(&gpu));
        assert_eq!((t.len(), t.unit()), (1800, "GPU-s"));
        assert_eq!(t.position(3, 120, 90.4), 90);

        // With maxTrials the bar counts finished trials, budget or not.
        let t = Total::of(Some(30), Some(&steps));
        assert_eq!((t.len(), t.unit()), (30, "trials"));
        assert_eq!(t.position(3, 120, 9.0), 3);
    }
}
