//! Artifacts: trained, saved, loaded back, and forecasting the same; the forecasts learned what
//! the data says and hold their levels; refused when they do not match the contract.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use contract::{Action, Features};
use models::{LoadError, ModelKind, Trees};
use smartcore::linalg::basic::matrix::DenseMatrix;
use trainer::dataset::Example;
use trainer::synthetic;

fn train(kind: ModelKind, dir: &std::path::Path) -> models::LoadedModel {
    synthetic::train(kind, dir, &synthetic::feature_names()).unwrap()
}

/// Windows the models were not fitted or corrected on.
fn fresh(n: usize) -> Vec<Example> {
    synthetic::examples(n, 10_000)
}

#[test]
fn every_model_round_trips_learns_and_holds_its_levels() {
    let examples = fresh(400);
    let vectors: Vec<Features> = examples.iter().map(|e| e.vector.features).collect();
    for kind in ModelKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let trained = train(kind, dir.path());
        let reloaded = models::load(dir.path(), kind).unwrap();
        let a = trained.forecasts(&vectors).unwrap();
        let b = reloaded.forecasts(&vectors).unwrap();
        assert_eq!(
            a, b,
            "{kind}: the saved artifact forecasts what the trained model did"
        );
        // P90 holds in about 90 % of fresh windows.
        let covered = examples
            .iter()
            .zip(&a)
            .filter(|(e, f)| e.targets.up <= f.up.quantile(0.9))
            .count() as f64
            / examples.len() as f64;
        assert!(
            (0.8..=0.98).contains(&covered),
            "{kind}: P90 covers {covered}"
        );
        // A higher recent peak forecasts a higher next peak.
        let mean_p90 = |keep: &dyn Fn(f64) -> bool| {
            let picked: Vec<f64> = examples
                .iter()
                .zip(&a)
                .filter(|(e, _)| keep(e.vector.features.rate_max_recent.unwrap()))
                .map(|(_, f)| f.up.quantile(0.9))
                .collect();
            picked.iter().sum::<f64>() / picked.len() as f64
        };
        let (calm, bursty) = (mean_p90(&|m| m < 1.3), mean_p90(&|m| m > 1.7));
        assert!(bursty > calm + 0.1, "{kind}: {calm} then {bursty}");
        let metadata = reloaded.metadata();
        assert_eq!(metadata.features, synthetic::feature_names());
        assert!(
            metadata
                .model_version
                .starts_with(&format!("{kind}-5e7e71c0-"))
        );
        assert!(
            metadata.forecast.corrections.up.iter().any(|c| *c != 0.0),
            "{kind}: corrected on the calibration windows"
        );
    }
}

#[test]
fn flattened_forest_and_logistic_agree_with_smartcore() {
    let examples = fresh(300);
    // The forest: our walk of smartcore's trees reaches the leaves smartcore does.
    let dir = tempfile::tempdir().unwrap();
    let model = train(ModelKind::RandomForest, dir.path());
    let rows: Vec<Vec<f64>> = examples
        .iter()
        .map(|e| model.input().row(&e.vector.features))
        .collect();
    let bytes = std::fs::read(dir.path().join("up.json")).unwrap();
    let trees = Trees::from_smartcore_json(&bytes, rows[0].len()).unwrap();
    let theirs = serde_json::from_slice::<models::SmartcoreForest>(&bytes)
        .unwrap()
        .predict(&DenseMatrix::from_2d_vec(&rows).unwrap())
        .unwrap();
    for (row, t) in rows.iter().zip(&theirs) {
        assert!((trees.mean_output(row) - t).abs() < 1e-9, "{t}");
    }
    // The threshold model: P(target > t) above one half exactly where smartcore says 1.
    let dir = tempfile::tempdir().unwrap();
    let model = train(ModelKind::LogisticRegression, dir.path());
    let bytes = std::fs::read(dir.path().join("up.json")).unwrap();
    let logistic = models::Logistic::from_smartcore_json(&bytes, model.input().width()).unwrap();
    let smartcore = serde_json::from_slice::<models::SmartcoreLogistic>(&bytes).unwrap();
    for (i, e) in examples.iter().enumerate() {
        let mut row = model.input().row(&e.vector.features);
        let threshold = (i % 7) as f64 / 10.0;
        let p = logistic.exceedance(&row, threshold);
        row.push(threshold);
        let class = smartcore
            .predict(&DenseMatrix::from_2d_vec(&vec![row]).unwrap())
            .unwrap()[0];
        if (p - 0.5).abs() > 1e-9 {
            assert_eq!(
                p > 0.5,
                class == 1,
                "row {i}: P={p}, smartcore says {class}"
            );
        }
    }
}

#[test]
fn broken_artifacts_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::RandomForest, dir.path());
    let metadata_path = dir.path().join("metadata.json");
    let original = std::fs::read_to_string(&metadata_path).unwrap();

    assert!(matches!(
        models::load(dir.path(), ModelKind::Xgboost),
        Err(LoadError::WrongKind { .. })
    ));

    // A feature the contract does not have.
    std::fs::write(
        &metadata_path,
        original.replace("\"rate_max_recent\"", "\"rate_max_recently\""),
    )
    .unwrap();
    let err = models::load(dir.path(), ModelKind::RandomForest).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");
    assert!(err.to_string().contains("rate_max_recently"), "{err}");

    // A feature dropped from the list: the trees split on an input that no longer exists.
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    m["features"].as_array_mut().unwrap().truncate(1);
    m["imputation"].as_array_mut().unwrap().truncate(1);
    std::fs::write(&metadata_path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::RandomForest).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");

    // An artifact of the first format (classifiers): the format is named.
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    m["format_version"] = 1.into();
    m.as_object_mut().unwrap().remove("forecast");
    std::fs::write(&metadata_path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::RandomForest).unwrap_err();
    assert!(matches!(err, LoadError::Format { found: 1, .. }), "{err}");

    std::fs::write(&metadata_path, &original).unwrap();
    std::fs::write(dir.path().join("up.leaves.json"), b"{\"trees\": 3}").unwrap();
    assert!(matches!(
        models::load(dir.path(), ModelKind::RandomForest),
        Err(LoadError::Corrupt { .. })
    ));

    std::fs::remove_file(dir.path().join("up.json")).unwrap();
    assert!(matches!(
        models::load(dir.path(), ModelKind::RandomForest),
        Err(LoadError::Missing(_))
    ));
}

#[test]
fn xgboost_with_another_feature_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::Xgboost, dir.path());
    let path = dir.path().join("metadata.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["features"].as_array_mut().unwrap().swap(0, 1);
    std::fs::write(&path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::Xgboost).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");
}

#[test]
fn votes_on_a_batch_are_the_votes_one_by_one_and_size_for_the_load() {
    let vectors: Vec<Features> = (0..60)
        .map(|i| synthetic::examples(1, i * 7).remove(0).vector.features)
        .collect();
    for kind in ModelKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let model = train(kind, dir.path());
        let batch = model.votes(&vectors, 0.9).unwrap();
        let single: Vec<_> = vectors
            .iter()
            .map(|v| model.vote(v, 0.9).unwrap())
            .collect();
        assert_eq!(batch, single, "{kind}");
        assert!(model.votes(&[], 0.9).unwrap().is_empty());
        // Far past the capacity on 2 replicas: up; nearly idle on 4: down.
        let busy = model.vote(&synthetic::features(95.0, 2), 0.9).unwrap();
        assert_eq!(busy.action, Action::ScaleUp, "{kind}: {busy:?}");
        assert!(busy.safe_replicas > 2, "{kind}: {busy:?}");
        let idle = model.vote(&synthetic::features(5.0, 4), 0.9).unwrap();
        assert_eq!(idle.action, Action::ScaleDown, "{kind}: {idle:?}");
    }
}
