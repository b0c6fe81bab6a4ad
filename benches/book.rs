//! Criterion benchmark: what one report costs the operator's in-memory book on a long curve.
//! `incremental` is a report as the operator handles it now (append, seal, commit: only the
//! unsealed window is touched); `rebuild` is the reference measured in the same run, the
//! record rebuilt from the whole curve, which is what each report cost before.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lopper::controller::book::Book;
use lopper::crd::{Point, Trial, TrialPhase, TrialSpec, TrialStatus, curve};
use lopper::engine::PrunerState;

/// A running trial with `n` reported steps, as `observe` leaves it, and its sealed points.
fn long_trial(n: i64) -> (Trial, Vec<Point>) {
    let mut t = Trial::new(
        "s-0",
        TrialSpec {
            study: "s".into(),
            number: 0,
            params: Default::default(),
            invalid: None,
        },
    );
    t.metadata.uid = Some("u0".into());
    t.metadata.resource_version = Some("1".into());
    t.status = Some(TrialStatus {
        phase: Some(TrialPhase::Running),
        ..Default::default()
    });
    let mut sealed_all = Vec::new();
    for step in 0..n {
        report(&mut t, step, &mut sealed_all);
    }
    (t, sealed_all)
}

/// One report of `step`, as `observe` writes it; returns the points sealed by it.
fn report(t: &mut Trial, step: i64, sealed_all: &mut Vec<Point>) -> Vec<Point> {
    let st = t.status.as_mut().unwrap();
    let mut last = st.intermediate.last().map(|p| p.step).max(st.last_step);
    curve::append(
        &mut st.intermediate,
        &mut last,
        &[(step, (step as f64 * 1e-3).cos())],
    );
    st.last_step = last;
    let sealed: Vec<Point> = curve::seal(&mut st.intermediate)
        .into_iter()
        .flatten()
        .collect();
    if !sealed.is_empty() {
        st.curve_chunks =
            Some(st.curve_chunks.unwrap_or(0) + (sealed.len() / curve::CHUNK_POINTS) as u32);
        sealed_all.extend_from_slice(&sealed);
    }
    sealed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("report_on_curve");
    for n in [1_000i64, 10_000, 100_000] {
        let (t, sealed_all) = long_trial(n);
        g.bench_with_input(BenchmarkId::new("incremental", n), &n, |b, &n| {
            let mut t = t.clone();
            let mut sealed_all = sealed_all.clone();
            let mut book = Book::default();
            let all = sealed_all.clone();
            book.sync(&[Arc::new(t.clone())], &|_, _| Some(all.clone()));
            let mut step = n;
            b.iter(|| {
                let sealed = report(&mut t, step, &mut sealed_all);
                book.commit(&t, &sealed, &PrunerState::default());
                step += 1;
            })
        });
        g.bench_with_input(BenchmarkId::new("rebuild", n), &n, |b, _| {
            b.iter(|| std::hint::black_box(t.record_with(&sealed_all)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
