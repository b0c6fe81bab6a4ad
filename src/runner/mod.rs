//! The local study loop behind `lopper run`: the Study manifest `kubectl apply` takes, run on
//! this machine with trials as subprocesses.
//!
//! The loop is a thin shell around the engine: the sampler proposes each trial's params, the
//! log parser (or the push endpoint) turns its output into `(step, value)` reports, the
//! pruner decides after every report, and [`crate::engine::policy`] says when the study
//! creates a trial and when it ends, exactly as the operator decides. What is local: a trial is a process group ([`process`]), pruning it is
//! SIGTERM to the group then SIGKILL after the pod's `terminationGracePeriodSeconds`, and
//! Ctrl-C stops every trial and still writes the results.

pub mod files;
pub mod manifest;
pub mod process;
pub mod push;
pub mod results;
pub mod template;
pub mod ui;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use crate::engine::budget::{Spent, steps_spent};
use crate::engine::policy::{self, End, Rules, StudyCounts};
use crate::engine::pruners::Pruner;
use crate::engine::samplers::{History, Sampler, Suggestion};
use crate::engine::space::SearchSpace;
use crate::engine::{PrunerState, StudyView, TrialRecord, TrialState};
use crate::metrics::{LineParser, MetricsSpec};
pub use manifest::LocalStudy;
use results::{Results, TrialResult};

/// Options of one local run (the CLI's flags).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides `spec.parallelism`.
    pub parallelism: Option<u32>,
    /// Overrides `spec.maxTrials`.
    pub max_trials: Option<u32>,
    /// Where trials run (default: the manifest's folder).
    pub workdir: Option<PathBuf>,
    /// Where the results JSON is written (after every finished trial and at the end).
    pub output: Option<PathBuf>,
    /// Earlier results files whose trials feed the sampler (besides `spec.warmStart`).
    pub warm_start: Vec<PathBuf>,
    /// Overrides the grace period between SIGTERM and SIGKILL.
    pub grace: Option<Duration>,
    /// Progress bar (a terminal) or plain log lines.
    pub progress: bool,
    /// Echo every line the trials print (prefixed by the trial's name).
    pub verbose: bool,
    /// Each recorded report, as it is recorded (the dashboard of `lopper run --ui`). Unbounded
    /// so that sending never waits on the page.
    pub live: Option<mpsc::UnboundedSender<LiveReport>>,
}

/// One report the loop recorded, and the trial's state after the pruner's decision.
#[derive(Clone, Debug)]
pub struct LiveReport {
    pub number: u64,
    pub params: crate::engine::Params,
    pub step: i64,
    pub value: f64,
    pub state: TrialState,
    /// The pruner's reason and message when this report pruned the trial.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub seconds: f64,
}

/// One event from a trial's supervisor (or the push endpoint) to the loop.
#[derive(Debug)]
pub enum Event {
    /// An observation parsed from the trial's log.
    Report { idx: usize, step: i64, value: f64 },
    /// An observation pushed by the trainer; the reply says whether it must stop.
    Push {
        idx: usize,
        step: i64,
        value: f64,
        reply: oneshot::Sender<push::PushAnswer>,
    },
    /// A line the trial printed (only with `verbose`).
    Line { idx: usize, line: String },
    /// The trial's main process exited (its group is gone).
    Exited { idx: usize, exit: process::Exit },
}

/// What the loop knows about a trial beyond the engine's record.
#[derive(Clone, Debug, Default)]
struct Local {
    started: Option<Instant>,
    seconds: f64,
    pgid: Option<Pid>,
    pruned_at_step: Option<i64>,
    reason: Option<String>,
    message: Option<String>,
    stderr_tail: Option<String>,
    interrupted: bool,
}

/// The study in progress.
struct Loop {
    study: LocalStudy,
    opts: RunOptions,
    space: SearchSpace,
    sampler: Box<dyn Sampler>,
    pruner: Box<dyn Pruner>,
    pruner_state: PrunerState,
    warm: Vec<TrialRecord>,
    trials: Vec<TrialRecord>,
    local: Vec<Local>,
    tx: mpsc::UnboundedSender<Event>,
    push: Option<push::PushServer>,
    ui: ui::Ui,
    started: Instant,
    /// Why the study stopped creating trials (how it ends: [`policy::outcome`]).
    end: Option<End>,
    interrupted: bool,
}

/// Runs the study of the manifest at `path` to its end; returns its results (also written
/// to `opts.output`).
pub async fn run(path: &std::path::Path, opts: RunOptions) -> anyhow::Result<Results> {
    let mut study = LocalStudy::load(path)?;
    if let Some(p) = opts.parallelism {
        anyhow::ensure!(p >= 1, "--parallelism must be at least 1");
        study.parallelism = p;
    }
    if let Some(m) = opts.max_trials {
        anyhow::ensure!(m >= 1, "--max-trials must be at least 1");
        study.max_trials = Some(m);
    }
    let space = study.space.clone();
    let sampler = crate::engine::samplers::build(&study.sampler)
        .map_err(|e| anyhow::anyhow!("spec.sampler: {e}"))?;
    let pruner = crate::engine::pruners::build(&study.pruner)
        .map_err(|e| anyhow::anyhow!("spec.pruner: {e}"))?;

    let mut warm_files = opts.warm_start.clone();
    for name in &study.warm_start {
        warm_files.push(manifest::warm_start_file(&study.dir, name)?);
    }
    let mut earlier = Vec::new();
    for f in &warm_files {
        let r = Results::read(f)?;
        earlier.extend(r.trials.iter().map(TrialResult::to_record));
    }
    let (warm, skipped) = crate::engine::samplers::warm_start(&space, &earlier);

    let workdir = opts.workdir.clone().unwrap_or_else(|| study.dir.clone());
    anyhow::ensure!(
        workdir.is_dir(),
        "working directory {} does not exist",
        workdir.display()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let push = match &study.metrics {
        MetricsSpec::Push(_) => Some(push::PushServer::start(tx.clone(), &study.metric).await?),
        MetricsSpec::Logs(_) | MetricsSpec::File(_) | MetricsSpec::Tensorboard(_) => None,
        MetricsSpec::Prometheus(_) => anyhow::bail!(
            "spec.metrics.prometheus is not supported by `lopper run`: use logs, push, file or tensorboard locally"
        ),
    };
    let ui = ui::Ui::new(
        opts.progress,
        ui::Total::of(study.max_trials, study.budget.as_ref()),
    );
    let limit = match (study.max_trials, &study.budget) {
        (Some(m), None) => format!("{m} trials"),
        (Some(m), Some(b)) => format!("{m} trials, budget {}", b.limits()),
        (None, Some(b)) => format!("budget {}", b.limits()),
        // `LocalStudy::parse` refuses a manifest with neither.
        (None, None) => "unbounded".into(),
    };
    ui.line(&format!(
        "study {}: {limit}, {} at once, sampler {}, pruner {}, objective {} ({}){}",
        study.name,
        study.parallelism,
        study.sampler_name,
        study.pruner_name,
        study.metric,
        direction_word(study.direction),
        if warm.is_empty() && earlier.is_empty() {
            String::new()
        } else {
            format!(
                ", warm start: {} earlier trials ({} skipped)",
                warm.len(),
                skipped.len()
            )
        }
    ));
    for why in &skipped {
        tracing::info!("warm start skips {why}");
    }
    let mut lp = Loop {
        study,
        opts: RunOptions {
            workdir: Some(workdir),
            ..opts
        },
        space,
        sampler,
        pruner,
        pruner_state: PrunerState::default(),
        warm,
        trials: Vec::new(),
        local: Vec::new(),
        tx,
        push,
        ui,
        started: Instant::now(),
        end: None,
        interrupted: false,
    };
    lp.run(rx).await
}

fn direction_word(d: crate::engine::Direction) -> &'static str {
    match d {
        crate::engine::Direction::Minimize => "minimize",
        crate::engine::Direction::Maximize => "maximize",
    }
}

impl Loop {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> anyhow::Result<Results> {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut stops = 0u32;
        loop {
            if self.end.is_none()
                && !self.interrupted
                && let Err(e) = self.fill()
            {
                self.finish_study(End::Error(format!("{e:#}")));
            }
            if self.running() == 0 {
                break;
            }
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                _ = sigint.recv() => { stops += 1; self.interrupt(stops); }
                _ = sigterm.recv() => { stops += 1; self.interrupt(stops); }
                _ = tick.tick() => self.progress(),
            }
        }
        if let Some(p) = self.push.take() {
            p.stop();
        }
        if !self.interrupted
            && let Some(stop) = &self.end
            && let Some(out) = policy::outcome(stop, &self.counts(), self.running() as u32)
            && (out != *stop || matches!(out, End::MaxTrialsReached { .. }))
        {
            self.ui
                .line(&format!("study {}: {}", self.study.name, out.message()));
        }
        let results = self.results();
        if let Some(out) = &self.opts.output {
            results.write(out)?;
        }
        self.ui.finish();
        Ok(results)
    }

    fn running(&self) -> usize {
        self.trials
            .iter()
            .zip(&self.local)
            .filter(|(t, l)| t.state == TrialState::Running || l.pgid.is_some())
            .count()
    }

    fn counts(&self) -> StudyCounts {
        StudyCounts::of(&self.trials)
    }

    fn rules(&self) -> Rules {
        Rules {
            direction: self.study.direction,
            goal: self.study.goal,
            max_trials: self.study.max_trials,
            parallelism: self.study.parallelism,
            max_failed_trials: self.study.max_failed_trials,
            budget: self.study.budget,
        }
    }

    /// GPU-seconds used so far: every trial's wall time (running ones up to now) times
    /// the GPUs a trial gets, as the operator accounts them.
    fn gpu_seconds(&self) -> f64 {
        let secs: f64 = self
            .local
            .iter()
            .map(|l| match (l.pgid, l.started) {
                (Some(_), Some(s)) => s.elapsed().as_secs_f64(),
                _ => l.seconds,
            })
            .sum();
        secs * f64::from(self.study.gpus)
    }

    /// Starts trials until `parallelism` run, as the policy allows.
    fn fill(&mut self) -> anyhow::Result<()> {
        loop {
            let rules = self.rules();
            if let Some(stop) = policy::stop(&rules, &self.trials, self.gpu_seconds()) {
                self.finish_study(stop);
                return Ok(());
            }
            if policy::slots(&rules, &self.counts(), self.running() as u32) == 0 {
                return Ok(());
            }
            let number = self.trials.len() as u64;
            let history = History::with_warm(&self.warm, &self.trials);
            let suggestion = self
                .sampler
                .suggest(&self.space, self.study.direction, history, number)
                .map_err(|e| anyhow::anyhow!("sampler: {e}"))?;
            let params = match suggestion {
                Suggestion::Params(p) => p,
                Suggestion::Exhausted => {
                    self.finish_study(End::SpaceExhausted);
                    return Ok(());
                }
            };
            let mut rec = TrialRecord::new(number);
            rec.params = params;
            self.trials.push(rec);
            self.local.push(Local::default());
            self.start(number as usize)?;
        }
    }

    fn start(&mut self, idx: usize) -> anyhow::Result<()> {
        let name = template::trial_name(&self.study.name, idx as u64);
        // Cannot fail: `LocalStudy::parse` rendered the template once already.
        let rendered =
            template::command_line(&self.study.crd, idx as u64, &self.trials[idx].params)
                .context("rendering the trial template")?;
        let mut env = rendered.env;
        if let Some(p) = &self.push {
            env.extend(p.register(idx, &name));
        }
        let workdir = self.opts.workdir.clone().unwrap_or_default();
        let metrics_path = files::prepare(&workdir, &name, &self.study.metrics)
            .with_context(|| format!("preparing the metrics folder of {name}"))?;
        if let Some(p) = &metrics_path {
            env.push((
                crate::metrics::operator::METRICS_PATH_ENV.to_string(),
                p.display().to_string(),
            ));
        }
        let mut argv = rendered.argv.into_iter();
        let launch = process::Launch {
            program: argv
                .next()
                .context("the primary container has no command")?,
            args: argv.collect(),
            env,
            workdir,
        };
        self.ui.line(&format!(
            "{name} started: {}",
            ui::format_params(&self.trials[idx].params)
        ));
        let (child, pgid) = match process::spawn(&launch) {
            Ok(x) => x,
            Err(e) => {
                // As a pod that cannot start: the trial fails (and counts toward maxFailedTrials).
                self.local[idx].started = Some(Instant::now());
                let _ = self.tx.send(Event::Exited {
                    idx,
                    exit: process::Exit {
                        code: Some(127),
                        signal: None,
                        stderr_tail: e.to_string(),
                    },
                });
                return Ok(());
            }
        };
        self.local[idx].started = Some(Instant::now());
        self.local[idx].pgid = Some(pgid);
        let tx = self.tx.clone();
        let mut parser = match &self.study.metrics {
            MetricsSpec::Logs(spec) => Some(LineParser::new(spec, &self.study.metric)?),
            _ => None,
        };
        let following = match &metrics_path {
            Some(p) => Some(files::Following::start(
                crate::sidecar::Follower::new(&self.study.metrics, &self.study.metric, p)?,
                idx,
                tx.clone(),
            )),
            None => None,
        };
        let verbose = self.opts.verbose;
        tokio::spawn(async move {
            let exit = process::supervise(child, pgid, |line| {
                if let Some(p) = parser.as_mut()
                    && let Some((step, value)) = p.feed(&line)
                {
                    let _ = tx.send(Event::Report { idx, step, value });
                }
                if verbose {
                    let _ = tx.send(Event::Line { idx, line });
                }
            })
            .await;
            if let Some(f) = following {
                f.finish().await;
            }
            let _ = tx.send(Event::Exited { idx, exit });
        });
        Ok(())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Report { idx, step, value } => {
                self.report(idx, step, value);
            }
            Event::Push {
                idx,
                step,
                value,
                reply,
            } => {
                let answer = match self.trials.get(idx).map(|t| t.state) {
                    Some(TrialState::Running) => {
                        push::PushAnswer::Prune(self.report(idx, step, value))
                    }
                    Some(_) => {
                        push::PushAnswer::Finished(self.trials[idx].state == TrialState::Pruned)
                    }
                    None => push::PushAnswer::Unknown,
                };
                let _ = reply.send(answer);
            }
            Event::Line { idx, line } => {
                let name = template::trial_name(&self.study.name, idx as u64);
                self.ui.line(&format!("[{name}] {line}"));
            }
            Event::Exited { idx, exit } => self.exited(idx, exit),
        }
    }

    /// Records an observation and asks the pruner; returns whether the trial is pruned.
    fn report(&mut self, idx: usize, step: i64, value: f64) -> bool {
        if self.trials[idx].state != TrialState::Running {
            return self.trials[idx].state == TrialState::Pruned;
        }
        if !self.trials[idx].report(step, value) {
            return false;
        }
        let decision = {
            let view = StudyView {
                name: &self.study.name,
                direction: self.study.direction,
                trials: &self.trials,
            };
            self.pruner
                .prune(&view, &self.trials[idx], &mut self.pruner_state)
        };
        self.trials[idx].rungs.extend(decision.record_rungs);
        if !decision.prune {
            self.publish(idx, step, value);
            return false;
        }
        let t = &mut self.trials[idx];
        t.state = TrialState::Pruned;
        t.value = t.last_value();
        let l = &mut self.local[idx];
        l.pruned_at_step = Some(step);
        l.reason = Some(decision.reason.to_string());
        l.message = Some(decision.message.to_string());
        if let Some(pgid) = l.pgid {
            process::terminate(pgid, self.grace());
        }
        let name = template::trial_name(&self.study.name, idx as u64);
        self.ui.line(&format!(
            "{name} pruned at step {step} ({}: {})",
            decision.reason, decision.message
        ));
        self.publish(idx, step, value);
        true
    }

    /// Hands a recorded report to the dashboard, if one listens.
    fn publish(&self, idx: usize, step: i64, value: f64) {
        if let Some(live) = &self.opts.live {
            let (t, l) = (&self.trials[idx], &self.local[idx]);
            let _ = live.send(LiveReport {
                number: t.number,
                params: t.params.clone(),
                step,
                value,
                state: t.state,
                reason: l.reason.clone(),
                message: l.message.clone(),
                seconds: l.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
            });
        }
    }

    fn grace(&self) -> Duration {
        self.opts.grace.unwrap_or(self.study.grace)
    }

    fn exited(&mut self, idx: usize, exit: process::Exit) {
        let l = &mut self.local[idx];
        l.pgid = None;
        l.seconds = l.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let name = template::trial_name(&self.study.name, idx as u64);
        if let Some(p) = &self.push {
            p.unregister(idx);
        }
        if self.trials[idx].state == TrialState::Running {
            let interrupted = self.local[idx].interrupted;
            let tail = (!exit.stderr_tail.is_empty()).then(|| exit.stderr_tail.clone());
            if interrupted {
                self.fail(idx, "Interrupted", "stopped by Ctrl-C", tail);
            } else if !exit.success() {
                let last = exit.stderr_tail.lines().last().unwrap_or("").to_string();
                let msg = if last.is_empty() {
                    exit.describe()
                } else {
                    format!("{}: {last}", exit.describe())
                };
                self.fail(idx, "Error", &msg, tail);
            } else {
                match self.trials[idx].last_value() {
                    Some(v) if !v.is_nan() => {
                        let t = &mut self.trials[idx];
                        t.state = TrialState::Complete;
                        t.value = Some(v);
                        let best = self.is_best(idx);
                        self.ui.line(&format!(
                            "{name} complete: {}={} after {} steps{}",
                            self.study.metric,
                            ui::fmt_value(v),
                            self.trials[idx].intermediate.len(),
                            if best { " (best so far)" } else { "" }
                        ));
                    }
                    Some(_) => self.fail(
                        idx,
                        "NaNObjective",
                        "the last reported objective is NaN",
                        tail,
                    ),
                    None => self.fail(
                        idx,
                        "NoObjective",
                        &format!(
                            "exited 0 without reporting {} (metrics: {})",
                            self.study.metric,
                            self.study.metrics.source()
                        ),
                        tail,
                    ),
                }
            }
        }
        if let Some(stop) = policy::stop(&self.rules(), &self.trials, self.gpu_seconds()) {
            self.finish_study(stop);
        }
        self.progress();
        if let Some(out) = &self.opts.output
            && let Err(e) = self.results().write(out)
        {
            self.ui.line(&format!("warning: {e:#}"));
        }
    }

    fn fail(&mut self, idx: usize, reason: &str, message: &str, tail: Option<String>) {
        let t = &mut self.trials[idx];
        t.state = TrialState::Failed;
        let l = &mut self.local[idx];
        l.reason = Some(reason.to_string());
        l.message = Some(message.to_string());
        l.stderr_tail = tail;
        let name = template::trial_name(&self.study.name, idx as u64);
        self.ui
            .line(&format!("{name} failed ({reason}): {message}"));
        if let Some(tail) = &self.local[idx].stderr_tail
            && reason != "Interrupted"
        {
            for line in tail.lines() {
                self.ui.line(&format!("  | {line}"));
            }
        }
    }

    fn is_best(&self, idx: usize) -> bool {
        let Some(v) = self.trials[idx].value else {
            return false;
        };
        !self.trials.iter().any(|t| {
            t.number as usize != idx
                && t.state == TrialState::Complete
                && t.value
                    .is_some_and(|w| !w.is_nan() && !self.study.direction.better(v, w))
                && t.value != Some(v)
        })
    }

    /// The study stops creating trials; when it failed, the running ones are stopped (a
    /// failure also overrides an earlier stop that let them finish).
    fn finish_study(&mut self, end: End) {
        if !end.replaces(self.end.as_ref()) {
            return;
        }
        // "All trials finished" is said once they have (after the loop).
        if !matches!(end, End::MaxTrialsReached { .. }) {
            self.ui
                .line(&format!("study {}: {}", self.study.name, end.message()));
        }
        if let End::BudgetSpent {
            stop_running: true,
            why,
        } = &end
        {
            self.prune_all(&format!("budget spent: {why}"));
        } else if end.stops_running() {
            self.stop_all(false);
        }
        self.end = Some(end);
    }

    fn interrupt(&mut self, times: u32) {
        if times == 1 {
            self.ui.line(&format!(
                "interrupted: stopping {} running trial(s) (again to kill at once)",
                self.running()
            ));
            self.interrupted = true;
            self.stop_all(true);
        } else {
            for l in &self.local {
                if let Some(pgid) = l.pgid {
                    process::signal_group(pgid, Some(nix::sys::signal::Signal::SIGKILL));
                }
            }
        }
    }

    fn stop_all(&mut self, interrupted: bool) {
        let grace = self.grace();
        for (t, l) in self.trials.iter().zip(self.local.iter_mut()) {
            if let Some(pgid) = l.pgid
                && t.state == TrialState::Running
            {
                l.interrupted = true;
                if !interrupted && l.reason.is_none() {
                    l.reason = Some("StudyFailed".into());
                }
                process::terminate(pgid, grace);
            }
        }
    }

    /// Stops the running trials as pruned at their last step (`budget.onSpent: stop`).
    fn prune_all(&mut self, why: &str) {
        let grace = self.grace();
        for (idx, (t, l)) in self
            .trials
            .iter_mut()
            .zip(self.local.iter_mut())
            .enumerate()
        {
            if t.state != TrialState::Running {
                continue;
            }
            t.state = TrialState::Pruned;
            t.value = t.last_value();
            l.pruned_at_step = t.last_step();
            l.reason = Some("BudgetSpent".into());
            l.message = Some(why.to_string());
            if let Some(pgid) = l.pgid {
                process::terminate(pgid, grace);
            }
            let name = template::trial_name(&self.study.name, idx as u64);
            self.ui.line(&format!("{name} stopped: {why}"));
        }
    }

    fn progress(&self) {
        let c = self.counts();
        let best = self
            .best()
            .map(|(n, v)| format!("best {} (#{n})", ui::fmt_value(v)));
        let position = self.ui.total.position(
            (c.complete + c.pruned + c.failed) as u64,
            steps_spent(&self.trials),
            self.gpu_seconds(),
        );
        self.ui.progress(
            position,
            &format!(
                "running {} · complete {} · pruned {} · failed {}{}",
                self.running(),
                c.complete,
                c.pruned,
                c.failed,
                best.map(|b| format!(" · {b}")).unwrap_or_default()
            ),
        );
    }

    fn best(&self) -> Option<(u64, f64)> {
        policy::best(self.study.direction, &self.trials)
    }

    fn results(&self) -> Results {
        let trials = self
            .trials
            .iter()
            .zip(&self.local)
            .map(|(t, l)| TrialResult {
                number: t.number,
                state: t.state,
                params: t.params.clone(),
                value: t.value,
                pruned_at_step: l.pruned_at_step,
                intermediate: t.intermediate.iter().map(|(&s, &v)| (s, v)).collect(),
                seconds: if l.pgid.is_some() {
                    l.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
                } else {
                    l.seconds
                },
                reason: l.reason.clone(),
                message: l.message.clone(),
                stderr_tail: l.stderr_tail.clone(),
                rungs: t.rungs.clone(),
            })
            .collect();
        let (phase, reason) = if self.interrupted {
            ("Interrupted".to_string(), "Interrupted".to_string())
        } else {
            match &self.end {
                Some(stop) => {
                    match policy::outcome(stop, &self.counts(), self.running() as u32) {
                        Some(e) => (e.phase().to_string(), e.reason().to_string()),
                        // Stopped creating trials; the running ones finish.
                        None => ("Running".to_string(), stop.reason().to_string()),
                    }
                }
                None => ("Running".to_string(), String::new()),
            }
        };
        let mut r = Results {
            study: self.study.name.clone(),
            direction: self.study.direction,
            objective: self.study.metric.clone(),
            phase,
            reason,
            best: None,
            trials,
            steps_run: 0,
            steps_saved_estimate: 0,
            seconds: self.started.elapsed().as_secs_f64(),
            budget: self
                .study
                .budget
                .map(|b| b.status(&Spent::of(&self.trials, self.gpu_seconds()))),
            max_trials: self.study.max_trials,
            pruner: self.study.pruner.key().to_string(),
        };
        r.summarize();
        r
    }
}

/// Per-state counts of trials by parameter, for the summary.
pub fn state_counts(trials: &[TrialResult]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for t in trials {
        let k = t.state.as_str();
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
