//! Progress: an `indicatif` bar on a terminal, plain log lines otherwise; the summary table.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::Params;
use crate::runner::results::Results;

pub struct Ui {
    bar: Option<ProgressBar>,
}

impl Ui {
    /// With `progress`, a bar on stderr; otherwise every event is one line on stderr.
    pub fn new(progress: bool, total: u64) -> Ui {
        let bar = progress.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} trials · {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Ui { bar }
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
