//! Inference speed per model: the forecast (both horizons, every level) for one feature vector
//! and for a batch of 256, a whole vote, and the votes on 256 vectors in one call (what the
//! service does with vectors that wait), on the committed models in models/.
//!
//!     cargo bench -p ml-inference --bench inference
//!
//! Set MODELS_DIR to benchmark other artifacts.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use contract::Features;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use models::ModelKind;
use std::hint::black_box;
use std::path::PathBuf;
use trainer::synthetic;

fn models_dir() -> PathBuf {
    std::env::var_os("MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn vectors(n: usize) -> Vec<Features> {
    (0..n)
        .map(|i| synthetic::features((i * 37 % 110) as f64, (i % 4 + 1) as u32))
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = models_dir();
    let batch = vectors(256);
    for kind in ModelKind::ALL {
        let model = match models::load(&dir.join(kind.as_str()), kind) {
            Ok(model) => model,
            Err(e) => panic!("{e} (train the models first: scripts/train.sh)"),
        };
        let mut group = c.benchmark_group(kind.as_str());
        group.throughput(Throughput::Elements(1));
        group.bench_function("forecast of one vector", |b| {
            b.iter(|| model.forecasts(black_box(&batch[..1])).unwrap())
        });
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function("forecasts of 256", |b| {
            b.iter(|| model.forecasts(black_box(&batch)).unwrap())
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function("vote", |b| {
            b.iter(|| model.vote(black_box(&batch[7]), 0.9).unwrap())
        });
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function("votes on 256 vectors", |b| {
            b.iter(|| model.votes(black_box(&batch), 0.9).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
