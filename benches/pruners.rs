//! Criterion benchmark: replay 1,000 trials x 50 steps through median and successive
//! halving. `bench/pruners_vs_optuna.py` compares the same replay against Optuna.

use criterion::{Criterion, criterion_group, criterion_main};
use lopper::engine::Direction;
use lopper::engine::pruners::PrunerSpec;
use lopper::engine::replay::{Curve, ReplayInput, replay};
use serde_json::json;

fn curves(n_trials: usize, n_steps: usize) -> Vec<Curve> {
    // Deterministic pseudo-random learning curves (xorshift), no external state.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n_trials)
        .map(|_| {
            let (a, b, c) = (0.2 + 1.8 * next(), 0.01 + 0.29 * next(), next() - 0.5);
            let values = (0..n_steps)
                .map(|s| a * (-b * s as f64).exp() + c + 0.02 * (next() - 0.5))
                .collect();
            Curve {
                steps: None,
                values,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let trials = curves(1000, 50);
    for (name, spec) in [
        ("median", json!({"median": {}})),
        ("successiveHalving", json!({"successiveHalving": {}})),
    ] {
        let input = ReplayInput {
            study: "bench".into(),
            direction: Direction::Minimize,
            pruner: PrunerSpec::from_value(&spec, "pruner").unwrap(),
            trials: trials.clone(),
        };
        c.bench_function(&format!("replay_1000x50_{name}"), |b| {
            b.iter(|| replay(std::hint::black_box(&input)).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
