//! The dashboard of `lopper ui results.json` in a real browser (headless Chromium): each view
//! shows what the results file holds, the table sorts, filters and exports, and a running
//! trial's curve gains a point when the file gains one.

mod browser;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use browser::{Browser, Server, dashboard_url, screenshot_dir};
use lopper::engine::{ParamValue, Params, TrialState};
use lopper::runner::results::{Results, TrialResult};
use serde_json::Value;

const OPTIMIZERS: [&str; 3] = ["adam", "sgd", "rmsprop"];

fn trial(i: u64, running_points: usize) -> TrialResult {
    let lr = 10f64.powf(-4.0 + 3.0 * i as f64 / 11.0);
    let mut params = Params::new();
    params.insert("lr".into(), ParamValue::Float(lr));
    params.insert("hidden".into(), ParamValue::Int(16 * (1 + i as i64 % 4)));
    params.insert(
        "optimizer".into(),
        ParamValue::Str(OPTIMIZERS[i as usize % 3].into()),
    );
    let (state, len, reason) = match i {
        3 | 7 => (TrialState::Pruned, 4, Some("MedianPruner".to_string())),
        10 => (TrialState::Failed, 2, Some("Error".to_string())),
        11 => (TrialState::Running, running_points, None),
        _ => (TrialState::Complete, 10, None),
    };
    // The objective is driven by lr (distance from 3e-3 in decades), a little by hidden.
    let floor = (lr.log10() + 2.5).powi(2) + 0.01 * (i % 4) as f64 + 0.05;
    let intermediate: Vec<(i64, f64)> = (0..len as i64)
        .map(|s| (s, floor + 1.0 / (s as f64 + 1.0)))
        .collect();
    TrialResult {
        number: i,
        state,
        params,
        value: match state {
            TrialState::Complete | TrialState::Pruned => intermediate.last().map(|p| p.1),
            _ => None,
        },
        pruned_at_step: (state == TrialState::Pruned).then_some(len as i64 - 1),
        intermediate,
        seconds: 1.5 + i as f64,
        message: reason
            .as_ref()
            .map(|r| format!("{r} at step {}", len as i64 - 1)),
        reason,
        stderr_tail: None,
        rungs: Default::default(),
    }
}

fn results(running_points: usize) -> Results {
    // From JSON, so fields added to the file later (with defaults) need no change here.
    let mut r: Results = serde_json::from_value(serde_json::json!({
        "study": "dash", "direction": "minimize", "objective": "val_loss", "phase": "",
        "best": null, "trials": [], "stepsRun": 0, "stepsSavedEstimate": 0
    }))
    .unwrap();
    r.trials = (0..12).map(|i| trial(i, running_points)).collect();
    r.summarize();
    r
}

fn serve(path: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lopper"))
        .args(["ui", "--port", "0"])
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lopper ui");
    let url = dashboard_url(&mut child);
    (Server(child), url)
}

/// The number a cell shows, compared with what the file holds (the page rounds to 6 digits).
fn assert_shows(shown: &Value, want: f64, what: &str) {
    let s = shown.as_str().unwrap_or_else(|| panic!("{what}: {shown}"));
    let got: f64 = s.parse().unwrap_or_else(|_| panic!("{what}: {s:?}"));
    assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1e-12),
        "{what}: page shows {got}, results hold {want}"
    );
}

fn text(b: &mut Browser, selector: &str) -> Value {
    b.eval(&format!(
        "(e => e ? e.textContent : null)(document.querySelector({}))",
        serde_json::to_string(selector).unwrap()
    ))
}

/// Loads `url` afresh (not as a fragment change) and waits until the page has drawn.
fn open(b: &mut Browser, url: &str) -> u64 {
    b.goto("about:blank");
    b.goto(url);
    ready(b, 0)
}

fn ready(b: &mut Browser, after: u64) -> u64 {
    b.wait_for(
        &format!("Number(document.body.dataset.ready || 0) > {after} && Number(document.body.dataset.ready)"),
        Duration::from_secs(20),
    )
    .as_u64()
    .unwrap()
}

#[test]
fn views_show_what_the_results_file_holds_and_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let r = results(5);
    r.write(&path).unwrap();
    let (_server, url) = serve(&path);
    let mut b = Browser::launch(1400, 1000);
    let shots = screenshot_dir();

    // Studies.
    let n = open(&mut b, &url);
    let row = "#studies tr[data-study='local/dash']";
    let best = r.best.as_ref().unwrap();
    assert_shows(
        &text(&mut b, &format!("{row} [data-field=best]")),
        best.value,
        "best",
    );
    for (field, want) in [
        ("pruned", "2"),
        ("failed", "1"),
        ("running", "1"),
        ("progress", "8"),
    ] {
        assert_eq!(
            text(&mut b, &format!("{row} [data-field={field}]")),
            want,
            "{field}"
        );
    }
    b.screenshot(&shots.join("local-studies.png"));

    // A study: summary, every trial's row, sorting, filtering, CSV, importance, charts.
    b.eval("document.querySelector(\"#studies [data-field=name] a\").click()");
    ready(&mut b, n);
    assert_shows(
        &text(&mut b, "#summary [data-field=best]"),
        best.value,
        "summary best",
    );
    assert_eq!(
        text(&mut b, "#summary [data-field=bestTrial]"),
        best.number.to_string()
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#trials tbody tr').length"),
        12
    );
    for t in &r.trials {
        let tr = format!("#trials tr[data-trial='{}']", t.number);
        let state = match t.state {
            TrialState::Complete => "Completed",
            TrialState::Pruned => "Pruned",
            TrialState::Failed => "Failed",
            TrialState::Running => "Running",
        };
        assert_eq!(text(&mut b, &format!("{tr} [data-field=state]")), state);
        match t.value {
            Some(v) => assert_shows(
                &text(&mut b, &format!("{tr} [data-field=value]")),
                v,
                "value",
            ),
            None => assert_eq!(text(&mut b, &format!("{tr} [data-field=value]")), "—"),
        }
        let ParamValue::Float(lr) = t.params["lr"] else {
            unreachable!()
        };
        assert_shows(&text(&mut b, &format!("{tr} [data-param=lr]")), lr, "lr");
        assert_eq!(
            text(&mut b, &format!("{tr} [data-param=optimizer]")),
            t.params["optimizer"].to_string()
        );
        assert_eq!(
            text(&mut b, &format!("{tr} [data-field=reason]")),
            t.reason.clone().unwrap_or_default()
        );
    }
    // Sorting by the objective puts the best trial first.
    b.eval("document.querySelector('#trials th[data-key=value]').click()");
    assert_eq!(
        text(&mut b, "#trials tbody tr [data-field=number]"),
        best.number.to_string()
    );
    // Filters: a state, then a parameter bound.
    b.eval("(f => { f.value = 'state=Pruned'; f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))");
    assert_eq!(
        b.eval("[...document.querySelectorAll('#trials tbody [data-field=state]')].map(e => e.textContent)"),
        serde_json::json!(["Pruned", "Pruned"])
    );
    let fast = r
        .trials
        .iter()
        .filter(|t| matches!(t.params["lr"], ParamValue::Float(x) if x > 0.01))
        .count();
    b.eval("(f => { f.value = 'lr>0.01'; f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))");
    assert_eq!(
        b.eval("document.querySelectorAll('#trials tbody tr').length"),
        fast
    );
    // CSV of what the filter shows: a header and one line per trial.
    b.eval("document.getElementById('csv').click()");
    let csv = b.eval("window.lopper.lastCsv");
    let lines: Vec<&str> = csv.as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 1 + fast, "{csv}");
    assert!(
        lines[0].starts_with("#,state,val_loss,step,reason,seconds"),
        "{}",
        lines[0]
    );
    b.eval("(f => { f.value = ''; f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))");
    // Importance: the engine's numbers, lr first (the objective is built from it).
    let names: Vec<String> = ["hidden", "lr", "optimizer"].map(String::from).to_vec();
    let done: Vec<(Vec<Option<&ParamValue>>, f64)> = r
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .map(|t| {
            (
                names.iter().map(|n| t.params.get(n)).collect(),
                t.value.unwrap(),
            )
        })
        .collect();
    let imp = lopper::engine::importance::importance(&names, &done);
    assert_eq!(imp[0].param, "lr");
    let shown = b.eval("[...document.querySelectorAll('#importance .imp')].map(e => [e.dataset.param, e.querySelector('[data-field=importance]').textContent])");
    let want: Vec<Value> = imp
        .iter()
        .map(|i| serde_json::json!([i.param, format!("{:.1}%", i.importance * 100.0)]))
        .collect();
    assert_eq!(shown, Value::Array(want));
    // The history plots every completed trial; the curves and parallel coordinates drew.
    assert_eq!(b.eval("window.lopper.charts[0].data[1].length"), 8);
    assert_eq!(b.eval("window.lopper.curves.size"), 12);
    b.eval("document.getElementById('logy').click()");
    assert_eq!(b.eval("window.lopper.charts[0].scales.y.distr"), 3);
    b.screenshot(&shots.join("local-study.png"));

    // A pruned trial: parameters, its whole curve, why it was pruned.
    open(&mut b, &format!("{url}#/trial/local/dash/3"));
    assert_eq!(text(&mut b, "[data-field=state]"), "Pruned");
    assert_eq!(text(&mut b, "#points"), "4 points");
    assert_eq!(
        text(&mut b, "#params tr[data-param=optimizer] .value"),
        r.trials[3].params["optimizer"].to_string()
    );
    assert_eq!(
        text(
            &mut b,
            "#conditions tr[data-type=Pruned] [data-field=reason]"
        ),
        "MedianPruner"
    );
    b.screenshot(&shots.join("local-trial.png"));

    // Live: the running trial's curve gains a point when the file does.
    open(&mut b, &format!("{url}#/trial/local/dash/11"));
    assert_eq!(text(&mut b, "#points"), "5 points");
    // Modification times can be coarse: make sure the new file's differs.
    std::thread::sleep(Duration::from_millis(1100));
    results(6).write(&path).unwrap();
    b.wait_for(
        "document.getElementById('points').textContent === '6 points'",
        Duration::from_secs(10),
    );
    assert_eq!(text(&mut b, "[data-field=step]"), "5");
}

/// `lopper run --ui PORT` prints the dashboard's address and the study page fills in as
/// trials finish, without a reload.
#[test]
fn lopper_run_ui_shows_trials_as_they_finish() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quadratic.results.json");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quadratic/study.yaml");
    let mut run = Command::new(env!("CARGO_BIN_EXE_lopper"))
        .arg("run")
        .arg(&manifest)
        .arg("--output")
        .arg(&out)
        .args(["--ui", "0", "--no-progress", "--max-trials", "12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lopper run");
    let url = dashboard_url(&mut run);
    let mut run = Server(run);
    let mut b = Browser::launch(1200, 900);
    open(&mut b, &format!("{url}#/study/local/quadratic"));
    // Rows appear as the results file gains finished trials (pushed, not reloaded).
    b.wait_for(
        "document.querySelectorAll('#trials tbody tr').length >= 3",
        Duration::from_secs(60),
    );
    assert_eq!(b.eval("document.body.dataset.ready"), "1", "no reload");
    let status = run.0.wait().expect("lopper run ends");
    assert!(status.success() || status.code() == Some(1), "{status:?}");
    let r = Results::read(&out).unwrap();
    assert!(r.trials.len() >= 3);
}

/// Under `lopper run --ui` a running trial's curve grows on the open study page as the trainer
/// reports (the results file is only written when a trial finishes), and a pruned trial ends
/// where it was pruned, with the pruner's reason.
#[test]
fn lopper_run_ui_curves_grow_while_trials_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("slow.results.json");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ui/slow-study.yaml");
    let mut run = Command::new(env!("CARGO_BIN_EXE_lopper"))
        .arg("run")
        .arg(&manifest)
        .arg("--output")
        .arg(&out)
        .args(["--ui", "0", "--no-progress"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lopper run");
    let url = dashboard_url(&mut run);
    let mut run = Server(run);
    let mut b = Browser::launch(1200, 900);
    open(&mut b, &format!("{url}#/study/local/slow"));
    // What the page holds of trial 0 while it runs: its row's state and last step (DOM), and
    // the points of its curve the canvas draws.
    let seen = "(() => { const row = document.querySelector('#trials tr[data-trial=\"0\"]'); \
        const c = window.lopper.curves.get(0); \
        return row ? { state: row.querySelector('[data-field=state]').textContent, \
          step: row.querySelector('[data-field=step]').textContent, \
          points: c ? c.steps.length : 0, last: c && c.steps.length ? c.values[c.steps.length - 1] : null } : null; })()";
    let first = b.wait_for(
        &format!("(s => s && s.state === 'Running' && s.points >= 1 && s)({seen})"),
        Duration::from_secs(30),
    );
    let n = first["points"].as_u64().unwrap();
    // Grown, and the table (redrawn at most 4 times a second) shows the curve's last step.
    let grown = b.wait_for(
        &format!(
            "(s => s && s.state === 'Running' && s.points > {n} && s.step === String(s.points - 1) && s)({seen})"
        ),
        Duration::from_secs(10),
    );
    let points = grown["points"].as_u64().unwrap();
    // The studies list names the manifest's maxTrials and pruner while the study runs.
    let studies: Value = serde_json::from_str(&get(&format!("{url}api/studies"))).unwrap();
    assert_eq!(
        (
            &studies[0]["maxTrials"],
            &studies[0]["pruner"],
            &studies[0]["phase"]
        ),
        (
            &Value::from(2),
            &Value::from("median"),
            &Value::from("Running")
        ),
        "{studies}"
    );
    // The value drawn is the trainer's, not a placeholder (the fixture's loss at that step).
    let last = grown["last"].as_f64().unwrap();
    assert!(last > 1.0 && last < 2.1, "{grown}");
    // The file did not carry these points: nothing finished yet, or it holds fewer.
    let in_file = Results::read(&out)
        .ok()
        .and_then(|r| {
            r.trials
                .iter()
                .find(|t| t.number == 0)
                .map(|t| t.intermediate.len())
        })
        .unwrap_or(0);
    assert!(
        (in_file as u64) < points,
        "the page's {points} points came from the file ({in_file})"
    );
    assert_eq!(b.eval("document.body.dataset.ready"), "1", "no reload");

    // Trial 1 is worse at every step: the median pruner cuts it at step 2 (after warm-up).
    b.wait_for(
        "(r => r && r.querySelector('[data-field=state]').textContent === 'Pruned')(document.querySelector('#trials tr[data-trial=\"1\"]'))",
        Duration::from_secs(40),
    );
    assert_eq!(
        text(&mut b, "#trials tr[data-trial=\"1\"] [data-field=reason]"),
        "MedianPruner"
    );
    assert_eq!(b.eval("window.lopper.curves.get(1).steps.length"), 3);
    // Hovering where the pruned curve ends names the trial, its state and the pruner.
    let at = b.eval(
        "(() => { const c = window.lopper.curves.get(1), s = window.lopper.curveScale, \
           r = document.getElementById('curves').getBoundingClientRect(), i = c.steps.length - 1; \
           return [r.left + s.sx(c.steps[i]), r.top + s.sy(c.values[i])]; })()",
    );
    b.call(
        "Input.dispatchMouseEvent",
        serde_json::json!({"type": "mouseMoved", "x": at[0], "y": at[1]}),
    );
    let tip = b.wait_for(
        "(t => !t.hidden && t.textContent)(document.getElementById('tip'))",
        Duration::from_secs(5),
    );
    assert!(
        tip.as_str()
            .unwrap()
            .starts_with("trial 1 · Pruned (MedianPruner)\nstep 2 · "),
        "{tip}"
    );
    b.screenshot(&screenshot_dir().join("local-run-live.png"));
    let status = run.0.wait().expect("lopper run ends");
    assert!(status.success(), "{status:?}");
    let r = Results::read(&out).unwrap();
    assert_eq!(r.trials[0].intermediate.len(), 16);
    assert_eq!(r.trials[1].state, TrialState::Pruned);
    assert_eq!(r.trials[1].intermediate.len(), 3);
}

/// A plain HTTP/1.0 GET of `url` (`http://127.0.0.1:PORT/...`): the body.
fn get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut c = std::net::TcpStream::connect(host).expect("connect to the dashboard");
    write!(c, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}
