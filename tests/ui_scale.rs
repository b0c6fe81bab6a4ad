//! A study of 10,000 trials × 100 points: the page renders in under 2 s (from the navigation
//! to the table, history, curves, parallel coordinates and importance drawn) and stays
//! responsive (sorting and filtering all 10,000 rows take well under a second).

mod browser;

use std::process::{Command, Stdio};
use std::time::Duration;

use browser::{Browser, Server, dashboard_url, screenshot_dir};
use lopper::engine::{ParamValue, Params, TrialState};
use lopper::runner::results::{Results, TrialResult};

const TRIALS: u64 = 10_000;
const POINTS: i64 = 100;

fn results() -> Results {
    let trials = (0..TRIALS)
        .map(|i| {
            // Deterministic spread without a random number generator.
            let u = ((i * 7919) % 10_007) as f64 / 10_007.0;
            let w = ((i * 104_729) % 10_009) as f64 / 10_009.0;
            let lr = 10f64.powf(-4.0 + 3.0 * u);
            let mut params = Params::new();
            params.insert("lr".into(), ParamValue::Float(lr));
            params.insert("hidden".into(), ParamValue::Int(16 + 16 * (i as i64 % 16)));
            params.insert("dropout".into(), ParamValue::Float(0.5 * w));
            params.insert(
                "optimizer".into(),
                ParamValue::Str(["adam", "sgd", "rmsprop"][i as usize % 3].into()),
            );
            let floor = (lr.log10() + 2.5).powi(2) + 0.2 * w;
            let pruned = i % 3 == 1;
            let len = if pruned { 10 + (i as i64 % 40) } else { POINTS };
            let intermediate: Vec<(i64, f64)> = (0..len)
                .map(|s| (s, floor + 1.0 / (s as f64 + 1.0)))
                .collect();
            TrialResult {
                number: i,
                state: if pruned {
                    TrialState::Pruned
                } else {
                    TrialState::Complete
                },
                params,
                value: intermediate.last().map(|p| p.1),
                pruned_at_step: pruned.then_some(len - 1),
                intermediate,
                seconds: 10.0,
                reason: pruned.then(|| "MedianPruner".to_string()),
                message: None,
                stderr_tail: None,
                rungs: Default::default(),
            }
        })
        .collect();
    // From JSON, so fields added to the file later (with defaults) need no change here.
    let mut r: Results = serde_json::from_value(serde_json::json!({
        "study": "big", "direction": "minimize", "objective": "val_loss", "phase": "Succeeded",
        "best": null, "trials": [], "stepsRun": 0, "stepsSavedEstimate": 0
    }))
    .unwrap();
    r.trials = trials;
    r.summarize();
    r
}

#[test]
fn ten_thousand_trials_render_in_under_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let r = results();
    r.write(&path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_lopper"))
        .args(["ui", "--port", "0"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lopper ui");
    let url = dashboard_url(&mut server);
    let _server = Server(server);
    let mut b = Browser::launch(1400, 1000);
    // One untimed load first: the browser's own start-up (fonts, caches) is not the page's.
    let study = format!("{url}#/study/local/big");
    let mut times = Vec::new();
    let mut fetched = Vec::new();
    let mut stages = Vec::new();
    for _ in 0..3 {
        b.goto("about:blank");
        b.goto(&study);
        b.wait_for(
            "Number(document.body.dataset.ready || 0) > 0",
            Duration::from_secs(60),
        );
        assert!(
            b.eval("document.getElementById('error') === null")
                .as_bool()
                .unwrap(),
            "the page shows an error"
        );
        times.push(b.eval("window.lopper.loadMs").as_f64().unwrap());
        // When the study's page and curves had fully arrived (the server's share of the time).
        fetched.push(
            b.eval("Math.max(...performance.getEntriesByType('resource').filter(e => e.name.includes('api/studies/')).map(e => e.responseEnd))")
                .as_f64()
                .unwrap(),
        );
        stages.push(format!(
            "{} {}",
            b.eval("window.lopper.timings"),
            // Per request: waiting for the first byte (the server building it), then receiving.
            b.eval("performance.getEntriesByType('resource').filter(e => e.name.includes('api/studies/')).map(e => `${e.name.endsWith('/curves') ? 'curves' : 'page'} ${Math.round(e.responseStart - e.requestStart)}+${Math.round(e.responseEnd - e.responseStart)} ms ${Math.round(e.encodedBodySize / 1024)} KiB`).join(', ')")
        ));
    }
    // Everything is there: all trials in the table's pages, every curve, the best one first
    // when sorted.
    assert_eq!(
        b.eval("document.getElementById('pageinfo').textContent"),
        "1–50 of 10000"
    );
    assert_eq!(b.eval("window.lopper.curves.size"), TRIALS);
    assert_eq!(
        b.eval("window.lopper.charts[0].data[1].length"),
        r.trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count()
    );
    let sort_ms = b
        .eval("(() => { const t = performance.now(); document.querySelector('#trials th[data-key=value]').click(); return performance.now() - t; })()")
        .as_f64()
        .unwrap();
    assert_eq!(
        b.eval("document.querySelector('#trials tbody tr [data-field=number]').textContent"),
        r.best.as_ref().unwrap().number.to_string()
    );
    let filter_ms = b
        .eval("(() => { const t = performance.now(); const f = document.getElementById('filter'); f.value = 'state=Pruned lr<0.001'; f.dispatchEvent(new Event('input')); return performance.now() - t; })()")
        .as_f64()
        .unwrap();
    let want = r
        .trials
        .iter()
        .filter(|t| {
            t.state == TrialState::Pruned
                && matches!(t.params["lr"], ParamValue::Float(x) if x < 0.001)
        })
        .count();
    assert_eq!(
        b.eval("document.getElementById('pageinfo').textContent"),
        format!("1–50 of {want}")
    );
    b.eval("(f => { f.value = ''; f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))");
    // What a running trial's report costs the page: the table and the curves redrawn (the
    // history and parallel coordinates only when a trial completes).
    let live_ms = b
        .eval("(() => { const t = performance.now(); renderTable(); drawCurves(); return performance.now() - t; })()")
        .as_f64()
        .unwrap();
    b.screenshot(&screenshot_dir().join("scale-study.png"));
    let best = times[1..].iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "10,000 × 100: page rendered in {times:?} ms (first includes the browser's warm-up), \
         the study's data fully received at {fetched:?} ms; sort {sort_ms:.0} ms, filter {filter_ms:.0} ms, \
         a live report's redraw {live_ms:.0} ms; \
         stages (ms): {stages:?}"
    );
    assert!(best < 2000.0, "rendered in {best:.0} ms (loads: {times:?})");
    assert!(
        sort_ms < 1000.0 && filter_ms < 1000.0 && live_ms < 1000.0,
        "sort {sort_ms} ms, filter {filter_ms} ms, live redraw {live_ms} ms"
    );
}
