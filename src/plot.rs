//! Learning-curve plots of a study with `plotters`: every trial's curve, pruned trials cut
//! where they stopped (a cross at the cut), failed trials in red, the best trial highlighted;
//! below, the objective against each parameter.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::engine::{ParamValue, TrialState};
use crate::runner::results::{Results, TrialResult};

#[derive(Clone, Debug)]
pub struct PlotOptions {
    /// Objective on a log10 axis (non-positive values are left out).
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            log_y: false,
            width: 1400,
            height: 1000,
        }
    }
}

const COMPLETE: RGBColor = RGBColor(66, 111, 176);
const PRUNED: RGBColor = RGBColor(150, 150, 150);
const CUT: RGBColor = RGBColor(230, 120, 20);
const FAILED: RGBColor = RGBColor(200, 40, 40);
const BEST: RGBColor = RGBColor(20, 160, 60);

/// Writes the plot of `results` to `path`: SVG for `.svg`, PNG otherwise.
pub fn plot(results: &Results, path: &Path, opts: &PlotOptions) -> anyhow::Result<()> {
    let svg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    let size = (opts.width, opts.height);
    if svg {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw(results, &root, opts)?;
        root.present()
            .with_context(|| format!("writing {}", path.display()))?;
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw(results, &root, opts)?;
        root.present()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

type DrawResult<T> = anyhow::Result<T>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Maps an objective value to the plotted coordinate (log10 with `log_y`).
fn y_of(v: f64, log_y: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log_y {
        (v > 0.0).then(|| v.log10())
    } else {
        Some(v)
    }
}

fn draw<DB: DrawingBackend>(
    r: &Results,
    root: &DrawingArea<DB, Shift>,
    opts: &PlotOptions,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let params = param_names(r);
    let (top, bottom) = if params.is_empty() {
        (root.clone(), None)
    } else {
        let (t, b) = root.split_vertically((opts.height as f64 * 0.62) as u32);
        (t, Some(b))
    };
    curves(r, &top, opts)?;
    if let Some(bottom) = bottom {
        let cols = params.len().min(6);
        let panels = bottom.split_evenly((1, cols));
        for (name, area) in params.iter().take(cols).zip(panels.iter()) {
            param_panel(r, name, area, opts)?;
        }
    }
    Ok(())
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        return Some((lo - pad, hi + pad));
    }
    let pad = (hi - lo) * 0.05;
    Some((lo - pad, hi + pad))
}

fn y_label(v: f64, log_y: bool) -> String {
    if log_y {
        crate::runner::ui::fmt_log_tick(10f64.powf(v))
    } else {
        crate::runner::ui::fmt_tick(v)
    }
}

fn curves<DB: DrawingBackend>(
    r: &Results,
    area: &DrawingArea<DB, Shift>,
    opts: &PlotOptions,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let log_y = opts.log_y;
    let pts = |t: &TrialResult| -> Vec<(f64, f64)> {
        t.intermediate
            .iter()
            .filter_map(|&(s, v)| y_of(v, log_y).map(|y| (s as f64, y)))
            .collect()
    };
    let all: Vec<(f64, f64)> = r.trials.iter().flat_map(pts).collect();
    let (x0, x1) = bounds(all.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (y0, y1) = bounds(all.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
    let y_fmt = |v: &f64| y_label(*v, log_y);
    // Steps are integers: no label on a fractional tick.
    let x_fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    let counts = crate::runner::state_counts(&r.trials);
    let title = format!(
        "{} — {} ({}) · {}",
        r.study,
        if r.objective.is_empty() {
            "objective"
        } else {
            &r.objective
        },
        match r.direction {
            crate::engine::Direction::Minimize => "minimize",
            crate::engine::Direction::Maximize => "maximize",
        },
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x0.min(0.0)..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(if log_y {
            format!("{} (log scale)", r.objective)
        } else {
            r.objective.clone()
        })
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;

    let best = r.best.as_ref().map(|b| b.number);
    let mut legend_done = [false; 3];
    // Draw the ordinary curves first, the best one last (on top).
    for t in r.trials.iter().filter(|t| Some(t.number) != best) {
        let p = pts(t);
        if p.is_empty() {
            continue;
        }
        let (color, slot, label) = match t.state {
            TrialState::Pruned => (PRUNED.mix(0.7), 1, "pruned (× = cut)"),
            TrialState::Failed => (FAILED.mix(0.7), 2, "failed"),
            _ => (COMPLETE.mix(0.75), 0, "complete"),
        };
        let series = chart
            .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
            .map_err(err)?;
        if !legend_done[slot] {
            legend_done[slot] = true;
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
        let last = *p.last().expect("non-empty");
        match t.state {
            TrialState::Pruned => {
                chart
                    .draw_series(std::iter::once(Cross::new(last, 7, CUT.stroke_width(3))))
                    .map_err(err)?;
            }
            TrialState::Failed => {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(
                        last,
                        7,
                        FAILED.filled(),
                    )))
                    .map_err(err)?;
            }
            _ => {}
        }
    }
    if let Some(b) = r.best.as_ref()
        && let Some(t) = r.trials.iter().find(|t| t.number == b.number)
    {
        let p = pts(t);
        chart
            .draw_series(LineSeries::new(p.clone(), BEST.stroke_width(4)))
            .map_err(err)?
            .label(format!(
                "best: trial {} = {}",
                b.number,
                crate::runner::ui::fmt_value(b.value)
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BEST.stroke_width(4)));
        if let Some(&last) = p.last() {
            chart
                .draw_series(std::iter::once(Circle::new(last, 6, BEST.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 16))
        .position(match r.direction {
            crate::engine::Direction::Minimize => SeriesLabelPosition::UpperRight,
            crate::engine::Direction::Maximize => SeriesLabelPosition::LowerRight,
        })
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Parameter names in first-seen order.
fn param_names(r: &Results) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in &r.trials {
        for k in t.params.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

/// How a parameter's values are placed on the x axis.
enum Axis {
    Numeric { log: bool },
    Categories(Vec<String>),
}

fn axis_for(values: &[&ParamValue]) -> Axis {
    let nums: Option<Vec<f64>> = values
        .iter()
        .map(|v| match v {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        })
        .collect();
    match nums {
        Some(n) if !n.is_empty() => {
            let lo = n.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = n.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            Axis::Numeric {
                log: lo > 0.0 && hi / lo >= 100.0,
            }
        }
        _ => {
            let mut cats: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            cats.sort();
            cats.dedup();
            Axis::Categories(cats)
        }
    }
}

fn x_of(v: &ParamValue, axis: &Axis) -> Option<f64> {
    match axis {
        Axis::Numeric { log } => {
            let x = match v {
                ParamValue::Int(i) => *i as f64,
                ParamValue::Float(f) => *f,
                _ => return None,
            };
            if *log { Some(x.log10()) } else { Some(x) }
        }
        Axis::Categories(c) => c.iter().position(|s| *s == v.to_string()).map(|i| i as f64),
    }
}

fn param_panel<DB: DrawingBackend>(
    r: &Results,
    name: &str,
    area: &DrawingArea<DB, Shift>,
    opts: &PlotOptions,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let log_y = opts.log_y;
    let values: Vec<&ParamValue> = r.trials.iter().filter_map(|t| t.params.get(name)).collect();
    let axis = axis_for(&values);
    // (x, y, state, is best) of every trial with this parameter and an objective value.
    let best = r.best.as_ref().map(|b| b.number);
    let pts: Vec<(f64, f64, TrialState, bool)> = r
        .trials
        .iter()
        .filter_map(|t| {
            let x = x_of(t.params.get(name)?, &axis)?;
            let v = t.value.or_else(|| t.intermediate.last().map(|p| p.1))?;
            let y = y_of(v, log_y)?;
            Some((x, y, t.state, Some(t.number) == best))
        })
        .collect();
    let (x0, x1) = match &axis {
        Axis::Categories(c) => (-0.5, c.len() as f64 - 0.5),
        Axis::Numeric { .. } => bounds(pts.iter().map(|p| p.0)).unwrap_or((0.0, 1.0)),
    };
    let (y0, y1) = bounds(pts.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let log_x = matches!(axis, Axis::Numeric { log: true });
    let cats = match &axis {
        Axis::Categories(c) => c.clone(),
        _ => Vec::new(),
    };
    let x_fmt = move |v: &f64| -> String {
        if !cats.is_empty() {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                return cats.get(i as usize).cloned().unwrap_or_default();
            }
            return String::new();
        }
        if log_x {
            crate::runner::ui::fmt_log_tick(10f64.powf(*v))
        } else {
            crate::runner::ui::fmt_tick(*v)
        }
    };
    let y_fmt = |v: &f64| y_label(*v, log_y);
    let n_cats = match &axis {
        Axis::Categories(c) => c.len(),
        _ => 0,
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(if log_x {
        format!("{name} (log)")
    } else {
        name.to_string()
    })
    .y_desc(r.objective.clone())
    .x_label_formatter(&x_fmt)
    .y_label_formatter(&y_fmt)
    .light_line_style(RGBColor(240, 240, 240))
    .label_style(("sans-serif", 13))
    .axis_desc_style(("sans-serif", 15))
    .x_labels(if n_cats > 0 { n_cats * 2 + 1 } else { 4 })
    .y_labels(5);
    mesh.draw().map_err(err)?;
    chart
        .draw_series(pts.iter().filter(|p| !p.3).map(|&(x, y, state, _)| {
            let style = match state {
                TrialState::Complete => COMPLETE.filled(),
                TrialState::Failed => FAILED.filled(),
                _ => PRUNED.mix(0.8).filled(),
            };
            Circle::new((x, y), 4, style)
        }))
        .map_err(err)?;
    chart
        .draw_series(
            pts.iter()
                .filter(|p| p.3)
                .map(|&(x, y, _, _)| Circle::new((x, y), 7, BEST.filled())),
        )
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_leaves_out_non_positive() {
        assert_eq!(y_of(100.0, true), Some(2.0));
        assert_eq!(y_of(0.0, true), None);
        assert_eq!(y_of(f64::NAN, false), None);
        assert_eq!(y_of(-1.0, false), Some(-1.0));
    }
}

/// `lopper plot --study NAME`: the Trials of a Study in the cluster, as a results file.
pub mod cluster {
    use anyhow::Context;
    use kube::ResourceExt;
    use kube::api::{Api, ListParams};

    use std::collections::HashMap;

    use crate::crd::curve::{self, CurveChunk};
    use crate::crd::{Point, STUDY_LABEL, Study, TRIAL_LABEL, Trial};
    use crate::runner::results::{Results, TrialResult};

    /// The sealed points of the trials whose chunks match `selector`, by trial name (chunks
    /// in index order; only the chunks each Trial's status counts are used by the callers).
    pub async fn sealed_points(
        client: kube::Client,
        ns: &str,
        selector: &str,
    ) -> anyhow::Result<HashMap<String, Vec<(u32, Vec<Point>)>>> {
        let chunks: Api<CurveChunk> = Api::namespaced(client, ns);
        let list = chunks
            .list(&ListParams::default().labels(selector))
            .await
            .with_context(|| format!("listing curve chunks ({selector}) in {ns}"))?;
        let mut by_trial: HashMap<String, Vec<(u32, Vec<Point>)>> = HashMap::new();
        for c in &list.items {
            let points = curve::chunk_points(c)?;
            by_trial
                .entry(c.spec.trial.clone())
                .or_default()
                .push((c.spec.index, points));
        }
        for v in by_trial.values_mut() {
            v.sort_by_key(|(k, _)| *k);
        }
        Ok(by_trial)
    }

    /// The points of a trial's chunks that its status counts, in order.
    fn counted(t: &Trial, sealed: Option<&Vec<(u32, Vec<Point>)>>) -> Vec<Point> {
        let count = t.curve_chunks();
        sealed
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k < count)
            .flat_map(|(_, p)| p.iter().cloned())
            .collect()
    }

    /// A trial's whole curve: its counted chunks, then `status.intermediate`.
    pub fn whole_curve(t: &Trial, sealed: Option<&Vec<(u32, Vec<Point>)>>) -> Vec<Point> {
        let mut out = counted(t, sealed);
        if let Some(s) = &t.status {
            out.extend(s.intermediate.iter().cloned());
        }
        out
    }

    /// `lopper curve`: one Trial's whole curve from the cluster (chunks included).
    pub async fn curve_of_trial(name: &str, namespace: Option<&str>) -> anyhow::Result<Vec<Point>> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (kubeconfig or in-cluster config)")?;
        let ns = namespace.unwrap_or(client.default_namespace()).to_string();
        let trials: Api<Trial> = Api::namespaced(client.clone(), &ns);
        let t = trials
            .get(name)
            .await
            .with_context(|| format!("reading Trial {ns}/{name}"))?;
        let sealed = if t.curve_chunks() > 0 {
            sealed_points(client, &ns, &format!("{TRIAL_LABEL}={name}")).await?
        } else {
            HashMap::new()
        };
        let points = whole_curve(&t, sealed.get(name));
        let expected = t.curve_chunks() as usize * curve::CHUNK_POINTS;
        anyhow::ensure!(
            points.len() >= expected,
            "Trial {ns}/{name}: status.curveChunks counts {} chunks but fewer are readable",
            t.curve_chunks()
        );
        Ok(points)
    }

    pub async fn results_of_study(name: &str, namespace: Option<&str>) -> anyhow::Result<Results> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (kubeconfig or in-cluster config)")?;
        let ns = namespace.unwrap_or(client.default_namespace()).to_string();
        let studies: Api<Study> = Api::namespaced(client.clone(), &ns);
        let study = studies
            .get(name)
            .await
            .with_context(|| format!("reading Study {ns}/{name}"))?;
        let trials: Api<Trial> = Api::namespaced(client.clone(), &ns);
        let selector = format!("{STUDY_LABEL}={name}");
        let list = trials
            .list(&ListParams::default().labels(&selector))
            .await
            .with_context(|| format!("listing the Trials of Study {ns}/{name}"))?;
        // Long curves: the points sealed into chunks belong on the plot too.
        let sealed = if list.items.iter().any(|t| t.curve_chunks() > 0) {
            sealed_points(client, &ns, &selector).await?
        } else {
            HashMap::new()
        };
        let mut rs: Vec<TrialResult> = list
            .items
            .iter()
            .map(|t| trial_result(t, sealed.get(&t.name_any())))
            .collect();
        rs.sort_by_key(|t| t.number);
        let phase = study
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let mut r = Results {
            study: name.to_string(),
            direction: study.spec.objective.direction,
            objective: study.spec.objective.metric.clone(),
            phase,
            reason: String::new(),
            best: None,
            trials: rs,
            steps_run: 0,
            steps_saved_estimate: 0,
            seconds: 0.0,
            budget: study.status.as_ref().and_then(|s| s.budget.clone()),
            max_trials: study.spec.max_trials,
            pruner: study.pruner().key().to_string(),
        };
        r.summarize();
        Ok(r)
    }

    /// One Trial as a results-file trial (`sealed`: its chunks, see [`sealed_points`]).
    pub fn trial_result(t: &Trial, sealed: Option<&Vec<(u32, Vec<Point>)>>) -> TrialResult {
        let rec = t.record_with(&counted(t, sealed));
        let status = t.status.clone().unwrap_or_default();
        let seconds = match (&status.start_time, &status.completion_time) {
            (Some(a), Some(b)) => (b.0.as_second() - a.0.as_second()) as f64,
            _ => 0.0,
        };
        let condition = status.conditions.last();
        TrialResult {
            number: rec.number,
            state: rec.state,
            params: rec.params.clone(),
            value: rec.value,
            pruned_at_step: status.pruned_at_step,
            intermediate: rec.intermediate.iter().map(|(&s, &v)| (s, v)).collect(),
            seconds,
            reason: condition.map(|c| c.reason.clone()),
            message: condition.map(|c| c.message.clone()),
            stderr_tail: None,
            rungs: rec.rungs,
        }
    }
}
